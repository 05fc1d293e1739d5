"""A stable hash bucket of a key's text (``bucket_of``): a polynomial hash over the UTF-8
bytes with a splitmix64 finish, numpy only, so every worker and every version computes the
same bucket. The full build's key ranges (``curation_ranges``) and the streamed publish's
key buckets (``delta.streamed``) use it.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_P = np.uint64(0x100000001B3)  # FNV-1a's 64-bit prime as the polynomial's base
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)  # splitmix64
# keys hashed at once
HASH_ROWS = 65_536


def bucket_of(keys: pa.Array | pa.ChunkedArray, count: int) -> np.ndarray:
    """The bucket (0 .. count-1) of each key's text; null counts as the empty text.

    Stable across processes, hosts and library versions: arithmetic on the UTF-8 bytes only.
    Computed ``HASH_ROWS`` keys at a time (the arithmetic takes about 40 bytes per byte of
    text), so memory does not follow the number of keys.
    """
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    if len(keys) <= HASH_ROWS:
        return _buckets(keys, count)
    pieces = [_buckets(keys.slice(at, HASH_ROWS), count) for at in range(0, len(keys), HASH_ROWS)]
    return np.concatenate(pieces)


def _buckets(keys: pa.Array, count: int) -> np.ndarray:
    text = pc.fill_null(pc.cast(keys, pa.large_string()), "")
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    n = len(text)
    if n == 0:
        return np.zeros(0, np.int64)
    _, offsets_buf, data_buf = text.buffers()
    offsets = np.frombuffer(offsets_buf, np.int64)[text.offset : text.offset + n + 1]
    start, end = int(offsets[0]), int(offsets[-1])
    data = (
        np.frombuffer(data_buf, np.uint8)[start:end]
        if data_buf is not None
        else np.zeros(0, np.uint8)
    )
    rel = offsets - start
    lengths = np.diff(rel)
    longest = int(lengths.max())
    powers = np.ones(max(longest, 1), np.uint64)
    if longest > 1:
        powers[1:] = np.cumprod(np.full(longest - 1, _P, np.uint64))  # wraps mod 2**64
    pos = np.arange(len(data), dtype=np.int64) - np.repeat(rel[:-1], lengths)
    terms = (data.astype(np.uint64) + np.uint64(1)) * powers[pos]
    sums = np.concatenate([np.zeros(1, np.uint64), np.cumsum(terms, dtype=np.uint64)])
    h = sums[rel[1:]] - sums[rel[:-1]]  # each text's sum, mod 2**64
    h ^= lengths.astype(np.uint64) * _M2
    h ^= h >> np.uint64(30)
    h *= _M1
    h ^= h >> np.uint64(27)
    h *= _M2
    h ^= h >> np.uint64(31)
    return (h % np.uint64(count)).astype(np.int64)

"""Delta Lake deletion vectors: which rows of a data file are deleted, without rewriting it.

delta-rs reads tables with deletion vectors (``DeltaTable.scan``, polars, and its MERGE,
DELETE, OPTIMIZE and overwrite honour them) but cannot write them yet (delta-rs#1094,
#4079). ``delta.publish`` writes them itself for an incremental night: the touched keys'
old rows are marked deleted in their files and the new rows go to one new sorted file, all
in one commit, so 1% of the keys changing costs 1% of a rewrite (docs/decisions.md).

The format is the Delta protocol's (PROTOCOL.md, "Deletion Vector Format"): a
``RoaringBitmapArray`` in the portable serialization (magic number, then per high 32 bits a
32-bit roaring bitmap in the RoaringFormatSpec layout), stored inline in the log
(``storageType: "i"``) as Z85 text. Inline is enough here: a roaring bitmap holds at most
8 KiB per 65,536 rows, and ``delta.maintain`` rewrites a table once a fifth of it is deleted.
Encoding is deterministic, so the descriptor of a file's current vector can be rebuilt from
its deleted positions (a ``remove`` action names the vector it removes).
"""

from __future__ import annotations

import struct

import numpy as np

_MAGIC = 1681511377  # RoaringBitmapArray, portable serialization
_COOKIE_NO_RUNS = 12346  # RoaringFormatSpec: array and bitmap containers only
_ARRAY_MAX = 4096  # a container with more values is a 65,536-bit bitmap
_Z85 = np.frombuffer(
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#",
    np.uint8,
)


def z85(data: bytes) -> str:
    """Z85 text of ``data`` zero-padded to a multiple of 4 bytes (the reader cuts it back to
    the descriptor's ``sizeInBytes``)."""
    padded = data + b"\0" * (-len(data) % 4)
    words = np.frombuffer(padded, ">u4").astype(np.int64)
    digits = np.empty((len(words), 5), np.int64)
    for i in range(4, -1, -1):
        digits[:, i] = words % 85
        words //= 85
    return _Z85[digits.ravel()].tobytes().decode("ascii")


def _roaring32(values: np.ndarray) -> bytes:
    """Sorted unique uint32 values as one 32-bit roaring bitmap (portable format)."""
    high = values >> 16
    keys, starts = np.unique(high, return_index=True)
    ends = [*starts[1:], len(values)]
    containers = []
    for key, start, end in zip(keys, starts, ends, strict=True):
        low = (values[start:end] & 0xFFFF).astype("<u2")
        if len(low) <= _ARRAY_MAX:
            body = low.tobytes()
        else:
            bits = np.zeros(1 << 16, bool)
            bits[low] = True
            body = np.packbits(bits, bitorder="little").tobytes()
        containers.append((int(key), len(low), body))
    header = struct.pack("<II", _COOKIE_NO_RUNS, len(containers))
    header += b"".join(struct.pack("<HH", key, count - 1) for key, count, _ in containers)
    offset = len(header) + 4 * len(containers)
    offsets = []
    for _, _, body in containers:
        offsets.append(struct.pack("<I", offset))
        offset += len(body)
    return header + b"".join(offsets) + b"".join(body for _, _, body in containers)


def serialize(positions: np.ndarray) -> bytes:
    """Deleted row positions (0-based, physical, in the data file) as a RoaringBitmapArray."""
    rows = np.unique(np.asarray(positions, np.uint64))
    high = rows >> np.uint64(32)
    keys, starts = np.unique(high, return_index=True)
    ends = [*starts[1:], len(rows)]
    out = [struct.pack("<iq", _MAGIC, len(keys))]
    for key, start, end in zip(keys, starts, ends, strict=True):
        low = (rows[start:end] & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        out.append(struct.pack("<i", int(key)) + _roaring32(low))
    return b"".join(out)


def descriptor(positions: np.ndarray) -> dict[str, object]:
    """The ``deletionVector`` field of an ``add`` action deleting ``positions`` (inline)."""
    data = serialize(positions)
    return {
        "storageType": "i",
        "pathOrInlineDv": z85(data),
        "sizeInBytes": len(data),
        "cardinality": len(np.unique(positions)),
    }

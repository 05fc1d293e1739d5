"""The hand-written deletion-vector writer: publish touched keys without rewriting a file.

delta-rs reads tables with deletion vectors (``DeltaTable.scan``, polars, and its MERGE,
DELETE, OPTIMIZE and overwrite honour them) but cannot write them yet (delta-rs#1094,
#4079). ``publish`` writes them here for an incremental night: the touched keys' old rows
are marked deleted in their files and the new rows go to one new sorted file, all in one
commit, so 1% of the keys changing costs 1% of a rewrite (docs/decisions.md). When delta-rs
writes deletion vectors, retiring this is deleting this module and its branch in
``publishing._publish_once``.

The format is the Delta protocol's (PROTOCOL.md, "Deletion Vector Format"): a
``RoaringBitmapArray`` in the portable serialization (magic number, then per high 32 bits a
32-bit roaring bitmap in the RoaringFormatSpec layout), stored inline in the log
(``storageType: "i"``) as Z85 text. Inline is enough here: a roaring bitmap holds at most
8 KiB per 65,536 rows, and ``maintain`` rewrites a table once a fifth of it is deleted.
Encoding is deterministic, so the descriptor of a file's current vector can be rebuilt from
its deleted positions (a ``remove`` action names the vector it removes).
"""

from __future__ import annotations

import struct
import time
from typing import Any
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datacloud.delta import log, protocol
from datacloud.delta.read import files_in_range
from datacloud.delta.rewrite import new_file
from datacloud.delta.spec import (
    ROW_HASH,
    Changes,
    CommitInfo,
    MergeResult,
    PublishSpec,
    Snapshot,
    VectorsUnknown,
)
from datacloud.storage import DataPath, filesystem, is_object_store

# --- the format: a RoaringBitmapArray, inline as Z85 --------------------------------------

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


# --- the writer ---------------------------------------------------------------------------


def _published_hashes(
    path: DataPath,
    files: list[str],
    key: str,
    touched: pa.Array,
    already: dict[str, np.ndarray],
) -> pa.Table:
    """Per published row of the given files whose ``key`` is touched and not yet deleted:
    ``key``, ``_row_hash``, its file (``_file``) and position in it (``_at``). Only the two
    columns are read (locally by polars, on the object store by pyarrow)."""
    import polars as pl

    wanted = pl.Series("k", touched.cast(pa.large_string())).implode()
    parts = []
    for name in files:
        loc = path / unquote(name)
        if is_object_store(path):
            fs, p = filesystem(loc)
            frame = pl.from_arrow(pq.read_table(p, columns=[key, ROW_HASH], filesystem=fs))
            assert isinstance(frame, pl.DataFrame)
            scan = frame.lazy()
        else:
            scan = pl.scan_parquet(str(loc)).select(key, ROW_HASH)
        found = (
            scan.with_row_index("_at").filter(pl.col(key).cast(pl.String).is_in(wanted)).collect()
        )
        at = found["_at"].to_numpy().astype(np.int64)
        keep = np.ones(len(at), bool)
        dead = already.get(name)
        if dead is not None and len(dead):
            keep = ~np.isin(at, dead)
        if keep.any():
            part = pa.table(
                {
                    key: found[key].to_arrow().cast(touched.type).filter(keep),
                    ROW_HASH: found[ROW_HASH].to_arrow().filter(keep),
                    "_at": pa.array(at[keep], pa.int64()),
                }
            )
            parts.append(part.append_column("_file", pa.array([name] * len(part), pa.string())))
    if not parts:
        return pa.table({key: touched.slice(0, 0), ROW_HASH: pa.array([], pa.int64())})
    return pa.concat_tables(parts, promote_options="permissive")


def merge(
    snapshot: Snapshot, changes: Changes, spec: PublishSpec, commit: CommitInfo
) -> MergeResult:
    """Publish touched keys in one commit without rewriting the files that hold them.

    Each file whose ``key`` range can hold a touched key gets a deletion vector marking the
    old rows of the keys that changed or are gone (added to the rows it already deletes);
    the inserted and changed rows, sorted by ``sort_by``, go to one new file. A row whose
    ``_row_hash`` equals the published one is left alone; nothing changed, no commit. Only
    the key and hash columns of the published files are read. The ``remove`` and the new
    ``add`` of a file carry its vector, tags and statistics exactly as the log holds them
    (statistics with ``"tightBounds": false``).
    """
    path, dt, already = snapshot.path, snapshot.dt, snapshot.deleted
    key, gone = spec.key, changes.gone
    schema = pa.schema(dt.schema().to_arrow())
    rows = changes.rows.cast(schema)
    touched = Changes(rows, gone).touched(key)
    files = files_in_range(dt, key, touched)
    old = None
    if files:
        found = _published_hashes(path, list(files), key, touched, already)
        old = found.sort_by([(key, "ascending")]) if found.num_rows else None
    # pair the published rows with the new ones by key: equal hashes stay, others go
    drop_keys = gone
    changed = rows
    updated = 0
    if old is not None:
        again = rows.filter(pc.is_in(rows[key], value_set=old[key].combine_chunks()))
        again = again.sort_by([(key, "ascending")])
        paired = old.filter(pc.is_in(old[key], value_set=again[key].combine_chunks()))
        if paired.num_rows != again.num_rows:  # a key twice in the table: cannot pair
            raise ValueError(f"{path}: duplicate values of key column {key}")
        differs = pc.not_equal(paired[ROW_HASH], again[ROW_HASH])
        updated = pc.sum(differs).as_py() or 0
        same = paired[key].filter(pc.invert(differs))
        changed = rows.filter(pc.invert(pc.is_in(rows[key], value_set=same)))
        changed_keys = paired[key].filter(differs).combine_chunks()
        drop_keys = pa.concat_arrays([gone, changed_keys.cast(gone.type)])
    deleted = 0
    now = int(time.time() * 1000)
    actions: list[dict[str, Any]] = []
    logged = log.logged_adds(path, dt.version())
    if old is not None:
        leaving = old.filter(pc.is_in(old[key], value_set=drop_keys))
        deleted = pc.sum(pc.is_in(leaving[key], value_set=gone)).as_py() or 0
        for name in pc.unique(leaving["_file"]).to_pylist():
            dead = already.get(name, np.array([], np.int64))
            entry = logged.get(name)
            vector = (entry or {}).get("deletionVector")
            if entry is None or (len(dead) != (vector or {}).get("cardinality", 0)):
                raise VectorsUnknown(f"{name}: its vector is not in the log as expected")
            at = leaving.filter(pc.equal(leaving["_file"], name))["_at"].to_numpy()
            added = {k: v for k, v in entry.items() if v is not None}
            added |= {
                "dataChange": True,
                "stats": protocol.loose_stats(entry.get("stats")),
                "deletionVector": descriptor(np.union1d(dead, at)),
            }
            if added["stats"] is None:
                raise VectorsUnknown(f"{name}: no statistics (numRecords) in the log")
            actions += [{"remove": protocol.remove_action(entry, now)}, {"add": added}]
    inserted = changed.num_rows - updated
    new: dict[str, bytes] = {}
    if changed.num_rows:
        ordered = changed.sort_by([(k, "ascending") for k in spec.sort_by])
        add, data = new_file(ordered, spec.row_group_rows, now)
        new[add["path"]] = data
        actions.append({"add": add})
    if not actions:
        return MergeResult(dt.version(), 0, 0, 0)
    counts = {"inserted": inserted, "updated": updated, "deleted": deleted}
    info = commit.with_extra(**{f"rows_{k}": str(v) for k, v in counts.items()})
    head = info.with_extra(publish="deletion_vectors").actions(
        "MERGE", {"predicate": f"{key} in touched keys", "mode": "deletion vectors"}
    )
    version = log.commit_files(path, dt.version() + 1, [*head, *actions], new)
    return MergeResult(version, inserted, updated, deleted)

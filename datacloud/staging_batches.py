"""Staging a raw partition in bounded memory: batches in, exact deduplication across them.

``nightly.stage`` reads the landed raw partition ``batch_rows`` rows at a time
(``landing.iter_partition``), never whole. Each batch is normalised without deduplication;
its rejected rows and issues are appended to spill files, its raw-gate profile (one small
verdict per row and column, ``quality_profile.raw_profile``) to a list, and its kept rows are
written into one of ``ceil(rows / batch_rows)`` hash buckets by business key. Every row of a
business key lands in the same bucket, so deduplicating each bucket on its own
(``normalise.deduplicate``) is exactly the whole table's deduplication: a duplicate pair split
across two batches is still one row and one DUPLICATE_KEY. Rows with an empty business key
(all kept) are spread by source key.

What stays in memory for the whole table is the profile (one byte per row and profiled column,
which the gate reads whole). The source keys the deletions need (raw, accepted, the
deduplication losers, staged; ``merge_plan``) are spilled too, in buckets by a hash of the
source key. Every bucketed spill is a ``spill_buckets.BucketSpill``: at most ``MAX_OPEN`` open
files however many buckets, and a few bytes of memory per slice written (a Parquet writer per
bucket held a row group's metadata per slice: batches x buckets of them, the square of the rows).
The spill folder lives beside the night's rejected files (the same personal data, the same
disk) and is removed when the step ends; a folder left by a killed process is removed by the
next stage of the table.
"""

from __future__ import annotations

import math
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datacloud.config import Department, TableSpec
from datacloud.delta.read import plain_types
from datacloud.landing import iter_partition, partition_rows, read_partition
from datacloud.normalise import (
    ISSUE_COLUMNS,
    SOURCE_PK,
    SOURCE_UPDATED_AT,
    business_key_empty,
    business_key_text,
    deduplicate,
    duplicate_issues,
    normalise_table,
    source_pk,
    unmapped_columns,
)
from datacloud.quality_profile import raw_profile
from datacloud.spill_buckets import BucketSpill
from datacloud.storage import DataPath

BATCH_ENV = "DATACLOUD_STAGE_BATCH_ROWS"
# 200k czrk rows are about 30 MB of Arrow; a batch and its normalised copies stay well
# under 0.5 GiB, and the dedup buckets hold about as many rows each (docs/performance.md)
DEFAULT_BATCH_ROWS = 200_000
SPILL_PREFIX = ".stage-"
ISSUE_SCHEMA = pa.schema([(c, pa.string()) for c in ISSUE_COLUMNS])


def batch_rows() -> int:
    """The configured batch size: ``DATACLOUD_STAGE_BATCH_ROWS``, else ``DEFAULT_BATCH_ROWS``."""
    text = os.environ.get(BATCH_ENV, "").strip()
    if not text:
        return DEFAULT_BATCH_ROWS
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{BATCH_ENV} must be a whole number of rows >= 1, not {text!r}")
    return n


@dataclass
class BatchedOutcome:
    """A raw partition normalised batch by batch; accepted rows wait in ``buckets``."""

    spill: Path
    n_buckets: int  # bucket_of's modulus
    rejected: Path  # rows.parquet as the night's rejected rows
    issues: Path  # issues.parquet
    profile: pa.Table
    schema: pa.Schema | None  # of the accepted rows (None: no row was accepted)
    unmapped: list[str]
    # deduplicated accepted rows by bucket, each file sorted by source key
    buckets: dict[int, Path] = field(default_factory=dict)
    # source keys by source-key bucket, per kind: raw, accepted, losers, staged, taken
    keys: dict[str, BucketSpill] = field(default_factory=dict)
    rows_in: int = 0
    rows_accepted: int = 0
    rows_rejected: int = 0
    rows_deduplicated: int = 0
    warnings: Counter[str] = field(default_factory=Counter)
    rejections: Counter[str] = field(default_factory=Counter)
    latest: datetime | None = None

    def reconciles(self) -> bool:
        return self.rows_in == self.rows_accepted + self.rows_rejected + self.rows_deduplicated

    def accepted_batches(self) -> Iterator[pa.RecordBatch]:
        """The accepted rows, bucket by bucket, a row group at a time."""
        for path in self.buckets.values():
            with pq.ParquetFile(path) as f:
                yield from f.iter_batches(use_threads=False)


def spill_folder(rejected: Path) -> Path:
    """A new spill folder beside the night's rejected folder; dead ones of the table go."""
    table = rejected.parent
    table.mkdir(parents=True, exist_ok=True)
    for old in table.glob(f"{SPILL_PREFIX}*"):
        pid = old.name[len(SPILL_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    folder = table / f"{SPILL_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    return folder


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def bucket_of(rows: pa.Table, key: list[str], buckets: int) -> np.ndarray:
    """The bucket of each row: a hash of its business key, of its source key when the
    business key is empty (such rows are never deduplicated)."""
    if buckets == 1 or rows.num_rows == 0:
        return np.zeros(rows.num_rows, dtype=np.int64)
    text = business_key_text(rows, key)
    empty = pa.array(business_key_empty(rows, key))
    by = pc.if_else(empty, pc.cast(rows[SOURCE_PK], pa.string()).combine_chunks(), text)
    hashed = pl.from_arrow(by).hash(seed=0).to_numpy()  # type: ignore[union-attr]
    return (hashed % np.uint64(buckets)).astype(np.int64)


def _raw_batches(partition: DataPath, rows: int) -> Iterator[pa.Table]:
    """The partition's batches; an empty partition as its one (empty) table."""
    seen = False
    for batch in iter_partition(partition, rows):
        seen = True
        yield batch
    if not seen:
        yield read_partition(partition)


class _Writers:
    """Parquet writers of the rejected rows and issues, opened on first use, each with the
    first table's schema (a row group per batch)."""

    def __init__(self) -> None:
        self.open: dict[Path, pq.ParquetWriter] = {}

    def write(self, path: Path, table: pa.Table) -> None:
        writer = self.open.get(path)
        if writer is None:
            writer = self.open[path] = pq.ParquetWriter(path, table.schema, compression="zstd")
        if table.schema != writer.schema:
            table = table.cast(writer.schema)
        writer.write_table(table)

    def close(self) -> None:
        for writer in self.open.values():
            writer.close()
        self.open.clear()


def normalise_partition(
    partition: DataPath,
    dept: Department,
    table: TableSpec,
    ds: date,
    rows_per_batch: int,
    spill: Path,
    profile_columns: list[str],
) -> BatchedOutcome:
    """Normalise, profile and deduplicate a raw partition ``rows_per_batch`` rows at a time."""
    total = partition_rows(partition)
    n_buckets = max(1, math.ceil(total / rows_per_batch))
    key = table.business_key
    out = BatchedOutcome(
        spill=spill,
        n_buckets=n_buckets,
        rejected=spill / "rows.parquet",
        issues=spill / "issues.parquet",
        profile=pa.table({}),
        schema=None,
        unmapped=[],
    )
    writers = _Writers()
    buckets = BucketSpill(spill, "rows", n_buckets)
    raw_keys = _keys(out, "raw")
    profiles: list[pa.Table] = []
    unmapped: list[str] | None = None
    try:
        for raw in _raw_batches(partition, rows_per_batch):
            if unmapped is None:
                unmapped = unmapped_columns(raw, table)
            pk = source_pk(raw, table)
            part = normalise_table(raw, dept, table, ds, dedup=False)
            profiles.append(raw_profile(raw, table, part.issues, pk, profile_columns))
            _spill_keys(raw_keys, pk)
            out.rows_in += part.rows_in
            out.rows_rejected += part.rows_rejected
            out.warnings.update(part.warnings)
            out.rejections.update(part.rejections)
            writers.write(out.rejected, part.rejected)
            writers.write(out.issues, part.issues.cast(ISSUE_SCHEMA))
            accepted = part.accepted
            del raw, part, pk
            if out.schema is None:
                out.schema = accepted.schema
            _spill_by(buckets, accepted, bucket_of(accepted, key, n_buckets))
        raw_keys.close()
        buckets.close()
        _deduplicate_buckets(out, buckets, table, writers)
    finally:
        writers.close()
        buckets.close()
        for keys in out.keys.values():
            keys.close()
    out.unmapped = unmapped or []
    out.profile = pa.concat_tables(profiles)
    return out


def _keys(out: BatchedOutcome, kind: str) -> BucketSpill:
    """The spill of the source keys of a kind, in source-key buckets."""
    if kind not in out.keys:
        out.keys[kind] = BucketSpill(out.spill, f"keys-{kind}", out.n_buckets)
    return out.keys[kind]


def _spill_by(spill: BucketSpill, rows: pa.Table, ids: np.ndarray) -> None:
    """Append each row to its bucket (``ids``, one per row), a slice per bucket."""
    order = np.argsort(ids, kind="stable")
    rows, ids = rows.take(pa.array(order)), ids[order]
    for b in np.unique(ids):
        lo, hi = np.searchsorted(ids, b, "left"), np.searchsorted(ids, b, "right")
        spill.write(int(b), rows.slice(lo, hi - lo))


def _pk_bucket(keys: pa.Array, buckets: int) -> np.ndarray:
    if buckets == 1 or len(keys) == 0:
        return np.zeros(len(keys), dtype=np.int64)
    hashed = pl.from_arrow(keys).hash(seed=0).to_numpy()  # type: ignore[union-attr]
    return (hashed % np.uint64(buckets)).astype(np.int64)


def _spill_keys(spill: BucketSpill, keys: pa.Array | pa.ChunkedArray) -> None:
    """Append source keys (as text) to their spill, bucketed by the key's hash."""
    keys = pc.cast(keys, pa.string())
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    _spill_by(spill, pa.table({SOURCE_PK: keys}), _pk_bucket(keys, spill.buckets))


def _read_keys(out: BatchedOutcome, kind: str, b: int) -> pa.Array:
    rows = out.keys[kind].read(b) if kind in out.keys else None
    if rows is None:
        return pa.array([], pa.string())
    return rows[SOURCE_PK].combine_chunks()


def _deduplicate_buckets(
    out: BatchedOutcome, buckets: BucketSpill, table: TableSpec, writers: _Writers
) -> None:
    """Deduplicate each bucket on its own (it holds every row of its keys), write it sorted
    by source key, spill its accepted and its losers' source keys, write the losers' issues,
    count them, note the latest update."""
    accepted, losers = _keys(out, "accepted"), _keys(out, "losers")
    for b in range(out.n_buckets):
        rows = buckets.read(b)
        buckets.release(b)
        if rows is None:
            continue
        kept, dropped = deduplicate(rows, table.business_key)
        del rows
        if dropped:
            out.rows_deduplicated += len(dropped)
            out.warnings["DUPLICATE_KEY"] += len(dropped)
            writers.write(out.issues, duplicate_issues(dropped, table))
            _spill_keys(losers, pa.array(dropped, pa.string()))
        kept = kept.sort_by([(SOURCE_PK, "ascending")])
        path = out.spill / f"bucket-{b:05d}.parquet"
        pq.write_table(kept, path, compression="zstd")
        out.buckets[b] = path
        out.rows_accepted += kept.num_rows
        _spill_keys(accepted, kept[SOURCE_PK])
        if SOURCE_UPDATED_AT in kept.column_names and kept.num_rows:
            latest = pc.max(kept[SOURCE_UPDATED_AT]).as_py()
            if latest is not None and (out.latest is None or latest > out.latest):
                out.latest = latest
    accepted.close()
    losers.close()


def _same(a: pa.ChunkedArray | pa.Array, b: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Null-safe equality per row (``NOT (a IS DISTINCT FROM b)``)."""
    eq = pc.fill_null(pc.equal(a, b), False)
    both_null = pc.and_(pc.is_null(a), pc.is_null(b))
    return np.asarray(pc.or_(eq, both_null).to_numpy(zero_copy_only=False), dtype=bool)


def merge_plan(
    out: BatchedOutcome, staged: Any, key: list[str], compare: list[str], full: bool
) -> pa.Array:
    """What tonight's MERGE into the staged table (a loaded DeltaTable) must do, bucket by
    bucket, never holding the table: returns the staged source keys to delete, and drops from
    the buckets every accepted row the staged table already holds unchanged.

    The deletions are ``staged_rows.staged_deletions``'s, computed in buckets: a staged key
    goes when it is not accepted tonight and it lost tonight's deduplication, or it is absent
    from a full snapshot, or a row accepted tonight carries its business key. An unchanged row
    (every ``compare`` column equal, nulls equal) is one the MERGE would match and leave
    alone, so the staged content and the MERGE's counts are the same without it, and the
    MERGE's hash join (built on its source, in memory) holds only tonight's changes. The
    staged table is read as a stream into the business-key buckets (rows) and the source-key
    buckets (keys)."""
    schema = out.schema
    names = set(staged.schema().to_arrow().names)
    assert schema is not None
    by_key = all(k in names and k in schema.names for k in key)
    unchanged = all(c in names for c in compare)
    columns = list(dict.fromkeys([SOURCE_PK, *(key if by_key else []), *compare]))
    columns = [c for c in columns if c in names]
    target = pa.schema([schema.field(c) for c in columns])
    staged_keys, taken = _keys(out, "staged"), _keys(out, "taken")
    staged_rows = BucketSpill(out.spill, "staged", out.n_buckets)
    try:
        for batch in pa.RecordBatchReader.from_stream(staged.scan(columns=columns)):
            rows = plain_types(pa.Table.from_batches([batch])).select(columns).cast(target)
            _spill_keys(staged_keys, rows[SOURCE_PK])
            if not (by_key or unchanged):
                continue
            ids = bucket_of(rows, key, out.n_buckets) if by_key else np.zeros(len(rows), int)
            _spill_by(staged_rows, rows, ids)
        staged_keys.close()
        staged_rows.close()  # the staged spill complete before any bucket reads it
        if by_key or unchanged:
            for b, path in out.buckets.items():
                old = staged_rows.read(b)
                staged_rows.release(b)
                if old is not None:
                    _compare_bucket(path, old, taken, key, compare, by_key, unchanged)
    finally:
        staged_keys.close()
        staged_rows.close()
        taken.close()
    gone: list[pa.Array] = []
    for b in range(out.n_buckets):
        mine = _read_keys(out, "staged", b)
        if not len(mine):
            continue
        drop = pc.is_in(mine, value_set=_read_keys(out, "losers", b))
        if full:
            drop = pc.or_(drop, pc.invert(pc.is_in(mine, value_set=_read_keys(out, "raw", b))))
        drop = pc.or_(drop, pc.is_in(mine, value_set=_read_keys(out, "taken", b)))
        accepted = _read_keys(out, "accepted", b)
        drop = pc.and_(drop, pc.invert(pc.is_in(mine, value_set=accepted)))
        gone.append(mine.filter(drop))
    return pc.unique(pa.concat_arrays(gone)) if gone else pa.array([], pa.string())


def _compare_bucket(
    path: Path,
    old: pa.Table,
    taken: BucketSpill,
    key: list[str],
    compare: list[str],
    by_key: bool,
    unchanged: bool,
) -> None:
    """One bucket against the staged rows of its business keys (``old``): spill the staged
    keys a row accepted tonight takes over (its business key), drop the accepted rows staged
    unchanged."""
    ours = pq.read_table(path)
    if by_key and ours.num_rows:
        has = pa.array(~business_key_empty(old, key))
        tonight = business_key_text(ours, key).filter(pa.array(~business_key_empty(ours, key)))
        over = pc.and_(has, pc.is_in(business_key_text(old, key), value_set=tonight))
        _spill_keys(taken, old[SOURCE_PK].filter(over))
    if not unchanged:
        return
    at = pc.index_in(ours[SOURCE_PK], value_set=old[SOURCE_PK])
    same = np.asarray(pc.is_valid(at).to_numpy(zero_copy_only=False), dtype=bool)
    for c in compare:
        if not same.any():
            break
        same &= _same(ours[c], old[c].take(at))
    if same.any():
        pq.write_table(ours.filter(pa.array(~same)), path, compression="zstd")

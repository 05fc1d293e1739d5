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

What stays in memory for the whole table is the profile (one byte per row and profiled column)
and the deduplication losers' keys. The source keys the deletions need (raw, accepted and
staged; ``merge_plan``) are spilled too, in buckets by a hash of the source key.
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
    buckets: list[Path]  # deduplicated accepted rows, each sorted by source key
    n_buckets: int  # bucket_of's modulus
    rejected: Path  # rows.parquet as the night's rejected rows
    issues: Path  # issues.parquet
    profile: pa.Table
    keys: Path  # source keys of the raw rows and of the accepted ones, by source-key bucket
    losers: pa.Array  # the deduplication losers' source keys
    schema: pa.Schema | None  # of the accepted rows (None: no row was accepted)
    unmapped: list[str]
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
        for path in self.buckets:
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
    """Parquet spill writers opened on first use, each with the first table's schema."""

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
        buckets=[],
        n_buckets=n_buckets,
        rejected=spill / "rows.parquet",
        issues=spill / "issues.parquet",
        profile=pa.table({}),
        keys=spill / "keys",
        losers=pa.array([], pa.string()),
        schema=None,
        unmapped=[],
    )
    writers = _Writers()
    profiles: list[pa.Table] = []
    out.keys.mkdir()
    unmapped: list[str] | None = None
    try:
        for raw in _raw_batches(partition, rows_per_batch):
            if unmapped is None:
                unmapped = unmapped_columns(raw, table)
            pk = source_pk(raw, table)
            part = normalise_table(raw, dept, table, ds, dedup=False)
            profiles.append(raw_profile(raw, table, part.issues, pk, profile_columns))
            _spill_keys(writers, out, "raw", pk)
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
            ids = bucket_of(accepted, key, n_buckets)
            order = np.argsort(ids, kind="stable")
            grouped = accepted.take(pa.array(order))
            ids = ids[order]
            for b in np.unique(ids):
                lo, hi = np.searchsorted(ids, b, "left"), np.searchsorted(ids, b, "right")
                writers.write(spill / f"bucket-{b:05d}.parquet", grouped.slice(lo, hi - lo))
        bucket_files = sorted(p for p in writers.open if p.name.startswith("bucket-"))
        for p in bucket_files:
            writers.open.pop(p).close()
        losers = _deduplicate_buckets(out, bucket_files, key, writers)
        if losers:
            out.rows_deduplicated = len(losers)
            out.warnings["DUPLICATE_KEY"] += len(losers)
            writers.write(out.issues, duplicate_issues(losers, table))
    finally:
        writers.close()
    out.unmapped = unmapped or []
    out.profile = pa.concat_tables(profiles)
    out.losers = pa.array(losers, pa.string())
    return out


def _pk_bucket(keys: pa.Array, buckets: int) -> np.ndarray:
    if buckets == 1 or len(keys) == 0:
        return np.zeros(len(keys), dtype=np.int64)
    hashed = pl.from_arrow(keys).hash(seed=0).to_numpy()  # type: ignore[union-attr]
    return (hashed % np.uint64(buckets)).astype(np.int64)


def _spill_keys(writers: _Writers, out: BatchedOutcome, kind: str, keys: pa.Array) -> None:
    """Append source keys to ``keys/<kind>-<bucket>.parquet``, bucketed by the key's hash."""
    keys = pc.cast(keys, pa.string())
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    ids = _pk_bucket(keys, out.n_buckets)
    order = np.argsort(ids, kind="stable")
    keys, ids = keys.take(pa.array(order)), ids[order]
    for b in np.unique(ids):
        lo, hi = np.searchsorted(ids, b, "left"), np.searchsorted(ids, b, "right")
        part = pa.table({SOURCE_PK: keys.slice(lo, hi - lo)})
        writers.write(out.keys / f"{kind}-{b:05d}.parquet", part)


def _read_keys(out: BatchedOutcome, kind: str, b: int) -> pa.Array:
    path = out.keys / f"{kind}-{b:05d}.parquet"
    if not path.is_file():
        return pa.array([], pa.string())
    return pq.read_table(path)[SOURCE_PK].combine_chunks()


def _deduplicate_buckets(
    out: BatchedOutcome, files: list[Path], key: list[str], writers: _Writers
) -> list[str]:
    """Deduplicate each bucket on its own (it holds every row of its keys), rewrite it sorted
    by source key, spill its accepted source keys, count them, note the latest update."""
    losers: list[str] = []
    for path in files:
        rows = pq.read_table(path)
        kept, dropped = deduplicate(rows, key)
        del rows
        losers.extend(dropped)
        kept = kept.sort_by([(SOURCE_PK, "ascending")])
        pq.write_table(kept, path, compression="zstd")
        out.buckets.append(path)
        out.rows_accepted += kept.num_rows
        _spill_keys(writers, out, "accepted", kept[SOURCE_PK])
        if SOURCE_UPDATED_AT in kept.column_names and kept.num_rows:
            latest = pc.max(kept[SOURCE_UPDATED_AT]).as_py()
            if latest is not None and (out.latest is None or latest > out.latest):
                out.latest = latest
    return losers


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
    writers = _Writers()
    try:
        for batch in pa.RecordBatchReader.from_stream(staged.scan(columns=columns)):
            rows = plain_types(pa.Table.from_batches([batch])).select(columns).cast(target)
            _spill_keys(writers, out, "staged", rows[SOURCE_PK])
            if not (by_key or unchanged):
                continue
            ids = bucket_of(rows, key, out.n_buckets) if by_key else np.zeros(len(rows), int)
            order = np.argsort(ids, kind="stable")
            rows, ids = rows.take(pa.array(order)), ids[order]
            for b in np.unique(ids):
                lo, hi = np.searchsorted(ids, b, "left"), np.searchsorted(ids, b, "right")
                writers.write(out.spill / f"staged-{b:05d}.parquet", rows.slice(lo, hi - lo))
        writers.close()  # the staged spill complete before any bucket reads it
        if by_key or unchanged:
            for path in out.buckets:
                _compare_bucket(out, path, key, compare, by_key, unchanged, writers)
    finally:
        writers.close()
    gone: list[pa.Array] = []
    for b in range(out.n_buckets):
        mine = _read_keys(out, "staged", b)
        if not len(mine):
            continue
        drop = pc.is_in(mine, value_set=out.losers)
        if full:
            drop = pc.or_(drop, pc.invert(pc.is_in(mine, value_set=_read_keys(out, "raw", b))))
        drop = pc.or_(drop, pc.is_in(mine, value_set=_read_keys(out, "taken", b)))
        accepted = _read_keys(out, "accepted", b)
        drop = pc.and_(drop, pc.invert(pc.is_in(mine, value_set=accepted)))
        gone.append(mine.filter(drop))
    return pc.unique(pa.concat_arrays(gone)) if gone else pa.array([], pa.string())


def _compare_bucket(
    out: BatchedOutcome,
    path: Path,
    key: list[str],
    compare: list[str],
    by_key: bool,
    unchanged: bool,
    writers: _Writers,
) -> None:
    """One bucket against the staged rows of its business keys: spill the staged keys a row
    accepted tonight takes over (its business key), drop the accepted rows staged unchanged."""
    theirs = out.spill / path.name.replace("bucket-", "staged-")
    if not theirs.is_file():
        return
    ours, old = pq.read_table(path), pq.read_table(theirs)
    theirs.unlink()
    if by_key and ours.num_rows:
        has = pa.array(~business_key_empty(old, key))
        tonight = business_key_text(ours, key).filter(pa.array(~business_key_empty(ours, key)))
        taken = pc.and_(has, pc.is_in(business_key_text(old, key), value_set=tonight))
        _spill_keys(writers, out, "taken", old[SOURCE_PK].filter(taken))
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

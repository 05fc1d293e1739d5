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

What stays in memory for the whole table is key-sized, never row-sized: the profile (one byte
per row and profiled column), the accepted source and business keys, the raw source keys of a
full snapshot (for the deletions of ``staged_rows.staged_deletions``) and the losers' keys.
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
    accepted_keys: pa.Table  # _source_pk and the business key columns of every accepted row
    raw_keys: pa.Array  # every raw row's source key
    losers: pa.Array  # the deduplication losers' source keys
    schema: pa.Schema | None  # of the accepted rows (None: no row was accepted)
    unmapped: list[str]
    rows_in: int = 0
    rows_rejected: int = 0
    rows_deduplicated: int = 0
    warnings: Counter[str] = field(default_factory=Counter)
    rejections: Counter[str] = field(default_factory=Counter)
    latest: datetime | None = None

    @property
    def rows_accepted(self) -> int:
        return self.accepted_keys.num_rows

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
        accepted_keys=pa.table({}),
        raw_keys=pa.array([], pa.string()),
        losers=pa.array([], pa.string()),
        schema=None,
        unmapped=[],
    )
    writers = _Writers()
    profiles: list[pa.Table] = []
    raw_keys: list[pa.Array] = []
    unmapped: list[str] | None = None
    try:
        for raw in _raw_batches(partition, rows_per_batch):
            if unmapped is None:
                unmapped = unmapped_columns(raw, table)
            pk = source_pk(raw, table)
            part = normalise_table(raw, dept, table, ds, dedup=False)
            profiles.append(raw_profile(raw, table, part.issues, pk, profile_columns))
            raw_keys.append(pk)
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
        keys, losers = _deduplicate_buckets(out, bucket_files, key)
        if losers:
            out.rows_deduplicated = len(losers)
            out.warnings["DUPLICATE_KEY"] += len(losers)
            writers.write(out.issues, duplicate_issues(losers, table))
    finally:
        writers.close()
    out.unmapped = unmapped or []
    out.profile = pa.concat_tables(profiles)
    out.raw_keys = pa.concat_arrays(raw_keys) if raw_keys else out.raw_keys
    out.losers = pa.array(losers, pa.string())
    key_columns = [SOURCE_PK, *[k for k in key if out.schema and k in out.schema.names]]
    out.accepted_keys = (
        pa.concat_tables(keys)
        if keys
        else pa.schema([(c, pa.string()) for c in key_columns]).empty_table()
    )
    return out


def _deduplicate_buckets(
    out: BatchedOutcome, files: list[Path], key: list[str]
) -> tuple[list[pa.Table], list[str]]:
    """Deduplicate each bucket on its own (it holds every row of its keys), rewrite it sorted
    by source key, note its accepted keys and the latest source update."""
    keys: list[pa.Table] = []
    losers: list[str] = []
    for path in files:
        rows = pq.read_table(path)
        kept, dropped = deduplicate(rows, key)
        del rows
        losers.extend(dropped)
        kept = kept.sort_by([(SOURCE_PK, "ascending")])
        pq.write_table(kept, path, compression="zstd")
        out.buckets.append(path)
        keys.append(kept.select([SOURCE_PK, *[k for k in key if k in kept.column_names]]))
        if SOURCE_UPDATED_AT in kept.column_names and kept.num_rows:
            latest = pc.max(kept[SOURCE_UPDATED_AT]).as_py()
            if latest is not None and (out.latest is None or latest > out.latest):
                out.latest = latest
    return keys, losers


def _same(a: pa.ChunkedArray | pa.Array, b: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Null-safe equality per row (``NOT (a IS DISTINCT FROM b)``)."""
    eq = pc.fill_null(pc.equal(a, b), False)
    both_null = pc.and_(pc.is_null(a), pc.is_null(b))
    return np.asarray(pc.or_(eq, both_null).to_numpy(zero_copy_only=False), dtype=bool)


def keep_changed(out: BatchedOutcome, staged: Any, key: list[str], compare: list[str]) -> int:
    """Drop from the buckets every accepted row the staged table (a loaded DeltaTable) already
    holds with the same ``compare`` values: the MERGE would match it and leave it alone, so the
    staged content and the MERGE's counts are the same without it, and the MERGE's hash join
    (built on its source, in memory) holds only tonight's changes. The staged table is read
    as a stream and spilled into the same buckets (by business key), then compared bucket by
    bucket. Returns the rows dropped."""
    schema = out.schema
    names = set(staged.schema().to_arrow().names)
    if schema is None or not out.buckets or any(c not in names for c in compare):
        return 0
    columns = list(dict.fromkeys([SOURCE_PK, *[k for k in key if k in schema.names], *compare]))
    target = pa.schema([schema.field(c) for c in columns])
    writers = _Writers()
    try:
        for batch in pa.RecordBatchReader.from_stream(staged.scan(columns=columns)):
            rows = plain_types(pa.Table.from_batches([batch])).select(columns).cast(target)
            ids = bucket_of(rows, key, out.n_buckets)
            order = np.argsort(ids, kind="stable")
            rows, ids = rows.take(pa.array(order)), ids[order]
            for b in np.unique(ids):
                lo, hi = np.searchsorted(ids, b, "left"), np.searchsorted(ids, b, "right")
                writers.write(out.spill / f"staged-{b:05d}.parquet", rows.slice(lo, hi - lo))
    finally:
        writers.close()
    dropped = 0
    for path in out.buckets:
        theirs = out.spill / path.name.replace("bucket-", "staged-")
        if not theirs.is_file():
            continue
        ours, old = pq.read_table(path), pq.read_table(theirs)
        at = pc.index_in(ours[SOURCE_PK], value_set=old[SOURCE_PK])
        same = np.asarray(pc.is_valid(at).to_numpy(zero_copy_only=False), dtype=bool)
        for c in compare:
            if not same.any():
                break
            same &= _same(ours[c], old[c].take(at))
        theirs.unlink()
        if same.any():
            dropped += int(same.sum())
            pq.write_table(ours.filter(pa.array(~same)), path, compression="zstd")
    return dropped

"""The full golden build spread over key ranges: which range a key falls in, the staged rows
of one range read as a filtered stream, and each range's part of the curated tables in a
per-run scratch folder (docs/curation.md, "A full build over key ranges").

A key's range is a stable hash bucket of its text (``bucket_of``: a polynomial hash over the
UTF-8 bytes with a splitmix64 finish, numpy only, so every worker and every version computes
the same bucket). Which key a curated table is bucketed by is ``curate``'s business (each
survivorship group must fall in one range); this module only filters by it.

A part is written atomically (``atomic.replace_with``: a hidden temporary file, fsync,
rename) under a deterministic name, and a range's marker ``_done/range-<i>.json`` (its parts
and their row counts) last: a range task killed at any moment leaves its marker absent and at
most whole parts of its own, which the rerun replaces; the publish takes nothing of a range
without its marker.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datacloud.atomic import replace_json, replace_with
from datacloud.config import Department
from datacloud.delta import has_deletion_vectors, open_table, plain_types
from datacloud.key_hash import bucket_of
from datacloud.paths import StorageRoot

# staged rows read per batch by a range task (its memory holds one batch beside its range)
BATCH_ROWS = 131_072
# a scratch folder of an older run is removed by the next plan after this long
SCRATCH_KEEP_S = 7 * 24 * 3600
# a part's row groups (sorted by the table's layout): the publish reads one slice of the
# first sort column's range from every part, and the footers' statistics skip the rest
PART_ROW_GROUP_ROWS = 65_536
# values of a column sampled (every k-th row) to cut it into slices (``cut_points``)
SAMPLE_ROWS = 131_072

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class RangesIncomplete(RuntimeError):
    """The publish found a range without its marker, or a part unlike its marker."""


@dataclass(frozen=True)
class KeyRange:
    """Range ``index`` of ``count``: the keys whose bucket (``bucket_of``) is ``index``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"range {self.index} of {self.count}")

    def holds(self, *keys: pa.Array | pa.ChunkedArray) -> pa.Array:
        """Whether a row's key, in any of ``keys`` (parallel arrays), falls in this range."""
        mask = np.zeros(len(keys[0]), bool)
        for k in keys:
            mask |= bucket_of(k, self.count) == self.index
        return pa.array(mask, pa.bool_())


# --- the staged rows of one range, streamed --------------------------------------------------


def staged_batches(dt: Any, columns: list[str], batch_rows: int) -> Iterator[pa.Table]:
    """The table's rows (``columns``) in batches of at most ``batch_rows``, plain types; the
    first is the empty table with the schema (so a table without rows keeps its types)."""
    if has_deletion_vectors(dt):  # delta-rs's engine applies the vectors, as a stream
        reader = pa.RecordBatchReader.from_stream(dt.scan(columns=columns))
        yield plain_types(reader.schema.empty_table()).select(columns)
        for batch in reader:
            yield plain_types(pa.Table.from_batches([batch])).select(columns)
        return
    dataset = dt.to_pyarrow_dataset()
    scanner = dataset.scanner(
        columns=columns, batch_size=batch_rows, batch_readahead=1, fragment_readahead=1
    )
    yield plain_types(scanner.projected_schema.empty_table())
    for batch in scanner.to_batches():
        if batch.num_rows:
            yield plain_types(pa.Table.from_batches([batch]))


def stack_in_range(
    root: StorageRoot,
    depts: list[Department],
    kinds: set[str],
    columns: list[str],
    versions: Mapping[str, int],
    keep: Callable[[pa.Table], pa.Array],
    *,
    batch_rows: int = BATCH_ROWS,
) -> pa.Table | None:
    """``staged_rows.stack`` of the rows ``keep`` keeps: the same columns and types (the
    columns, ``source``, ``as_of``), each staged table streamed in batches and filtered batch
    by batch, so memory holds the range's rows and one batch.

    ``keep`` gets a batch in ``stack``'s shape and returns a boolean mask."""
    parts = []
    for dept in depts:
        for spec in dept.tables:
            if spec.kind not in kinds:
                continue
            pinned = versions.get(f"{dept.code}/{spec.name}")
            if pinned is None:
                continue
            dt = open_table(root.staged(dept.code, spec.name), pinned)
            if dt is None:
                continue
            present = set(dt.schema().to_arrow().names)
            wanted = [c for c in (*columns, "_source_updated_at", "_ds") if c in present]
            kept = []
            for t in staged_batches(dt, wanted, batch_rows):
                shaped = stack_shape(t, columns, dept.code)
                kept.append(shaped.filter(keep(shaped)) if shaped.num_rows else shaped)
            parts.append(pa.concat_tables(kept))
    if not parts:
        return None
    out = pa.concat_tables(parts, promote_options="permissive")
    untyped = [f.with_type(pa.string()) if f.type == pa.null() else f for f in out.schema]
    return out.cast(pa.schema(untyped))


def stack_shape(t: pa.Table, columns: list[str], source: str) -> pa.Table:
    """Rows of one staged table in ``staged_rows.stack``'s shape."""
    n = t.num_rows
    out: dict[str, Any] = {c: t[c] if c in t.column_names else pa.nulls(n) for c in columns}
    as_of = (
        pc.cast(t["_source_updated_at"], pa.date32())
        if "_source_updated_at" in t.column_names
        else t["_ds"]
    )
    out["source"] = pa.array([source] * n, pa.string())
    out["as_of"] = pc.coalesce(as_of, t["_ds"])
    return pa.table(out)


# --- the scratch folder: parts and markers ---------------------------------------------------


def scratch_dir(
    root: StorageRoot, run_id: str, versions: Mapping[str, int], fingerprint: str, count: int
) -> Path:
    """The run's scratch folder: its name holds the run and a digest of what the parts are
    built from (pinned staged versions, survivorship fingerprint, range count), so a part of
    another plan can never be taken for one of this plan."""
    doc = json.dumps([dict(versions), fingerprint, count], sort_keys=True)
    digest = hashlib.sha256(doc.encode()).hexdigest()[:12]
    name = _SAFE.sub("_", run_id).strip("._")[:80] or "run"
    return scratch_root(root) / f"{name}-{digest}"


def scratch_root(root: StorageRoot) -> Path:
    return root.root / "scratch" / "curation"


def part_path(scratch: Path, table: str, kr: KeyRange) -> Path:
    return scratch / table / f"part-{kr.index:05d}-of-{kr.count:05d}.parquet"


def marker_path(scratch: Path, kr: KeyRange) -> Path:
    return scratch / "_done" / f"range-{kr.index:05d}-of-{kr.count:05d}.json"


def write_parquet(path: Path, rows: pa.Table, row_group_rows: int | None = None) -> None:
    """One part, written aside and renamed into place (complete or absent)."""
    kw: dict[str, Any] = {} if row_group_rows is None else {"row_group_size": row_group_rows}
    replace_with(path, lambda tmp: pq.write_table(rows, tmp, compression="zstd", **kw))


def write_part(
    scratch: Path, table: str, kr: KeyRange, rows: pa.Table, sort_by: Sequence[str] = ()
) -> dict[str, Any]:
    """A range's part of a curated table, sorted by ``sort_by`` (a stable sort: rows equal in
    it keep the build's order, as the whole table's sort keeps them) in row groups of
    ``PART_ROW_GROUP_ROWS``."""
    path = part_path(scratch, table, kr)
    if sort_by:
        rows = rows.sort_by([(c, "ascending") for c in sort_by])
    write_parquet(path, rows, PART_ROW_GROUP_ROWS)
    return {"file": str(path.relative_to(scratch)), "rows": rows.num_rows}


def write_marker(scratch: Path, kr: KeyRange, parts: dict[str, Any], missing: list[str]) -> None:
    """The range is built: its parts (table -> file, rows) and the tables without a source."""
    doc = {"index": kr.index, "count": kr.count, "parts": parts, "missing": missing}
    replace_json(marker_path(scratch, kr), doc, indent=2, sort_keys=True)


def read_parts(scratch: Path, count: int) -> tuple[dict[str, list[Path]], set[str]]:
    """Every range's parts, table -> files in range order, and the tables no range could
    build (no staged source). Raises ``RangesIncomplete`` naming the ranges without a
    marker, or a part missing or of another row count than its marker says."""
    markers = []
    absent = []
    for i in range(count):
        path = marker_path(scratch, KeyRange(i, count))
        if not path.is_file():
            absent.append(i)
            continue
        markers.append(json.loads(path.read_text(encoding="utf-8")))
    if absent:
        raise RangesIncomplete(
            f"{scratch}: ranges {absent} of {count} not built (no marker); rerun them first"
        )
    files: dict[str, list[Path]] = {}
    missing: set[str] = set()
    for doc in markers:
        missing.update(doc["missing"])
        for table, part in doc["parts"].items():
            path = scratch / part["file"]
            if not path.is_file() or pq.read_metadata(path).num_rows != part["rows"]:
                raise RangesIncomplete(f"{path}: missing or not the part its marker names")
            files.setdefault(table, []).append(path)
    return files, missing - set(files)


def read_table_parts(files: list[Path]) -> pa.Table:
    """One curated table from its parts, in range order (types unified: a range whose column
    was all null takes the others' type)."""
    tables = [pq.read_table(f) for f in files]
    rows = [t for t in tables if t.num_rows] or tables[:1]
    return pa.concat_tables(rows, promote_options="permissive")


@dataclass(frozen=True)
class Parts:
    """One curated table's parts (range order), read a few columns or one slice at a time."""

    files: tuple[Path, ...]

    @functools.cached_property
    def schemas(self) -> tuple[pa.Schema, ...]:
        return tuple(pq.read_schema(f) for f in self.files)

    @functools.cached_property
    def counts(self) -> tuple[int, ...]:
        return tuple(pq.read_metadata(f).num_rows for f in self.files)

    @property
    def num_rows(self) -> int:
        return sum(self.counts)

    @functools.cached_property
    def schema(self) -> pa.Schema:
        """The table's columns and types, as ``read_table_parts`` unifies them."""
        with_rows = [s for s, n in zip(self.schemas, self.counts, strict=True) if n]
        return pa.unify_schemas(with_rows or list(self.schemas[:1]), promote_options="permissive")

    def _conform(self, t: pa.Table, columns: list[str]) -> pa.Table:
        target = pa.schema([self.schema.field(c) for c in columns])
        n = t.num_rows
        cols = [t[f.name] if f.name in t.column_names else pa.nulls(n, f.type) for f in target]
        return pa.table(cols, names=target.names).cast(target)

    def read(self, columns: list[str] | None = None) -> pa.Table:
        """Some columns (None: all) of every part, in range order, in the table's types."""
        names = self.schema.names if columns is None else columns
        tables = [self.schema.empty_table().select(names)]
        for f, s, n in zip(self.files, self.schemas, self.counts, strict=True):
            if n:
                t = pq.read_table(f, columns=[c for c in names if c in s.names])
                tables.append(self._conform(t, names))
        return pa.concat_tables(tables)

    def column_batches(
        self, column: str, batch_rows: int = PART_ROW_GROUP_ROWS
    ) -> Iterator[pa.Array]:
        """One column of every row, in range order, at most ``batch_rows`` values at a time, in
        the table's type (a part without the column: nulls)."""
        kind = self.schema.field(column).type
        for f, s, n in zip(self.files, self.schemas, self.counts, strict=True):
            if column not in s.names or pa.types.is_null(s.field(column).type):
                for start in range(0, n, batch_rows):
                    yield pa.nulls(min(batch_rows, n - start), kind)
                continue
            if not n:
                continue
            for batch in pq.ParquetFile(f).iter_batches(batch_size=batch_rows, columns=[column]):
                yield batch.column(0).cast(kind)

    def sample(self, column: str, most: int | None = None) -> tuple[pa.Array, int]:
        """Every ``step``-th value of a column (the first row's, then every ``step`` rows, in
        range order) and the ``step``: the smallest keeping at most ``most`` values. Read a
        batch at a time: memory holds the sample and one batch. ``most``: ``SAMPLE_ROWS``."""
        step = max(1, -(-self.num_rows // max(1, most or SAMPLE_ROWS)))
        kept = [pa.array([], self.schema.field(column).type)]
        at = 0
        for values in self.column_batches(column):
            first = (-at) % step
            if first < len(values):
                kept.append(values.take(pa.array(np.arange(first, len(values), step))))
            at += len(values)
        return pa.concat_arrays(kept), step

    def read_slice(
        self, column: str, lo: Any, hi: Any, columns: list[str] | None = None
    ) -> pa.Table:
        """Some columns (None: all) of the rows with ``lo <= column < hi`` (None: no bound; no
        upper bound takes the rows where ``column`` is null too), from every part in range
        order, in the table's types; each part's row groups outside the range are skipped on
        their statistics. Only ``columns`` are decoded (``column`` as well, for the filter,
        whether or not it is one of them): the rows of ``read_slice(column, lo, hi)`` then
        ``select(columns)``."""
        names = self.schema.names if columns is None else list(columns)
        tables = [self.schema.empty_table().select(names)]
        field = pc.field(column)
        for f, s, n in zip(self.files, self.schemas, self.counts, strict=True):
            if not n:
                continue
            present = [c for c in names if c in s.names]
            kind = s.field(column).type if column in s.names else pa.null()
            if pa.types.is_null(kind):  # every row of this part has none: the last slice
                if hi is None:
                    tables.append(self._conform(pq.read_table(f, columns=present), names))
                continue
            where = None
            if lo is not None:
                where = field >= pa.scalar(lo, kind)
            if hi is not None:
                below = field < pa.scalar(hi, kind)
                where = below if where is None else where & below
            elif where is not None:
                where = where | field.is_null()
            t = pq.read_table(f, columns=present, filters=where)
            tables.append(self._conform(t, names))
        return pa.concat_tables(tables)


def split_points(values: pa.Array | pa.ChunkedArray, rows: int) -> list[Any]:
    """Values of a column cutting its rows into slices of about ``rows`` (``[lo, hi)``
    between two points, the last also taking the nulls): a value's rows all in one slice,
    no slice empty but for nulls."""
    known = pc.drop_null(values)
    n = len(known)
    if n <= rows:
        return []
    return _points(known, range(rows, n, rows))


def _points(known: pa.Array | pa.ChunkedArray, picks: Iterable[int]) -> list[Any]:
    """The values at positions ``picks`` of ``known`` (no nulls) in sorted order, each
    greater than the one before and than the smallest value."""
    order = pc.sort_indices(known)
    cut = known.take(order.take(pa.array(picks, pa.int64()))).to_pylist()
    smallest = known.take(order.take(pa.array([0], pa.int64())))[0].as_py()
    points: list[Any] = []
    for v in cut:
        if v != smallest and (not points or v > points[-1]):
            points.append(v)
    return points


def cut_points(parts: Parts, column: str, rows: int, most: int | None = None) -> list[Any]:
    """``split_points`` of a column of the parts without holding the column. A table of at
    most ``most`` (``SAMPLE_ROWS``) rows is cut exactly as ``split_points`` cuts its whole
    column; a larger one on a sample of every k-th row (``Parts.sample``): into as many
    slices as the sample's values stand for rows of ``rows`` (never more than
    ``ceil(num_rows / rows)``), cut at the sample's quantiles, so of about ``rows`` rows."""
    values, step = parts.sample(column, most)
    if step == 1:
        return split_points(values, rows)
    known = pc.drop_null(values)
    n = len(known)
    slices = min(-(-n * step // rows), -(-parts.num_rows // rows))
    if slices <= 1 or n == 0:
        return []
    return _points(known, sorted({n * i // slices for i in range(1, slices)}))


def remove_scratch(scratch: Path) -> None:
    shutil.rmtree(scratch, ignore_errors=True)


def remove_stale(root: StorageRoot, keep: Path, *, older_than_s: float = SCRATCH_KEEP_S) -> None:
    """Scratch folders of other runs older than ``older_than_s`` (a run that never published)."""
    folder = scratch_root(root)
    if not folder.is_dir():
        return
    now = time.time()
    for child in folder.iterdir():
        if child != keep and child.is_dir() and now - child.stat().st_mtime > older_than_s:
            shutil.rmtree(child, ignore_errors=True)

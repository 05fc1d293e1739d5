"""The problem table (问题数据台账): a Delta table at ``<state root>/problems/problems``.

One row per problem (``problem_id``), columns ``SCHEMA`` (the shared contract of issue 19,
docs/problems.md). Each tracking night replaces the whole table in one Delta commit
(``datacloud.delta.overwrite``), stamped with the night's business date (``datacloud.ds``),
so the table's history is the problems' history and ``read_problems(root, as_of=...)``
reads the table as an earlier night left it. The same content makes no new version: a rerun of
a night changes nothing.

The table holds ID numbers (``person_key``, and the source key of a cross-department
finding): it is for the platform's own code; every page, file and answer built from it masks
them (``datacloud.masking``).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from datacloud.delta import (
    has_deletion_vectors,
    log,
    open_table,
    overwrite,
    plain_types,
    read_loaded,
    rs,
    version_as_of,
)
from datacloud.delta.protocol import new_table_actions
from datacloud.delta.read import load
from datacloud.delta.rewrite import add_action, file_name, replace_all, stats_json, write_file
from datacloud.delta.spec import ROW_GROUP_ROWS, CommitInfo, writer
from datacloud.paths import StorageRoot

SCHEMA = pa.schema(
    [
        pa.field("problem_id", pa.string(), nullable=False),  # sha256("dept|table|key|rule")[:16]
        pa.field("kind", pa.string(), nullable=False),  # 'rejected_row' | 'finding'
        pa.field("dept", pa.string(), nullable=False),
        pa.field("table", pa.string(), nullable=False),  # source table; 'consistency' (finding)
        pa.field("source_key", pa.string(), nullable=False),
        pa.field("field", pa.string()),  # canonical field(s), comma-joined
        pa.field("rule", pa.string(), nullable=False),  # rule code or finding code
        pa.field("message_zh", pa.string()),
        pa.field("person_key", pa.string()),  # the ID number concerned; never shown unmasked
        pa.field("first_seen", pa.date32(), nullable=False),
        pa.field("last_seen", pa.date32(), nullable=False),
        pa.field("status", pa.string(), nullable=False),  # 'open' | 'fixed' | 'reopened'
        pa.field("fixed_on", pa.date32()),
        pa.field("reopened_on", pa.date32()),
        pa.field("due", pa.date32(), nullable=False),
        pa.field("overdue", pa.bool_(), nullable=False),
        pa.field("response", pa.string()),  # 'fixed' | 'disputed' | 'cannot_fix' | null
        pa.field("response_at", pa.timestamp("us", tz="UTC")),
        pa.field("response_by", pa.string()),
        pa.field("response_note", pa.string()),
        pa.field("fix_failed", pa.bool_(), nullable=False),
        pa.field("disputed_since", pa.date32()),
    ]
)
SORT_BY = ["dept", "table", "problem_id"]
KINDS = ("rejected_row", "finding")
STATUSES = ("open", "fixed", "reopened")
RESPONSES = ("fixed", "disputed", "cannot_fix")
OPEN = ("open", "reopened")


def empty() -> pa.Table:
    return SCHEMA.empty_table()


def conform(table: pa.Table) -> pa.Table:
    """``table`` with exactly the columns and types of ``SCHEMA`` (in its order)."""
    return pa.Table.from_arrays(
        [pc.cast(table[f.name], f.type) for f in SCHEMA], schema=SCHEMA
    ).combine_chunks()


def version(root: StorageRoot) -> int | None:
    """The problem table's current Delta version, None before the first tracking night."""
    dt = open_table(root.problems_table())
    return None if dt is None else dt.version()


def read_problems(
    root: StorageRoot,
    dept: str | None = None,
    *,
    as_of: date | None = None,
    version: int | None = None,
) -> pa.Table:
    """The problem table (``SCHEMA``), of one department when ``dept`` is given.

    ``as_of``: the table as the latest tracking night on or before that business date left
    it (empty when there was none); ``version``: a Delta version. An empty table (with the
    schema) before the first tracking night.
    """
    path = root.problems_table()
    if as_of is not None:
        version = version_as_of(path, as_of.isoformat())
        if version is None:
            return empty()
    dt = open_table(path, version)
    if dt is None:
        return empty()
    rows = conform(read_loaded(dt))
    if dept is not None:
        rows = rows.filter(pc.equal(rows["dept"], dept))
    return rows


def read_before(root: StorageRoot, ds: date) -> pa.Table:
    """The table as the tracking nights before ``ds`` left it: what night ``ds`` starts from
    (so a rerun of ``ds`` starts from the same rows as its first run)."""
    return read_problems(root, as_of=ds - timedelta(days=1))


def latest_night(root: StorageRoot) -> date | None:
    """The business date of the table's latest commit (a tracking night), None when none."""
    dt = open_table(root.problems_table())
    if dt is None:
        return None
    for entry in dt.history(1):
        ds = entry.get("datacloud.ds") or (entry.get("userMetadata") or {}).get("datacloud.ds")
        if isinstance(ds, str):
            return date.fromisoformat(ds)
    return None


def night_as_of(root: StorageRoot, ds: date) -> date | None:
    """The latest tracking night on or before ``ds`` (the night ``read_problems(as_of=ds)``
    shows), None when there was none."""
    dt = open_table(root.problems_table())
    if dt is None:
        return None
    nights = [
        str(c["datacloud.ds"])
        for c in dt.history()
        if c.get("datacloud.ds") and str(c["datacloud.ds"]) <= ds.isoformat()
    ]
    return date.fromisoformat(max(nights)) if nights else None


def write_problems(root: StorageRoot, table: pa.Table, ds: date, run_id: str) -> int:
    """Replace the problem table with ``table`` in one commit stamped with ``ds``. A rerun of
    the latest night with the same content makes no new version; a new night always commits
    (also with unchanged rows), so every tracked night has its version. Returns the version
    now current."""
    rows = conform(table).sort_by([(k, "ascending") for k in SORT_BY])
    path = root.problems_table()
    if latest_night(root) in (None, ds):
        return overwrite(path, rows, SORT_BY, run_id, ds.isoformat())
    rs.write(
        path,
        rows,
        mode="overwrite",
        schema_mode="overwrite",
        writer_properties=writer(),
        commit_properties=CommitInfo(run_id, ds.isoformat()).properties(),
    )
    return load(path).version()


BATCH_ROWS = 65_536  # rows of the table read at a time by the streaming readers


def _batches(dt: DeltaTable, filter: pc.Expression | None = None) -> Iterator[pa.Table]:
    """A loaded table's rows (``SCHEMA``), ``BATCH_ROWS`` at a time, ``filter`` pushed into
    the read (files and row groups skipped on their statistics)."""
    if has_deletion_vectors(dt):  # deltalake's pyarrow dataset refuses such a table
        reader = pa.RecordBatchReader.from_stream(dt.scan())
        for batch in reader:
            rows = conform(plain_types(pa.Table.from_batches([batch])))
            yield rows if filter is None else rows.filter(filter)
        return
    dataset = dt.to_pyarrow_dataset()
    # no read-ahead: pyarrow's default holds up to 16 batches of 4 files decoded at once
    batches = dataset.to_batches(
        filter=filter, batch_size=BATCH_ROWS, batch_readahead=1, fragment_readahead=1
    )
    for batch in batches:
        if batch.num_rows:
            yield conform(plain_types(pa.Table.from_batches([batch])))


class BatchesBefore:
    """``read_before`` a batch at a time: the table as the nights before ``ds`` left it."""

    def __init__(self, root: StorageRoot, ds: date) -> None:
        path = root.problems_table()
        version = version_as_of(path, (ds - timedelta(days=1)).isoformat())
        self.table = None if version is None else open_table(path, version)

    @property
    def num_rows(self) -> int:
        if self.table is None:
            return 0
        if has_deletion_vectors(self.table):
            return sum(b.num_rows for b in _batches(self.table))
        return int(self.table.to_pyarrow_dataset().count_rows())

    def batches(self) -> Iterator[pa.Table]:
        if self.table is not None:
            yield from _batches(self.table)


def read_problems_where(
    root: StorageRoot, dept: str, *, as_of: date, columns: list[str] | None = None
) -> pa.Table:
    """``read_problems(root, dept, as_of=...)``: the department filter pushed into the read
    (a batch at a time: only the department's rows are held), ``columns`` only when given."""
    path = root.problems_table()
    version = version_as_of(path, as_of.isoformat())
    dt = None if version is None else open_table(path, version)
    names = columns or SCHEMA.names
    if dt is None:
        return empty().select(names)
    parts = [b.select(names) for b in _batches(dt, pc.field("dept") == dept)]
    if not parts:
        return empty().select(names)
    return pa.concat_tables(parts).combine_chunks()


def content_digest(batches: Iterator[pa.Table | pa.RecordBatch]) -> tuple[int, int, int]:
    """(rows, the wrapping sums of every row's hash under two seeds): the same for the same
    rows in any order and any batching, read a batch at a time."""
    rows, total, other = 0, 0, 0
    for batch in batches:
        table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        frame = pl.from_arrow(conform(table))
        assert isinstance(frame, pl.DataFrame)
        # numpy's uint64 sums wrap (mod 2**64) without a word; Python's ints then do it here
        total = (total + int(frame.hash_rows(seed=0).to_numpy().sum(dtype=np.uint64))) % 2**64
        other = (other + int(frame.hash_rows(seed=1).to_numpy().sum(dtype=np.uint64))) % 2**64
        rows += frame.height
    return rows, total, other


def write_problem_slices(root: StorageRoot, slices: SliceSource, ds: date, run_id: str) -> int:
    """``write_problems`` of a table given as slices (``slices.tables()``, each sorted, in
    ``SORT_BY`` order; read once to compare, once to write): each slice is written as its
    own data file, then one commit of our own replaces every file of the table (as the
    streamed publish of a curated table does): the files hold the rows in ``SORT_BY`` order.
    A rerun of the latest night with the same content makes no new version (the content
    compared a batch at a time, ``content_digest``); a new night always commits."""
    path = root.problems_table()
    current = open_table(path)
    if current is not None and latest_night(root) == ds:
        names = pa.schema(current.schema().to_arrow()).names
        same = names == SCHEMA.names and content_digest(_batches(current)) == content_digest(
            t for _, t in slices.tables()
        )
        if same:
            return current.version()
    now = int(time.time() * 1000)
    if isinstance(path, Path):
        (path / "_delta_log").mkdir(parents=True, exist_ok=True)
    schema = plain_types(SCHEMA.empty_table()).schema
    logged = log.logged_adds(path, current.version()) if current is not None else {}
    adds: list[dict[str, Any]] = []
    written: dict[str, Callable[[], object]] = {}
    try:
        for name_of, rows in slices.tables():
            name = file_name()
            loc = path / name
            size = write_file(loc, rows, ROW_GROUP_ROWS)
            written[name] = functools.partial(_write_again, slices, name_of, loc)
            adds.append(add_action(name, size, now, stats_json(rows)))
        commit = CommitInfo(run_id, ds.isoformat())
        actions = commit.actions("WRITE", {"mode": "Overwrite"})
        if current is None:  # a new table, as delta-rs writes one (protocol 1/2)
            actions += new_table_actions(schema, now)
            version = 0
        else:
            actions += replace_all(current, logged, schema, now)
            version = current.version() + 1
        actions += [{"add": a} for a in adds]
    except BaseException:
        for name in written:
            log.delete_file(path / name)
        raise
    return log.commit_files(path, version, actions, {}, written)


class SliceSource(Protocol):
    """Slices of the problem table (``problems_buckets.Slices``)."""

    def tables(self) -> Iterator[tuple[str, pa.Table]]: ...  # (slice name, its rows sorted)

    def table(self, name: str) -> pa.Table: ...


def _write_again(slices: SliceSource, name: str, loc: Path) -> int:
    """A slice's data file written again (it vanished around the commit)."""
    return write_file(loc, slices.table(name), ROW_GROUP_ROWS)

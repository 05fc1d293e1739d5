"""The staged rows of every key range read once: each staged table is streamed a single time
and its rows scattered into one Parquet file per stack and hash bucket, so a range task (or a
bucket of the consistency findings) reads its own file instead of streaming every staged
table again (docs/curation.md, "A full build over key ranges").

A stack (``Spread``) is what ``curation_ranges.stack_in_range`` reads: the staged tables of
its kinds at the pinned versions, its columns in ``staged_rows.stack``'s shape, and the key(s)
a row's bucket is chosen by (``bucket_of``; a row whose keys fall in several buckets goes to
each, once). Bucket ``i``'s file holds exactly the rows ``stack_in_range`` keeps for
``KeyRange(i, count)``: the same rows in the same order (department, table, batch), the same
columns and types (the stack's types unified over its tables before the first row is written).

Bounded memory: one batch of the staged table being read, and the rows waiting for their
bucket's file (a row group of ``ROW_GROUP_ROWS`` each, all of them together at most about
``BUFFER_BYTES``: past it the largest are written early). The stacks of one kind are filled
from one read of its tables, a kind at a time, so only those stacks' files are open.

Atomic and rerunnable: a file is written under a hidden temporary name, then renamed into
place (``atomic.replace_with``) under a deterministic name, ``<stack id>/bucket-<i>-of-<n>``;
the marker ``_done.json`` (the count, each stack's staged tables and versions, its rows per
bucket) last. A killed scatter leaves no marker; its rerun writes the same files again. A
reader (``read``) takes nothing without the marker, or unlike it (another count, other staged
tables or versions, a file missing or of another row count): it raises ``NotScattered`` and
the caller streams the staged tables as before.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from datacloud.atomic import replace_json, replace_with, temporary_name
from datacloud.config import Department
from datacloud.curation_ranges import BATCH_ROWS, KeyRange, stack_shape, staged_batches
from datacloud.delta import has_deletion_vectors, open_table, plain_types
from datacloud.key_hash import bucket_of
from datacloud.paths import StorageRoot

log = logging.getLogger(__name__)

# rows of a bucket's file per row group (fewer when the buffers' bound writes them early)
ROW_GROUP_ROWS = 65_536
# rows waiting for their bucket's file, all buckets together; past it the largest go first
BUFFER_BYTES = 128 * 2**20
MARKER = "_done.json"
SCRATCH_FOLDER = "_scatter"  # the scatter's folder inside a full build's scratch folder
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")

Keys = Callable[[pa.Table], Sequence[pa.Array | pa.ChunkedArray]]


class NotScattered(LookupError):
    """No complete scatter holds the asked stack (the caller streams the staged tables)."""


@dataclass(frozen=True)
class Spread:
    """A stack to scatter: the staged tables of ``kinds``, ``columns`` in ``staged_rows.stack``'s
    shape, each row to the bucket of each of its ``keys`` (parallel arrays of a batch in that
    shape). ``name`` with the kinds and columns is its identity (``id``): the scatter and a
    reader agree on a stack by it, never by the key function."""

    name: str
    kinds: frozenset[str]
    columns: tuple[str, ...]
    keys: Keys = field(compare=False, repr=False)

    @property
    def id(self) -> str:
        doc = json.dumps([self.name, sorted(self.kinds), list(self.columns)])
        digest = hashlib.sha256(doc.encode()).hexdigest()[:10]
        return f"{_SAFE.sub('_', self.name)[:60]}-{digest}"


def in_scratch(scratch: Path) -> Path:
    """A full build's scatter folder, inside the plan's scratch folder (the publish removes it)."""
    return scratch / SCRATCH_FOLDER


def bucket_path(folder: Path, stack_id: str, index: int, count: int) -> Path:
    return folder / stack_id / f"bucket-{index:05d}-of-{count:05d}.parquet"


def marker_path(folder: Path) -> Path:
    return folder / MARKER


def pinned(
    depts: list[Department], kinds: frozenset[str], versions: Mapping[str, int]
) -> list[list[Any]]:
    """The staged tables a stack of ``kinds`` reads, in ``stack_in_range``'s order, with their
    pinned versions: ``[["<dept>/<table>", version], ...]``."""
    out = []
    for dept in depts:
        for spec in dept.tables:
            key = f"{dept.code}/{spec.name}"
            if spec.kind in kinds and versions.get(key) is not None:
                out.append([key, int(versions[key])])
    return out


# --- writing ---------------------------------------------------------------------------------


def scatter(
    root: StorageRoot,
    depts: list[Department],
    versions: Mapping[str, int],
    spreads: Sequence[Spread],
    count: int,
    folder: Path,
    *,
    batch_rows: int = BATCH_ROWS,
) -> dict[str, Any]:
    """Scatter every stack of ``spreads`` into ``count`` buckets in ``folder``, each staged
    table read once; the marker's document. A complete scatter of the same stacks, tables and
    versions (its marker) is kept as it is."""
    spreads = list({s.id: s for s in spreads}.values())  # a stack asked twice: once
    stacks = {s.id: _entry(s, depts, versions) for s in spreads}
    doc: dict[str, Any] = {"count": count, "stacks": stacks}
    done = _marker(folder)
    if done is not None and _same(done, doc):
        log.info("scatter: %s is complete already", folder)
        return done
    for group in _groups(spreads):
        counts = _scatter_group(root, depts, versions, group, count, folder, batch_rows)
        for s in group:
            stacks[s.id].update(counts[s.id])
    replace_json(marker_path(folder), doc, indent=1, sort_keys=True)  # last
    return doc


def _entry(s: Spread, depts: list[Department], versions: Mapping[str, int]) -> dict[str, Any]:
    return {
        "name": s.name,
        "kinds": sorted(s.kinds),
        "columns": list(s.columns),
        "tables": pinned(depts, s.kinds, versions),
    }


def _same(done: dict[str, Any], doc: dict[str, Any]) -> bool:
    """Whether a marker is of the scatter ``doc`` asks for (its rows aside)."""
    if done.get("count") != doc["count"] or set(done.get("stacks", {})) != set(doc["stacks"]):
        return False
    return all(
        {k: v for k, v in done["stacks"][i].items() if k in e} == e
        for i, e in doc["stacks"].items()
    )


def _groups(spreads: Sequence[Spread]) -> list[list[Spread]]:
    """The stacks in groups that share no kind with another group (a group's tables are read
    once for all its stacks), in the order of their first stack."""
    groups: list[tuple[set[str], list[Spread]]] = []
    for s in spreads:
        touching = [g for g in groups if g[0] & s.kinds]
        kinds, members = set(s.kinds), [s]
        for g in touching:
            kinds |= g[0]
            members = [*g[1], *members]
            groups.remove(g)
        groups.append((kinds, members))
    order = {s.id: i for i, s in enumerate(spreads)}
    return sorted(
        (sorted(g[1], key=lambda s: order[s.id]) for g in groups), key=lambda m: order[m[0].id]
    )


@dataclass
class _Bucket:
    """One stack's bucket being written: its file, the hidden spool written meanwhile (renamed
    into place at the end) and the rows waiting for it."""

    final: Path
    spool: Path
    writer: pq.ParquetWriter
    waiting: list[pa.Table] = field(default_factory=list)
    rows: int = 0
    nbytes: int = 0
    written: int = 0

    def add(self, rows: pa.Table) -> int:
        self.waiting.append(rows)
        self.rows += rows.num_rows
        self.nbytes += rows.nbytes
        return rows.nbytes

    def flush(self) -> int:
        """Write the waiting rows (one row group); the bytes freed."""
        freed = self.nbytes
        if self.rows:
            self.writer.write_table(pa.concat_tables(self.waiting), row_group_size=ROW_GROUP_ROWS)
            self.written += self.rows
        self.waiting, self.rows, self.nbytes = [], 0, 0
        return freed


def _scatter_group(
    root: StorageRoot,
    depts: list[Department],
    versions: Mapping[str, int],
    group: list[Spread],
    count: int,
    folder: Path,
    batch_rows: int,
) -> dict[str, dict[str, Any]]:
    """The stacks of one group: each table of their kinds read once, every stack's buckets
    filled from it; each stack's rows per bucket (and ``none``: no staged table to read)."""
    kinds = frozenset().union(*(s.kinds for s in group))
    tables = []  # (dept code, table, its readers, columns read, each reader's shaped schema)
    for dept in depts:
        for spec in dept.tables:
            pin = versions.get(f"{dept.code}/{spec.name}")
            if spec.kind not in kinds or pin is None:
                continue
            dt = open_table(root.staged(dept.code, spec.name), pin)
            if dt is None:
                continue
            readers = [s for s in group if spec.kind in s.kinds]
            present = set(dt.schema().to_arrow().names)
            wanted = list(
                dict.fromkeys(
                    c
                    for s in readers
                    for c in (*s.columns, "_source_updated_at", "_ds")
                    if c in present
                )
            )
            tables.append((dept.code, dt, readers, wanted))
    schemas = _schemas(tables, group, batch_rows)
    buckets: dict[str, list[_Bucket]] = {}
    try:
        for s in group:
            if s.id in schemas:
                buckets[s.id] = [
                    _open(bucket_path(folder, s.id, i, count), schemas[s.id]) for i in range(count)
                ]
        waiting = 0
        for code, dt, readers, wanted in tables:
            batches = _stream(dt, wanted, batch_rows)
            next(batches)  # the empty table with the schema (_schemas had it)
            for t in batches:
                for s in readers:
                    shaped = stack_shape(t, list(s.columns), code)
                    order, sizes = scatter_order(s.keys(shaped), count)
                    taken = shaped.cast(schemas[s.id]).take(pa.array(order, pa.int64()))
                    start = 0
                    for i, n in enumerate(sizes.tolist()):
                        if n:
                            b = buckets[s.id][i]
                            waiting += b.add(taken.slice(start, n))
                            if b.rows >= ROW_GROUP_ROWS:
                                waiting -= b.flush()
                        start += n
                if waiting > BUFFER_BYTES:
                    waiting = _write_largest(buckets, waiting)
        for files in buckets.values():
            for b in files:
                b.flush()
                b.writer.close()
        for files in buckets.values():
            for b in files:  # the complete spool becomes the file, as replace_with writes one
                replace_with(b.final, functools.partial(_rename, b.spool))
    finally:  # a failure leaves no spool behind (a kill leaves hidden ones: never read)
        for files in buckets.values():
            for b in files:
                b.writer.close()
                b.spool.unlink(missing_ok=True)
    out: dict[str, dict[str, Any]] = {}
    for s in group:
        written = [b.written for b in buckets.get(s.id, [])]
        out[s.id] = {"none": s.id not in buckets, "rows": written or [0] * count}
    return out


def _rename(spool: Path, tmp: Path) -> None:
    os.replace(spool, tmp)


def _open(path: Path, schema: pa.Schema) -> _Bucket:
    path.parent.mkdir(parents=True, exist_ok=True)
    spool = temporary_name(path)
    # read once, soon: no dictionary pages (half the writing time of the ID-number columns)
    writer = pq.ParquetWriter(spool, schema, compression="zstd", use_dictionary=False)
    return _Bucket(path, spool, writer)


def _write_largest(buckets: dict[str, list[_Bucket]], waiting: int) -> int:
    """Write the buckets holding the most rows until half the buffer bound is free."""
    every = sorted((b for files in buckets.values() for b in files), key=lambda b: -b.nbytes)
    for b in every:
        if waiting <= BUFFER_BYTES // 2:
            break
        waiting -= b.flush()
    return waiting


def _stream(dt: Any, columns: list[str], batch_rows: int) -> Iterator[pa.Table]:
    """``curation_ranges.staged_batches``' tables (the empty one with the schema first, then the
    rows in the same order and types), read a row group at a time without threads: the
    scanner reads ahead of a consumer slower than itself by more the larger the table
    (streaming 1M persons' czrk at 0.15 s a batch held 106 MiB of Arrow memory, 3M 247
    MiB); this holds one row group's batches (37 MiB at both). A table with deletion
    vectors is read as ``staged_batches`` reads it (delta-rs applies them)."""
    if has_deletion_vectors(dt):
        yield from staged_batches(dt, columns, batch_rows)
        return
    dataset = dt.to_pyarrow_dataset()
    yield plain_types(dataset.scanner(columns=columns).projected_schema.empty_table())
    for fragment in dataset.get_fragments():
        for group in fragment.split_by_row_group():
            for batch in group.to_batches(
                schema=dataset.schema, columns=columns, batch_size=batch_rows, use_threads=False
            ):
                if batch.num_rows:
                    yield plain_types(pa.Table.from_batches([batch]))


def _schemas(
    tables: list[tuple[str, Any, list[Spread], list[str]]], group: list[Spread], batch_rows: int
) -> dict[str, pa.Schema]:
    """Each stack's columns and types as ``stack_in_range`` returns them: its tables' shaped
    types unified (``permissive``), a column null in all of them a string."""
    empties: dict[str, list[pa.Table]] = {s.id: [] for s in group}
    for code, dt, readers, wanted in tables:
        empty = next(iter(_stream(dt, wanted, batch_rows)))  # a generator: reads no rows
        for s in readers:
            empties[s.id].append(stack_shape(empty, list(s.columns), code))
    out = {}
    for sid, shaped in empties.items():
        if shaped:
            schema = pa.concat_tables(shaped, promote_options="permissive").schema
            out[sid] = pa.schema(
                [f.with_type(pa.string()) if f.type == pa.null() else f for f in schema]
            )
    return out


def scatter_order(
    keys: Sequence[pa.Array | pa.ChunkedArray], count: int
) -> tuple[np.ndarray, np.ndarray]:
    """A batch's row indices grouped by bucket (a row once in each distinct bucket of its
    ``keys``, each bucket's rows in the batch's order) and each bucket's row count: bucket
    ``i`` gets the rows ``KeyRange(i, count).holds(*keys)`` keeps."""
    found = [bucket_of(k, count) for k in keys]
    rows = [np.arange(len(found[0]), dtype=np.int64)]
    where = [found[0]]
    for j in range(1, len(found)):
        fresh = np.ones(len(found[j]), bool)
        for earlier in found[:j]:
            fresh &= found[j] != earlier
        rows.append(rows[0][fresh])
        where.append(found[j][fresh])
    index, bucket = np.concatenate(rows), np.concatenate(where)
    order = np.lexsort((index, bucket))
    return index[order], np.bincount(bucket, minlength=count)


# --- reading ---------------------------------------------------------------------------------


def _marker(folder: Path) -> dict[str, Any] | None:
    path = marker_path(folder)
    if not path.is_file():
        return None
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def read(
    folder: Path,
    spread: Spread,
    part: KeyRange,
    depts: list[Department],
    versions: Mapping[str, int],
) -> pa.Table | None:
    """The rows of ``spread`` in ``part`` from the scatter in ``folder``: what
    ``stack_in_range`` returns for it (None: no staged table of its kinds). Raises
    ``NotScattered`` when the scatter is incomplete (no marker) or not of this stack, range
    count, staged tables and versions, or its file is missing or unlike the marker."""
    done = _marker(folder)
    if done is None:
        raise NotScattered(f"{folder}: no complete scatter (no marker)")
    entry = done["stacks"].get(spread.id)
    if done["count"] != part.count or entry is None:
        raise NotScattered(f"{folder}: {spread.id} not scattered in {part.count} buckets")
    if entry["tables"] != pinned(depts, spread.kinds, versions):
        raise NotScattered(f"{folder}: {spread.id} scattered from other staged versions")
    if entry["none"]:
        return None
    path = bucket_path(folder, spread.id, part.index, part.count)
    if _rows(path) != entry["rows"][part.index]:
        raise NotScattered(f"{path}: missing or not the file its marker names")
    return pq.read_table(path)


def _rows(path: Path) -> int | None:
    """A Parquet file's row count from its footer; None when absent or not whole."""
    try:
        return int(pq.read_metadata(path).num_rows)
    except (OSError, pa.ArrowException):
        return None

"""A full publish of a curated table too large to hold whole: the rows come as slices of the
first sort column's range, each hashed, sorted and written as its own data file straight to
the table's folder, then one commit of our own replaces every file (docs/curation.md, "A
full build over key ranges").

The published content is ``publishing.publish``'s for the same rows with ``spec.full``: the
same rows, types and ``_row_hash`` values (the hash is row-local), files sorted by
``spec.sort_by`` whose key ranges do not overlap (the slices are disjoint and ordered), the
same commit information and figures (a first publish or a rebuild with other columns: every
row inserted; otherwise inserted, updated and deleted rows counted by key and row hash, and
no commit when nothing changed), deletion vectors enabled after a first publish or a
rebuild. Memory holds one slice, or one hash bucket of the published and tonight's keys and
row hashes (``delta.spill``: set aside on local disk, a bucket of about ``BUCKET_ROWS``
rows paired at a time), never a whole column.

A table whose features our writer does not implement, an append-only table, or one with
published rows without a key is published as before, whole (``publishing.publish``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from datacloud.delta import log, protocol
from datacloud.delta.publishing import publish as publish_whole
from datacloud.delta.publishing import with_retries, with_row_hash
from datacloud.delta.read import live_rows, load, open_table, plain_types, read_loaded
from datacloud.delta.rewrite import add_action, file_name, replace_all, stats_json, write_file
from datacloud.delta.spec import (
    ROW_HASH,
    AppendOnly,
    CommitInfo,
    MergeResult,
    PublishSpec,
)
from datacloud.delta.spill import Spill, buckets_for
from datacloud.memory import give_back
from datacloud.storage import DataPath, parse

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """Tonight's rows of a table, every key (a full build), as slices.

    ``schema``: the rows' columns and types (no row hash); ``keys``: the key column
    (``spec.key``) of every row, read when needed, as a stream of arrays; ``slices``: calls
    each reading one slice of the rows, in any order within it. The slices are disjoint
    ranges of ``spec.sort_by[0]`` in ascending order (every value of a slice below every
    value of the next; nulls in the last). ``whole``: every row at once, for a table
    published the old way. ``spill``: the local folder the keys and row hashes are set aside
    in (``delta.spill``; None: ``TMPDIR``)."""

    schema: pa.Schema
    num_rows: int
    keys: Callable[[], Iterable[pa.Array | pa.ChunkedArray]]
    slices: Sequence[Callable[[], pa.Table]]
    whole: Callable[[], pa.Table]
    spill: Path | None = None


class _Whole(Exception):
    """This table is published whole, by ``publishing.publish`` (the reason)."""


def publish(path: DataPath, source: Source, spec: PublishSpec, commit: CommitInfo) -> MergeResult:
    """Publish every key of a curated table from ``source`` in one commit, a slice in memory
    at a time; retried on a concurrent commit under the table's lock as ``publishing.publish``."""
    path = parse(path) if isinstance(path, str) else path

    def attempt() -> MergeResult:
        try:
            return _publish_once(path, source, spec, commit)
        except _Whole as e:
            _log.warning("%s: published whole, in memory: %s", path, e)
            rows = source.whole()
            keys = pa.chunked_array(list(source.keys()), rows.schema.field(spec.key).type)
            gone = _gone(open_table(path), spec.key, keys)
            return publish_whole(path, rows, gone, spec, commit)

    return with_retries(path, attempt)


def _gone(dt: DeltaTable | None, key: str, keys: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Published keys absent from tonight's (to delete)."""
    if dt is None or key not in dt.schema().to_arrow().names:
        return pa.array([], pa.string())
    have = read_loaded(dt, [key])[key]
    return pc.drop_null(have.filter(pc.invert(pc.is_in(have, value_set=keys)))).combine_chunks()


def _publish_once(
    path: DataPath, source: Source, spec: PublishSpec, commit: CommitInfo
) -> MergeResult:
    dt = open_table(path)
    target = source.schema
    if dt is not None:  # hash the values as the table stores them (decimal scale, int width)
        stored = pa.schema([f for f in pa.schema(dt.schema().to_arrow()) if f.name != ROW_HASH])
        if stored.names == target.names:
            target = stored
    whole = dt is None or dt.schema().to_arrow().names != [*target.names, ROW_HASH]
    old: Spill | None = None
    if dt is not None:
        gate = protocol.gate(dt)
        if whole and not spec.full:
            raise ValueError(
                f"{path}: the published columns differ from tonight's; an incremental publish "
                "cannot replace the table (rebuild it in full)"
            )
        if whole and gate.append_only:
            raise AppendOnly(
                f"{path}: {protocol.APPEND_ONLY}=true; a rebuild with another layout "
                "would replace its rows: refused"
            )
        if not gate.ours or (gate.append_only and not whole):
            raise _Whole(gate.why or "append-only")
        if not whole:
            old = _old_rows(dt, source, spec, target)
    try:
        return _write_and_commit(path, dt, source, spec, commit, target, whole, old)
    finally:
        if old is not None:
            old.close()


def _write_and_commit(
    path: DataPath,
    dt: DeltaTable | None,
    source: Source,
    spec: PublishSpec,
    commit: CommitInfo,
    target: pa.Schema,
    whole: bool,
    old: Spill | None,
) -> MergeResult:
    logged = log.logged_adds(path, dt.version()) if dt is not None else {}
    now = int(time.time() * 1000)
    if isinstance(path, Path):
        (path / "_delta_log").mkdir(parents=True, exist_ok=True)
    pairs = None if old is None else Spill(old.schema, spec.key, old.count, source.spill)
    with pairs or contextlib.nullcontext():
        adds, written = _write_slices(path, source, target, spec, now, pairs)
        try:
            if old is not None and pairs is not None:
                counts = _counts(old, pairs, source.num_rows, spec.key, path)
                if not any(counts.values()):
                    _delete(path, written)
                    return MergeResult(dt.version() if dt is not None else -1, 0, 0, 0)
            else:
                counts = {"inserted": source.num_rows, "updated": 0, "deleted": 0}
            schema = pa.schema([*target, pa.field(ROW_HASH, pa.int64())])
            schema = plain_types(schema.empty_table()).schema
            if dt is None:  # a new table, as delta-rs writes one (protocol 1/2, no properties)
                actions = commit.actions("WRITE", {"mode": "Overwrite"})
                actions += protocol.new_table_actions(schema, now)
                version = 0
            else:
                info = commit.with_extra(**{f"rows_{k}": str(v) for k, v in counts.items()})
                actions = info.actions("WRITE", {"mode": "copy-on-write"})
                actions += replace_all(dt, logged, schema, now)
                version = dt.version() + 1
            actions += [{"add": a} for a in adds]
        except BaseException:
            _delete(path, written)
            raise
    version = log.commit_files(path, version, actions, {}, written)
    if whole and spec.deletion_vectors:  # as a first publish or a rebuild does
        protocol.enable_deletion_vectors(path, load(path), commit)
        if dt is None:  # the version now current (a rebuild reports its rewrite's)
            version = load(path).version()
    return MergeResult(version, counts["inserted"], counts["updated"], counts["deleted"])


def _old_rows(dt: DeltaTable, source: Source, spec: PublishSpec, target: pa.Schema) -> Spill:
    """The published key and row hash of every live row, streamed into hash buckets of the
    key (``Spill``, enough buckets for the larger of the published and tonight's rows);
    ``_Whole`` where the publish would not rewrite the whole table (deletion vectors for few
    keys) or rows lack a key."""
    live = live_rows(dt)
    stored = plain_types(pa.schema(dt.schema().to_arrow()).empty_table()).schema
    schema = pa.schema([stored.field(spec.key), pa.field(ROW_HASH, pa.int64())])
    old = Spill(schema, spec.key, buckets_for(max(live, source.num_rows)), source.spill)
    try:
        reader = pa.RecordBatchReader.from_stream(dt.scan(columns=schema.names))
        for batch in reader:  # deleted rows left out (delta-rs applies deletion vectors)
            rows = plain_types(pa.Table.from_batches([batch]))
            if rows[spec.key].null_count:
                raise _Whole("published rows without a key")
            old.add(rows)
        if spec.deletion_vectors and source.num_rows <= spec.vectors_under * live:
            gone = old.rows - _kept(old, source.keys(), spec.key, source.spill)
            if source.num_rows + gone <= spec.vectors_under * live:
                raise _Whole("few touched keys: deletion vectors")
    except BaseException:
        old.close()
        raise
    return old


def _kept(
    old: Spill, keys: Iterable[pa.Array | pa.ChunkedArray], key: str, under: Path | None
) -> int:
    """How many of ``old``'s rows have a key among ``keys`` (a bucket at a time)."""
    with Spill(pa.schema([old.schema.field(key)]), key, old.count, under) as new:
        for values in keys:
            new.add(pa.table({key: values}))
        found = 0
        for i in range(old.count):
            have, tonight = old.bucket(i)[key], new.bucket(i)[key]
            found += pc.sum(pc.is_in(have, value_set=tonight)).as_py() or 0
    return int(found)


def _write_slices(
    path: DataPath,
    source: Source,
    target: pa.Schema,
    spec: PublishSpec,
    now: int,
    pairs: Spill | None,
) -> tuple[list[dict[str, Any]], dict[str, Callable[[], object]]]:
    """Each slice hashed, sorted and written as one data file: the ``add`` actions and the
    files written (each with the call writing it again); each slice's key and row hash go to
    ``pairs`` (when given)."""
    adds: list[dict[str, Any]] = []
    written: dict[str, Callable[[], object]] = {}
    try:
        for read in source.slices:

            def build(read: Callable[[], pa.Table] = read) -> pa.Table:
                rows = read().select(target.names).cast(target)
                rows = with_row_hash(rows).sort_by([(k, "ascending") for k in spec.sort_by])
                return plain_types(rows)

            rows = build()
            if rows.num_rows == 0:
                continue
            name = file_name()
            loc = path / name
            size = write_file(loc, rows, spec.row_group_rows)

            def again(build: Callable[[], pa.Table] = build, loc: DataPath = loc) -> int:
                return write_file(loc, build(), spec.row_group_rows)

            written[name] = again
            adds.append(add_action(name, size, now, stats_json(rows)))
            if pairs is not None:
                pairs.add(rows.select([spec.key, ROW_HASH]))
            del rows
            give_back()  # the slice is written: the next one starts from what is held
    except BaseException:
        _delete(path, written)
        raise
    return adds, written


def _counts(old: Spill, new: Spill, num_rows: int, key: str, path: DataPath) -> dict[str, int]:
    """Inserted, updated (another row hash) and deleted rows, by key, as a copy-on-write
    publish of every key counts them: the published (``old``) and tonight's (``new``) keys
    and row hashes paired a hash bucket at a time (a key's rows all in one bucket)."""
    matched_new = matched_old = updated = 0
    for i in range(old.count):
        before_rows, after_rows = old.bucket(i), new.bucket(i)
        new_keys = after_rows[key].combine_chunks()
        old_keys = before_rows[key].combine_chunks()
        at = pc.index_in(new_keys, value_set=old_keys)
        paired = pc.is_valid(at)
        matched_new += pc.sum(paired).as_py() or 0
        matched_old += pc.sum(pc.is_in(old_keys, value_set=new_keys)).as_py() or 0
        before = pc.take(before_rows[ROW_HASH], pc.drop_null(at))
        after = after_rows[ROW_HASH].filter(paired)
        updated += pc.sum(pc.not_equal(before, after)).as_py() or 0
        del before_rows, after_rows, new_keys, old_keys, at, before, after
    if matched_new != matched_old:  # a key twice in the table: cannot pair old and new
        raise ValueError(f"{path}: duplicate values of key column {key}")
    return {
        "inserted": num_rows - matched_new,
        "updated": int(updated),
        "deleted": old.rows - matched_old,
    }


def _delete(path: DataPath, written: dict[str, Callable[[], object]]) -> None:
    for name in written:
        log.delete_file(path / name)

"""Writing staged tables (merge by key, change data feed on) and whole-table overwrites
(the consistency findings, test fixtures), through delta-rs.

``merge_by_key`` merges a table held in memory; ``merge_batches_by_key`` merges a stream of
record batches (the batched staging, ``datacloud.staging_batches``) as one MERGE that
delta-rs executes streamed (``streamed_exec``): one commit, one version, whatever the number
of batches. DataFusion builds its hash join on the source, and that build side cannot spill
(a memory pool limit fails the MERGE: measured), so the batched staging hands it only the rows
that change (``staging_batches.keep_changed``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from datacloud.delta import rs
from datacloud.delta.read import load, open_table, read_loaded
from datacloud.delta.spec import CDF, ROW_GROUP_ROWS, CommitInfo, MergeResult, MergeSpec, writer
from datacloud.storage import DataPath


def _enable_cdf(dt: DeltaTable) -> DeltaTable:
    if dt.metadata().configuration.get(CDF) == "true":
        return dt
    dt.alter.set_table_properties({CDF: "true"}, raise_if_not_exists=False)
    dt.update_incremental()
    return dt


def overwrite(path: DataPath, table: pa.Table, sort_by: list[str], run_id: str, ds: str) -> int:
    """Replace the table's content in one commit, unless the content is unchanged.

    Returns the table version now current. Rerunning a night with the same input makes
    no new version.
    """
    table = table.sort_by([(k, "ascending") for k in sort_by])
    current = open_table(path)
    if current is not None:
        existing = read_loaded(current)
        if existing.schema == table.schema and existing.num_rows == table.num_rows:
            existing = existing.sort_by([(k, "ascending") for k in sort_by])
            if existing.equals(table):
                return current.version()
    rs.write(
        path,
        table,
        mode="overwrite",
        schema_mode="overwrite",
        writer_properties=writer(),
        commit_properties=CommitInfo(run_id, ds).properties(),
    )
    return load(path).version()


def merge_by_key(
    path: DataPath,
    rows: pa.Table,
    key: str,
    compare: list[str],
    deleted_keys: pa.Array | None,
    run_id: str,
    ds: str,
) -> MergeResult:
    """Merge ``rows`` into the table by ``key``: insert new keys, update changed rows, delete keys.

    A matched row is updated only when one of the ``compare`` columns differs, so rerunning a
    night changes no content. ``deleted_keys`` (from a full snapshot) are deleted.
    """
    rows = rows.sort_by([(key, "ascending")])
    commit = CommitInfo(run_id, ds)
    dt = open_table(path)
    if dt is None:
        rs.write(
            path,
            rows,
            mode="append",
            writer_properties=writer(),
            commit_properties=commit.properties(),
            configuration={CDF: "true"},
        )
        return MergeResult(load(path).version(), rows.num_rows, 0, 0)
    dt = _enable_cdf(dt)
    spec = MergeSpec(key, compare=tuple(compare), merge_schema=True)
    return rs.merge(dt, rows, deleted_keys, spec, commit)


def _with_op(batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    op = pa.field("_op", pa.string())
    for b in batches:
        if b.num_rows:
            b = b.cast(schema) if b.schema != schema else b
            yield b.append_column(op, pa.array(["U"] * b.num_rows, pa.string()))


def _tombstones(schema: pa.Schema, key: str, gone: pa.Array) -> pa.RecordBatch:
    cols = {f.name: pa.nulls(len(gone), f.type) for f in schema}
    cols[key] = pc.cast(gone, schema.field(key).type)
    cols["_op"] = pa.array(["D"] * len(gone), pa.string())
    return pa.RecordBatch.from_pydict(cols, schema=schema.append(pa.field("_op", pa.string())))


def merge_batches_by_key(
    path: DataPath,
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    key: str,
    compare: list[str],
    deleted_keys: pa.Array | None,
    run_id: str,
    ds: str,
) -> MergeResult:
    """``merge_by_key`` from a stream of record batches of ``schema``, never held whole.

    The same MERGE (insert new keys, update rows where a ``compare`` column differs, delete
    ``deleted_keys``) in one commit; a new table is written from the stream in one commit.
    Rows are written in the stream's order (each batch sorted by key is the caller's choice).
    """
    commit = CommitInfo(run_id, ds)
    dt = open_table(path)
    if dt is None:
        counted = 0

        def counting() -> Iterator[pa.RecordBatch]:
            nonlocal counted
            for b in batches:
                counted += b.num_rows
                yield b.cast(schema) if b.schema != schema else b

        rs.write(
            path,
            pa.RecordBatchReader.from_batches(schema, counting()),
            mode="append",
            writer_properties=writer(),
            commit_properties=commit.properties(),
            configuration={CDF: "true"},
        )
        return MergeResult(load(path).version(), counted, 0, 0)
    batches = iter(batches)
    first = next((b for b in batches if b.num_rows), None)
    if first is None and (deleted_keys is None or not len(deleted_keys)):
        return MergeResult(dt.version(), 0, 0, 0)  # nothing to change: delta-rs commits nothing
    batches = itertools.chain([first] if first is not None else [], batches)
    dt = _enable_cdf(dt)
    source_schema = schema.append(pa.field("_op", pa.string()))

    def source() -> Iterator[pa.RecordBatch]:
        yield from _with_op(batches, schema)
        if deleted_keys is not None and len(deleted_keys):
            yield _tombstones(schema, key, deleted_keys)

    data_cols = list(schema.names)
    spec = MergeSpec(key, compare=tuple(compare), merge_schema=True)
    # each comparison in parentheses: delta-rs's parser binds OR inside IS DISTINCT FROM
    changed = " OR ".join(f'(t."{c}" IS DISTINCT FROM s."{c}")' for c in compare) or "false"
    stats = (
        dt.merge(
            pa.RecordBatchReader.from_batches(source_schema, source()),
            predicate=f't."{key}" = s."{key}"',
            source_alias="s",
            target_alias="t",
            writer_properties=writer(ROW_GROUP_ROWS),
            commit_properties=commit.properties(),
            merge_schema=spec.merge_schema,
            streamed_exec=True,
        )
        .when_matched_delete(predicate="s._op = 'D'")
        .when_matched_update(
            updates={c: f's."{c}"' for c in data_cols}, predicate=f"s._op = 'U' AND ({changed})"
        )
        .when_not_matched_insert(
            updates={c: f's."{c}"' for c in data_cols}, predicate="s._op = 'U'"
        )
        .execute()
    )
    return MergeResult(
        version=rs.latest(dt),
        inserted=int(stats.get("num_target_rows_inserted", 0)),
        updated=int(stats.get("num_target_rows_updated", 0)),
        deleted=int(stats.get("num_target_rows_deleted", 0)),
    )

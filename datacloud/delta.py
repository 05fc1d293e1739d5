"""Delta Lake writes for staged and curated tables.

Delta commits are the only way these tables change: a reader sees the last committed
version or the next, never a partial write. Files are sorted by key with row groups of at
most 128k rows, so point lookups prune on statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, WriterProperties, write_deltalake
from deltalake.exceptions import TableNotFoundError

ROW_GROUP_ROWS = 128 * 1024
_WRITER = WriterProperties(max_row_group_size=ROW_GROUP_ROWS, compression="ZSTD")
_STRING_VIEW_SAFE = {pa.string_view(): pa.string(), pa.binary_view(): pa.binary()}


@dataclass(frozen=True)
class MergeResult:
    version: int
    inserted: int
    updated: int
    deleted: int


def open_table(path: Path) -> DeltaTable | None:
    try:
        return DeltaTable(str(path))
    except TableNotFoundError:
        return None


def version_as_of(path: Path, ds: str) -> int | None:
    """The latest version committed for a business date on or before ``ds`` (ISO date).

    Every datacloud commit records its business date (``datacloud.ds``) in the commit
    metadata; ``None`` when no commit is that old (or the table does not exist).
    """
    dt = open_table(path)
    if dt is None:
        return None
    best: int | None = None
    for commit in dt.history():
        committed_ds = commit.get("datacloud.ds")
        version = commit.get("version")
        if committed_ds is None or version is None or str(committed_ds) > ds:
            continue
        if best is None or int(version) > best:
            best = int(version)
    return best


def read_table(
    path: Path, columns: list[str] | None = None, version: int | None = None
) -> pa.Table:
    """Read a whole Delta table (or some columns) as Arrow, with plain string types."""
    dt = DeltaTable(str(path), version=version)
    table = dt.to_pyarrow_table(columns=columns)
    return plain_types(table)


def plain_types(table: pa.Table) -> pa.Table:
    """Cast string_view/binary_view columns (as delta-rs returns them) to string/binary."""
    fields = [f.with_type(_STRING_VIEW_SAFE.get(f.type, f.type)) for f in table.schema]
    schema = pa.schema(fields)
    return table if schema == table.schema else table.cast(schema)


def _metadata(run_id: str, ds: str) -> CommitProperties:
    return CommitProperties(custom_metadata={"datacloud.run_id": run_id, "datacloud.ds": ds})


def overwrite(path: Path, table: pa.Table, sort_by: list[str], run_id: str, ds: str) -> int:
    """Replace the table's content in one commit, unless the content is unchanged.

    Returns the table version now current. Rerunning a night with the same input makes
    no new version.
    """
    table = table.sort_by([(k, "ascending") for k in sort_by])
    current = open_table(path)
    if current is not None:
        existing = plain_types(current.to_pyarrow_table())
        if existing.schema == table.schema and existing.num_rows == table.num_rows:
            existing = existing.sort_by([(k, "ascending") for k in sort_by])
            if existing.equals(table):
                return current.version()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_deltalake(
        str(path),
        table,
        mode="overwrite",
        schema_mode="overwrite",
        writer_properties=_WRITER,
        commit_properties=_metadata(run_id, ds),
    )
    dt = DeltaTable(str(path))
    return dt.version()


def merge_by_key(
    path: Path,
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
    op = pa.array(["U"] * rows.num_rows, pa.string())
    source = rows.append_column("_op", op)
    if deleted_keys is not None and len(deleted_keys) > 0:
        tomb = {
            c: pa.nulls(len(deleted_keys), source.schema.field(c).type) for c in source.column_names
        }
        tomb[key] = pc.cast(deleted_keys, source.schema.field(key).type)
        tomb["_op"] = pa.array(["D"] * len(deleted_keys), pa.string())
        source = pa.concat_tables([source, pa.table(tomb, schema=source.schema)])
    dt = open_table(path)
    if dt is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_deltalake(
            str(path),
            rows,
            mode="append",
            writer_properties=_WRITER,
            commit_properties=_metadata(run_id, ds),
        )
        return MergeResult(DeltaTable(str(path)).version(), rows.num_rows, 0, 0)
    # each comparison in parentheses: delta-rs's parser binds OR inside IS DISTINCT FROM
    changed = " OR ".join(f'(t."{c}" IS DISTINCT FROM s."{c}")' for c in compare) or "false"
    data_cols = [c for c in rows.column_names]
    stats = (
        dt.merge(
            source,
            predicate=f't."{key}" = s."{key}"',
            source_alias="s",
            target_alias="t",
            writer_properties=_WRITER,
            commit_properties=_metadata(run_id, ds),
            merge_schema=True,
        )
        .when_matched_delete(predicate="s._op = 'D'")
        .when_matched_update(
            updates={c: f's."{c}"' for c in data_cols},
            predicate=f"s._op = 'U' AND ({changed})",
        )
        .when_not_matched_insert(
            updates={c: f's."{c}"' for c in data_cols},
            predicate="s._op = 'U'",
        )
        .execute()
    )
    dt = DeltaTable(str(path))
    return MergeResult(
        version=dt.version(),
        inserted=int(stats.get("num_target_rows_inserted", 0)),
        updated=int(stats.get("num_target_rows_updated", 0)),
        deleted=int(stats.get("num_target_rows_deleted", 0)),
    )

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
# staged tables record their row changes (Delta change data feed): curation reads them
CDF = "delta.enableChangeDataFeed"
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


def _metadata(run_id: str, ds: str, extra: dict[str, str] | None = None) -> CommitProperties:
    meta = {"datacloud.run_id": run_id, "datacloud.ds": ds, **(extra or {})}
    return CommitProperties(custom_metadata=meta)


def _enable_cdf(dt: DeltaTable) -> DeltaTable:
    if dt.metadata().configuration.get(CDF) == "true":
        return dt
    dt.alter.set_table_properties({CDF: "true"}, raise_if_not_exists=False)
    return DeltaTable(dt.table_uri)


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


def _merge_source(rows: pa.Table, key: str, deleted_keys: pa.Array | None) -> pa.Table:
    """The merge source: ``rows`` marked ``_op = 'U'``, then one ``'D'`` row per deleted key."""
    source = rows.append_column("_op", pa.array(["U"] * rows.num_rows, pa.string()))
    if deleted_keys is None or len(deleted_keys) == 0:
        return source
    tomb = {
        c: pa.nulls(len(deleted_keys), source.schema.field(c).type) for c in source.column_names
    }
    tomb[key] = pc.cast(deleted_keys, source.schema.field(key).type)
    tomb["_op"] = pa.array(["D"] * len(deleted_keys), pa.string())
    return pa.concat_tables([source, pa.table(tomb, schema=source.schema)])


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
    source = _merge_source(rows, key, deleted_keys)
    dt = open_table(path)
    if dt is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_deltalake(
            str(path),
            rows,
            mode="append",
            writer_properties=_WRITER,
            commit_properties=_metadata(run_id, ds),
            configuration={CDF: "true"},
        )
        return MergeResult(DeltaTable(str(path)).version(), rows.num_rows, 0, 0)
    dt = _enable_cdf(dt)
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


def has_cdf(path: Path, version: int) -> bool:
    """Whether the table recorded its row changes (change data feed) from ``version`` on."""
    try:
        dt = DeltaTable(str(path), version=version)
    except Exception:  # vacuumed log or a version that never existed
        return False
    return dt.metadata().configuration.get(CDF) == "true"


def changes(path: Path, after: int, upto: int, columns: list[str]) -> pa.Table:
    """The rows inserted, updated (old and new image) or deleted in versions ``after+1..upto``."""
    dt = DeltaTable(str(path), version=upto)
    if after >= upto:
        return pa.table({c: pa.array([], pa.string()) for c in columns})
    reader = dt.load_cdf(starting_version=after + 1, ending_version=upto, columns=columns)
    return plain_types(pa.table(reader).select(columns))


def publish(
    path: Path,
    rows: pa.Table,
    key: str,
    deleted_keys: pa.Array | None,
    sort_by: list[str],
    run_id: str,
    ds: str,
    metadata: dict[str, str] | None = None,
) -> MergeResult:
    """Publish curated rows by ``key`` in one Delta commit: insert, update changed rows, delete.

    A row is rewritten only when one of its columns differs, and nothing changed means no
    commit, so a rerun of a night makes no new version. The first publish writes the table
    sorted by ``sort_by`` with row groups of at most 128k rows (statistics on).
    """
    rows = rows.sort_by([(k, "ascending") for k in sort_by])
    dt = open_table(path)
    if dt is None or dt.schema().to_arrow().names != rows.column_names:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_deltalake(
            str(path),
            rows,
            mode="overwrite",
            schema_mode="overwrite",
            writer_properties=_WRITER,
            commit_properties=_metadata(run_id, ds, metadata),
        )
        return MergeResult(DeltaTable(str(path)).version(), rows.num_rows, 0, 0)
    source = _merge_source(rows, key, deleted_keys)
    if source.num_rows == 0:
        return MergeResult(dt.version(), 0, 0, 0)
    data_cols = [c for c in rows.column_names]
    changed = (
        " OR ".join(f'(t."{c}" IS DISTINCT FROM s."{c}")' for c in data_cols if c != key) or "false"
    )
    stats = (
        dt.merge(
            source,
            predicate=f't."{key}" = s."{key}"',
            source_alias="s",
            target_alias="t",
            writer_properties=_WRITER,
            commit_properties=_metadata(run_id, ds, metadata),
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
        version=DeltaTable(str(path)).version(),
        inserted=int(stats.get("num_target_rows_inserted", 0)),
        updated=int(stats.get("num_target_rows_updated", 0)),
        deleted=int(stats.get("num_target_rows_deleted", 0)),
    )


def maintain(
    path: Path, key: str, retention_days: int, recluster_files_over: int, run_id: str, ds: str
) -> dict[str, int]:
    """Keep a published table lookup-ready and its history bounded.

    When it holds more than ``recluster_files_over`` data files, rewrite it ordered by ``key``
    (z-order on one column is a sort: few, large files whose row groups prune on the key);
    then delete files no reader of the last ``retention_days`` days needs (vacuum). Both
    commit only when they have something to do.
    """
    dt = DeltaTable(str(path))
    out = {"reclustered_files": 0, "vacuumed_files": 0}
    if len(dt.file_uris()) > recluster_files_over:
        metrics = dt.optimize.z_order(
            [key], writer_properties=_WRITER, commit_properties=_metadata(run_id, ds)
        )
        out["reclustered_files"] = int(metrics.get("numFilesRemoved", 0))
        dt = DeltaTable(str(path))
    hours = retention_days * 24
    if dt.vacuum(retention_hours=hours, enforce_retention_duration=False, dry_run=True):
        out["vacuumed_files"] = len(
            dt.vacuum(
                retention_hours=hours,
                enforce_retention_duration=False,
                dry_run=False,
                commit_properties=_metadata(run_id, ds),
            )
        )
    return out


def history(path: Path) -> list[dict[str, object]]:
    """Every commit, newest first: version, time, business date, run id, operation, row counts."""
    out: list[dict[str, object]] = []
    for c in DeltaTable(str(path)).history():
        m = c.get("operationMetrics") or {}
        added = m.get("num_target_rows_inserted", m.get("num_added_rows"))
        removed = m.get("num_target_rows_deleted", m.get("num_removed_rows"))
        out.append(
            {
                "version": c.get("version"),
                "timestamp": c.get("timestamp"),
                "ds": c.get("datacloud.ds"),
                "run_id": c.get("datacloud.run_id"),
                "operation": c.get("operation"),
                "rows_added": added,
                "rows_updated": m.get("num_target_rows_updated"),
                "rows_removed": removed,
                "full_rebuild": c.get("datacloud.full"),
            }
        )
    return out

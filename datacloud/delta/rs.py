"""Writes through delta-rs (``write_deltalake``, ``DeltaTable.merge``): a new table, an
overwrite, a copy-on-write MERGE, and the check after a delta-rs commit beside other writers.
"""

from __future__ import annotations

import json
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, write_deltalake

from datacloud.delta import log
from datacloud.delta.read import load
from datacloud.delta.spec import CommitInfo, MergeResult, MergeSpec, writer
from datacloud.storage import DataPath, prepare_parent, storage_options, uri


def write(path: DataPath, table: pa.Table, **kwargs: object) -> None:
    """``write_deltalake`` to a new or existing table at ``path`` (parent folder made locally)."""
    prepare_parent(path)
    write_deltalake(uri(path), table, storage_options=storage_options(path), **kwargs)  # type: ignore[call-overload]


def latest(dt: DeltaTable) -> int:
    """The version now current of a table another call just wrote."""
    dt.update_incremental()
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


def merge(
    dt: DeltaTable, rows: pa.Table, gone: pa.Array | None, spec: MergeSpec, commit: CommitInfo
) -> MergeResult:
    """One copy-on-write MERGE by ``spec.key``: insert new keys, update rows where one of
    ``spec.compare`` differs, delete the ``gone`` keys."""
    key = spec.key
    source = _merge_source(rows, key, gone)
    data_cols = list(rows.column_names)
    compare = [c for c in data_cols if c != key] if spec.compare is None else list(spec.compare)
    # each comparison in parentheses: delta-rs's parser binds OR inside IS DISTINCT FROM
    changed = " OR ".join(f'(t."{c}" IS DISTINCT FROM s."{c}")' for c in compare) or "false"
    stats = (
        dt.merge(
            source,
            predicate=f't."{key}" = s."{key}"',
            source_alias="s",
            target_alias="t",
            writer_properties=writer(spec.row_group_rows),
            commit_properties=commit.properties(),
            merge_schema=spec.merge_schema,
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
        version=latest(dt),
        inserted=int(stats.get("num_target_rows_inserted", 0)),
        updated=int(stats.get("num_target_rows_updated", 0)),
        deleted=int(stats.get("num_target_rows_deleted", 0)),
    )


def verify_commit(path: DataPath, read_version: int, version: int | None = None) -> int:
    """After a delta-rs commit on a snapshot at ``read_version``: every file it added exists,
    and no commit in between removed a file it removed too (an outside OPTIMIZE whose output
    would then duplicate rows). Either is an error naming the table: we cannot repair it."""
    version = load(path).version() if version is None else version
    entries = {}
    for v in range(read_version + 1, version + 1):
        text = (log.read_bytes(path / "_delta_log" / f"{v:020d}.json") or b"").decode()
        entries[v] = [json.loads(line) for line in text.splitlines() if line.strip()]
    ours = entries.get(version, [])
    removed = {a["remove"]["path"] for a in ours if "remove" in a}
    for v, actions in entries.items():
        twice = removed & {a["remove"]["path"] for a in actions if "remove" in a}
        if v != version and twice:
            raise RuntimeError(
                f"{path}: version {v} (another writer) and our version {version} both removed "
                f"{sorted(twice)[:3]}: its rows may be duplicated; restore version {read_version}"
            )
    for a in ours:
        if "add" in a and not log.exists(path / unquote(a["add"]["path"])):
            raise RuntimeError(
                f"{path}: version {version} names {a['add']['path']}, which is gone "
                "(an outside vacuum): restore the previous version"
            )
    return version

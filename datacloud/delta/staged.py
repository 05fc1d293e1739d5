"""Writing staged tables (merge by key, change data feed on) and whole-table overwrites
(the consistency findings, test fixtures), through delta-rs.
"""

from __future__ import annotations

import pyarrow as pa
from deltalake import DeltaTable

from datacloud.delta import rs
from datacloud.delta.read import load, open_table, read_loaded
from datacloud.delta.spec import CDF, CommitInfo, MergeResult, MergeSpec, writer
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

"""Reading Delta tables: load (at a version or a business date), read whole or by key, the
change data feed, the history, deleted rows and live row counts, and what the log says a
table consumed.

Every datacloud commit records its business date (``datacloud.ds``) and run
(``datacloud.run_id``) in its ``commitInfo``; a curated publish records the staged versions
it consumed as app transactions (``consumed_versions``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from datacloud.delta import log
from datacloud.delta.spec import CDF, CONSUMED_APP, DV_FEATURE
from datacloud.storage import DataPath, parse, storage_options, uri

STRING_VIEW_SAFE = {pa.string_view(): pa.string(), pa.binary_view(): pa.binary()}


def load(path: DataPath, version: int | None = None) -> DeltaTable:
    """The Delta table at ``path`` (local or on the object store), at ``version`` or the latest.

    A given version never changes, so its loaded log is kept (the last 128) and shared: do
    not ``update_incremental`` or write through a table loaded at a version.
    """
    options = storage_options(path)
    if version is None:
        return DeltaTable(uri(path), storage_options=options)
    return _load_version(uri(path), version, tuple(sorted((options or {}).items())))


@functools.lru_cache(maxsize=128)
def _load_version(location: str, version: int, options: tuple[tuple[str, str], ...]) -> DeltaTable:
    return DeltaTable(location, version=version, storage_options=dict(options) or None)


def open_table(path: DataPath, version: int | None = None) -> DeltaTable | None:
    """The table at ``path`` (at ``version``), or None when there is none."""
    try:
        return load(path, version)
    except TableNotFoundError:
        return None


def version_as_of(path: DataPath, ds: str) -> int | None:
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
    path: DataPath, columns: list[str] | None = None, version: int | None = None
) -> pa.Table:
    """Read a whole Delta table (or some columns) as Arrow, with plain string types.

    A table with deletion vectors is read through delta-rs's own engine (``scan``), which
    applies them; deltalake's pyarrow dataset refuses such tables.
    """
    return read_loaded(load(path, version), columns)


def read_loaded(dt: DeltaTable, columns: list[str] | None = None) -> pa.Table:
    """``read_table`` of a table already loaded (at its loaded version)."""
    if not has_deletion_vectors(dt):
        return plain_types(dt.to_pyarrow_table(columns=columns))
    table = pa.RecordBatchReader.from_stream(dt.scan(columns=columns)).read_all()
    names = columns if columns is not None else dt.schema().to_arrow().names
    return plain_types(table).select(names)


def has_deletion_vectors(dt: DeltaTable) -> bool:
    """Whether the table's protocol lets its files carry deletion vectors."""
    return DV_FEATURE in (dt.protocol().reader_features or [])


def read_where(dt: DeltaTable, columns: list[str], where: list[str], values: pa.Array) -> pa.Table:
    """The rows of a loaded table whose value in any of the ``where`` columns is in
    ``values``, as Arrow with the table's own types (``columns`` only).

    A local table is read by polars, which decodes the ``where`` columns first and the other
    columns only for the matching rows: reading 1% of a table's rows costs a fraction of
    reading it whole. On the object store: a whole read, then a filter.
    """
    schema = pa.schema(dt.schema().to_arrow())
    where = [c for c in where if c in schema.names]
    target = pa.schema([schema.field(c) for c in columns])
    if not where:
        return target.empty_table()
    if urlparse(dt.table_uri).scheme not in ("file", ""):
        table = read_loaded(dt, columns + [c for c in where if c not in columns])
        mask = pc.is_in(table[where[0]], value_set=values)
        for c in where[1:]:
            mask = pc.or_kleene(mask, pc.is_in(table[c], value_set=values))
        return table.filter(mask).select(columns).cast(target)
    import polars as pl

    wanted = pl.Series("v", pa.array(values).cast(pa.large_string())).implode()
    condition = pl.any_horizontal([pl.col(c).is_in(wanted) for c in where])
    if has_deletion_vectors(dt):
        frame = pl.scan_delta(dt)
    else:
        # a file written before the table gained a column has none: nulls (as Delta reads it)
        frame = pl.scan_parquet(
            sorted(str(local_path(u)) for u in dt.file_uris()),
            schema=pl.from_arrow(schema.empty_table()).schema,  # type: ignore[union-attr]
            missing_columns="insert",
            extra_columns="ignore",
        )
    out = frame.filter(condition).select(columns).collect().to_arrow()
    return out.cast(target)


def plain_types(table: pa.Table) -> pa.Table:
    """Cast string_view/binary_view columns (as delta-rs returns them) to string/binary."""
    fields = [f.with_type(STRING_VIEW_SAFE.get(f.type, f.type)) for f in table.schema]
    schema = pa.schema(fields)
    return table if schema == table.schema else table.cast(schema)


def has_cdf(path: DataPath, version: int) -> bool:
    """Whether the table recorded its row changes (change data feed) from ``version`` on."""
    try:
        dt = load(path, version)
    except Exception:  # vacuumed log or a version that never existed
        return False
    return dt.metadata().configuration.get(CDF) == "true"


def changes(path: DataPath, after: int, upto: int, columns: list[str]) -> pa.Table:
    """The rows inserted, updated (old and new image) or deleted in versions ``after+1..upto``."""
    dt = load(path, upto)
    if after >= upto:
        return pa.table({c: pa.array([], pa.string()) for c in columns})
    reader = dt.load_cdf(starting_version=after + 1, ending_version=upto, columns=columns)
    return plain_types(pa.table(reader).select(columns))


def history(path: DataPath) -> list[dict[str, object]]:
    """Every commit, newest first: version, time, business date, run id, operation, row counts."""
    out: list[dict[str, object]] = []
    for c in load(path).history():
        m = c.get("operationMetrics") or {}
        added = m.get("num_target_rows_inserted", m.get("num_added_rows"))
        updated = m.get("num_target_rows_updated")
        removed = m.get("num_target_rows_deleted", m.get("num_removed_rows"))
        if c.get("datacloud.rows_inserted") is not None:  # a sorted rewrite by publish
            added, updated, removed = (
                int(c[f"datacloud.rows_{k}"]) for k in ("inserted", "updated", "deleted")
            )
        out.append(
            {
                "version": c.get("version"),
                "timestamp": c.get("timestamp"),
                "ds": c.get("datacloud.ds"),
                "run_id": c.get("datacloud.run_id"),
                "operation": c.get("operation"),
                "rows_added": added,
                "rows_updated": updated,
                "rows_removed": removed,
                "full_rebuild": c.get("datacloud.full"),
            }
        )
    return out


def local_path(file_uri: str) -> Path:
    parsed = urlparse(file_uri)
    return Path(unquote(parsed.path)) if parsed.scheme in ("file", "") else Path(file_uri)


def deleted_positions(dt: DeltaTable) -> dict[str, np.ndarray]:
    """Data file (path relative to the table) -> the row positions its deletion vector deletes.

    Only files with a deletion vector; empty for a table without them.
    """
    if not has_deletion_vectors(dt):
        return {}
    root = dt.table_uri.rstrip("/") + "/"
    out: dict[str, np.ndarray] = {}
    for batch in pa.RecordBatchReader.from_stream(dt.deletion_vectors()):
        batch = pa.record_batch(batch)
        selection = batch.column(1)
        flat = pc.invert(selection.flatten()).to_numpy(zero_copy_only=False)
        offsets = selection.offsets.to_numpy()
        for i, file_uri in enumerate(batch.column(0).to_pylist()):
            rel = unquote(file_uri.removeprefix(root))
            out[rel] = np.flatnonzero(flat[offsets[i] : offsets[i + 1]])
    return out


def physical_rows(dt: DeltaTable) -> int:
    """Rows in the table's data files, deleted ones included (the log's ``numRecords``)."""
    return int(pc.sum(pa.table(dt.get_add_actions(flatten=True))["num_records"]).as_py() or 0)


def live_rows(dt: DeltaTable, already: dict[str, np.ndarray] | None = None) -> int:
    """Rows a reader sees: the physical rows less those deletion vectors mark deleted
    (``already``: ``deleted_positions(dt)``, when the caller has it)."""
    already = deleted_positions(dt) if already is None else already
    return physical_rows(dt) - sum(len(p) for p in already.values())


def files_in_range(dt: DeltaTable, key: str, touched: pa.Array) -> dict[str, dict[str, Any]]:
    """The table's files (delta-rs's add actions) whose ``key`` range can hold a touched key."""
    bounds = pc.min_max(touched)
    lowest, highest = bounds["min"].as_py(), bounds["max"].as_py()
    files = {}
    for action in pa.table(dt.get_add_actions(flatten=False)).to_pylist():
        low = (action.get("min") or {}).get(key)
        high = (action.get("max") or {}).get(key)
        if lowest is None or low is None or high is None or not (high < lowest or low > highest):
            files[action["path"]] = action
    return files


def file_loc(path: DataPath, file: str) -> DataPath:
    """A file vacuum or delta-rs names (absolute URI, or relative to the table)."""
    if "://" in file and not file.startswith("file:"):
        return parse(file)
    local = local_path(file)
    return local if local.is_absolute() else path / unquote(file)


def consumed_versions(path: DataPath) -> dict[str, int]:
    """Staged table (``"<dept>/<table>"``) -> the version of it the table's content was last
    built from, as its publishes recorded it in the log (app transactions, ``txn``); empty
    for a table without any (or none at ``path``)."""
    if open_table(path) is None:
        return {}
    return {
        app.removeprefix(CONSUMED_APP): version
        for app, version in log.transactions(path).items()
        if app.startswith(CONSUMED_APP)
    }

"""Our own copy-on-write commit: files of the snapshot replaced by one sorted file, at exactly
the snapshot's version + 1; and the data files our commits write (Parquet as delta-rs
writes it here, with the ``add`` action's statistics).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake import Schema as DeltaSchema

from datacloud.delta import log, protocol
from datacloud.delta.read import STRING_VIEW_SAFE, plain_types
from datacloud.delta.spec import CommitInfo, FileLayout, VectorsUnknown
from datacloud.storage import DataPath, filesystem


def _stat_value(v: Any) -> Any:
    """A min/max as Delta statistics write it: dates and times in ISO form."""
    return v.isoformat() if hasattr(v, "isoformat") else v


def stats_json(table: pa.Table) -> str:
    """Delta ``add`` statistics: row count, null counts, min/max of the primitive columns."""
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for name in table.column_names:
        column = table[name]
        nulls[name] = column.null_count
        t = column.type
        if not (
            pa.types.is_string(t)
            or pa.types.is_integer(t)
            or pa.types.is_floating(t)
            or pa.types.is_date32(t)
        ):
            continue
        if pa.types.is_floating(t):  # NaN and ±inf have no JSON: no bounds for such a column
            column = pc.drop_null(column)
            if not pc.all(pc.is_finite(column)).as_py():
                continue
        bounds = pc.min_max(column)
        lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
        if lo is not None:
            mins[name], maxs[name] = _stat_value(lo), _stat_value(hi)
    stats = {"numRecords": table.num_rows, "minValues": mins, "maxValues": maxs}
    doc = {**stats, "nullCount": nulls, "tightBounds": True}
    return json.dumps(doc, ensure_ascii=False, allow_nan=False)


def _parquet_bytes(table: pa.Table, row_group_rows: int) -> bytes:
    """A data file as delta-rs would write it here (ZSTD, page index), in memory: the same
    bytes can be written again if an outside vacuum deletes the file before our commit."""
    sink = pa.BufferOutputStream()
    pq.write_table(
        plain_types(table),
        sink,
        row_group_size=row_group_rows,
        compression="zstd",
        write_page_index=True,
    )
    return bytes(sink.getvalue().to_pybytes())


def file_name() -> str:
    """A new data file's name, as delta-rs names them."""
    return f"part-00000-{uuid.uuid4()}-c000.zstd.parquet"


def add_action(name: str, size: int, now: int, stats: str) -> dict[str, Any]:
    """The ``add`` action of a new data file of ``size`` bytes."""
    return {
        "path": name,
        "partitionValues": {},
        "size": size,
        "modificationTime": now,
        "dataChange": True,
        "stats": stats,
    }


def new_file(table: pa.Table, row_group_rows: int, now: int) -> tuple[dict[str, Any], bytes]:
    """A new data file of ``table`` (as it is ordered): its ``add`` action and its bytes."""
    name = file_name()
    data = _parquet_bytes(table, row_group_rows)
    return add_action(name, len(data), now, stats_json(table)), data


def write_file(loc: DataPath, table: pa.Table, row_group_rows: int) -> int:
    """Write a data file of ``table`` (as it is ordered) straight to ``loc``, as
    ``_parquet_bytes`` writes it, without holding its bytes (locally fsynced, so it is on
    disk before a log entry naming it). Returns its size."""
    table = plain_types(table)
    fs, p = filesystem(loc)
    with fs.open_output_stream(p) as out:
        pq.write_table(
            table, out, row_group_size=row_group_rows, compression="zstd", write_page_index=True
        )
    if isinstance(loc, Path):
        fd = os.open(loc, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return int(fs.get_file_info(p).size)


def read_files(
    path: DataPath, dt: DeltaTable, files: list[str], already: dict[str, np.ndarray]
) -> pa.Table:
    """The live rows of some of the table's files (deletion vectors applied), in its schema."""
    schema = pa.schema(dt.schema().to_arrow())
    target = pa.schema([f.with_type(STRING_VIEW_SAFE.get(f.type, f.type)) for f in schema])
    parts = [target.empty_table()]
    for name in files:
        fs, p = filesystem(path / unquote(name))
        t = pq.read_table(p, filesystem=fs)
        dead = already.get(name)
        if dead is not None and len(dead):
            keep = np.ones(t.num_rows, bool)
            keep[dead] = False
            t = t.filter(pa.array(keep))
        cols = [
            t[f.name] if f.name in t.column_names else pa.nulls(t.num_rows, f.type) for f in target
        ]
        parts.append(pa.table(cols, names=target.names).cast(target))
    return pa.concat_tables(parts)


def rewrite(
    path: DataPath,
    dt: DeltaTable,
    files: list[str] | None,
    table: pa.Table,
    layout: FileLayout,
    commit: CommitInfo,
    operation: str = "WRITE",
) -> int:
    """Replace ``files`` (None: every file, and the schema with ``table``'s) by ``table``
    sorted, in one commit of our own at exactly the snapshot's version + 1: a concurrent
    commit (an outside OPTIMIZE) makes ours fail and the publish start again, and one after
    ours finds its files removed and fails in its own conflict check. Returns the version
    committed (a later one when vacuum's START/END took the version in between)."""
    logged = log.logged_adds(path, dt.version())
    now = int(time.time() * 1000)
    table = plain_types(table.sort_by([(k, "ascending") for k in layout.sort_by]))
    actions = commit.actions(operation, {"mode": "copy-on-write"})
    if files is None:
        actions += replace_all(dt, logged, table.schema, now)
    else:
        for name in files:
            if name not in logged:
                raise VectorsUnknown(f"{name} is not in the log as read")
            actions.append({"remove": protocol.remove_action(logged[name], now)})
    new: dict[str, bytes] = {}
    if table.num_rows:
        add, data = new_file(table, layout.row_group_rows, now)
        new[add["path"]] = data
        actions.append({"add": add})
    return log.commit_files(path, dt.version() + 1, actions, new)


def replace_all(
    dt: DeltaTable, logged: dict[str, dict[str, Any]], schema: pa.Schema, now: int
) -> list[dict[str, Any]]:
    """The actions replacing every logged file (``log.logged_adds`` at the snapshot), and the
    table's schema by ``schema`` when its columns differ (a ``metaData`` action, the rest of
    the metadata kept)."""
    actions: list[dict[str, Any]] = []
    if pa.schema(dt.schema().to_arrow()).names != schema.names:
        m = dt.metadata()
        actions.append(
            {
                "metaData": {
                    "id": m.id, "name": m.name, "description": m.description,
                    "format": {"provider": "parquet", "options": {}},
                    "schemaString": DeltaSchema.from_arrow(schema).to_json(),
                    "partitionColumns": [], "configuration": m.configuration,
                    "createdTime": m.created_time,
                }
            }
        )  # fmt: skip
    actions += [{"remove": protocol.remove_action(add, now)} for add in logged.values()]
    return actions

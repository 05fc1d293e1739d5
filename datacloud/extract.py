"""Extraction: a department table's rows for one business date, landed as raw Parquet.

``full`` tables are read whole (the Arrow-native path where the dialect has one);
``incremental`` tables read the business day of their cursor column, in Asia/Shanghai wall
time, starting ``overlap_minutes`` early to catch rows committed late, plus (by default) the
rows whose cursor is NULL, which a window can never reach; their first night (``initial``: no
staged table yet) reads the whole source, its history included. The window's bounds are bound
parameters. Re-read rows are deduplicated by primary key when staged. Before reading, the
source table is checked for schema drift. Memory stays bounded by the batch size.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

from datacloud import failures, schema_drift
from datacloud.config import Department, TableSpec
from datacloud.connections import engine as source_engine
from datacloud.connections import masked
from datacloud.landing import BackgroundWriter, replace_partition, write_chunk
from datacloud.masking import mask_text
from datacloud.readers import choose, read_batches
from datacloud.storage import DataPath

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Extracted:
    path: DataPath
    rows: int
    columns: list[str]
    reader: str
    schema_changes: list[schema_drift.Change] = field(default_factory=list)


class ExtractionError(RuntimeError):
    """Extraction of one department table failed; the message names department and table."""

    def __init__(self, message: str, kind: str = "error") -> None:
        super().__init__(message)
        self.kind = kind  # source_unreachable | schema_change | error


class MappingError(RuntimeError):
    """The department YAML maps a column its SQL does not select: the platform's configuration
    disagrees with itself (a typo, a column left out of the query), not the department's table,
    whose structure the drift check has just compared. The report says the platform is at fault
    (``failures.ERROR``), never asks the department to restore its table."""

    kind = failures.ERROR


def window(ds: date, overlap_minutes: int) -> tuple[datetime, datetime]:
    """[start, end) of an incremental night: the business day, started ``overlap`` early."""
    start = datetime.combine(ds, time(0)) - timedelta(minutes=overlap_minutes)
    return start, datetime.combine(ds + timedelta(days=1), time(0))


def _quote(url: URL | str, name: str) -> str:
    return str(make_url(url).get_dialect()().identifier_preparer.quote(name))


def query(
    url: URL | str,
    dept: Department,
    table: TableSpec,
    ds: date,
    chunk: Mapping[str, Any] | None = None,
    initial: bool = False,
) -> tuple[str, dict[str, Any] | None]:
    """The SQL to run and its bound parameters (None for an unchunked full snapshot).

    Incremental tables get the night's window on their cursor, except on their ``initial``
    load (no staged table yet: the whole source, its history included); a chunk gets its key
    range ``[lo, hi)`` (the first chunk is open below, the last open above).
    """
    sql = dept.sql_path(table.name).read_text(encoding="utf-8").strip().rstrip(";")
    conds: list[str] = []
    params: dict[str, Any] = {}
    if table.mode == "incremental" and not initial:
        assert table.cursor is not None
        cursor = f"src.{_quote(url, table.cursor)}"
        cond = f"({cursor} >= :window_start AND {cursor} < :window_end)"
        if table.null_cursor == "include":
            cond += f" OR {cursor} IS NULL"
        conds.append(f"({cond})")
        start, end = window(ds, table.overlap_minutes)
        params.update(window_start=start, window_end=end)
        if make_url(url).get_backend_name() == "sqlite":
            # SQLite keeps timestamps as text: bind the same text form, or '…00:00:00' would
            # sort before '…00:00:00.000000' and a midnight row would fall into two nights
            params = {k: v.isoformat(sep=" ", timespec="auto") for k, v in params.items()}
    if chunk is not None:
        key = f"src.{_quote(url, chunk_key(table))}"
        if chunk.get("lo") is not None:
            conds.append(f"{key} >= :chunk_lo")
            params["chunk_lo"] = chunk["lo"]
        if chunk.get("hi") is not None:
            conds.append(f"{key} < :chunk_hi")
            params["chunk_hi"] = chunk["hi"]
    if not conds:
        return sql, None
    return f"SELECT * FROM (\n{sql}\n) src WHERE {' AND '.join(conds)}", params


def chunk_key(table: TableSpec) -> str:
    return table.chunk_key or table.primary_key[0]


def plan_chunks(
    url: URL | str, dept: Department, table: TableSpec, ds: date, initial: bool = False
) -> list[dict[str, Any]]:
    """Cut the table into ``table.chunks`` key ranges of about equal row counts (NTILE).

    Returns ``[{"index", "lo", "hi"}]``; the first range is open below and the last open
    above, so rows inserted after planning are not missed. Keys must be integers or text.
    """
    inner, params = query(url, dept, table, ds, initial=initial)
    key = _quote(url, chunk_key(table))
    sql = (
        f"SELECT MIN(k) AS lo FROM (SELECT src.{key} AS k, NTILE({int(table.chunks)}) OVER "
        f"(ORDER BY src.{key}) AS t FROM (\n{inner}\n) src) x GROUP BY t ORDER BY lo"
    )
    engine = source_engine(url)
    try:
        with engine.connect() as conn:
            lows = [r[0] for r in conn.execute(text(sql), params or {})]
    except Exception as e:
        raise failed(dept, table, "planning chunks", e) from e
    finally:
        engine.dispose()
    bad = [v for v in lows if not isinstance(v, int | str)]
    if bad:
        raise ExtractionError(
            f"department {dept.code}, table {table.name}: chunk_key {chunk_key(table)} must be an "
            f"integer or text column, got {type(bad[0]).__name__}"
        )
    bounds = lows[1:]
    ranges: list[dict[str, Any]] = [{"index": 0, "lo": None, "hi": bounds[0] if bounds else None}]
    for i, lo in enumerate(bounds):
        hi = bounds[i + 1] if i + 1 < len(bounds) else None
        ranges.append({"index": i + 1, "lo": lo, "hi": hi})
    return ranges


def failed(dept: Department, table: TableSpec, step: str, e: BaseException) -> ExtractionError:
    """A driver error as an ExtractionError: department, table, step, the error's first line
    (never the query's values) and its kind. A schema-drift error keeps its own message.
    ID and mobile numbers a driver quotes from a row are masked (``mask_text``); the caller's
    ``from e`` still chains the driver's own text, so callers that log or re-raise to Airflow
    raise the ExtractionError anew ``from None`` (``datacloud.nightly``)."""
    if isinstance(e, schema_drift.SchemaDriftError):
        return ExtractionError(mask_text(str(e)), "schema_change")
    text = str(e).strip()
    first = mask_text(text.splitlines()[0])[:300] if text else ""
    return ExtractionError(
        f"department {dept.code}, table {table.name}: {step} failed: {type(e).__name__}: {first}",
        failures.classify(e),
    )


def check_schema(
    url: URL | str, dept: Department, table: TableSpec, snapshot: Path
) -> tuple[list[schema_drift.Change], dict[str, str]]:
    """The schema-drift step before reading: changes (logged) and the current schema, which
    the caller saves once its read succeeded; ExtractionError on a breaking change."""
    try:
        changes, current = schema_drift.check(url, dept, table, snapshot)
    except Exception as e:
        raise failed(dept, table, "reflection", e) from e
    for c in changes:
        log.warning(schema_drift.describe(dept, table, c))
    return changes, current


def extract_table(
    url: URL | str,
    dept: Department,
    table: TableSpec,
    partition: DataPath,
    ds: date,
    snapshot: Path | None = None,
    batch_size: int | None = None,
    chunk: Mapping[str, Any] | None = None,
    chunk_dir: DataPath | None = None,
    initial: bool = False,
) -> Extracted:
    """Check the source schema, run the table's query and land its rows as the raw partition.

    With ``chunk`` (and ``chunk_dir``), only that key range is read, into the chunk folder;
    :func:`datacloud.landing.land_chunks` lands all chunks together afterwards. ``initial``:
    an incremental table's first load, read whole (``query``).
    """
    mode = f"{table.mode}, initial load" if initial and table.mode == "incremental" else table.mode
    log.info("extract %s.%s (%s) from %s", dept.code, table.name, mode, masked(url))
    changes, current = (
        check_schema(url, dept, table, snapshot) if snapshot is not None else ([], None)
    )
    try:
        sql, params = query(url, dept, table, ds, chunk, initial)
        reader = choose(url, params, table.reader)
        target = (
            write_chunk(chunk_dir, int(chunk["index"]))
            if chunk is not None and chunk_dir is not None
            else replace_partition(partition)
        )
        with target as writer:
            background = BackgroundWriter(writer)
            try:
                pending: list[pa.Table] = []
                for batch in read_batches(
                    url,
                    sql,
                    params,
                    batch_size or table.batch_rows,
                    table.reader,
                    dept.source_encoding,
                ):
                    missing = [c for c in table.source_columns if c not in batch.column_names]
                    if missing:  # the platform's YAML and SQL disagree: its fault
                        raise MappingError(
                            f"department {dept.code}, table {table.name}: the query returns no "
                            f"column(s) {missing} that the YAML maps"
                        )
                    if not pending and not _has_null_column(batch):
                        background.write(batch)
                        continue
                    pending.append(batch)  # a NULL-only column: hold until its type shows
                    if not _has_null_column(batch):
                        for held in _settle(pending, batch.schema):
                            background.write(held)
                        pending.clear()
                for held in _settle(pending, None):
                    background.write(held)
            finally:
                background.join()
            if chunk is None:
                writer.close(empty_schema=empty_schema(table))
            rows, columns = writer.rows, list(writer.schema.names if writer.schema else [])
        if snapshot is not None and current is not None:
            schema_drift.save(snapshot, current)
    except Exception as e:
        raise failed(dept, table, "extraction", e) from e
    return Extracted(partition, rows, columns, reader, changes)


def _has_null_column(batch: pa.Table) -> bool:
    return any(pa.types.is_null(f.type) for f in batch.schema)


def empty_schema(table: TableSpec) -> pa.Schema:
    """The schema of an empty raw partition: the mapped source columns, as text."""
    return pa.schema([(c, pa.string()) for c in table.source_columns])


def _settle(held: list[pa.Table], schema: pa.Schema | None) -> list[pa.Table]:
    """Cast batches held back for a NULL-only column to the first complete schema (or text)."""
    if not held:
        return []
    if schema is None:
        schema = pa.schema(
            [f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in held[0].schema]
        )
    return [t.cast(schema) for t in held]

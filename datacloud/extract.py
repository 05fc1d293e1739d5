"""Extraction: stream a department query into Arrow batches and land them as raw Parquet.

This first cut streams through SQLAlchemy (server-side cursors, ``yield_per``) for every
dialect, so memory stays bounded by the batch size. Values keep their source types
(decimals stay ``Decimal``); a column whose type cannot be settled from the first batches
is held back until it can.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from datacloud.config import Department, TableSpec
from datacloud.connections import masked
from datacloud.landing import replace_partition

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Extracted:
    path: Path
    rows: int
    columns: list[str]


class ExtractionError(RuntimeError):
    """Extraction of one department table failed; the message names department and table."""


def _batches(url: URL | str, sql: str, batch_size: int) -> Iterator[pa.Table]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch_size).execute(
                text(sql)
            )
            names = list(result.keys())
            for rows in result.partitions(batch_size):
                cols = list(zip(*rows, strict=True)) if rows else [()] * len(names)
                yield pa.table({n: pa.array(list(c)) for n, c in zip(names, cols, strict=True)})
    finally:
        engine.dispose()


def _settle(tables: list[pa.Table]) -> pa.Schema:
    """One schema for batches whose inferred types differ (a null-only column in one batch)."""
    schema = pa.unify_schemas([t.schema for t in tables], promote_options="permissive")
    fields = [
        f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in schema
    ]  # a column NULL in every row so far: text until proven otherwise
    return pa.schema(fields)


def extract_table(
    url: URL | str,
    dept: Department,
    table: TableSpec,
    partition: Path,
    batch_size: int = 50_000,
) -> Extracted:
    """Run the table's query and land its rows as the raw partition (replacing any earlier one)."""
    sql = dept.sql_path(table.name).read_text(encoding="utf-8")
    log.info("extract %s.%s from %s", dept.code, table.name, masked(url))
    try:
        with replace_partition(partition) as writer:
            pending: list[pa.Table] = []
            for batch in _batches(url, sql, batch_size):
                missing = [c for c in table.source_columns if c not in batch.column_names]
                if missing:
                    raise ExtractionError(
                        f"department {dept.code}, table {table.name}: the query returns no "
                        f"column(s) {missing} that the YAML maps"
                    )
                if writer.schema is None:
                    pending.append(batch)
                    if any(pa.types.is_null(f.type) for f in batch.schema):
                        continue
                    schema = _settle(pending)
                    for held in pending:
                        writer.write(held.cast(schema))
                    pending.clear()
                else:
                    writer.write(batch)
            if pending:
                schema = _settle(pending)
                for held in pending:
                    writer.write(held.cast(schema))
            writer.close(empty_schema=pa.schema([(c, pa.string()) for c in table.source_columns]))
            rows, columns = writer.rows, list(writer.schema.names if writer.schema else [])
    except ExtractionError:
        raise
    except Exception as e:  # the driver's message, without the query's bound values
        raise ExtractionError(
            f"department {dept.code}, table {table.name}: extraction failed: "
            f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
        ) from e
    return Extracted(path=partition, rows=rows, columns=columns)

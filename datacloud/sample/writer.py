"""Writing a generated sample: SQLite files, a SQLAlchemy database URL, the ground truth."""

from __future__ import annotations

import functools
import json
import re
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datacloud.atomic import replace_text, replace_with
from datacloud.sample.ddl import SQL_DIR, TableDef, tables
from datacloud.sample.generate import SampleData

if TYPE_CHECKING:
    from sqlalchemy import URL
    from sqlalchemy.sql.expression import TableClause

BATCH_ROWS = 5_000
_SQLITE_BATCH_ROWS = 100_000


def _python_columns(batch: pa.RecordBatch) -> list[list[object]]:
    """Columns as Python lists SQLite can bind: timestamps and decimals as text.

    Decimal text ('0.2986') in a DECIMAL column (NUMERIC affinity) is stored as the nearest
    REAL, or as INTEGER when whole, without the rounding noise of a float cast.
    """
    out = []
    for column in batch.columns:
        if pa.types.is_timestamp(column.type) or pa.types.is_decimal(column.type):
            column = pc.cast(column, pa.string())  # 'YYYY-MM-DD HH:MM:SS', '0.2986'
        out.append(column.to_pylist())
    return out


def write_sqlite(sample: SampleData, out_dir: Path) -> dict[str, Path]:
    """Write each department to ``out_dir/<dept>.db`` (tables created from sql/sample/<dept>.sql).

    Each file is built under a temporary name and moved into place (datacloud.atomic), so a
    reader sees the old file or the complete new one. Returns dept -> path.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for dept, dept_tables in sample.tables.items():
        final = out_dir / f"{dept}.db"
        replace_with(final, functools.partial(_write_db, dept=dept, dept_tables=dept_tables))
        written[dept] = final
    return written


def _create_statement(tdef: TableDef, dialect: str) -> str:
    if dialect in {"mysql", "mariadb"}:
        statement = re.sub(r"\bTIMESTAMP\b", "DATETIME", tdef.statement, flags=re.IGNORECASE)
        return statement + " DEFAULT CHARSET=utf8mb4"
    return tdef.statement


def _targets(url: str, depts: list[str]) -> list[tuple[str, list[str]]]:
    if "{dept}" in url:
        return [(url.replace("{dept}", dept), [dept]) for dept in depts]
    return [(url, depts)]


def _ensure_database(url: URL) -> None:
    """Create the target database when it does not exist (PostgreSQL, MySQL/MariaDB)."""
    import sqlalchemy as sa

    dialect = url.get_backend_name()
    if not url.database or dialect not in {"postgresql", "mysql", "mariadb"}:
        return
    engine = sa.create_engine(url)
    try:
        with engine.connect():
            return
    except sa.exc.OperationalError:
        pass
    finally:
        engine.dispose()
    # URL is a NamedTuple; URL.set() would read database=None as "unchanged"
    admin_url = url._replace(database="postgres" if dialect == "postgresql" else None)
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            name = admin.dialect.identifier_preparer.quote_identifier(url.database)
            if dialect == "postgresql":
                conn.exec_driver_sql(f"CREATE DATABASE {name}")
            else:
                conn.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS {name} CHARACTER SET utf8mb4")
    finally:
        admin.dispose()


def _sa_table(tdef: TableDef) -> TableClause:
    """A typed SQLAlchemy table clause, so each dialect binds decimals and timestamps its way."""
    import sqlalchemy as sa

    columns = []
    for col in tdef.columns:
        typ = col.arrow_type
        if pa.types.is_string(typ):
            sa_type: sa.types.TypeEngine[Any] = sa.String()
        elif pa.types.is_integer(typ):
            sa_type = sa.Integer()
        elif isinstance(typ, pa.Decimal128Type):
            sa_type = sa.Numeric(typ.precision, typ.scale)
        else:
            sa_type = sa.DateTime()
        columns.append(sa.column(col.name, sa_type))
    return sa.table(tdef.name, *columns)


def write_url(sample: SampleData, url: str) -> list[str]:
    """Load the sample into the database(s) at a SQLAlchemy URL.

    With the literal ``{dept}`` in ``url`` each department goes to its own database named by
    substituting the department code; otherwise all tables go into the one database (their
    names do not collide). A missing database is created (PostgreSQL, MySQL/MariaDB). The
    sample tables are dropped and recreated from sql/sample/<dept>.sql (TIMESTAMP becomes
    DATETIME on MySQL/MariaDB), then filled in batches of 5,000 rows (executemany). Returns
    the URLs written, passwords masked.
    """
    import sqlalchemy as sa

    written = []
    for target, depts in _targets(url, list(sample.tables)):
        sa_url = sa.make_url(target)
        dialect = sa_url.get_backend_name()
        if dialect in {"mysql", "mariadb"} and "charset" not in sa_url.query:
            sa_url = sa_url.update_query_dict({"charset": "utf8mb4"})
        _ensure_database(sa_url)
        engine = sa.create_engine(sa_url)
        try:
            defs = [tdef for dept in depts for tdef in tables(dept)]
            with engine.begin() as conn:
                for tdef in defs:
                    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {tdef.name}")
                    conn.exec_driver_sql(_create_statement(tdef, dialect))
            for dept in depts:
                for name, table in sample.tables[dept].items():
                    target_table = _sa_table(next(t for t in defs if t.name == name))
                    with engine.begin() as conn:
                        for batch in table.to_batches(max_chunksize=BATCH_ROWS):
                            conn.execute(target_table.insert(), batch.to_pylist())
        finally:
            engine.dispose()
        written.append(sa_url.render_as_string(hide_password=True))
    return written


def _write_db(path: Path, dept: str, dept_tables: dict[str, pa.Table]) -> None:
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA journal_mode = OFF")
        con.execute("PRAGMA synchronous = OFF")
        con.executescript((SQL_DIR / f"{dept}.sql").read_text(encoding="utf-8"))
        for name, table in dept_tables.items():
            marks = ", ".join("?" * table.num_columns)
            sql = f"INSERT INTO {name} ({', '.join(table.column_names)}) VALUES ({marks})"
            for batch in table.to_batches(max_chunksize=_SQLITE_BATCH_ROWS):
                con.executemany(sql, zip(*_python_columns(batch), strict=True))
        con.commit()
    finally:
        con.close()


def write_ground_truth(sample: SampleData, out_dir: Path) -> Path:
    """Write ``out_dir/ground_truth.parquet`` and ``out_dir/manifest.json``; returns the former.

    Both are replaced atomically (datacloud.atomic: temporary name, fsync, rename).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "ground_truth.parquet"
    replace_with(path, lambda tmp: pq.write_table(sample.ground_truth, tmp, compression="zstd"))
    replace_text(
        out_dir / "manifest.json", json.dumps(sample.manifest, ensure_ascii=False, indent=2) + "\n"
    )
    return path

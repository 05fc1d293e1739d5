"""The local PostgreSQL as a benchmark anchor: a throwaway database, COPY in, COPY out.

Shared by the benchmarks that measure against PostgreSQL (``extract``, ``normalise``). Each
benchmark uses a database of its own, created here and dropped when it is done.
"""

from __future__ import annotations

import io
from collections import deque
from types import SimpleNamespace
from typing import Any

import pyarrow as pa

ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


def dsn(db: str) -> str:
    return f"host=127.0.0.1 port=5432 user=postgres dbname={db}"


def admin(statement: str) -> None:
    """Run one statement on the maintenance database, outside a transaction."""
    import psycopg2

    con = psycopg2.connect(ADMIN_DSN)
    try:
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute(statement)
    finally:
        con.close()


def create_database(db: str) -> None:
    admin(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    admin(f"CREATE DATABASE {db}")


def drop_database(db: str) -> None:
    admin(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def execute(db: str, *statements: str, autocommit: bool = False) -> None:
    import psycopg2

    con = psycopg2.connect(dsn(db))
    try:
        con.autocommit = autocommit
        with con.cursor() as cur:
            for s in statements:
                cur.execute(s)
        if not autocommit:
            con.commit()
    finally:
        con.close()


def count(db: str, table: str) -> int:
    import psycopg2

    con = psycopg2.connect(dsn(db))
    try:
        with con.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {table}")
            return int(cur.fetchone()[0])
    finally:
        con.close()


def copy_in(db: str, ddl: str, table: str, rows: pa.Table) -> int:
    """(Re)create ``table`` from ``ddl``, COPY ``rows`` in as CSV, VACUUM; the row count."""
    import psycopg2
    import pyarrow.csv as pcsv

    buf = io.BytesIO()
    pcsv.write_csv(rows, buf)  # strings quoted ("" is ''), NULL unquoted and empty
    buf.seek(0)
    con = psycopg2.connect(dsn(db))
    try:
        with con.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {table}")
            cur.execute(ddl)
            columns = ", ".join(rows.column_names)
            cur.copy_expert(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv, HEADER)", buf)
        con.commit()
    finally:
        con.close()
    execute(db, f"VACUUM (ANALYZE) {table}", autocommit=True)  # set hint bits before timing
    return count(db, table)


def copy_out(db: str, sql: str, sink: Any) -> None:
    """``COPY (sql) TO STDOUT`` into ``sink`` (anything with ``write``)."""
    import psycopg2

    con = psycopg2.connect(dsn(db))
    try:
        with con.cursor() as cur:
            cur.copy_expert(f"COPY ({sql}\n) TO STDOUT", sink)
    finally:
        con.close()


def discard() -> Any:
    """A file-like sink whose ``write`` drops each chunk in C (no Python frame per row)."""
    return SimpleNamespace(write=deque(maxlen=0).append)

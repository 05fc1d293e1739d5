"""Extraction from real PostgreSQL and MariaDB gives the same canonical rows as from SQLite.

The sample departments are loaded into a database of our own on each server (created and
dropped here), extracted through ``datacloud.extract`` and normalised; counts and canonical
values must equal the SQLite run's.
"""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa

from datacloud.config import load_departments
from datacloud.extract import extract_table
from datacloud.landing import read_partition
from datacloud.normalise import SOURCE_PK, normalise_table
from datacloud.paths import DEPARTMENTS_DIR
from datacloud.sample import generate, write_sqlite, write_url

pytestmark = pytest.mark.integration
DS = date(2026, 11, 20)
SERVERS = {
    "postgresql": (
        "postgresql+psycopg2://postgres@127.0.0.1:5432/{db}",
        "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres",
    ),
    "mariadb": (
        "mysql+pymysql://root@127.0.0.1:3306/{db}?charset=utf8mb4",
        "mysql+pymysql://root@127.0.0.1:3306/test",
    ),
}


def _drop(admin_url: str, db: str) -> None:
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        else:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{db}`")
    engine.dispose()


@pytest.fixture(scope="module")
def sample():
    return generate(300, seed=11, business_date=DS)


def _canonical(url: str, tmp: Path) -> dict[str, tuple[tuple[int, int, int, int], pa.Table]]:
    out = {}
    for dept in load_departments(DEPARTMENTS_DIR):
        for table in dept.tables:
            part = tmp / dept.code / table.name
            extract_table(url, dept, table, part, DS, batch_size=97)  # several batches per table
            result = normalise_table(read_partition(part), dept, table, DS)
            keep = [c for c, spec in table.columns.items() if spec.normalise == "keep"]
            rows = result.accepted.drop_columns(keep).sort_by(SOURCE_PK)
            counts = (
                result.rows_in,
                result.rows_accepted,
                result.rows_rejected,
                result.rows_deduplicated,
            )
            out[f"{dept.code}.{table.name}"] = (counts, rows)
    return out


def _paths_agree(url: str) -> dict[str, str]:
    """The Arrow-native and SQLAlchemy paths give the same Arrow data for every sample query."""
    from datacloud.readers import choose, read_batches

    readers = {}
    for dept in load_departments(DEPARTMENTS_DIR):
        for table in dept.tables:
            sql = dept.sql_path(table.name).read_text(encoding="utf-8")
            sql = f"SELECT * FROM ({sql}) src ORDER BY 1"
            native = pa.concat_tables(read_batches(url, sql, batch_size=101, prefer="native"))
            streamed = pa.concat_tables(read_batches(url, sql, batch_size=101, prefer="sqlalchemy"))
            assert native.schema == streamed.schema, (table.name, native.schema, streamed.schema)
            assert native.equals(streamed), table.name
            assert native.num_rows > 0
            readers[table.name] = choose(url, None, "auto")
    return readers


@pytest.fixture(scope="module")
def from_sqlite(sample, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("sqlite")
    write_sqlite(sample, folder)
    merged = folder / "all.db"
    # one database with every department's tables, like the server loads
    eng = sa.create_engine(f"sqlite:///{merged}")
    with eng.begin() as conn:
        for code in ("gongan", "scjg", "bdc", "gjj", "mz"):
            conn.exec_driver_sql(f"ATTACH DATABASE '{folder / (code + '.db')}' AS {code}")
            for (name,) in conn.exec_driver_sql(
                f"SELECT name FROM {code}.sqlite_master WHERE type='table'"
            ):
                conn.exec_driver_sql(f"CREATE TABLE {name} AS SELECT * FROM {code}.{name}")
    eng.dispose()
    return _canonical(f"sqlite:///{merged}", tmp_path_factory.mktemp("sqlite-raw"))


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_server_extraction_matches_sqlite(server: str, sample, from_sqlite, tmp_path: Path) -> None:
    template, admin = SERVERS[server]
    db = f"dc_extract_{uuid.uuid4().hex[:8]}"
    url = template.format(db=db)
    try:
        write_url(sample, url)
        got = _canonical(url, tmp_path)
        readers = _paths_agree(url)
    finally:
        _drop(admin, db)
    assert set(got) == set(from_sqlite)
    assert all(reader == "native" for reader in readers.values())
    for key, (counts, rows) in got.items():
        want_counts, want_rows = from_sqlite[key]
        assert counts == want_counts, key
        assert rows.num_rows > 0, key
        assert rows.column_names == want_rows.column_names, key
        for col in rows.column_names:
            assert rows[col].to_pylist() == want_rows[col].to_pylist(), f"{key}.{col}"

"""Queries with parameters (chunk bounds, incremental windows) stay on the Arrow-native path.

On the real PostgreSQL (ADBC binds ``$n`` parameters) and MariaDB (connectorx, bounds rendered
by the strict ``readers.literal``) on 127.0.0.1, in databases of our own (dropped after): a
chunked plan's key ranges and an incremental window read natively give the same Arrow tables
as SQLAlchemy streaming, and ``choose`` sends them native. A hostile bound value is refused by
the literal formatter (never spliced into the SQL) and routed to bound SQLAlchemy instead;
ADBC binds it as a value. Nothing is mocked.
"""

from __future__ import annotations

import contextlib
import itertools
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest
import sqlalchemy as sa

from datacloud import readers
from datacloud.readers import UnsafeLiteral, choose, literal, read_batches, with_literals

pytestmark = pytest.mark.integration
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
ROWS = 600
BASE = datetime(2026, 11, 19, 20, 0, 0)
INNER = "SELECT id, code, name, amount, born, updated FROM people"


@pytest.fixture(scope="module", params=sorted(SERVERS))
def server(request: pytest.FixtureRequest) -> Iterator[str]:
    url_t, admin_url = SERVERS[request.param]
    db = f"dc_readers_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    pg = request.param == "postgresql"
    with admin.connect() as c:
        c.exec_driver_sql(
            f'CREATE DATABASE "{db}"' if pg else f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4"
        )
    url = url_t.format(db=db)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as c:
            c.exec_driver_sql(
                "CREATE TABLE people (id INTEGER PRIMARY KEY, code VARCHAR(16), "
                "name VARCHAR(64), amount DECIMAL(14, 2), born DATE, "
                f"updated {'TIMESTAMP' if pg else 'DATETIME(6)'})"
            )
            c.execute(
                sa.text("INSERT INTO people VALUES (:id, :code, :name, :amount, :born, :updated)"),
                [
                    {
                        "id": i,
                        "code": f"RK{i:06d}",
                        "name": None if i % 17 == 0 else f"张三{i}号 O'Brien %_",
                        "amount": None if i % 13 == 0 else f"{i * 7}.{i % 100:02d}",
                        "born": date(1950, 1, 1) + timedelta(days=i * 37),
                        "updated": None if i % 19 == 0 else BASE + timedelta(minutes=7 * i),
                    }
                    for i in range(ROWS)
                ],
            )
        yield url
    finally:
        engine.dispose()
        with admin.connect() as c:
            c.exec_driver_sql(
                f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'
                if pg
                else f"DROP DATABASE IF EXISTS `{db}`"
            )
        admin.dispose()


def _chunked(lows: list[object]) -> list[tuple[str, dict[str, object]]]:
    """A chunked plan's queries, as ``extract.query`` writes them (first open below, last
    open above)."""
    out = []
    bounds = [None, *lows, None]
    for lo, hi in itertools.pairwise(bounds):
        conds, params = [], {}
        if lo is not None:
            conds.append("src.id >= :chunk_lo")
            params["chunk_lo"] = lo
        if hi is not None:
            conds.append("src.id < :chunk_hi")
            params["chunk_hi"] = hi
        out.append((f"SELECT * FROM (\n{INNER}\n) src WHERE {' AND '.join(conds)}", params))
    return out


def _read(url: str, sql: str, params: dict, prefer: str) -> pa.Table:
    parts = list(read_batches(url, sql, params, batch_size=53, prefer=prefer))  # type: ignore[arg-type]
    # a streamed batch whose column is all NULL comes typed null (extract._settle casts it)
    return pa.concat_tables(parts, promote_options="permissive").sort_by("id")


def test_a_chunked_plan_reads_natively_and_equals_streaming(server: str) -> None:
    plan = _chunked([150, 300, 450])
    native, streamed = [], []
    for sql, params in plan:
        assert choose(server, params) == "native"
        native.append(_read(server, sql, params, "auto"))
        streamed.append(_read(server, sql, params, "sqlalchemy"))
    whole_native, whole_streamed = pa.concat_tables(native), pa.concat_tables(streamed)
    assert whole_native.schema == whole_streamed.schema
    assert whole_native.equals(whole_streamed)
    assert whole_native.num_rows == ROWS and [t.num_rows for t in native] == [150] * 4


def test_an_incremental_window_reads_natively_and_equals_streaming(server: str) -> None:
    start, end = BASE + timedelta(hours=5), BASE + timedelta(hours=29)
    sql = (
        f"SELECT * FROM (\n{INNER}\n) src WHERE ((src.updated >= :window_start "
        "AND src.updated < :window_end) OR src.updated IS NULL)"
    )
    params = {"window_start": start, "window_end": end}
    assert choose(server, params) == "native"
    native, streamed = _read(server, sql, params, "auto"), _read(server, sql, params, "sqlalchemy")
    assert native.equals(streamed)
    nulls = len([i for i in range(ROWS) if i % 19 == 0])
    assert nulls < native.num_rows < ROWS


def test_text_bounds_bind_on_postgresql_and_stream_on_mariadb(server: str) -> None:
    sql = f"SELECT * FROM (\n{INNER}\n) src WHERE src.code >= :chunk_lo AND src.code < :chunk_hi"
    params = {"chunk_lo": "RK000100", "chunk_hi": "RK000200"}
    expected = "native" if server.startswith("postgresql") else "sqlalchemy"
    assert choose(server, params) == expected
    assert _read(server, sql, params, "auto").equals(_read(server, sql, params, "sqlalchemy"))
    assert _read(server, sql, params, "auto").num_rows == 100


HOSTILE = ["0 OR 1=1", "0; DROP TABLE people; --", "1' OR '1'='1", "0 UNION SELECT 1"]


def test_a_hostile_bound_value_is_never_spliced_into_the_sql(server: str) -> None:
    sql = f"SELECT * FROM (\n{INNER}\n) src WHERE src.id >= :chunk_lo"
    for bad in HOSTILE:
        with pytest.raises(UnsafeLiteral):
            with_literals(sql, {"chunk_lo": bad})
        if server.startswith("mysql"):
            with pytest.raises(ValueError, match="cannot bind"):
                list(read_batches(server, sql, {"chunk_lo": bad}, prefer="native"))
        # the auto path binds it as a value (ADBC, or SQLAlchemy on MariaDB): never as SQL
        # (PostgreSQL refuses text compared with an integer: nothing ran)
        with contextlib.suppress(Exception):
            list(read_batches(server, sql, {"chunk_lo": bad}))
    engine = sa.create_engine(server)
    with engine.connect() as c:
        assert c.exec_driver_sql("SELECT COUNT(*) FROM people").scalar() == ROWS
    engine.dispose()


class _EvilInt(int):
    def __str__(self) -> str:
        return "0; DROP TABLE people"

    __repr__ = __str__


def test_the_literal_formatter_renders_only_ints_dates_and_naive_timestamps() -> None:
    assert literal(42) == "42" and literal(-7) == "-7"
    assert literal(date(2026, 11, 20)) == "'2026-11-20'"
    assert literal(datetime(2026, 11, 20, 1, 2, 3, 4)) == "'2026-11-20 01:02:03.000004'"
    for bad in [
        "1",
        "0; DROP TABLE people",
        True,
        1.5,
        None,
        b"1",
        _EvilInt(1),
        datetime(2026, 11, 20, tzinfo=UTC),
        [1],
    ]:
        with pytest.raises(UnsafeLiteral):
            literal(bad)
    rendered = with_literals(
        "SELECT '%x%' AS p, a::text FROM t WHERE k >= :lo AND d < :hi",
        {"lo": 5, "hi": datetime(2026, 1, 1)},
    )
    assert rendered == (
        "SELECT '%x%' AS p, a::text FROM t WHERE k >= 5 AND d < '2026-01-01 00:00:00.000000'"
    )
    assert with_literals(
        "SELECT '%x%' AS p, a::text FROM t WHERE k >= :lo", {"lo": 5}, postgresql=True
    ) == ("SELECT '%x%' AS p, a::text FROM t WHERE k >= 5")
    with pytest.raises(UnsafeLiteral):
        with_literals("SELECT 1 FROM t WHERE k >= :lo", {"lo": None}, postgresql=True)
    with pytest.raises(ValueError, match="parameters"):
        with_literals("SELECT 1 FROM t WHERE k >= :lo AND k < :hi", {"lo": 1})
    assert readers.positional(
        "SELECT x::int FROM t WHERE k >= :lo AND d < :hi", {"hi": 2, "lo": 1}
    ) == (
        "SELECT x::int FROM t WHERE k >= $1 AND d < $2",
        (1, 2),
    )

"""Loading the sample departments into real PostgreSQL and MariaDB servers on 127.0.0.1.

Each test creates its own uniquely named databases through an admin connection and drops
them afterwards; the loaded rows are compared with the SQLite files of the same sample.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from datacloud.sample import DEPARTMENTS, SampleData, generate, write_sqlite, write_url

pytestmark = pytest.mark.integration

SERVERS = {
    "postgresql": "postgresql+psycopg2://postgres@127.0.0.1:5432/{db}",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/{db}",
}
ADMIN_DB = {"postgresql": "postgres", "mariadb": "test"}
CHECKS = {  # table -> (primary key, columns compared value by value)
    "czrk": ("rkbh", "gmsfhm, xm, xb, csrq, hjdz, lxdh"),
    "qyjbxx": ("qyid", "tyshxydm, qymc, fddbr_sfzh, zczb, clrq, djzt"),
    "qygd": ("gdid", "qyid, gdzjhm, rjcze"),
    "qydmdz": ("dzid", "zch, tyshxydm"),
    "bdc_qlr": ("ywh", "bdcqzh, bdcdyh, zjh, xb, zl, djsj"),
    "grzh": ("grzh", "zjhm, xingbie, csny, dwtyshxydm, sjhm"),
    "hydj": ("djxh", "ywlx, nfsfzh, nvfxm, djrq, djjg"),
}


@pytest.fixture(scope="module")
def sample() -> SampleData:
    return generate(200, seed=42)


@pytest.fixture(scope="module")
def sqlite_files(sample: SampleData, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_sqlite(sample, tmp_path_factory.mktemp("sample"))


def _admin(server: str) -> sa.Engine:
    engine = sa.create_engine(
        SERVERS[server].format(db=ADMIN_DB[server]), isolation_level="AUTOCOMMIT"
    )
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as e:
        pytest.skip(f"{server} on 127.0.0.1 is not reachable: {e.orig}")
    return engine


@pytest.fixture(params=sorted(SERVERS))
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, list[str]]]:
    """(server, names of databases to drop at the end); the test appends what it creates."""
    engine = _admin(request.param)
    created: list[str] = []
    yield request.param, created
    with engine.connect() as conn:
        for name in created:
            if request.param == "postgresql":
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            else:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
    engine.dispose()


def _compare(sample: SampleData, sqlite_files: dict[str, Path], url: str, depts: list[str]) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            for dept in depts:
                lite = sqlite3.connect(sqlite_files[dept])
                for name, table in sample.tables[dept].items():
                    count = conn.execute(sa.text(f"SELECT COUNT(*) FROM {name}")).scalar_one()
                    assert count == table.num_rows == _count(lite, name), f"{dept}.{name}"
                    pk, columns = CHECKS[name]
                    query = f"SELECT {pk}, {columns} FROM {name} ORDER BY {pk}"
                    server_rows = [tuple(r) for r in conn.execute(sa.text(query))]
                    assert server_rows == lite.execute(query).fetchall(), f"{dept}.{name}"
                lite.close()
            first = (
                sample.tables["gongan"]["czrk"].slice(0, 1).to_pylist()[0]
                if "gongan" in depts
                else None
            )
            if first:
                row = conn.execute(
                    sa.text("SELECT gxsj FROM czrk WHERE rkbh = :k"), {"k": first["rkbh"]}
                ).one()
                assert row[0] == first["gxsj"]
            if "scjg" in depts:
                total = conn.execute(sa.text("SELECT SUM(czbl) FROM qygd")).scalar_one()
                expected = sum(sample.tables["scjg"]["qygd"]["czbl"].to_pylist())
                assert total == expected
    finally:
        engine.dispose()


def _count(con: sqlite3.Connection, name: str) -> int:
    return int(con.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0])


def test_one_database_holds_all_departments(
    sample: SampleData, sqlite_files: dict[str, Path], server: tuple[str, list[str]]
) -> None:
    kind, created = server
    name = f"dc_sample_{secrets.token_hex(4)}"
    created.append(name)
    url = SERVERS[kind].format(db=name)
    written = write_url(sample, url)
    assert len(written) == 1 and name in written[0]
    write_url(sample, url)  # again: drops and recreates, same contents
    _compare(sample, sqlite_files, url, list(DEPARTMENTS))


def test_dept_placeholder_gives_each_department_its_own_database(
    sample: SampleData, sqlite_files: dict[str, Path], server: tuple[str, list[str]]
) -> None:
    kind, created = server
    prefix = f"dc_sample_{secrets.token_hex(4)}"
    created.extend(f"{prefix}_{dept}" for dept in DEPARTMENTS)
    written = write_url(sample, SERVERS[kind].format(db=prefix + "_{dept}"))
    assert [w.rsplit("/", 1)[1].split("?")[0] for w in written] == created
    for dept in DEPARTMENTS:
        _compare(sample, sqlite_files, SERVERS[kind].format(db=f"{prefix}_{dept}"), [dept])


def test_the_written_urls_mask_the_password(
    sample: SampleData, server: tuple[str, list[str]]
) -> None:
    kind, created = server
    if kind != "postgresql":
        pytest.skip("needs a server that accepts any password (PostgreSQL trust on 127.0.0.1)")
    name = f"dc_sample_{secrets.token_hex(4)}"
    created.append(name)
    url = SERVERS[kind].format(db=name).replace("postgres@", "postgres:not-shown@")
    (written,) = write_url(generate(20, seed=1), url)
    assert "not-shown" not in written and "***" in written and name in written

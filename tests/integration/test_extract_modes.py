"""Extraction on real PostgreSQL, MariaDB and SQLite: incremental nights, schema drift, faults.

Each test makes its own database (dropped afterwards) and its own one-table department,
written as YAML + SQL into temporary folders that the loader reads.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from helpers import pg_database, rk_incremental_spec, use_department_folders

from datacloud import nightly
from datacloud.delta import read_table
from datacloud.extract import ExtractionError
from datacloud.paths import StorageRoot
from transforms.id_number import id_check_char

pytestmark = pytest.mark.integration

ADMIN = {
    "postgresql": "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/test",
}
TEMPLATE = {
    "postgresql": "postgresql+psycopg2://postgres@127.0.0.1:5432/{db}",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/{db}?charset=utf8mb4",
}
TS = {"postgresql": "TIMESTAMP(3)", "mariadb": "DATETIME(3)", "sqlite": "TIMESTAMP"}


def _id(n: int) -> str:
    first17 = f"33010619800101{n:03d}"
    return first17 + id_check_char(first17)


@pytest.fixture(params=["postgresql", "mariadb", "sqlite"])
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    kind = request.param
    if kind == "sqlite":
        yield kind, f"sqlite:///{tmp_path / 'src.db'}"
        return
    if kind == "postgresql":
        with pg_database("dc_modes") as url:
            yield kind, url
        return
    db = f"dc_modes_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(ADMIN[kind], isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f"CREATE DATABASE {db}")
    try:
        yield kind, TEMPLATE[kind].format(db=db)
    finally:
        with admin.connect() as c:
            c.exec_driver_sql(f"DROP DATABASE IF EXISTS {db}")
        admin.dispose()


@pytest.fixture
def department(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, storage_root: StorageRoot):
    """A one-table department 'rk' (incremental on gxsj), in temporary YAML and SQL folders."""
    spec = rk_incremental_spec(batch_rows=1000)  # several batches: a connection can drop mid-stream
    query = "-- persons\nSELECT id, gmsfhm, xm, gxsj FROM ryxx\n"
    use_department_folders(tmp_path, monkeypatch, spec, {"ryxx": query})
    return storage_root


def _exec(url: str, *statements: str, rows: list[tuple] | None = None) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as c:
        for s in statements:
            c.exec_driver_sql(s)
        for r in rows or []:
            c.execute(
                sa.text("INSERT INTO ryxx (id, gmsfhm, xm, gxsj) VALUES (:i, :g, :x, :t)"),
                {"i": r[0], "g": r[1], "x": r[2], "t": r[3]},
            )
    engine.dispose()


def _update(url: str, pk: int, name: str, when: datetime) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.execute(
            sa.text("UPDATE ryxx SET xm = :x, gxsj = :t WHERE id = :i"),
            {"x": name, "t": when, "i": pk},
        )
    engine.dispose()


def _night(url: str, ds: date) -> dict:
    nightly.extract(StorageRoot.from_env(), nightly.department("rk"), "ryxx", ds, url)
    return nightly.stage(StorageRoot.from_env(), nightly.department("rk"), "ryxx", ds, f"run-{ds}")


def test_three_incremental_nights_bring_every_row_exactly_once(source, department) -> None:
    kind, url = source
    _exec(
        url,
        f"CREATE TABLE ryxx (id INTEGER PRIMARY KEY, gmsfhm VARCHAR(32), xm VARCHAR(64), gxsj {TS[kind]})",
    )
    d1, d2, d3 = date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20)
    _exec(
        url,
        rows=[
            (1, _id(1), "甲", datetime(2026, 11, 18, 0, 0, 0)),  # first instant of night 1
            (2, _id(2), "乙", datetime(2026, 11, 18, 23, 59, 59, 999000)),  # last millisecond
            (3, _id(3), "丙", datetime(2026, 11, 18, 12, 0)),
            (4, _id(4), "丁", datetime(2026, 11, 19, 0, 0, 0)),  # belongs to night 2 only
            (5, _id(5), "戊", None),  # NULL cursor: read every night, staged once
        ],
    )
    n1 = _night(url, d1)
    assert n1["rows_in"] == 5  # the first night is a full load (no staged table yet): all rows

    # committed late, stamped inside night 1 (caught by the overlap), and new rows of night 2
    _exec(
        url,
        rows=[
            (6, _id(6), "己", datetime(2026, 11, 18, 23, 30)),
            (7, _id(7), "庚", datetime(2026, 11, 19, 9, 0)),
        ],
    )
    _update(url, 1, "甲改", datetime(2026, 11, 19, 0, 30))
    n2 = _night(url, d2)
    assert n2["rows_in"] == 6  # 4, 6, 7, updated 1, re-read 2 (overlap), NULL 5

    _exec(url, rows=[(8, _id(8), "辛", datetime(2026, 11, 20, 0, 0, 0))])
    _update(url, 2, "乙改", datetime(2026, 11, 20, 23, 59, 59, 999000))
    _night(url, d3)

    staged = read_table(department.staged("rk", "ryxx")).to_pylist()
    keys = [r["_source_pk"] for r in staged]
    assert sorted(keys) == [str(i) for i in range(1, 9)]  # each row exactly once
    by_key = {r["_source_pk"]: r for r in staged}
    assert by_key["1"]["name"] == "甲改" and by_key["2"]["name"] == "乙改"
    assert by_key["6"]["_ds"] == d2  # the late row arrived with night 2

    before = read_table(department.staged("rk", "ryxx")).sort_by("_source_pk")
    again = _night(url, d2)  # backfill an earlier night: nothing changes
    assert again["rows_in"] == 5  # 1, 4, 6, 7 and NULL 5; row 2 moved to night 3, row 8 is night 3
    after = read_table(department.staged("rk", "ryxx")).sort_by("_source_pk")
    assert after.select(["_source_pk", "id_number", "name"]).equals(
        before.select(["_source_pk", "id_number", "name"])
    )


def _base(url: str, kind: str) -> None:
    _exec(
        url,
        f"CREATE TABLE ryxx (id INTEGER PRIMARY KEY, gmsfhm VARCHAR(32), xm VARCHAR(64), gxsj {TS[kind]})",
        rows=[(1, _id(1), "甲", datetime(2026, 11, 18, 8, 0))],
    )


@pytest.mark.parametrize(
    ("ddl", "breaking", "message"),
    [
        (
            {"sqlite": "ALTER TABLE ryxx ADD COLUMN lxdh VARCHAR(20)"},
            False,
            "column lxdh (VARCHAR(20)) was added",
        ),
        (
            {"sqlite": "ALTER TABLE ryxx DROP COLUMN xm"},
            True,
            "column xm (VARCHAR(64)) is gone (dropped or renamed)",
        ),
        (
            {"sqlite": "ALTER TABLE ryxx RENAME COLUMN xm TO xingming"},
            True,
            "column xm (VARCHAR(64)) is gone",
        ),
        (
            {
                "postgresql": "ALTER TABLE ryxx ALTER COLUMN xm TYPE INTEGER USING NULL",
                "mariadb": "ALTER TABLE ryxx MODIFY xm INTEGER",
                "sqlite": None,
            },
            True,
            "column xm changed type from VARCHAR(64) to INTEGER",
        ),
        (
            {
                "postgresql": "ALTER TABLE ryxx ALTER COLUMN xm TYPE VARCHAR(128)",
                "mariadb": "ALTER TABLE ryxx MODIFY xm VARCHAR(128)",
                "sqlite": None,
            },
            False,
            "column xm changed type from VARCHAR(64) to VARCHAR(128)",
        ),
    ],
)
def test_schema_drift(source, department, ddl: dict, breaking: bool, message: str, caplog) -> None:
    kind, url = source
    statement = ddl.get(kind, ddl.get("sqlite"))
    if statement is None:
        pytest.skip(f"{kind} cannot change a column type in place")
    _base(url, kind)
    ds = date(2026, 11, 18)
    nightly.extract(
        StorageRoot.from_env(), nightly.department("rk"), "ryxx", ds, url
    )  # takes the first schema snapshot
    if kind == "mariadb" and "INTEGER" in statement:
        _exec(url, "UPDATE ryxx SET xm = NULL")
    _exec(url, statement)
    raw = department.raw_partition("rk", "ryxx", ds)
    if breaking:
        with pytest.raises(ExtractionError) as e:
            nightly.extract(StorageRoot.from_env(), nightly.department("rk"), "ryxx", ds, url)
        assert f"department rk, table ryxx: {message}" in str(e.value).replace("INT(11)", "INTEGER")
        state = __import__("json").loads(
            (department.run_state("rk", ds) / "ryxx.json").read_text("utf-8")
        )
        assert state["failure_kind"] == "schema_change" and state["stage"] == "extract"
        assert (raw / "_SUCCESS").is_file()  # the last good partition is still there
    else:
        out = nightly.extract(StorageRoot.from_env(), nightly.department("rk"), "ryxx", ds, url)
        assert out["rows"] == 1
        state = __import__("json").loads(
            (department.run_state("rk", ds) / "ryxx.json").read_text("utf-8")
        )
        assert state["schema_changes"] and state["status"] == "extracted"
        assert message in caplog.text.replace("INT(11)", "INTEGER")


def test_a_connection_killed_mid_stream_leaves_no_partition(department, monkeypatch) -> None:
    # the batch reader (an incremental first night is a full load, which would take the
    # Arrow-native path and read the 50,000 rows before the kill)
    spec_path = Path(__import__("os").environ["DATACLOUD_DEPARTMENTS_DIR"]) / "rk.yaml"
    spec = yaml.safe_load(spec_path.read_text("utf-8"))
    spec["tables"][0]["reader"] = "sqlalchemy"
    spec_path.write_text(yaml.safe_dump(spec, allow_unicode=True), "utf-8")
    db = f"dc_kill_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(ADMIN["postgresql"], isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f"CREATE DATABASE {db}")
    url = TEMPLATE["postgresql"].format(db=db)
    try:
        _exec(
            url,
            "CREATE TABLE ryxx (id INTEGER PRIMARY KEY, gmsfhm VARCHAR(32), xm VARCHAR(64),"
            " gxsj TIMESTAMP(3))",
            f"INSERT INTO ryxx SELECT g, '{_id(1)}', '甲', TIMESTAMP '2026-11-18 08:00'"
            " FROM generate_series(1, 50000) g",
        )
        import datacloud.extract as extract_module

        real = extract_module.read_batches

        def killing(*args, **kwargs):  # after the first batch, the server drops our connection
            it = real(*args, **kwargs)
            yield next(it)
            with admin.connect() as c:
                c.exec_driver_sql(
                    f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"
                    " AND pid <> pg_backend_pid()"
                )
            yield from it

        monkeypatch.setattr(extract_module, "read_batches", killing)
        ds = date(2026, 11, 18)
        with pytest.raises(ExtractionError) as e:
            nightly.extract(StorageRoot.from_env(), nightly.department("rk"), "ryxx", ds, url)
        assert e.value.kind == "source_unreachable", str(e.value)
        assert "department rk, table ryxx" in str(e.value)
        assert not department.raw_partition("rk", "ryxx", ds).exists()
        leftovers = list(department.raw_partition("rk", "ryxx", ds).parent.glob(".*"))
        assert leftovers == []
    finally:
        with admin.connect() as c:
            c.exec_driver_sql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        admin.dispose()


def test_chunked_extraction_lands_every_row_once(department, monkeypatch) -> None:
    """A table cut into 4 key ranges (text keys), extracted chunk by chunk, landed together."""
    import pyarrow.compute as pc

    from datacloud.landing import read_partition

    spec_path = Path(__import__("os").environ["DATACLOUD_DEPARTMENTS_DIR"]) / "rk.yaml"
    spec = yaml.safe_load(spec_path.read_text("utf-8"))
    spec["tables"][0].update(mode="full", chunks=4)
    spec_path.write_text(yaml.safe_dump(spec, allow_unicode=True), "utf-8")
    db = f"dc_chunks_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(ADMIN["postgresql"], isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f"CREATE DATABASE {db}")
    url = TEMPLATE["postgresql"].format(db=db)
    ds = date(2026, 11, 18)
    try:
        _exec(
            url,
            "CREATE TABLE ryxx (id VARCHAR(12) PRIMARY KEY, gmsfhm VARCHAR(32), xm VARCHAR(64),"
            " gxsj TIMESTAMP(3))",
            f"INSERT INTO ryxx SELECT 'RK' || lpad(g::text, 6, '0'), '{_id(1)}', '甲',"
            " TIMESTAMP '2026-11-18 08:00' FROM generate_series(1, 10001) g",
        )
        ranges = nightly.plan(StorageRoot.from_env(), nightly.department("rk"), "ryxx", ds, url)
        assert len(ranges) == 4 and ranges[0]["lo"] is None and ranges[-1]["hi"] is None
        counts = [
            nightly.extract_chunk(
                StorageRoot.from_env(), nightly.department("rk"), "ryxx", ds, url, r, "run-1"
            )["rows"]
            for r in ranges
        ]
        assert sum(counts) == 10001 and min(counts) >= 2400  # about equal ranges
        # landing with a chunk missing is refused; the partition stays absent
        with pytest.raises(Exception, match=r"chunks \[4\] of 5 were not extracted"):
            nightly.land(StorageRoot.from_env(), nightly.department("rk"), "ryxx", ds, "run-1", 5)
        assert not department.raw_partition("rk", "ryxx", ds).exists()
        out = nightly.land(StorageRoot.from_env(), nightly.department("rk"), "ryxx", ds, "run-1", 4)
        raw = read_partition(department.raw_partition("rk", "ryxx", ds))
        assert out["rows"] == raw.num_rows == 10001
        assert pc.count_distinct(raw["id"]).as_py() == 10001
        assert (
            nightly.stage(StorageRoot.from_env(), nightly.department("rk"), "ryxx", ds, "run-1")[
                "rows_in"
            ]
            == 10001
        )
    finally:
        with admin.connect() as c:
            c.exec_driver_sql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        admin.dispose()


BINARY = {"postgresql": "BYTEA", "mariadb": "VARBINARY(64)", "sqlite": "BLOB"}


def test_a_gbk_column_is_decoded_when_the_yaml_says_so(source, department) -> None:
    kind, url = source
    spec_path = Path(__import__("os").environ["DATACLOUD_DEPARTMENTS_DIR"]) / "rk.yaml"
    spec = yaml.safe_load(spec_path.read_text("utf-8"))
    spec["tables"][0]["mode"] = "full"
    spec["tables"][0]["columns"]["name"]["adapters"] = ["decode_gbk"]
    spec_path.write_text(yaml.safe_dump(spec, allow_unicode=True), "utf-8")
    _exec(
        url,
        f"CREATE TABLE ryxx (id INTEGER PRIMARY KEY, gmsfhm VARCHAR(32), xm {BINARY[kind]}, gxsj {TS[kind]})",
    )
    names = ["张三", "买买提·艾力", "欧阳娜娜"]
    _exec(
        url,
        rows=[
            (i + 1, _id(i + 1), n.encode("gbk"), datetime(2026, 11, 18, 8))
            for i, n in enumerate(names)
        ],
    )
    ds = date(2026, 11, 18)
    nightly.extract(StorageRoot.from_env(), nightly.department("rk"), "ryxx", ds, url)
    out = nightly.stage(StorageRoot.from_env(), nightly.department("rk"), "ryxx", ds, "run-gbk")
    assert out["rows_accepted"] == 3
    staged = read_table(department.staged("rk", "ryxx")).sort_by("_source_pk")
    assert staged["name"].to_pylist() == names

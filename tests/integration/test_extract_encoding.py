"""One undecodable byte does not fail a table: its row is rejected (ENCODING_INVALID), the rest
load. Real PostgreSQL (an SQL_ASCII database, which stores any bytes) and SQLite (TEXT holding
bytes that are not UTF-8); each test creates and drops its own database.

MariaDB is not here: it converts to the connection's utf8mb4 on the server and returns ``?``
for a character it cannot convert, so its reads never fail on a bad byte (nor can we see one).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from helpers import pg_database

from datacloud.config import Department
from datacloud.extract import extract_table
from datacloud.landing import read_partition
from datacloud.normalise import normalise_table
from transforms.id_number import id_check_char

pytestmark = pytest.mark.integration
DS = date(2026, 11, 20)
PG_ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


def _id(n: int) -> str:
    first17 = f"33010619800101{n:03d}"
    return first17 + id_check_char(first17)


def _department(sql_dir: Path, encoding: str, mode: str, reader: str) -> Department:
    (sql_dir / "rk").mkdir(parents=True, exist_ok=True)
    (sql_dir / "rk" / "ryxx.sql").write_text("SELECT id, gmsfhm, xm, gxsj FROM ryxx\n", "utf-8")
    table: dict[str, Any] = {
        "name": "ryxx",
        "kind": "person",
        "mode": mode,
        "reader": reader,
        "primary_key": ["id"],
        "cursor": "gxsj",
        "columns": {
            "id_number": {"source": "gmsfhm", "normalise": "id_number", "required": True},
            "name": {"source": "xm", "normalise": "person_name", "required": True},
        },
    }
    return Department.model_validate(
        {
            "code": "rk",
            "name": "测试部门",
            "connection_id": "dept_rk",
            "source_encoding": encoding,
            "tables": [table],
        }
    )


@pytest.fixture
def sql_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "sql"
    monkeypatch.setenv("DATACLOUD_SQL_DIR", str(folder))
    return folder


@pytest.fixture
def sql_ascii() -> Iterator[str]:
    """A PostgreSQL database with encoding SQL_ASCII: the server stores and returns bytes."""
    options = " ENCODING 'SQL_ASCII' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'"
    with pg_database("dc_enc", options) as url:
        yield url


def _literal(value: bytes) -> str:
    """A PostgreSQL escape-string literal of raw bytes (E'\\xNN…')."""
    return "E'" + "".join(f"\\x{b:02x}" for b in value) + "'"


def _fill_postgres(url: str, names: list[bytes]) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.exec_driver_sql(
            "CREATE TABLE ryxx (id INTEGER PRIMARY KEY, gmsfhm VARCHAR(32), xm VARCHAR(64), "
            "gxsj TIMESTAMP)"
        )
        for i, name in enumerate(names, start=1):
            c.exec_driver_sql(
                f"INSERT INTO ryxx VALUES ({i}, '{_id(i)}', {_literal(name)}, "
                "'2026-11-20 08:00:00')"
            )
    engine.dispose()


def _night(
    url: str, dept: Department, tmp: Path, reader: str | None = None
) -> tuple[pa.Table, Any]:
    table = dept.tables[0]
    part = tmp / "raw"
    extracted = extract_table(url, dept, table, part, DS)
    raw = read_partition(part)
    assert extracted.rows == raw.num_rows
    if reader is not None:
        assert extracted.reader == reader
    return raw, normalise_table(raw, dept, table, DS)


GOOD = ["张三".encode(), "李四".encode(), "王五".encode()]
BAD_UTF8 = "赵".encode() + b"\xff\xfe"  # a valid character, then two bytes UTF-8 never uses


@pytest.mark.parametrize(
    ("mode", "reader", "path"),
    [
        ("full", "auto", "native"),  # ADBC: binary COPY
        ("full", "sqlalchemy", "sqlalchemy"),  # psycopg2
        # a window's bounds: literals from the strict formatter, still Arrow-native
        ("incremental", "auto", "native"),
        ("incremental", "sqlalchemy", "sqlalchemy"),  # bound parameters through psycopg2
    ],
)
def test_sql_ascii_postgres_one_bad_value_is_rejected_the_rest_load(
    sql_ascii: str, sql_dir: Path, tmp_path: Path, mode: str, reader: str, path: str
) -> None:
    _fill_postgres(sql_ascii, [GOOD[0], BAD_UTF8, GOOD[1], GOOD[2]])
    dept = _department(sql_dir, "utf-8", mode, reader)
    raw, out = _night(sql_ascii, dept, tmp_path, path)
    assert raw.num_rows == 4
    assert raw.sort_by("id")["xm"].to_pylist()[1] == "赵\ufffd\\xFF\ufffd\\xFE"
    assert (out.rows_in, out.rows_accepted, out.rows_rejected, out.rows_deduplicated) == (
        4,
        3,
        1,
        0,
    )
    assert out.reconciles()
    rejected = out.rejected.to_pylist()
    assert [(r["_source_pk"], r["reject_reasons"]) for r in rejected] == [
        ("2", ["ENCODING_INVALID"])
    ]
    assert sorted(out.accepted["name"].to_pylist()) == sorted(["张三", "李四", "王五"])


def test_sql_ascii_postgres_with_declared_gbk(
    sql_ascii: str, sql_dir: Path, tmp_path: Path
) -> None:
    # a legacy system writes GBK bytes into an SQL_ASCII database; one value is cut mid-character
    names = [n.decode().encode("gbk") for n in GOOD] + ["钱".encode("gbk") + b"\xff"]
    _fill_postgres(sql_ascii, names)
    for reader in ("native", "sqlalchemy"):
        dept = _department(sql_dir, "gbk", "full", reader)
        _, out = _night(sql_ascii, dept, tmp_path / reader, reader)
        assert (out.rows_in, out.rows_accepted, out.rows_rejected) == (4, 3, 1), reader
        assert sorted(out.accepted["name"].to_pylist()) == sorted(["张三", "李四", "王五"])
        (bad,) = out.issues.to_pylist()
        assert bad["rule_code"] == "ENCODING_INVALID" and bad["raw_value"] == "钱\ufffd\\xFF"


def test_sqlite_text_that_is_not_utf8(sql_dir: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'src.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.exec_driver_sql(
            "CREATE TABLE ryxx (id INTEGER PRIMARY KEY, gmsfhm TEXT, xm TEXT, gxsj TIMESTAMP)"
        )
        for i, name in enumerate([GOOD[0], BAD_UTF8, GOOD[1]], start=1):
            c.exec_driver_sql(
                f"INSERT INTO ryxx VALUES ({i}, '{_id(i)}', CAST(X'{name.hex()}' AS TEXT), "
                "'2026-11-20 08:00:00')"
            )
    engine.dispose()
    for mode in ("full", "incremental"):
        dept = _department(sql_dir, "utf-8", mode, "auto")
        _, out = _night(url, dept, tmp_path / mode)
        assert (out.rows_in, out.rows_accepted, out.rows_rejected) == (3, 2, 1), mode
        assert out.reconciles()
        assert out.rejected["reject_reasons"].to_pylist() == [["ENCODING_INVALID"]]

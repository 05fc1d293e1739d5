"""Normalising a raw department table: every row accepted, rejected or deduplicated."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pytest

from datacloud.config import load_department
from datacloud.normalise import normalise_table
from datacloud.paths import DEPARTMENTS_DIR
from transforms.id_number import id_check_char

DS = date(2026, 11, 20)


def _id(first17: str) -> str:
    return first17 + id_check_char(first17)


A = _id("33010619800101001")  # male
B = _id("33010619900202002")  # female
C = _id("33010619751231003")  # male


def _raw(rows: list[tuple]) -> pa.Table:
    cols = ["rkbh", "gmsfhm", "xm", "xb", "mz", "csrq", "hjdz", "lxdh", "gxsj"]
    return pa.table({c: [r[i] for r in rows] for i, c in enumerate(cols)})


@pytest.fixture
def gongan():
    dept = load_department(DEPARTMENTS_DIR / "gongan.yaml")
    return dept, dept.table("czrk")


def test_accepted_rejected_and_duplicates_reconcile(gongan) -> None:
    dept, table = gongan
    wrong = A[:-1] + ("0" if A[-1] != "0" else "1")
    raw = _raw(
        [
            (
                "RK1",
                A,
                "张 三",
                "1",
                "01",
                "19800101",
                "杭州市",
                "138-1234-5678",
                "2026-11-01 08:00:00",
            ),
            (
                "RK2",
                B.lower() + " ",
                "李四",
                "2",
                "汉族",
                "1990/2/2",
                None,
                None,
                "2026-11-02 08:00:00",
            ),
            ("RK3", wrong, "王五", "1", "01", "19800101", None, None, "2026-11-03 08:00:00"),
            (
                "RK4",
                f" {A} ",
                "张三",
                "1",
                "01",
                "19800101",
                "杭州市西湖区",
                None,
                "2026-11-19 08:00:00",
            ),
            ("RK5", None, "赵六", "1", "01", "19800101", None, None, "2026-11-03 08:00:00"),
            ("RK6", C, "孙七", "2", "01", "19751231", None, None, "2026-11-03 08:00:00"),
        ]
    )
    out = normalise_table(raw, dept, table, DS)
    assert (out.rows_in, out.rows_accepted, out.rows_rejected, out.rows_deduplicated) == (
        6,
        3,
        2,
        1,
    )
    assert out.reconciles()
    assert out.rejections == {"ID_CHECK_DIGIT": 1, "KEY_MISSING": 1}
    acc = out.accepted.to_pylist()
    by_id = {r["id_number"]: r for r in acc}
    assert set(by_id) == {A, B, C}
    assert by_id[A]["_source_pk"] == "RK4"  # the later update of the same person wins
    assert by_id[A]["registered_address"] == "杭州市西湖区"
    assert by_id[B]["ethnicity"] == "01" and by_id[B]["birth_date"] == date(1990, 2, 2)
    assert out.warnings["DUPLICATE_KEY"] == 1
    assert out.warnings["SEX_ID_MISMATCH"] == 1  # RK6 says female, the ID says male
    rejected = {r["source_pk"]: r for r in out.issues.to_pylist() if r["severity"] == "reject"}
    assert rejected["RK3"]["raw_value"] == wrong and rejected["RK3"]["source_column"] == "gmsfhm"
    assert rejected["RK5"]["rule_code"] == "KEY_MISSING"  # the ID number is the person's key


def test_empty_table(gongan) -> None:
    dept, table = gongan
    raw = _raw([]).cast(pa.schema([(c, pa.string()) for c in _raw([]).column_names]))
    out = normalise_table(raw, dept, table, DS)
    assert (out.rows_in, out.rows_accepted) == (0, 0) and out.reconciles()


def test_rejected_rows_keep_raw_values_and_every_reason(gongan) -> None:
    dept, table = gongan
    wrong = A[:-1] + ("0" if A[-1] != "0" else "1")
    raw = _raw(
        [
            ("RK1", wrong, "张三", "1", "01", "19800231", None, None, "2026-11-01 08:00:00"),
            ("RK2", B, "", "2", "01", "19900202", None, None, "2026-11-01 08:00:00"),
            ("RK3", C, "孙七", "1", "01", "19751231", None, None, "2026-11-01 08:00:00"),
        ]
    )
    out = normalise_table(raw, dept, table, DS)
    rows = {r["_source_pk"]: r for r in out.rejected.to_pylist()}
    assert set(rows) == {"RK1", "RK2"}
    assert sorted(rows["RK1"]["reject_reasons"]) == ["DATE_IMPOSSIBLE", "ID_CHECK_DIGIT"]
    assert rows["RK1"]["gmsfhm"] == wrong and rows["RK1"]["csrq"] == "19800231"  # raw values
    assert rows["RK2"]["reject_reasons"] == ["NAME_EMPTY"]
    assert out.rows_rejected == out.rejected.num_rows


def test_deduplicate_on_a_composite_key_with_empty_parts_across_chunks() -> None:
    from datetime import datetime

    from datacloud.normalise import SOURCE_PK, SOURCE_UPDATED_AT, deduplicate

    t1 = pa.table(
        {
            "credit_code": ["A", "A", None, None, None],
            "reg_number": [None, None, "R1", "R1", None],
            SOURCE_UPDATED_AT: [datetime(2026, 1, d) for d in (1, 2, 1, 1, 1)],
            SOURCE_PK: ["1", "2", "3", "4", "5"],
        }
    )
    t2 = pa.table(
        {
            "credit_code": ["A", None, "R1", None],
            "reg_number": [None, "A", None, None],
            SOURCE_UPDATED_AT: [
                datetime(2026, 1, 3),
                datetime(2026, 1, 1),
                datetime(2026, 1, 1),
                None,
            ],
            SOURCE_PK: ["6", "7", "8", "9"],
        }
    )
    rows = pa.concat_tables([t1, t2])  # two chunks per column
    kept, dropped = deduplicate(rows, ["credit_code", "reg_number"])
    # (A, -) three times: the latest (6) wins; (-, R1) twice: same time, the higher key (4) wins;
    # (-, A) and (R1, -) are different keys from (A, -) and (-, R1); all-empty keys (5, 9) stay
    assert sorted(dropped) == ["1", "2", "3"]
    assert sorted(kept[SOURCE_PK].to_pylist()) == ["4", "5", "6", "7", "8", "9"]

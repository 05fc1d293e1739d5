"""``datacloud normalise person|enterprise INPUT.csv --out DIR``."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from datacloud.normalise_csv import InputError, normalise_csv
from transforms.credit_code import credit_code_check_char, reg_number_check_digit

DS = date(2026, 11, 20)
EXE = str(Path(sys.executable).with_name("datacloud"))


def _csv(tmp: Path, text: str) -> Path:
    p = tmp / "in.csv"
    p.write_text(text, encoding="utf-8")
    return p


def test_person_rows_split_into_valid_and_rejected(tmp_path: Path) -> None:
    src = _csv(
        tmp_path,
        "id_number,name,sex,birth_date,phone,note\n"
        "11010519491231002x,张 三,女,1949/12/31,+86 138-1234-5678,keep me\n"
        "110105491231002,李四,女,19491231,,\n"
        "11010519491231002Y,王五,1,1949年12月31日,0571-88888888,x\n"
        ",赵六,2,2020-02-30,,\n",
    )
    out = normalise_csv("person", src, tmp_path / "out", DS)
    assert (out.rows_in, out.rows_valid, out.rows_rejected) == (4, 2, 2)
    valid = pq.read_table(out.valid).to_pylist()
    assert [r["id_number"] for r in valid] == ["11010519491231002X", "11010519491231002X"]
    assert (
        valid[0]["name"] == "张三" and valid[0]["sex"] == "2" and valid[0]["phone"] == "13812345678"
    )
    assert valid[0]["birth_date"] == date(1949, 12, 31) and valid[0]["note"] == "keep me"
    rejected = pq.read_table(out.rejected).to_pylist()
    assert [r["reject_reasons"] for r in rejected] == [
        ["ID_CHARS"],
        ["KEY_MISSING", "DATE_IMPOSSIBLE"],
    ]
    assert rejected[0]["id_number"] == "11010519491231002Y"  # the raw value, for the data owner


def test_enterprise_legacy_numbers_are_kept_not_rejected(tmp_path: Path) -> None:
    code = "91350100M000100Y4" + credit_code_check_char("91350100M000100Y4")
    reg = "33010600001234" + reg_number_check_digit("33010600001234")
    bad_reg = reg[:-1] + str((int(reg[-1]) + 1) % 10)
    src = _csv(
        tmp_path,
        f"credit_code,name,registered_capital\n{code.lower()},甲公司,1.2亿元\n{reg},乙厂,50万\n{bad_reg},丙厂,1\n",
    )
    out = normalise_csv("enterprise", src, tmp_path / "out", DS)
    rows = pq.read_table(out.valid).to_pylist()
    assert [(r["credit_code"], r["reg_number"]) for r in rows] == [(code, None), (None, reg)]
    assert str(rows[0]["registered_capital"]) == "12000.000000"
    (rejected,) = pq.read_table(out.rejected).to_pylist()
    assert rejected["credit_code"] == bad_reg and rejected["reject_reasons"] == [
        "CC_REG_NUMBER_CHECK"
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name\nx\n", "needs the column(s) ['id_number']"),
        ("", "empty file"),
        ("id number,name\n1,2\n", "must be identifiers"),
    ],
)
def test_bad_files_are_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        normalise_csv("person", _csv(tmp_path, text), tmp_path / "out", DS)


def test_cli_exit_codes(tmp_path: Path) -> None:
    ok = subprocess.run(
        [
            EXE,
            "normalise",
            "person",
            str(_csv(tmp_path, "id_number,name\n11010519491231002X,张三\n")),
            "--out",
            str(tmp_path / "o"),
            "--date",
            "2026-11-20",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0 and "1 valid" in ok.stdout
    missing = subprocess.run(
        [EXE, "normalise", "person", str(tmp_path / "absent.csv"), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (
        missing.returncode == 2
        and "cannot read" in missing.stderr
        and "Traceback" not in missing.stderr
    )

"""The department's feedback workbook (datacloud/problem_workbook.py), read back with openpyxl:
one sheet per table, masked, locked columns, the response drop-down, the hidden _meta sheet."""

from __future__ import annotations

from pathlib import Path

import pytest
from openpyxl import load_workbook
from problem_rows import ID_A, ID_B, sample_rows, table

from datacloud.problem_workbook import (
    HEADERS,
    META_SHEET,
    NOTE_COLUMN,
    RESPONSE_COLUMN,
    RESPONSES,
    sheet_cell,
    write_workbook,
)


@pytest.fixture
def book(tmp_path: Path) -> Path:
    path = tmp_path / "gjj.xlsx"
    write_workbook(path, table(sample_rows()), "gjj")
    return path


def test_one_sheet_per_table_with_the_open_problems(book: Path) -> None:
    wb = load_workbook(book)
    assert wb.sheetnames == ["填写说明", "gjj_account", "gjj_withdrawal", "person", META_SHEET]
    ids = {r["problem_id"] for r in sample_rows() if r["dept"] == "gjj" and r["status"] != "fixed"}
    got = set()
    for name in ("gjj_account", "gjj_withdrawal", "person"):
        ws = wb[name]
        rows = list(ws.iter_rows(values_only=True))
        assert rows[0] == HEADERS
        assert {r[1] for r in rows[1:]} == {name}
        got |= {r[0] for r in rows[1:]}
    assert got == ids  # the fixed problem and bdc's are not in gjj's workbook


def test_personal_data_masked_and_formula_text_neutralised(book: Path) -> None:
    wb = load_workbook(book)
    text = "".join(
        str(v) for ws in wb.worksheets for r in ws.iter_rows(values_only=True) for v in r if v
    )
    assert ID_A not in text and ID_B not in text and "13812345678" not in text
    assert "330106********1234" in text and "110101********4321" in text
    assert "138****5678" in text
    cells = [c for r in wb["gjj_account"].iter_rows() for c in r]
    assert not any(c.data_type == "f" for c in cells)
    assert "日期格式不对：=SUM(A1)" in text  # not a formula start: stays as it is


def test_locked_columns_protected_response_and_note_open(book: Path) -> None:
    wb = load_workbook(book)
    assert wb.security is not None and wb.security.lockStructure
    ws = wb["gjj_account"]
    assert ws.protection.sheet
    for row in ws.iter_rows(min_row=2):
        for cell in row[: RESPONSE_COLUMN - 1]:
            assert cell.protection.locked
        assert not row[RESPONSE_COLUMN - 1].protection.locked
        assert not row[NOTE_COLUMN - 1].protection.locked
    (dv,) = ws.data_validations.dataValidation
    assert dv.type == "list" and dv.formula1 == '"' + ",".join(RESPONSES) + '"'
    assert str(dv.sqref) == f"J2:J{ws.max_row}"
    assert dv.showErrorMessage


def test_meta_sheet_very_hidden_with_department(book: Path) -> None:
    ws = load_workbook(book)[META_SHEET]
    assert ws.sheet_state == "veryHidden"
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0][:2] == ("format", "datacloud-problems-1")
    assert rows[1][:2] == ("dept", "gjj")


def test_no_open_problem_still_a_workbook(tmp_path: Path) -> None:
    path = tmp_path / "x.xlsx"
    write_workbook(path, table(sample_rows()), "nobody")
    wb = load_workbook(path)
    assert wb.sheetnames == ["填写说明", META_SHEET]
    assert any(
        "没有待整改" in str(v) for r in wb["填写说明"].iter_rows(values_only=True) for v in r
    )


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        (" +cmd", "' +cmd"),
        ("\uff1dA1", "'\uff1dA1"),
        ("a\x00b", "a\\x00b"),
        ("\u202eevil", "\\u202eevil"),
        ("ok", "ok"),
        ("", ""),
    ],
)
def test_a_workbook_cell_is_made_safe_as_a_rejected_csv_cell(value: str, cell: str) -> None:
    assert sheet_cell(value) == cell


def test_a_long_workbook_cell_is_cut_with_its_length() -> None:
    cell = sheet_cell("x" * 40_000)
    assert len(cell) <= 32_767 and cell.endswith("40000 chars]")


def test_problem_id_never_masked(tmp_path: Path) -> None:
    """A hex ID can hold a run of digits that looks like a mobile number (found with 10,000
    problems): it is no personal data and stays as it is, or the import could not find it."""
    row = {**sample_rows()[1], "problem_id": "a13812345678bcde"}
    path = tmp_path / "x.xlsx"
    write_workbook(path, table([row]), "gjj")
    assert load_workbook(path)["gjj_account"]["A2"].value == "a13812345678bcde"

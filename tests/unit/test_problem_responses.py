"""Returned feedback workbooks (datacloud/problem_responses.py): written by problem_workbook,
filled in with openpyxl as a department would, checked against the problem table and appended
to the responses log all-or-nothing; every bad file refused with one message naming where."""

from __future__ import annotations

import hashlib
import json
import zipfile
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from problem_rows import ID_A, ID_B, problem, sample_rows, table

from datacloud import problem_responses as pr
from datacloud.paths import StorageRoot
from datacloud.problem_responses import ResponseFileError, import_file, read_log, responses_log
from datacloud.problem_workbook import META_SHEET, write_workbook

PROBLEMS = table(sample_rows())


def _ids(ws: Any) -> dict[str, int]:
    return {str(ws.cell(row=r, column=1).value): r for r in range(2, ws.max_row + 1)}


def fill(src: Path, dst: Path, answers: dict[tuple[str, int], tuple[Any, Any]]) -> Path:
    """Answer rows like a department: (sheet, row) -> (response, note); saved as ``dst``."""
    wb = load_workbook(src)
    for (sheet, row), (response, note) in answers.items():
        wb[sheet].cell(row=row, column=10, value=response)
        wb[sheet].cell(row=row, column=11, value=note)
    wb.save(dst)
    return dst


@pytest.fixture
def root(tmp_path: Path) -> StorageRoot:
    return StorageRoot(tmp_path / "state")


@pytest.fixture
def blank(tmp_path: Path) -> Path:
    path = tmp_path / "blank.xlsx"
    write_workbook(path, PROBLEMS, "gjj")
    return path


@pytest.fixture
def answered(tmp_path: Path, blank: Path) -> Path:
    return fill(
        blank,
        tmp_path / "gjj-answered.xlsx",
        {
            ("gjj_account", 2): ("已整改", "已在源系统更正"),
            ("gjj_account", 3): ("有异议", f"该号码 {ID_A} 经核实正确"),
            ("gjj_withdrawal", 2): ("无法整改", None),
        },
    )


def test_round_trip_records_exactly_the_answers(root: StorageRoot, answered: Path) -> None:
    result = import_file(root, "gjj", answered, by="os:clerk1", problems=PROBLEMS)
    assert result.recorded == 3 and not result.already_imported
    assert result.by_response == {"fixed": 1, "disputed": 1, "cannot_fix": 1}
    wb = load_workbook(answered)
    acc, wd = _ids(wb["gjj_account"]), _ids(wb["gjj_withdrawal"])
    by_row = {v: k for k, v in acc.items()}
    log = read_log(root, "gjj")
    sha = hashlib.sha256(answered.read_bytes()).hexdigest()
    assert [(r["problem_id"], r["response"]) for r in log] == [
        (by_row[2], "fixed"),
        (by_row[3], "disputed"),
        (next(iter(wd)), "cannot_fix"),
    ]
    for r in log:
        assert set(r) == {
            "problem_id",
            "dept",
            "response",
            "note",
            "by",
            "at",
            "channel",
            "file_sha256",
        }
        assert r["dept"] == "gjj" and r["by"] == "os:clerk1" and r["channel"] == "inbox"
        assert r["file_sha256"] == sha and r["at"].endswith("+00:00")
    assert log[1]["note"] == "该号码 330106********1234 经核实正确"  # masked in the log
    assert log[2]["note"] is None
    assert ID_A not in responses_log(root, "gjj").read_text(encoding="utf-8")


def test_reimport_changes_nothing(root: StorageRoot, answered: Path) -> None:
    import_file(root, "gjj", answered, by="a", problems=PROBLEMS)
    before = responses_log(root, "gjj").read_bytes()
    again = import_file(root, "gjj", answered, by="b", problems=PROBLEMS)
    assert again.already_imported and again.recorded == 0
    assert responses_log(root, "gjj").read_bytes() == before


def test_a_later_night_changing_due_and_status_is_no_edit(
    root: StorageRoot, answered: Path
) -> None:
    later = [
        {**r, "due": date(2026, 12, 20), "status": "reopened"} if r["dept"] == "gjj" else r
        for r in sample_rows()
    ]
    result = import_file(root, "gjj", answered, by="a", problems=table(later))
    assert result.recorded == 3


def test_unanswered_workbook_records_nothing(root: StorageRoot, blank: Path) -> None:
    assert import_file(root, "gjj", blank, by="a", problems=PROBLEMS).recorded == 0
    assert read_log(root, "gjj") == []


def refused(root: StorageRoot, path: Path, dept: str = "gjj") -> ResponseFileError:
    with pytest.raises(ResponseFileError) as e:
        import_file(root, dept, path, by="a", problems=PROBLEMS)
    assert not responses_log(root, dept).exists()  # nothing at all
    assert f"部门 {dept}" in str(e.value) and f"文件 {path.name}" in str(e.value)
    return e.value


def edit(src: Path, dst: Path, sheet: str, cell: str, value: Any) -> Path:
    wb = load_workbook(src)
    wb[sheet][cell] = value
    wb.save(dst)
    return dst


def test_workbook_of_another_department(root: StorageRoot, tmp_path: Path) -> None:
    bdc = tmp_path / "bdc.xlsx"
    write_workbook(bdc, PROBLEMS, "bdc")
    bdc = fill(bdc, tmp_path / "bdc-answered.xlsx", {("property_right", 2): ("已整改", "")})
    err = refused(root, bdc)
    assert err.code == "wrong_department" and "部门 bdc 的反馈表" in err.message


def test_problem_of_another_department_in_the_sheet(
    root: StorageRoot, answered: Path, tmp_path: Path
) -> None:
    other = problem("bdc", "property_right", "P-1", "ID_CHECKSUM")["problem_id"]
    err = refused(root, edit(answered, tmp_path / "x.xlsx", "gjj_account", "A4", other))
    assert err.code == "wrong_department"
    assert (err.sheet, err.row, err.column) == ("gjj_account", 4, "A（问题编号）")


def test_unknown_problem_id(root: StorageRoot, answered: Path, tmp_path: Path) -> None:
    err = refused(root, edit(answered, tmp_path / "x.xlsx", "gjj_account", "A3", "0" * 16))
    assert err.code == "unknown_problem" and (err.sheet, err.row) == ("gjj_account", 3)
    assert "问题编号 0000000000000000 不存在" in err.message


@pytest.mark.parametrize(
    ("cell", "value", "column"),
    [
        ("F2", "改过的说明", "F（问题说明）"),
        ("C3", ID_A, "C（源主键（已脱敏））"),
        ("H2", "2027-01-01", "H（整改期限）"),
        ("I2", "已消除", "I（状态）"),
        ("B2", "gjj_withdrawal", "B（表）"),
    ],
)
def test_edited_locked_column(
    root: StorageRoot, answered: Path, tmp_path: Path, cell: str, value: str, column: str
) -> None:
    err = refused(root, edit(answered, tmp_path / "x.xlsx", "gjj_account", cell, value))
    assert err.code == "locked_edited" and err.column == column
    assert ID_A not in err.message


def test_edited_header_and_added_sheet(root: StorageRoot, answered: Path, tmp_path: Path) -> None:
    err = refused(root, edit(answered, tmp_path / "h.xlsx", "gjj_account", "E1", "rule"))
    assert err.code == "locked_edited" and (err.row, err.column) == (1, "E（规则）")
    wb = load_workbook(answered)
    wb.create_sheet("我的备注")
    wb.save(tmp_path / "s.xlsx")
    err = refused(root, tmp_path / "s.xlsx")
    assert err.code == "locked_edited" and err.sheet == "我的备注"


@pytest.mark.parametrize(
    ("sheet", "cell"), [("gjj_account", "K2"), (META_SHEET, "D9"), ("填写说明", "B1")]
)
def test_formula_anywhere(
    root: StorageRoot, answered: Path, tmp_path: Path, sheet: str, cell: str
) -> None:
    err = refused(root, edit(answered, tmp_path / "f.xlsx", sheet, cell, '=HYPERLINK("x")'))
    assert err.code == "formula" and err.sheet == sheet and err.column == cell[0]


def test_response_outside_the_list(root: StorageRoot, answered: Path, tmp_path: Path) -> None:
    err = refused(root, edit(answered, tmp_path / "r.xlsx", "gjj_account", "J4", "同意"))
    assert err.code == "bad_response" and (err.row, err.column) == (4, "J（答复）")
    assert "已整改 / 有异议 / 无法整改" in err.message


def test_dispute_needs_a_note(root: StorageRoot, blank: Path, tmp_path: Path) -> None:
    path = fill(
        blank,
        tmp_path / "d.xlsx",
        {("gjj_account", 2): ("已整改", "ok"), ("person", 2): ("有异议", "  ")},
    )
    err = refused(root, path)
    assert err.code == "note_required" and (err.sheet, err.row) == ("person", 2)


def test_renamed_csv_and_other_types(root: StorageRoot, tmp_path: Path) -> None:
    csv = tmp_path / "rejected.xlsx"
    csv.write_text("源主键,字段\nA-1,x\n", encoding="utf-8-sig")
    assert refused(root, csv).code == "wrong_type"
    txt = tmp_path / "answers.csv"
    txt.write_text("a,b\n")
    assert refused(root, txt).code == "wrong_type"
    not_book = tmp_path / "zip.xlsx"
    with zipfile.ZipFile(not_book, "w") as zf:
        zf.writestr("hello.txt", "hi")
    assert refused(root, not_book).code == "wrong_type"


def _macro_book(src: Path, dst: Path) -> Path:
    """The answered workbook made an .xlsm in all but its name: a VBA project and the
    macro-enabled content type (as Excel saves one)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "[Content_Types].xml":
                data = data.replace(
                    b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
                    b"application/vnd.ms-excel.sheet.macroEnabled.main+xml",
                )
            zout.writestr(item, data)
        zout.writestr("xl/vbaProject.bin", b"\xd0\xcf\x11\xe0fake vba")
    return dst


def test_macros(root: StorageRoot, answered: Path, tmp_path: Path) -> None:
    assert refused(root, _macro_book(answered, tmp_path / "m.xlsx")).code == "macros"
    xlsm = tmp_path / "m.xlsm"
    xlsm.write_bytes(answered.read_bytes())
    assert refused(root, xlsm).code == "macros"


def test_size_cap(root: StorageRoot, answered: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.xlsx"
    big.write_bytes(answered.read_bytes() + b"\0" * pr.MAX_BYTES)
    err = refused(root, big)
    assert err.code == "too_large" and err.status == 413


def test_one_bad_row_records_nothing_of_the_good_ones(
    root: StorageRoot, blank: Path, tmp_path: Path
) -> None:
    path = fill(
        blank,
        tmp_path / "mixed.xlsx",
        {
            ("gjj_account", 2): ("已整改", "x"),
            ("gjj_account", 3): ("无法整改", "y"),
            ("person", 2): ("不知道", None),
        },
    )
    assert refused(root, path).code == "bad_response"


def test_torn_last_line_is_cut_before_the_append(root: StorageRoot, answered: Path) -> None:
    log = responses_log(root, "gjj")
    log.parent.mkdir(parents=True)
    log.write_text('{"problem_id": "x", "file_sha256": "s"}\n{"problem_id": "tor', encoding="utf-8")
    import_file(root, "gjj", answered, by="a", problems=PROBLEMS)
    lines = log.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4 and all(json.loads(x) for x in lines)


def test_error_location_in_the_message(root: StorageRoot, answered: Path, tmp_path: Path) -> None:
    err = refused(root, edit(answered, tmp_path / "r.xlsx", "gjj_account", "J4", "同意"))
    assert err.message.startswith(
        "部门 gjj，文件 r.xlsx，工作表 gjj_account，第 4 行，列 J（答复）："
    )
    assert ID_B not in err.message and err.status == 422


def test_zip_bomb(root: StorageRoot, answered: Path, tmp_path: Path) -> None:
    """Small on disk, over MAX_UNZIPPED_BYTES unzipped: refused before openpyxl parses it."""
    bomb = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(answered) as zin, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        for item in zin.infolist():
            z.writestr(item, zin.read(item.filename))
        z.writestr("xl/media/pad.bin", b"\0" * (pr.MAX_UNZIPPED_BYTES + 1))
    assert bomb.stat().st_size < pr.MAX_BYTES
    err = refused(root, bomb)
    assert err.code == "wrong_type" and "解压后过大" in err.message

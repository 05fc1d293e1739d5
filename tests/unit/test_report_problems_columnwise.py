"""The report's problem figures and the feedback workbook, counted column-wise (Arrow compute,
``report.problem_figures``, ``problems.summary``, ``problem_workbook.open_problems``) and with
the workbook's input-cell styles copied, give exactly what the former row-by-row code gave.

The former code is kept here as the oracle (``_old_*``), run on a problem table with every
status, overdue and disputed problems, failed fixes, responses, due-date ties, a null field,
two departments and several tables, and a due date past the working-day library's years."""

from __future__ import annotations

import io
import random
import re
import statistics
import zipfile
from datetime import date, timedelta
from typing import Any

import pyarrow as pa
import pytest
import workbook_in_memory
from openpyxl import Workbook
from openpyxl.styles import Alignment, Protection
from openpyxl.utils import get_column_letter
from openpyxl.workbook.protection import WorkbookProtection
from openpyxl.worksheet.datavalidation import DataValidation

from datacloud import problem_store, problem_workbook, problems, report, working_days
from datacloud.config import Department
from datacloud.paths import StorageRoot
from transforms.id_number import id_check_char

DS = date(2026, 12, 28)
TABLES = ("qyjbxx", "qygd", "consistency")


def _id(n: int) -> str:
    body = f"330106198001{n:05d}"
    return body + id_check_char(body)


def _rows(seed: int = 20261228, n: int = 400) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        dept = "scjg" if i % 7 else "gjj"
        table = TABLES[i % 3]
        person = _id(i) if rnd.random() < 0.6 else None
        status = rnd.choice(["open", "open", "reopened", "fixed"])
        first = DS - timedelta(days=rnd.randrange(0, 60))
        due = first + timedelta(days=rnd.choice([3, 5, 7, 9, 400]))  # ties; one past 2026
        disputed = DS - timedelta(days=rnd.randrange(1, 5)) if rnd.random() < 0.15 else None
        row = {f.name: None for f in problem_store.SCHEMA}
        key = f"K{i:04d}|{person}" if person else f"K{i:04d}"
        row.update(
            problem_id=problems.problem_id(dept, table, key, "R"),
            kind="finding" if table == "consistency" else "rejected_row",
            dept=dept,
            table=table,
            source_key=key,
            field=None if i % 11 == 0 else "name",
            rule=rnd.choice(["CREDIT_CODE_CHECK", "name_conflict", "ID_CHECK"]),
            message_zh=f"问题 {person or '无'} 电话 13812345678",
            person_key=person,
            first_seen=first,
            last_seen=DS - timedelta(days=rnd.choice([0, 0, 10, 45])),
            status=status,
            fixed_on=DS - timedelta(days=rnd.choice([0, 3])) if status == "fixed" else None,
            reopened_on=DS if status == "reopened" and rnd.random() < 0.5 else None,
            due=due,
            overdue=status != "fixed" and disputed is None and due < DS,
            response=rnd.choice([None, None, "fixed", "disputed", "cannot_fix"]),
            fix_failed=status == "reopened" and rnd.random() < 0.4,
            disputed_since=disputed if status != "fixed" else None,
        )
        out.append(row)
    return out


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return pa.Table.from_pylist(_rows(), schema=problem_store.SCHEMA)


# --- the former row-by-row code (the oracle) ---------------------------------------------------


def _old_summary(table: pa.Table, ds: date) -> dict[str, Any]:
    rows = table.to_pylist()
    open_rows = [r for r in rows if r["status"] in problem_store.OPEN]
    window = ds - timedelta(days=problems.TREND_NIGHTS - 1)
    recent = [r for r in rows if r["last_seen"] >= window or r["status"] in problem_store.OPEN]
    closed = [r for r in recent if r["status"] == "fixed"]
    ages = [(ds - r["first_seen"]).days for r in open_rows]
    return {
        "total": len(rows),
        "open": len(open_rows),
        "new_tonight": sum(r["first_seen"] == ds for r in rows),
        "fixed_tonight": sum(r["status"] == "fixed" and r["fixed_on"] == ds for r in rows),
        "reopened_tonight": sum(r["status"] == "reopened" and r["reopened_on"] == ds for r in rows),
        "overdue": sum(bool(r["overdue"]) for r in open_rows),
        "disputed": sum(r["disputed_since"] is not None for r in open_rows),
        "fix_failed": sum(bool(r["fix_failed"]) for r in open_rows),
        "cannot_fix": sum(r["response"] == "cannot_fix" for r in open_rows),
        "closure_rate": round(len(closed) / len(recent), 4) if recent else None,
        "median_age_days": float(statistics.median(ages)) if ages else None,
    }


def _old_figures(table: pa.Table, dept: Department, tracked: date) -> dict[str, Any]:
    most = report.PROBLEM_LIST_MAX
    rows = table.to_pylist()
    open_rows = [r for r in rows if r["status"] in problem_store.OPEN]
    overdue = sorted(
        (r for r in open_rows if r["overdue"]), key=lambda r: (r["due"], r["problem_id"])
    )
    disputed = sorted(
        (r for r in open_rows if r["disputed_since"] is not None),
        key=lambda r: (r["disputed_since"], r["problem_id"]),
    )
    fix_failed = sorted(
        (r for r in open_rows if r["fix_failed"]), key=lambda r: (r["due"], r["problem_id"])
    )
    waiting = [r for r in open_rows if not r["overdue"] and r["disputed_since"] is None]
    ahead = sorted({r["due"] for r in waiting})
    due_next = [
        {"due": d.isoformat(), "count": sum(r["due"] == d for r in waiting)}
        for d in ahead[: report.DUE_NEXT_MAX]
    ]
    years = working_days.library_years()
    spans = {y for r in open_rows for y in range(r["first_seen"].year, r["due"].year + 1)}
    return {
        "available": True,
        "tracked_night": tracked.isoformat(),
        **_old_summary(table, tracked),
        "due_working_days": dept.problem_due_working_days,
        "calendar": {
            "library": working_days.LIBRARY,
            "library_version": working_days.LIBRARY_VERSION,
            "library_years": [years.start, years.stop - 1],
            "fallback_years": sorted(y for y in spans if y not in years),
        },
        "by_table": [
            {
                "table": t,
                "open": sum(r["table"] == t for r in open_rows),
                "overdue": sum(r["table"] == t and r["overdue"] for r in open_rows),
            }
            for t in sorted({r["table"] for r in open_rows})
        ],
        "due_next": due_next,
        "overdue_list": [report._problem_item(r, tracked) for r in overdue[:most]],
        "disputed_list": [report._problem_item(r, tracked) for r in disputed[:most]],
        "fix_failed_list": [report._problem_item(r, tracked) for r in fix_failed[:most]],
    }


def _old_open_problems(table: pa.Table, dept: str) -> list[dict[str, Any]]:
    rows = [
        r
        for r in table.to_pylist()
        if r.get("dept") == dept and r.get("status") in problem_workbook.OPEN_STATUSES
    ]
    key = problem_workbook._text
    return sorted(rows, key=lambda r: (str(r["table"]), key(r.get("due")), r["problem_id"]))


def _old_workbook(table: pa.Table, dept: str) -> Workbook:
    pw = workbook_in_memory  # the sheets as problem_workbook wrote them before it streamed
    rows = _old_open_problems(table, dept)
    by_table: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_table.setdefault(str(row["table"]), []).append(row)
    wb = Workbook()
    help_ws = wb.active
    assert help_ws is not None
    help_ws.title = pw.HELP_SHEET
    pw._help_sheet(help_ws, dept, {t: len(r) for t, r in by_table.items()})
    for name, table_rows in by_table.items():
        ws = wb.create_sheet(pw.sheet_name(name))
        pw._header(ws)
        n = 0
        for n, row in enumerate(table_rows, start=1):
            shown = pw.cells(row)
            for col, (column, _) in enumerate(pw.LOCKED_COLUMNS, start=1):
                pw._text_cell(ws, n + 1, col, shown[column])
            for col in (pw.RESPONSE_COLUMN, pw.NOTE_COLUMN):
                c = ws.cell(row=n + 1, column=col)
                c.protection = Protection(locked=False)
                c.fill = pw._INPUT_FILL
            ws.cell(row=n + 1, column=pw.NOTE_COLUMN).alignment = Alignment(wrap_text=True)
        if n:
            letter = get_column_letter(pw.RESPONSE_COLUMN)
            dv = DataValidation(
                type="list",
                formula1='"' + ",".join(pw.RESPONSES) + '"',
                allow_blank=True,
                showDropDown=False,
                showErrorMessage=True,
                errorTitle="答复无效",
                error="请从列表中选择：" + " / ".join(pw.RESPONSES),
                promptTitle="答复",
                prompt="已整改 / 有异议 / 无法整改",
                showInputMessage=True,
            )
            dv.add(f"{letter}2:{letter}{n + 1}")
            ws.add_data_validation(dv)
        pw._protect(ws)
    meta = wb.create_sheet(pw.META_SHEET)
    meta.append(["format", pw.FORMAT])
    meta.append(["dept", dept])
    meta.append(["written_at", "2000-01-01T00:00:00+00:00"])
    meta.append(["problem_id", "due", "status"])
    for row in rows:
        shown = pw.cells(row)
        meta.append([shown["problem_id"], shown["due"], shown["status"]])
    meta.sheet_state = "veryHidden"
    pw._protect(meta)
    wb.security = WorkbookProtection(lockStructure=True)
    wb.active = 1 if by_table else 0
    return wb


_WHEN = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?")


def _parts(wb: Workbook) -> dict[str, bytes]:
    """The workbook's saved parts, the times of writing (written_at, docProps) blanked."""
    buf = io.BytesIO()
    wb.save(buf)
    with zipfile.ZipFile(buf) as z:
        return {n: _WHEN.sub(b"T", z.read(n)) for n in z.namelist()}


# --- the tests ---------------------------------------------------------------------------------


def test_the_table_has_every_case(table: pa.Table) -> None:
    rows = table.to_pylist()
    assert {r["status"] for r in rows} == {"open", "reopened", "fixed"}
    mine = [r for r in rows if r["dept"] == "scjg" and r["status"] != "fixed"]
    assert any(r["overdue"] for r in mine) and any(r["fix_failed"] for r in mine)
    assert any(r["disputed_since"] for r in mine)
    assert len(mine) > report.PROBLEM_LIST_MAX  # the lists are cut


@pytest.mark.parametrize("dept", ["scjg", "gjj", "nobody"])
def test_summary_as_the_rows_gave_it(table: pa.Table, dept: str) -> None:
    mine = table.filter(pa.compute.equal(table["dept"], dept))
    assert problems.summary(mine, DS) == _old_summary(mine, DS)
    assert problems.summary(mine, DS + timedelta(days=3)) == _old_summary(mine, DS + timedelta(3))


def test_problem_figures_as_the_rows_gave_them(
    tmp_path: Any, table: pa.Table, scjg: Department
) -> None:
    root = StorageRoot(tmp_path)
    problem_store.write_problems(root, table, DS, "tracking")
    mine = problem_store.read_problems(root, scjg.code, as_of=DS)
    expected = _old_figures(mine, scjg, DS)
    assert expected["calendar"]["fallback_years"]  # a due date past the library's years
    assert report.problem_figures(root, scjg, DS) == expected
    assert report.problem_figures(root, scjg, DS, mine) == expected


@pytest.mark.parametrize("dept", ["scjg", "gjj", "nobody"])
def test_the_workbook_as_the_rows_gave_it(table: pa.Table, dept: str) -> None:
    assert workbook_in_memory.open_problems(table, dept) == _old_open_problems(table, dept)
    new = _parts(workbook_in_memory.build_workbook(table, dept))
    old = _parts(_old_workbook(table, dept))
    assert new.keys() == old.keys()
    assert {n: new[n] for n in new if new[n] != old[n]} == {}


def test_a_report_from_the_table_read_once_as_from_its_own_read(
    tmp_path: Any, table: pa.Table, scjg: Department
) -> None:
    root = StorageRoot(tmp_path)
    problem_store.write_problems(root, table, DS, "tracking")
    everyone = report.problems_as_of(root, DS)
    assert everyone is not None and set(everyone["dept"].to_pylist()) == {"scjg", "gjj"}

    def written(rows: pa.Table | None) -> tuple[str, bytes]:
        out = report.write_department_report(root, scjg, DS, rows).parent
        text = (out / "report.json").read_text("utf-8")
        return re.sub(r'"generated_at": "[^"]*"', "", text), (out / "rejected.csv").read_bytes()

    alone = written(None)
    assert '"tracked_night": "2026-12-28"' in alone[0]
    assert written(report.rows_of(everyone, "scjg")) == alone

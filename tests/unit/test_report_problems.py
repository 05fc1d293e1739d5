"""The report's 问题整改 section from a real problem table (a Delta table under a temporary
root, written by ``problem_store``): figures, the overdue list first and masked, the calendar
fallback named, report.json valid, the to-do item, the overview's ranking."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import jsonschema
import pyarrow as pa
from helpers import full_id_numbers

from datacloud import problem_store, problems
from datacloud.config import Department
from datacloud.paths import StorageRoot
from datacloud.report import write_department_report, write_overview
from transforms.id_number import id_check_char

DS = date(2026, 12, 28)
ID_A = "33010619800101001" + id_check_char("33010619800101001")


def _row(key: str, *, kind: str = "rejected_row", **kw: Any) -> dict[str, Any]:
    table = "consistency" if kind == "finding" else "qyjbxx"
    rule = "name_conflict" if kind == "finding" else "CREDIT_CODE_CHECK"
    row: dict[str, Any] = {f.name: None for f in problem_store.SCHEMA}
    row.update(
        problem_id=problems.problem_id("scjg", table, key, rule),
        kind=kind,
        dept="scjg",
        table=table,
        source_key=key,
        field="name" if kind == "finding" else "credit_code",
        rule=rule,
        message_zh=f"问题 {key}",
        first_seen=DS - timedelta(days=10),
        last_seen=DS,
        status="open",
        due=DS - timedelta(days=3),
        overdue=True,
        fix_failed=False,
    )
    row.update(kw)
    return row


def _table(root: StorageRoot) -> None:
    rows = [
        _row(ID_A, kind="finding", person_key=ID_A, message_zh=f"姓名不一致 {ID_A}"),
        _row("E1002"),
        _row("E1003", overdue=False, due=date(2027, 1, 5)),  # due in a year the library lacks
        _row("E1004", overdue=False, disputed_since=DS - timedelta(days=1), response="disputed"),
        _row("E1005", status="fixed", fixed_on=DS, overdue=False),
        _row("E1006", first_seen=DS, overdue=False, due=DS + timedelta(days=7)),
        _row("G1", overdue=True) | {"dept": "gjj", "problem_id": "f" * 16},
    ]
    table = pa.Table.from_pylist(rows, schema=problem_store.SCHEMA)
    problem_store.write_problems(root, table, DS, "tracking")


def test_the_section_agrees_with_the_table_and_masks(
    tmp_path: Any, scjg: Department, schema: jsonschema.protocols.Validator
) -> None:
    root = StorageRoot(tmp_path)
    _table(root)
    files = write_department_report(root, scjg, DS)
    report = json.loads((files.parent / "report.json").read_text("utf-8"))
    schema.validate(report)
    p = report["problems"]
    assert p["available"] and p["tracked_night"] == DS.isoformat()
    assert (p["open"], p["overdue"], p["disputed"], p["fixed_tonight"], p["new_tonight"]) == (
        5,
        2,
        1,
        1,
        1,
    )
    assert p["median_age_days"] == 10 and p["closure_rate"] == round(1 / 6, 4)
    assert p["calendar"]["fallback_years"] == [2027]
    overdue = p["overdue_list"]
    assert [(x["due"], x["problem_id"]) for x in overdue] == sorted(
        (x["due"], x["problem_id"]) for x in overdue
    )
    assert sorted(x["source_key"] for x in overdue) == sorted(
        ["E1002", ID_A[:6] + "********" + ID_A[-4:]]
    )
    assert all(x["days_overdue"] == 3 for x in overdue)
    item = next(t for t in report["todo"] if t["kind"] == "problems_overdue")
    assert item["count"] == 2 and item["who"] == "department" and item["file"] == "problems.xlsx"
    assert report["workbook_problems"] == 5 and (files.parent / "problems.xlsx").is_file()
    html = (files.parent / "index.html").read_text("utf-8")
    assert not full_id_numbers(html) and not full_id_numbers(json.dumps(report))
    section = html.split('id="problems"')[1]
    assert section.index("逾期未整改的问题") < section.index('id="problems-figures"')
    assert 'id="problems-calendar"' in section and "2027 年" in section
    assert "问题台账截至" not in section
    write_overview(root, [scjg], DS)
    overview = (root.root / "reports" / "index.html").read_text("utf-8")
    assert 'data-ranked-department="scjg" data-overdue="2"' in overview


def test_no_problem_table_yet_says_not_yet_enabled(
    tmp_path: Any, scjg: Department, schema: jsonschema.protocols.Validator
) -> None:
    root = StorageRoot(tmp_path)
    files = write_department_report(root, scjg, DS)
    report = json.loads((files.parent / "report.json").read_text("utf-8"))
    schema.validate(report)
    assert report["problems"] == {"available": False} and report["workbook_problems"] is None
    assert not (files.parent / "problems.xlsx").exists()
    assert "问题整改跟踪暂未启用" in (files.parent / "index.html").read_text("utf-8")


def test_the_department_dag_report_shows_the_night_before(tmp_path: Any, scjg: Department) -> None:
    root = StorageRoot(tmp_path)
    _table(root)
    files = write_department_report(root, scjg, DS + timedelta(days=1))
    report = json.loads((files.parent / "report.json").read_text("utf-8"))
    assert report["problems"]["tracked_night"] == DS.isoformat()
    assert "问题台账截至" in (files.parent / "index.html").read_text("utf-8")

"""The 问题整改 section as a department clerk reads it (REVIEW-19): by when the open problems
are due (the next deadlines with their weekday, report.json ``problems.due_next``), what to do
(the workbook, the answers, how to return it) next to the overdue list, a cross-department
finding named in Chinese instead of its code, and the feedback workbook and an inbox refusal
telling the clerk what to do without pointing at a developer's document.

Real parts: a real problem table (Delta, ``problem_store``), the real report writer, the real
workbook read back with openpyxl, the real inbox over a real folder.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import openpyxl
import pyarrow as pa

from datacloud import problem_store, problems
from datacloud.config import Department
from datacloud.paths import StorageRoot
from datacloud.problem_inbox import process_dept
from datacloud.report import write_department_report

DS = date(2026, 11, 20)  # a Friday


def _row(key: str, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {f.name: None for f in problem_store.SCHEMA}
    kind = kw.pop("kind", "rejected_row")
    table = "consistency" if kind == "finding" else "qyjbxx"
    rule = "name_conflict" if kind == "finding" else "CREDIT_CODE_CHECK"
    row.update(
        problem_id=problems.problem_id("scjg", table, key, rule),
        kind=kind,
        dept="scjg",
        table=table,
        source_key=key,
        field="name" if kind == "finding" else "credit_code",
        rule=rule,
        message_zh=f"问题 {key}",
        first_seen=DS,
        last_seen=DS,
        status="open",
        due=date(2026, 11, 27),
        overdue=False,
        fix_failed=False,
    )
    row.update(kw)
    return row


def _write(root: StorageRoot, rows: list[dict[str, Any]]) -> None:
    problem_store.write_problems(
        root, pa.Table.from_pylist(rows, schema=problem_store.SCHEMA), DS, "tracking"
    )


def _report(root: StorageRoot, dept: Department) -> tuple[dict[str, Any], str, Path]:
    files = write_department_report(root, dept, DS)
    report = json.loads((files.parent / "report.json").read_text("utf-8"))
    return report, (files.parent / "index.html").read_text("utf-8"), files.parent


def test_the_next_deadlines_say_by_when(
    tmp_path: Any, scjg: Department, schema: jsonschema.protocols.Validator
) -> None:
    root = StorageRoot(tmp_path)
    _write(
        root,
        [
            _row("E1"),
            _row("E2"),
            _row("E3", due=date(2026, 12, 1)),
            # neither overdue nor disputed problems wait on a deadline
            _row("E4", due=DS - timedelta(days=1), overdue=True),
            _row("E5", disputed_since=DS, response="disputed", due=date(2026, 11, 25)),
            _row("E6", status="fixed", fixed_on=DS, due=date(2026, 11, 24)),
        ],
    )
    report, html, _ = _report(root, scjg)
    schema.validate(report)
    assert report["problems"]["due_next"] == [
        {"due": "2026-11-27", "count": 2},
        {"due": "2026-12-01", "count": 1},
    ]
    section = html.split('id="problems"')[1].split('id="download"')[0]
    due = section.split('id="problems-due-next"')[1].split("</p>")[0]
    assert "2026年11月27日（星期五）" in due and "2026年12月1日（星期二） 1 个" in due
    # overdue first, then what to do, then the figures; the workbook link is in what to do
    todo = section.split('id="problems-todo"')[1].split('id="problems-figures"')[0]
    assert section.index("逾期未整改的问题") < section.index('id="problems-todo"')
    assert 'id="problems-xlsx"' in todo and "收件箱" in todo and "有异议" in todo


def test_nothing_open_says_so(tmp_path: Any, scjg: Department) -> None:
    root = StorageRoot(tmp_path)
    _write(root, [_row("E6", status="fixed", fixed_on=DS)])
    report, html, _ = _report(root, scjg)
    assert report["problems"]["due_next"] == []
    assert "没有待整改的问题" in html.split('id="problems-due-next"')[1].split("</p>")[0]


def test_a_finding_is_named_in_chinese(tmp_path: Any, scjg: Department) -> None:
    root = StorageRoot(tmp_path)
    _write(root, [_row("E9", kind="finding", due=DS - timedelta(days=2), overdue=True)])
    _, html, _ = _report(root, scjg)
    overdue = html.split('id="problems-overdue-list"')[1].split("</table>")[0]
    assert "姓名与户籍登记不一致" in overdue and "跨部门比对" in overdue
    assert ">consistency<" not in overdue and ">name_conflict " not in overdue


def test_workbook_help_and_inbox_refusal_speak_to_the_clerk(
    tmp_path: Any, scjg: Department
) -> None:
    root = StorageRoot(tmp_path)
    _write(root, [_row("E1")])
    _, _, folder = _report(root, scjg)
    book = openpyxl.load_workbook(folder / "problems.xlsx")
    help_text = "\n".join(str(c.value) for c in book["填写说明"]["A"] if c.value)
    assert "收件箱" in help_text and "docs/" not in help_text
    assert "答复已整改但仍存在" in help_text  # the report's words for a fix that did not hold
    inbox = root.root / "problems" / "inbox" / "scjg"
    inbox.mkdir(parents=True)
    (inbox / "反馈.csv").write_text("问题编号,答复\n", encoding="utf-8")
    table = problem_store.read_problems(root)
    [outcome] = process_dept(root, "scjg", table, min_age_seconds=0)
    assert outcome.outcome == "rejected"
    [error] = (inbox / "rejected").glob("*.error.txt")
    text = error.read_text("utf-8")
    assert "只接受 .xlsx" in text and "重新放入收件箱" in text and "docs/" not in text

"""A report that tells the truth (issue 22, the department officer): one headline from every
part of the night, a to-do list that names every kind of problem, the platform's own faults
said to be the platform's, every finding downloadable, and the report's own help.

Run state, gate.json and issues are written by hand; the findings are a real Delta table
written by the curated writer. The department is scjg (two tables, qyjbxx and qygd).
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date
from typing import Any

import pyarrow as pa
import pytest
from helpers import full_id_numbers

from datacloud.config import Department
from datacloud.delta import overwrite
from datacloud.paths import StorageRoot
from datacloud.report import write_department_report, write_overview
from transforms.id_number import id_check_char
from transforms.rules import RULES

DS = date(2026, 11, 20)


def _id(first17: str) -> str:
    return first17 + id_check_char(first17)


ID_A = _id("33010619800101001")


def write_state(root: StorageRoot, table: str, **state: Any) -> None:
    folder = root.run_state("scjg", DS)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{table}.json").write_text(
        json.dumps({"table": table, **state}, ensure_ascii=False), encoding="utf-8"
    )


def loaded(rows_in: int = 100, rejected: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "status": "success",
        "stage": "stage",
        "rows_in": rows_in,
        "rows_accepted": rows_in - rejected,
        "rows_rejected": rejected,
        "rows_deduplicated": 0,
        "latest_source_update": "2026-11-20T21:30:00",
        **extra,
    }


def clean_night(root: StorageRoot) -> None:
    write_state(root, "qyjbxx", **loaded())
    write_state(root, "qygd", **loaded(40))


def write_gate(root: StorageRoot, success: bool, severity: str = "warning") -> None:
    folder = root.quality() / "scjg" / DS.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    suite = {
        "suite": "raw_enterprise",
        "table": "qyjbxx",
        "success": success,
        "severity": severity,
        "failed_expectations": []
        if success
        else [
            {
                "expectation": "expect_column_values_to_match_regex",
                "column": "credit_code",
                "observed": "0.9% invalid",
                "check_zh": "统一社会信用代码 合规率",
                "observed_zh": "不合规 0.9%",
            }
        ],
    }
    (folder / "gate.json").write_text(json.dumps({"suites": [suite]}), encoding="utf-8")


def write_findings(
    root: StorageRoot, n: int, finding_zh: str = "姓名与户籍登记不一致"
) -> list[str]:
    ids = [_id(f"3301061980{k:07d}") for k in range(n)]
    table = pa.table(
        {
            "finding": ["name_conflict"] * n,
            "finding_zh": [finding_zh] * n,
            "department": ["scjg"] * n,
            "authoritative_department": ["gongan"] * n,
            "field": ["name"] * n,
            "record_kinds": ["enterprise_role"] * n,
            "id_number": ids,
            "business_date": pa.array([DS] * n, pa.date32()),
        }
    )
    overwrite(root.curated("consistency"), table, ["business_date"], "c-1", DS.isoformat())
    return ids


def report_of(root: StorageRoot) -> dict[str, Any]:
    return json.loads((root.report_dir("scjg", DS) / "report.json").read_text(encoding="utf-8"))


def html_of(root: StorageRoot) -> str:
    return (root.report_dir("scjg", DS) / "index.html").read_text(encoding="utf-8")


def section(html: str, element_id: str) -> str:
    m = re.search(rf'<(\w+)[^>]* id="{element_id}"[^>]*>.*?</\1>', html, re.S)
    assert m, element_id
    return m.group(0)


# --- one status that tells the truth ------------------------------------------------------------


def test_a_clean_night_is_the_only_green_success(
    storage_root: StorageRoot, scjg: Department, schema
) -> None:
    clean_night(storage_root)
    write_gate(storage_root, success=True)
    write_department_report(storage_root, scjg, DS)
    report = report_of(storage_root)
    schema.validate(report)
    assert (report["headline"], report["headline_zh"], report["todo"]) == ("success", "成功", [])
    assert 'class="badge s-success" id="status"' in html_of(storage_root)


@pytest.mark.parametrize(
    ("problem", "kind"),
    [
        (lambda root: write_gate(root, success=False), "quality_gate"),
        (lambda root: write_findings(root, 33), "findings"),
        (
            lambda root: write_state(root, "qygd", **loaded(40, 2, rejections={"ID_LENGTH": 2})),
            "rejected_rows",
        ),
        (
            lambda root: write_state(
                root,
                "qygd",
                **loaded(
                    40, schema_changes=[{"column": "bz", "change": "added", "new_type": "TEXT"}]
                ),
            ),
            "schema_change",
        ),
        (
            lambda root: write_state(
                root, "qygd", **loaded(40, latest_source_update="2026-11-10T08:00:00")
            ),
            "stale",
        ),
        (lambda root: write_state(root, "qygd", **loaded(40, rows_accepted=30)), "unreconciled"),
    ],
)
def test_a_loaded_night_with_a_problem_is_not_a_green_success(
    storage_root: StorageRoot, scjg: Department, schema, problem: Any, kind: str
) -> None:
    clean_night(storage_root)
    problem(storage_root)
    write_department_report(storage_root, scjg, DS)
    report = report_of(storage_root)
    schema.validate(report)
    assert report["status"] == "success"  # every table loaded (the load status keeps its meaning)
    assert (report["headline"], report["headline_zh"]) == ("action_needed", "已加载，需处理")
    assert [i["kind"] for i in report["todo"]] == [kind]
    html = html_of(storage_root)
    assert (
        'class="badge s-action_needed" id="status"' in html and 's-success" id="status' not in html
    )
    todo = section(html, "todo")
    assert report["todo"][0]["text_zh"] in todo and "本晚无需处理" not in todo


def test_a_failed_night_shows_no_green_tick_beside_zero(
    storage_root: StorageRoot, scjg: Department
) -> None:
    for table in ("qyjbxx", "qygd"):
        write_state(
            storage_root,
            table,
            status="failed",
            stage="extract",
            error="OperationalError: connection to server failed: Connection refused",
            failure_kind="source_unreachable",
        )
    write_department_report(storage_root, scjg, DS)
    html = html_of(storage_root)
    totals = section(html, "totals")
    assert "进入 0" in totals and "✓" not in totals and 'class="ok"' not in totals
    assert "没有加载" in totals
    assert report_of(storage_root)["headline"] == "failed"


# --- blame the right party ------------------------------------------------------------------------


TYPO = (
    "department scjg, table qygd: extraction failed: MappingError: department scjg, table qygd: "
    f"the query returns no column(s) ['gdmcc'] that the YAML maps (row {ID_A})"
)


@pytest.mark.parametrize(
    "state",
    [
        {"status": "failed", "stage": "extract", "error": TYPO, "failure_kind": "error"},
        {"status": "not_run"},
    ],
)
def test_a_platform_fault_is_said_to_be_the_platforms_with_its_masked_cause(
    storage_root: StorageRoot, scjg: Department, schema, state: dict[str, Any]
) -> None:
    write_state(storage_root, "qyjbxx", **loaded())
    write_state(storage_root, "qygd", **state)
    write_department_report(storage_root, scjg, DS)
    report = report_of(storage_root)
    schema.validate(report)
    failed = report["tables"][1]
    assert failed["fault"] == "platform"
    assert report["platform_fault"] is True and report["headline"] == "partial"
    assert report["headline_zh"] == "部分成功（平台原因）"
    assert [(i["kind"], i["who"]) for i in report["todo"]] == [("platform_fault", "platform")]
    html = html_of(storage_root)
    reasons = section(html, "reasons")
    assert "平台原因，运维人员正在处理" in reasons and "无需贵单位处理" in reasons
    assert "恢复原表结构" not in reasons and "请检查数据库" not in reasons
    if "error" in state:  # the real cause shown, masked, not folded away
        assert "the query returns no column(s) [&#39;gdmcc&#39;]" in reasons
        assert f"{ID_A[:6]}********{ID_A[-4:]}" in reasons and not full_id_numbers(html)
        assert "<details" not in reasons


def test_a_department_fault_still_asks_the_department(
    storage_root: StorageRoot, scjg: Department
) -> None:
    write_state(storage_root, "qyjbxx", **loaded())
    write_state(
        storage_root,
        "qygd",
        status="failed",
        stage="extract",
        error="SchemaDriftError: column gdmc was dropped",
        failure_kind="schema_change",
    )
    write_department_report(storage_root, scjg, DS)
    report = report_of(storage_root)
    assert report["tables"][1]["fault"] == "department" and report["platform_fault"] is False
    assert [(i["kind"], i["who"]) for i in report["todo"]] == [("table_failed", "department")]
    assert "恢复原表结构" in section(html_of(storage_root), "reasons")


# --- every finding downloadable -------------------------------------------------------------------


def test_every_finding_is_in_findings_csv_masked_and_spreadsheet_safe(
    storage_root: StorageRoot, scjg: Department, schema
) -> None:
    clean_night(storage_root)
    ids = write_findings(storage_root, 33, finding_zh='=HYPERLINK("http://x")')
    write_department_report(storage_root, scjg, DS)
    report = report_of(storage_root)
    schema.validate(report)
    assert report["findings"]["total"] == 33
    assert report["files"]["findings_csv"] == "findings.csv" and report["findings_csv_lines"] == 33
    raw = (storage_root.report_dir("scjg", DS) / "findings.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    header, body = rows[0], rows[1:]
    assert len(body) == 33 and header[0] == "比对项代码" and "处理建议" in header
    shown = {r[header.index("身份证号码（已脱敏）")] for r in body}
    assert shown == {f"{i[:6]}********{i[-4:]}" for i in ids}
    assert not full_id_numbers(raw.decode("utf-8-sig"))
    assert all(r[header.index("比对项")].startswith("'=") for r in body)  # no formula
    assert all(r[header.index("处理建议")] for r in body)
    html = html_of(storage_root)
    assert '<a href="findings.csv" download id="findings-csv">' in html  # beside the examples
    assert 'href="findings.csv"' in section(html, "todo")


def test_no_findings_still_writes_an_empty_findings_csv(
    storage_root: StorageRoot, scjg: Department
) -> None:
    clean_night(storage_root)
    write_department_report(storage_root, scjg, DS)
    rows = (storage_root.report_dir("scjg", DS) / "findings.csv").read_text("utf-8-sig")
    assert rows.splitlines()[0].startswith("比对项代码") and len(rows.splitlines()) == 1
    assert report_of(storage_root)["findings_csv_lines"] == 0


# --- the report's own help ----------------------------------------------------------------------


def test_the_report_carries_its_own_help(storage_root: StorageRoot, scjg: Department) -> None:
    clean_night(storage_root)
    write_department_report(storage_root, scjg, DS)
    html = html_of(storage_root)
    assert "docs/reports.md" not in html
    help_ = section(html, "help")
    for code in RULES:
        assert f'id="rule-{code}"' in help_
        assert RULES[code].hint_zh in help_
    for word in ("已加载，需处理", "部分成功", "rejected.csv", "findings.csv", "进入", "去重"):
        assert word in help_
    assert 'data-kind="error"' in help_ and "平台" in help_
    assert 'href="#help"' in section(html, "footer")


# --- the overview shows the headline ----------------------------------------------------------------


def test_the_overview_shows_the_headline_not_only_the_load_status(
    storage_root: StorageRoot, scjg: Department
) -> None:
    clean_night(storage_root)
    write_gate(storage_root, success=False)
    write_department_report(storage_root, scjg, DS)
    page = write_overview(storage_root, [scjg], DS, nights=3).read_text(encoding="utf-8")
    cell = re.search(rf'<td data-night="{DS.isoformat()}" data-status="(\w+)"', page)
    assert cell and cell.group(1) == "action_needed"
    assert "已加载，需处理" in page


def test_unmapped_columns_are_shown_as_nothing_for_the_department_to_do(
    storage_root: StorageRoot, scjg: Department
) -> None:
    write_state(storage_root, "qyjbxx", **loaded(unmapped_columns=["bz", "lrr"]))
    write_state(storage_root, "qygd", **loaded(40))
    write_department_report(storage_root, scjg, DS)
    report = report_of(storage_root)
    assert report["tables"][0]["unmapped_columns"] == ["bz", "lrr"]
    assert report["headline"] == "success"  # the platform's configuration, not a to-do
    unmapped = section(html_of(storage_root), "unmapped")
    assert "qyjbxx" in unmapped and "bz、lrr" in unmapped and "无需处理" in unmapped

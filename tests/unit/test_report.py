"""Department night reports from hand-written run state: report.json, rejected.csv, index.html.

The department is scjg (two tables, qyjbxx and qygd), so a night can succeed, half-fail or fail.
"""

from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from datetime import date, timedelta
from typing import Any

import jsonschema
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import full_id_numbers

from datacloud.config import Department, load_department
from datacloud.paths import DEPARTMENTS_DIR, StorageRoot
from datacloud.report import (
    failure_kind,
    write_department_report,
    write_overview,
)
from transforms.id_number import id_check_char

DS = date(2026, 11, 20)
SVG = "{http://www.w3.org/2000/svg}"
COUNTS = ("rows_in", "rows_accepted", "rows_rejected", "rows_deduplicated")


def _id(first17: str) -> str:
    return first17 + id_check_char(first17)


ID_A, ID_B, ID_C = _id("33010619800101001"), _id("33010219900202002"), _id("33010619751231003")
MOBILE = "13912345678"
UNREACHABLE = (
    "department scjg, table qygd: extraction failed: OperationalError: (psycopg2.OperationalError) "
    'connection to server at "127.0.0.1", port 1 failed: Connection refused'
)


def write_state(root: StorageRoot, dept: str, ds: date, table: str, **state: Any) -> None:
    folder = root.run_state(dept, ds)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{table}.json").write_text(
        json.dumps({"table": table, **state}, ensure_ascii=False), encoding="utf-8"
    )


def loaded(rows_in: int, accepted: int, rejected: int, dedup: int, **extra: Any) -> dict[str, Any]:
    return {
        "status": "success",
        "stage": "stage",
        "rows_in": rows_in,
        "rows_accepted": accepted,
        "rows_rejected": rejected,
        "rows_deduplicated": dedup,
        "latest_source_update": "2026-11-20T21:30:00",
        **extra,
    }


def write_issues(root: StorageRoot, dept: str, table: str, ds: date, rows: list[tuple]) -> None:
    folder = root.rejected(dept, table, ds)
    folder.mkdir(parents=True, exist_ok=True)
    cols = ["source_pk", "field", "source_column", "raw_value", "rule_code", "severity"]
    pq.write_table(
        pa.table({c: pa.array([r[i] for r in rows], pa.string()) for i, c in enumerate(cols)}),
        folder / "issues.parquet",
    )


QYGD_ISSUES = [
    (
        "GD1",
        "id_number",
        "gdzjhm",
        ID_A[:-1] + ("0" if ID_A[-1] != "0" else "1"),
        "ID_CHECK_DIGIT",
        "reject",
    ),
    ("GD2", "id_number", "gdzjhm", ID_B + "9", "ID_LENGTH", "reject"),
    ("GD2", "name", "gdmc", "张三3", "NAME_CHARS", "reject"),
    ("GD3", "id_number", "gdzjhm", ID_C, "ID_COUNTY_HISTORICAL", "warn"),
    ("GD4", "*", "gdid", "GD4", "DUPLICATE_KEY", "warn"),
]


def success_night(root: StorageRoot, ds: date = DS) -> None:
    write_state(
        root,
        "scjg",
        ds,
        "qyjbxx",
        **loaded(
            1200, 1180, 15, 5, rejections={"CC_CHECK_CHAR": 15}, warnings={"DUPLICATE_KEY": 5}
        ),
    )
    write_issues(
        root,
        "scjg",
        "qyjbxx",
        ds,
        [
            (f"QY{k}", "credit_code", "tyshxydm", f"91330106MA2{k:06d}", "CC_CHECK_CHAR", "reject")
            for k in range(15)
        ],
    )
    write_state(
        root,
        "scjg",
        ds,
        "qygd",
        **loaded(
            40,
            37,
            2,
            1,
            rejections={"ID_CHECK_DIGIT": 1, "ID_LENGTH": 1, "NAME_CHARS": 1},
            warnings={"ID_COUNTY_HISTORICAL": 1, "DUPLICATE_KEY": 1},
        ),
    )
    write_issues(root, "scjg", "qygd", ds, QYGD_ISSUES)


def partial_night(root: StorageRoot, ds: date = DS) -> None:
    success_night(root, ds)
    write_state(
        root,
        "scjg",
        ds,
        "qygd",
        status="failed",
        stage="extract",
        error=f"{UNREACHABLE} (row {ID_A}, contact {MOBILE})",
    )


def failed_night(root: StorageRoot, ds: date = DS) -> None:
    write_state(
        root,
        "scjg",
        ds,
        "qyjbxx",
        status="failed",
        stage="extract",
        error=UNREACHABLE.replace("qygd", "qyjbxx"),
    )
    write_state(root, "scjg", ds, "qygd", status="failed", stage="extract", error=UNREACHABLE)


def _report(root: StorageRoot, ds: date = DS) -> dict[str, Any]:
    return json.loads((root.report_dir("scjg", ds) / "report.json").read_text(encoding="utf-8"))


def _html(root: StorageRoot, ds: date = DS) -> str:
    return (root.report_dir("scjg", ds) / "index.html").read_text(encoding="utf-8")


def _csv_rows(root: StorageRoot, ds: date = DS) -> list[list[str]]:
    raw = (root.report_dir("scjg", ds) / "rejected.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))


# --- report.json ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("night", "status", "status_zh"),
    [
        (success_night, "success", "成功"),
        (partial_night, "partial", "部分成功"),
        (failed_night, "failed", "失败"),
    ],
)
def test_report_json_validates_and_counts_equal_run_state(
    storage_root: StorageRoot, scjg: Department, schema, night, status: str, status_zh: str
) -> None:
    night(storage_root)
    out = write_department_report(storage_root, scjg, DS)
    assert out.status == status and out.parent == storage_root.report_dir("scjg", DS)
    report = _report(storage_root)
    schema.validate(report)
    assert (report["status"], report["status_zh"]) == (status, status_zh)
    assert [t["table"] for t in report["tables"]] == ["qyjbxx", "qygd"]
    for t in report["tables"]:
        state = json.loads(
            (storage_root.run_state("scjg", DS) / f"{t['table']}.json").read_text("utf-8")
        )
        for k in COUNTS:
            assert t[k] == state.get(k, 0), (t["table"], k)
        assert t["rows_in"] == t["rows_accepted"] + t["rows_rejected"] + t["rows_deduplicated"]
        assert t["reconciled"] is True
        assert t["rejections_by_rule"] == state.get("rejections", {})
    for k in COUNTS:
        assert report["totals"][k] == sum(t[k] for t in report["tables"])
    assert {f for f in ("index.html", "report.json", "rejected.csv")} <= {
        p.name for p in out.parent.iterdir()
    }


def test_schema_is_not_vacuous(storage_root: StorageRoot, scjg: Department, schema) -> None:
    success_night(storage_root)
    write_department_report(storage_root, scjg, DS)
    good = _report(storage_root)
    for broken in (
        {**good, "status": "ok"},
        {**good, "tables": [{**good["tables"][0], "rows_in": -1}]},
        {**good, "tables": [{k: v for k, v in good["tables"][0].items() if k != "rows_rejected"}]},
        {k: v for k, v in good.items() if k != "tables"},
        {**good, "tables": [{**good["tables"][0], "status": "failed"}]},  # failed needs a reason
    ):
        with pytest.raises(jsonschema.ValidationError):
            schema.validate(broken)


def test_report_json_keeps_the_keys_of_version_1(
    storage_root: StorageRoot, scjg: Department
) -> None:
    partial_night(storage_root)
    write_department_report(storage_root, scjg, DS)
    report = _report(storage_root)
    assert report["schema_version"] == 1
    assert {
        "department",
        "department_name",
        "business_date",
        "generated_at",
        "status",
        "status_zh",
        "totals",
        "tables",
        "files",
        "rejected_csv_lines",
    } <= set(report)
    ok, bad = report["tables"]
    assert {
        "table",
        "description",
        "status",
        "rows_in",
        "rows_accepted",
        "rows_rejected",
        "rows_deduplicated",
        "reconciled",
        "rejections_by_rule",
        "warnings_by_rule",
        "latest_source_update",
    } <= set(ok)
    assert bad["failed_stage"] == "extract" and "department scjg, table qygd" in bad["error"]
    assert report["files"]["rejected_csv"] == "rejected.csv"


def test_partial_night_names_the_failing_table_and_why(
    storage_root: StorageRoot, scjg: Department
) -> None:
    partial_night(storage_root)
    write_department_report(storage_root, scjg, DS)
    report = _report(storage_root)
    assert report["status_reasons"] == [
        {
            "table": "qygd",
            "failed_stage": "extract",
            "failure_kind": "source_unreachable",
            "failure_kind_zh": "数据源无法连接",
        }
    ]
    error = report["tables"][1]["error"]
    assert ID_A not in error and MOBILE not in error  # masked in report.json too
    assert f"{ID_A[:6]}********{ID_A[-4:]}" in error and "139****5678" in error
    html = _html(storage_root)
    assert "部分成功" in html and "数据源无法连接" in html and "qygd" in html


@pytest.mark.parametrize(
    ("state", "kind"),
    [
        ({"status": "failed", "stage": "extract", "error": UNREACHABLE}, "source_unreachable"),
        (
            {"status": "failed", "stage": "extract", "error": "x: could not translate host name"},
            "source_unreachable",
        ),
        (
            {"status": "failed", "stage": "extract", "error": "x: query timed out"},
            "source_unreachable",
        ),
        (
            {
                "status": "failed",
                "stage": "extract",
                "error": "x: the query returns no column(s) ['xm']",
            },
            "schema_change",
        ),
        ({"status": "failed", "stage": "stage", "error": "counts do not reconcile"}, "error"),
        (
            {"status": "failed", "stage": "stage", "error": "x", "failure_kind": "quality_gate"},
            "quality_gate",
        ),
        (
            {"status": "failed", "stage": "extract", "error": "x", "failure_kind": "schema_change"},
            "schema_change",
        ),
        (
            {"status": "failed", "stage": "extract", "error": "connect", "failure_kind": "bogus"},
            "source_unreachable",
        ),
        ({"status": "extracted", "extracted_rows": 3}, "not_run"),
        ({"table": "t", "status": "not_run"}, "not_run"),
    ],
)
def test_failure_kind(state: dict[str, Any], kind: str) -> None:
    assert failure_kind(state) == kind


def test_night_without_any_run_state_is_failed_not_run(
    storage_root: StorageRoot, scjg: Department, schema
) -> None:
    out = write_department_report(storage_root, scjg, DS)
    assert out.status == "failed"
    report = _report(storage_root)
    schema.validate(report)
    assert [r["failure_kind"] for r in report["status_reasons"]] == ["not_run", "not_run"]
    assert "未运行" in _html(storage_root)


# --- rejected.csv ---------------------------------------------------------------------------


def test_rejected_csv_has_one_line_per_rejected_row_and_rule_with_raw_values(
    storage_root: StorageRoot, scjg: Department
) -> None:
    success_night(storage_root)
    write_department_report(storage_root, scjg, DS)
    rows = _csv_rows(storage_root)
    assert rows[0] == ["源主键", "字段", "源字段", "原始值", "规则代码", "原因", "修改建议"]
    body = rows[1:]
    report = _report(storage_root)
    rejecting = sum(sum(t["rejections_by_rule"].values()) for t in report["tables"])
    assert len(body) == report["rejected_csv_lines"] == rejecting == 18
    assert body[-2][:5] == ["qygd:GD2", "id_number", "gdzjhm", ID_B + "9", "ID_LENGTH"]
    assert all(r[5] and r[6] for r in body)  # reason and fix hint in Chinese
    assert not any(r[4] in ("ID_COUNTY_HISTORICAL", "DUPLICATE_KEY") for r in body)  # warnings


def test_failed_tables_issue_files_are_not_reported(
    storage_root: StorageRoot, scjg: Department
) -> None:
    partial_night(storage_root)  # qygd failed tonight, but an earlier attempt left issues
    write_department_report(storage_root, scjg, DS)
    body = _csv_rows(storage_root)[1:]
    assert body and all(r[0].startswith("qyjbxx:") for r in body)
    assert _report(storage_root)["rejected_csv_lines"] == 15


# --- index.html -----------------------------------------------------------------------------


def _svg(html: str, chart_id: str) -> ET.Element:
    m = re.search(rf'<svg [^>]*id="{chart_id}".*?</svg>', html, re.S)
    assert m, chart_id
    return ET.fromstring(m.group(0))


def test_html_shows_status_counts_equation_and_download(
    storage_root: StorageRoot, scjg: Department
) -> None:
    success_night(storage_root)
    write_department_report(storage_root, scjg, DS)
    html = _html(storage_root)
    assert 'lang="zh-CN"' in html and "成功" in html and "市场监督管理局" in html
    assert "进入 1,240 = 接收 1,217 + 拒收 17 + 去重 6" in html
    assert "1,200 = 1,180 + 15 + 5" in html and "✓" in html
    assert 'href="rejected.csv"' in html  # relative: works from disk
    assert "CC_CHECK_CHAR" in html and "请" in html  # rule code and its fix hint
    assert "gdzjhm" in html  # the source column to fix
    bars = _svg(html, "chart-rejections").findall(f".//{SVG}rect")
    assert len(bars) == 4 and all(float(b.get("width", 0)) > 0 for b in bars)
    assert _svg(html, "chart-volume").findall(f".//{SVG}circle")
    assert "暂未启用" in html  # quality gates and findings not there yet


def test_html_warns_when_counts_do_not_reconcile(
    storage_root: StorageRoot, scjg: Department
) -> None:
    success_night(storage_root)
    write_state(storage_root, "scjg", DS, "qygd", **loaded(40, 30, 2, 1))
    write_department_report(storage_root, scjg, DS)
    html = _html(storage_root)
    assert _report(storage_root)["tables"][1]["reconciled"] is False
    assert "⚠ 相差 7" in html and "数量核对不一致" in html


def test_no_full_id_number_in_html_even_when_inputs_carry_them(
    storage_root: StorageRoot, scjg: Department
) -> None:
    partial_night(storage_root)
    write_state(
        storage_root,
        "scjg",
        DS,
        "qyjbxx",
        **loaded(
            1200,
            1180,
            15,
            5,
            rejections={"CC_CHECK_CHAR": 15},
            schema_changes=[
                {
                    "column": "fddbr_sfzh",
                    "change": "type_changed",
                    "old_type": "varchar",
                    "new_type": ID_B,
                }
            ],
        ),
    )
    write_issues(
        storage_root,
        "scjg",
        "qyjbxx",
        DS,
        [
            (f"QY{k}", "legal_rep_id_number", "fddbr_sfzh", ID_C, "ID_CHECK_DIGIT", "reject")
            for k in range(3)
        ],
    )
    write_department_report(storage_root, scjg, DS)
    csv_text = (storage_root.report_dir("scjg", DS) / "rejected.csv").read_text("utf-8-sig")
    assert ID_C in full_id_numbers(csv_text)  # the detector works: raw values are in the CSV
    html = _html(storage_root)
    assert not full_id_numbers(html)
    assert MOBILE not in html
    assert f"{ID_A[:6]}********{ID_A[-4:]}" in html  # the masked error message is shown
    assert not full_id_numbers(
        (storage_root.report_dir("scjg", DS) / "report.json").read_text("utf-8")
    )


def test_html_escapes_what_it_shows(storage_root: StorageRoot, scjg: Department) -> None:
    success_night(storage_root)
    write_state(
        storage_root,
        "scjg",
        DS,
        "qygd",
        status="failed",
        stage="stage",
        error="<script>alert('x')</script> & <b>bold</b>",
    )
    write_department_report(storage_root, scjg, DS)
    html = _html(storage_root)
    assert "<script>" not in html and "&lt;script&gt;" in html and "<b>bold" not in html


def test_failed_night_says_source_unreachable(storage_root: StorageRoot, scjg: Department) -> None:
    failed_night(storage_root)
    write_department_report(storage_root, scjg, DS)
    html = _html(storage_root)
    assert re.search(r'id="status">失败<', html)
    assert html.count("数据源无法连接") >= 2 and "本晚没有一张表加载成功" in html
    assert "本晚未加载，无法判断" in html  # freshness unknown


def test_schema_changes_and_freshness(storage_root: StorageRoot, scjg: Department) -> None:
    success_night(storage_root)
    write_state(
        storage_root,
        "scjg",
        DS,
        "qygd",
        status="failed",
        stage="extract",
        failure_kind="schema_change",
        error="department scjg, table qygd: columns changed",
        schema_changes=[
            {"column": "gdmc", "change": "dropped", "old_type": "VARCHAR(50)", "new_type": None},
            {"column": "gdlx", "change": "added", "old_type": None, "new_type": "INTEGER"},
        ],
    )
    stale = loaded(1200, 1180, 15, 5, latest_source_update="2026-11-17T10:00:00")
    write_state(storage_root, "scjg", DS, "qyjbxx", **stale)
    write_department_report(storage_root, scjg, DS)
    report = _report(storage_root)
    assert report["tables"][0]["source_lag_days"] == 3 and report["tables"][0]["stale"] is True
    assert report["tables"][1]["failure_kind_zh"] == "表结构变化"
    html = _html(storage_root)
    assert "删除字段" in html and "新增字段" in html and "VARCHAR(50)" in html
    assert "⚠ 偏旧" in html and "2026年11月17日 10:00" in html


def test_freshness_within_a_day_is_not_stale(storage_root: StorageRoot, scjg: Department) -> None:
    success_night(storage_root)
    write_state(
        storage_root,
        "scjg",
        DS,
        "qygd",
        **loaded(40, 37, 2, 1, latest_source_update="2026-11-19T08:00:00"),
    )
    write_department_report(storage_root, scjg, DS)
    lag = [(t["source_lag_days"], t["stale"]) for t in _report(storage_root)["tables"]]
    assert lag == [(0, False), (1, False)]


def test_history_chart_reads_earlier_reports_and_leaves_gaps(
    storage_root: StorageRoot, scjg: Department
) -> None:
    for back in (5, 3, 2):  # nights with reports; 4 and 1 are missing
        success_night(storage_root, DS - timedelta(days=back))
        write_department_report(storage_root, scjg, DS - timedelta(days=back))
    failed_night(storage_root, DS - timedelta(days=30))  # outside the 30 nights
    write_department_report(storage_root, scjg, DS - timedelta(days=30))
    success_night(storage_root)
    write_department_report(storage_root, scjg, DS)
    html = _html(storage_root)
    volume = _svg(html, "chart-volume")
    assert len(volume.findall(f".//{SVG}circle")) == 2 * 4  # two series × four nights
    assert len(volume.findall(f".//{SVG}path[@class='series']")) == 2  # runs 3-2 only
    rejected = _svg(html, "chart-rejected")
    assert len(rejected.findall(f".//{SVG}circle")) == 4
    # rejected rows each night: loaded, with something to do, never a green 成功 (strip + legend)
    assert html.count('class="cell s-action_needed"') == 4 + 1
    earlier = (DS - timedelta(days=3)).isoformat()
    assert f'href="../../scjg/{earlier}/index.html"' in html


def test_quality_gate_results_are_shown_with_data_docs_link(
    storage_root: StorageRoot, scjg: Department, schema
) -> None:
    success_night(storage_root)
    gate = storage_root.quality() / "scjg" / DS.isoformat() / "gate.json"
    gate.parent.mkdir(parents=True)
    gate.write_text(
        json.dumps(
            {
                "suites": [
                    {
                        "suite": "raw.enterprise",
                        "table": "qyjbxx",
                        "success": True,
                        "severity": "critical",
                        "failed_expectations": [],
                        "data_docs": "quality/docs/raw.enterprise.html",
                    },
                    {
                        "suite": "raw.enterprise_role",
                        "table": "qygd",
                        "success": False,
                        "severity": "warning",
                        "failed_expectations": [
                            {
                                "expectation": "expect_column_values_to_match_regex",
                                "column": "gdzjhm",
                                "observed": {"partial_unexpected_list": [ID_A]},
                            }
                        ],
                        "data_docs": "quality/docs/raw.enterprise_role.html",
                    },
                ]
            }
        ),
        encoding="utf-8",
    )
    write_department_report(storage_root, scjg, DS)
    report = _report(storage_root)
    schema.validate(report)
    assert report["quality"]["available"] and report["quality"]["passed"] is False
    assert report["quality"]["critical_failed"] is False
    html = _html(storage_root)
    assert 'href="../../../quality/docs/raw.enterprise_role.html"' in html
    assert (storage_root.report_dir("scjg", DS) / "../../../quality/docs/x").resolve().parent == (
        storage_root.root / "quality" / "docs"
    ).resolve()
    assert "expect_column_values_to_match_regex" in html and "未通过" in html
    assert not full_id_numbers(html) and "质量检查暂未启用" not in html


@pytest.mark.parametrize("with_zh", [False, True])
def test_consistency_findings_concerning_the_department(
    storage_root: StorageRoot, scjg: Department, schema, with_zh: bool
) -> None:
    from deltalake import write_deltalake

    success_night(storage_root)
    ids = [ID_A, ID_B, ID_C, _id("33010619600101004"), _id("33010619600101005")]
    findings = pa.table(
        {
            "finding": ["NAME_MISMATCH"] * 4 + ["BIRTH_DATE_MISMATCH", "NAME_MISMATCH"],
            "department": ["scjg"] * 5 + ["gjj"],
            "authoritative_department": ["gongan"] * 6,
            "id_number": [*ids[:4], ids[4], ids[0]],
            "field": ["legal_rep_name"] * 4 + ["birth_date", "name"],
            "business_date": pa.array([DS - timedelta(days=1)] * 6, pa.date32()),
        }
    )
    if with_zh:  # optional: the finding's message in Chinese
        findings = findings.append_column("finding_zh", pa.array(["姓名与户籍登记不一致"] * 6))
    write_deltalake(str(storage_root.curated("consistency")), findings)
    write_department_report(storage_root, scjg, DS)
    report = _report(storage_root)
    schema.validate(report)
    f = report["findings"]
    assert f["available"] and f["total"] == 5 and f["business_date"] == "2026-11-19"
    top = f["by_finding"][0]
    assert (top["finding"], top["field"], top["count"]) == ("NAME_MISMATCH", "legal_rep_name", 4)
    assert len(top["examples"]) == 3 and all("********" in e for e in top["examples"])
    html = _html(storage_root)
    assert (
        not full_id_numbers(html) and "公安厅（户籍）" in html and "跨部门比对暂未启用" not in html
    )
    first = min(ids[:4])  # examples are the first IDs in order, masked
    assert top["examples"][0] == f"{first[:6]}********{first[-4:]}" and top["examples"][0] in html
    shown = '<td>姓名与户籍登记不一致 <span class="code">NAME_MISMATCH</span>'
    assert (shown in html) is with_zh
    assert top.get("finding_zh") == ("姓名与户籍登记不一致" if with_zh else None)


# --- overview -------------------------------------------------------------------------------


def test_overview_lists_every_department_and_night(
    storage_root: StorageRoot, scjg: Department
) -> None:
    gongan = load_department(DEPARTMENTS_DIR / "gongan.yaml")
    success_night(storage_root, DS - timedelta(days=2))
    write_department_report(storage_root, scjg, DS - timedelta(days=2))
    failed_night(storage_root)
    write_department_report(storage_root, scjg, DS)
    write_state(storage_root, "gongan", DS, "czrk", **loaded(10, 10, 0, 0))
    write_department_report(storage_root, gongan, DS)
    path = write_overview(storage_root, [gongan, scjg], DS, nights=30)
    assert path == storage_root.root / "reports" / "index.html"
    html = path.read_text(encoding="utf-8")
    rows = re.findall(r'<tr data-department="([a-z]+)">(.*?)</tr>', html, re.S)
    assert [code for code, _ in rows] == ["gongan", "scjg"]
    for code, body in rows:
        nights = re.findall(r'data-night="([0-9-]+)" data-status="([a-z_]+)"', body)
        assert [n for n, _ in nights] == [
            (DS - timedelta(days=k)).isoformat() for k in range(29, -1, -1)
        ]
        statuses = dict(nights)
        if code == "scjg":
            assert statuses[DS.isoformat()] == "failed"
            # loaded with rejected rows: the headline, not a green success
            assert statuses[(DS - timedelta(days=2)).isoformat()] == "action_needed"
            assert sum(s != "none" for s in statuses.values()) == 2
    assert f'href="scjg/{DS.isoformat()}/index.html"' in html
    assert f'href="gongan/{DS.isoformat()}/index.html"' in html
    assert "失败 1" in html and "成功 1" in html
    assert (path.parent / "scjg" / DS.isoformat() / "index.html").is_file()


def test_an_unknown_rule_code_still_reaches_the_csv_and_page(
    storage_root: StorageRoot, scjg: Department
) -> None:
    success_night(storage_root)
    write_state(
        storage_root, "scjg", DS, "qygd", **loaded(40, 39, 1, 0, rejections={"NEW_RULE": 1})
    )
    write_issues(
        storage_root, "scjg", "qygd", DS, [("GD9", "name", "gdmc", "x", "NEW_RULE", "reject")]
    )
    write_department_report(storage_root, scjg, DS)
    assert ["qygd:GD9", "name", "gdmc", "x", "NEW_RULE", "", ""] in _csv_rows(storage_root)
    assert "NEW_RULE" in _html(storage_root)

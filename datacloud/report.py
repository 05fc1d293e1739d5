"""The nightly load report of one department: ``reports/<dept>/<date>/``.

``report.json`` states per table rows in, accepted, rejected and deduplicated, which
reconcile (``rows_in = rows_accepted + rows_rejected + rows_deduplicated``), the rejections
by rule and by field, the night's status with the reason of each failed table, data freshness,
schema changes, and the quality-gate results and cross-department findings when those exist.
Its schema is ``datacloud/schemas/report.schema.json`` (docs/reports.md). ``index.html`` shows
the same facts to the department's data officer, personal information masked. ``rejected.csv``
(UTF-8 with BOM, so spreadsheet software opens the Chinese correctly) has one line per rejected
row and rule, with the raw value: it goes to the department that owns the data, nowhere else.
Its cells are safe to open in a spreadsheet (``csv_cell``: no formula, invisible characters
escaped, at most Excel's 32,767 characters). ``findings.csv`` beside it has every
cross-department finding about the department's data (not only the page's examples), ID numbers
masked as on the page, through the same ``csv_cell``. The headline and the to-do list are
decided from every part of the night (``datacloud.report_verdict``).
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datacloud import (
    failures,
    problem_store,
    problems,
    report_sources,
    report_verdict,
    runstate,
    working_days,
)
from datacloud.atomic import replace_text, replace_with
from datacloud.audit_anchors import anchor_finished_days
from datacloud.cells import safe_cell
from datacloud.config import Department
from datacloud.masking import mask_id_number, mask_text
from datacloud.paths import StorageRoot
from datacloud.problem_workbook import write_workbook
from datacloud.report_html import department_names, render_department, render_overview
from transforms.rules import RULES

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1
ISSUE_BATCH_ROWS = 65_536  # rows of a night's issues file decoded at a time
WORKBOOK = "problems.xlsx"  # the feedback workbook (问题数据反馈表, datacloud.problem_workbook)
SCHEMA_PATH = Path(__file__).parent / "schemas" / "report.schema.json"
STATUS_ZH = {"success": "成功", "partial": "部分成功", "failed": "失败"}
FAILURE_KIND_ZH = failures.KINDS
CSV_HEADER = ["源主键", "字段", "源字段", "原始值", "规则代码", "原因", "修改建议"]
FINDINGS_CSV_HEADER = [
    "比对项代码",
    "比对项",
    "字段",
    "权威部门",
    "记录类型",
    "身份证号码（已脱敏）",
    "比对业务日期",
    "处理建议",
]
COUNTS = ("rows_in", "rows_accepted", "rows_rejected", "rows_deduplicated")
STALE_AFTER_DAYS = 1


@dataclass(frozen=True)
class ReportFiles:
    parent: Path
    status: str  # the load status: success, partial, failed
    headline: str = ""  # the night's headline (report_verdict): success only with nothing to do


def failure_kind(state: dict[str, Any]) -> str:
    """Why a table did not load: the ``failure_kind`` recorded where it failed; a state
    written before kinds were recorded is classified by ``failures.classify_text``."""
    kind = state.get("failure_kind")
    if kind in FAILURE_KIND_ZH:
        return str(kind)
    if state.get("status") in (None, "not_run", "extracted") or "stage" not in state:
        return "not_run"
    if state.get("stage") == "extract":  # a state from before kinds were recorded
        return failures.classify_text(str(state.get("error") or ""))
    return failures.ERROR


def _masked(change: dict[str, Any]) -> dict[str, Any]:
    return {k: mask_text(v) if isinstance(v, str) else v for k, v in change.items()}


def _freshness(latest: str | None, ds: date) -> dict[str, Any]:
    try:
        when = datetime.fromisoformat(str(latest)) if latest else None
    except ValueError:
        when = None
    if when is None:
        return {"source_lag_days": None, "stale": None}
    lag = (ds - when.date()).days
    return {"source_lag_days": lag, "stale": lag > STALE_AFTER_DAYS}


def _rejected_issues(root: StorageRoot, dept: str, table: str, ds: date) -> pa.Table | None:
    path = root.rejected(dept, table, ds) / "issues.parquet"
    if not path.is_file():
        return None
    # the rejections only, a batch at a time: the file also holds every warning of the night
    # with its raw value, which grows with the rows read
    issues = pq.ParquetFile(path)
    parts = [issues.schema_arrow.empty_table()]
    for batch in issues.iter_batches(ISSUE_BATCH_ROWS):
        part = pa.Table.from_batches([batch])
        parts.append(part.filter(pc.equal(part["severity"], "reject")))
    return pa.concat_tables(parts).combine_chunks()


def _by_field(issues: pa.Table | None) -> list[dict[str, Any]]:
    if issues is None or not issues.num_rows:
        return []
    keys = ["field", "source_column", "rule_code"]
    counted = issues.group_by(keys).aggregate([([], "count_all")]).to_pylist()
    rows = [{**{k: r[k] for k in keys}, "count": int(r["count_all"])} for r in counted]
    return sorted(rows, key=lambda r: (-r["count"], r["field"], r["rule_code"]))


def _table_entry(
    root: StorageRoot, dept: Department, ds: date, name: str, issues: pa.Table | None
) -> dict[str, Any]:
    spec = dept.table(name)
    state = runstate.read(root, dept.code, ds, name)
    counts = {k: int(state.get(k, 0)) for k in COUNTS}
    latest = state.get("latest_source_update")
    entry: dict[str, Any] = {
        "table": name,
        "description": spec.description,
        "status": "success" if state.get("status") == "success" else "failed",
        **counts,
        "reconciled": counts["rows_in"]
        == counts["rows_accepted"] + counts["rows_rejected"] + counts["rows_deduplicated"],
        "rejections_by_rule": dict(sorted(state.get("rejections", {}).items())),
        "warnings_by_rule": dict(sorted(state.get("warnings", {}).items())),
        "rejections_by_field": _by_field(issues),
        "latest_source_update": latest,
        **_freshness(latest, ds),
        "schema_changes": [_masked(c) for c in state.get("schema_changes") or []],
        # source columns the query selects that no mapping uses (nightly.stage; raw only)
        "unmapped_columns": [str(c) for c in state.get("unmapped_columns") or []],
    }
    if entry["status"] == "failed":
        kind = failure_kind(state)
        entry["failed_stage"] = state.get("stage", "not_run")
        entry["failure_kind"] = kind
        entry["failure_kind_zh"] = FAILURE_KIND_ZH[kind]
        entry["fault"] = report_verdict.side(kind)
        entry["error"] = mask_text(
            str(state.get("error") or "本晚该表未被处理（前序任务失败或未执行）")
        )
    return entry


# Spreadsheet cells (docs/reports.md, rejected.csv): the rule lives in datacloud.cells
csv_cell = safe_cell


def _write_rejected_csv(
    dept: Department, issues_by_table: dict[str, pa.Table | None], path: Path
) -> int:
    """rejected.csv: one line per rejected row and rule, every cell through ``csv_cell``
    (the issues read column by column; a rule's two texts made safe once per rule)."""
    lines = 0

    def write(tmp: Path) -> None:
        nonlocal lines
        with tmp.open("w", encoding="utf-8-sig", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(CSV_HEADER)
            texts: dict[Any, list[str]] = {}
            for spec in dept.tables:
                issues = issues_by_table.get(spec.name)
                if issues is None:
                    continue
                columns = [
                    issues[c].to_pylist()
                    for c in ("source_pk", "field", "source_column", "raw_value", "rule_code")
                ]
                for pk, field, source_column, raw, code in zip(*columns, strict=True):
                    if code not in texts:
                        r = RULES.get(code)  # an unknown code still gets its line
                        texts[code] = [
                            csv_cell(r.zh if r else ""),
                            csv_cell(r.hint_zh if r else ""),
                        ]
                    w.writerow(
                        [
                            csv_cell(f"{spec.name}:{pk}"),
                            csv_cell(field),
                            csv_cell(source_column),
                            csv_cell(raw),
                            csv_cell(code),
                            *texts[code],
                        ]
                    )
                    lines += 1

    replace_with(path, write)
    return lines


def _write_findings_csv(rows: list[dict[str, Any]], names: dict[str, str], path: Path) -> int:
    """findings.csv: one line per finding (all of them, not the page's examples), the ID number
    masked, every cell through ``csv_cell``; a header alone when there are none."""

    def write(tmp: Path) -> None:
        with tmp.open("w", encoding="utf-8-sig", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(FINDINGS_CSV_HEADER)
            for row in rows:
                code = str(row.get("finding") or "")
                authority = str(row.get("authoritative_department") or "")
                cells = [
                    code,
                    row.get("finding_zh") or "",
                    row.get("field") or "",
                    "、".join(names.get(a, a) for a in authority.split(",") if a),
                    row.get("record_kinds") or "",
                    row.get("id_number") or "",
                    row.get("business_date") or "",
                    report_verdict.finding_hint(code),
                ]
                w.writerow([csv_cell(c) for c in cells])

    replace_with(path, write)
    return len(rows)


def _issues_by_table(root: StorageRoot, dept: Department, ds: date) -> dict[str, pa.Table | None]:
    """Rejected issues of the tables normalised tonight: loaded, or stopped by the quality gate
    (which writes its rejected rows before it stops); another failed table's files may be stale."""
    out: dict[str, pa.Table | None] = {}
    for spec in dept.tables:
        state = runstate.read(root, dept.code, ds, spec.name)
        fresh = state.get("status") == "success" or state.get("failure_kind") == "quality_gate"
        out[spec.name] = _rejected_issues(root, dept.code, spec.name, ds) if fresh else None
    return out


# --- 问题整改: the department's problems as the problem table holds them (docs/problems.md) ---

PROBLEM_LIST_MAX = 50  # rows of each list on the page and in report.json (the workbook has all)
DUE_NEXT_MAX = 5  # the next deadlines shown (each with its number of problems)


def _problem_key(row: dict[str, Any]) -> str:
    """A problem's source key as shown: the person's ID number masked, then every ID or
    mobile number left (a finding's key is the ID number itself)."""
    text = str(row.get("source_key") or "")
    person = row.get("person_key")
    if person and person in text:
        text = text.replace(person, mask_id_number(person))
    return mask_text(text)


def _problem_item(row: dict[str, Any], ds: date) -> dict[str, Any]:
    due = row["due"]
    return {
        "problem_id": row["problem_id"],
        "kind": row["kind"],
        "table": row["table"],
        "source_key": _problem_key(row),
        "field": row.get("field"),
        "rule": row["rule"],
        "message_zh": mask_text(str(row.get("message_zh") or "")),
        "status": row["status"],
        "first_seen": row["first_seen"].isoformat(),
        "due": due.isoformat(),
        "days_overdue": max((ds - due).days, 0),
        "age_days": (ds - row["first_seen"]).days,
        "response": row.get("response"),
        "disputed_since": row["disputed_since"].isoformat() if row["disputed_since"] else None,
        "fix_failed": bool(row["fix_failed"]),
    }


def problems_as_of(root: StorageRoot, ds: date, dept: str | None = None) -> pa.Table | None:
    """The problem table as ``ds`` sees it (``dept``'s rows only when given), read once for
    the section and the workbook (and, by ``nightly.refresh_reports``, once for every
    department); None when unreadable (each part then reads and reports on its own)."""
    try:
        if dept is not None:  # the department's filter pushed into the read
            return problem_store.read_problems_where(root, dept, as_of=ds)
        return problem_store.read_problems(root, dept, as_of=ds)
    except Exception:  # problem_figures and the workbook say why, each in its place
        return None


def rows_of(problem_table: pa.Table | None, dept: str) -> pa.Table | None:
    """One department's rows of the problem table (as ``read_problems(dept=...)`` gives)."""
    if problem_table is None:
        return None
    return problem_table.filter(pc.equal(problem_table["dept"], dept))


def _first_rows(table: pa.Table, chosen: pa.Array | pa.ChunkedArray, by: str) -> list[Any]:
    """The chosen rows ordered by ``by`` then problem ID (a stable sort), the first
    ``PROBLEM_LIST_MAX`` of them as dicts."""
    rows = table.filter(chosen)
    order = pc.sort_indices(rows, sort_keys=[(by, "ascending"), ("problem_id", "ascending")])
    return rows.take(order[:PROBLEM_LIST_MAX]).to_pylist()


def problem_figures(
    root: StorageRoot, dept: Department, ds: date, table: pa.Table | None = None
) -> dict[str, Any]:
    """The 问题整改 section: the department's problems as the latest tracking night up to
    ``ds`` left the problem table (``tracked_night``; the department DAG's report, written
    before tonight's tracking, shows the night before). ``{"available": False}`` before the
    first tracking night. ``table``: those rows already read (``problems_as_of``). Counted
    column-wise: only the rows of the lists shown become Python objects."""
    try:
        night = problem_store.latest_night(root)
        if table is None:
            table = problem_store.read_problems(root, dept.code, as_of=ds)
        tracked = problem_store.night_as_of(root, ds) if night is not None else None
    except Exception as e:  # an unreadable table must not stop the report
        log.warning("problem table unreadable for %s: %s", dept.code, e)
        return {"available": True, "error": f"问题台账无法读取：{type(e).__name__}"}
    if tracked is None:
        return {"available": False}
    figures = problems.summary(table, tracked)
    is_open = pc.is_in(table["status"], value_set=pa.array(problem_store.OPEN, pa.string()))
    opened = table.filter(pc.fill_null(is_open, False))
    overdue = pc.fill_null(opened["overdue"], False)
    disputed = pc.is_valid(opened["disputed_since"])
    fix_failed = pc.fill_null(opened["fix_failed"], False)
    # by when: the deadlines still ahead (open, not overdue, not disputed), earliest first
    waiting = opened.filter(pc.and_(pc.invert(overdue), pc.invert(disputed)))
    per_due = waiting.group_by("due").aggregate([([], "count_all")]).sort_by("due")
    due_next = [
        {"due": r["due"].isoformat(), "count": int(r["count_all"])}
        for r in per_due.slice(0, DUE_NEXT_MAX).to_pylist()
    ]
    years = working_days.library_years()
    spells = pa.table(
        {"first": pc.year(opened["first_seen"]), "last": pc.year(opened["due"])}
    ).group_by(["first", "last"])
    spans = {y for r in spells.aggregate([]).to_pylist() for y in range(r["first"], r["last"] + 1)}
    per_table = (
        opened.select(["table"])
        .append_column("overdue", overdue.cast(pa.int64()))
        .group_by("table")
        .aggregate([([], "count_all"), ("overdue", "sum")])
        .to_pylist()
    )
    return {
        "available": True,
        "tracked_night": tracked.isoformat(),
        **figures,
        "due_working_days": dept.problem_due_working_days,
        "calendar": {
            "library": working_days.LIBRARY,
            "library_version": working_days.LIBRARY_VERSION,
            "library_years": [years.start, years.stop - 1],
            "fallback_years": sorted(y for y in spans if y not in years),
        },
        "by_table": [
            {"table": r["table"], "open": int(r["count_all"]), "overdue": int(r["overdue_sum"])}
            for r in sorted(per_table, key=lambda r: r["table"])
        ],
        "due_next": due_next,
        "overdue_list": [_problem_item(r, tracked) for r in _first_rows(opened, overdue, "due")],
        "disputed_list": [
            _problem_item(r, tracked) for r in _first_rows(opened, disputed, "disputed_since")
        ],
        "fix_failed_list": [
            _problem_item(r, tracked) for r in _first_rows(opened, fix_failed, "due")
        ],
    }


def _write_workbook(
    root: StorageRoot, dept: Department, ds: date, path: Path, table: pa.Table | None = None
) -> int | None:
    """The feedback workbook (problems.xlsx) of the department's open problems as the table
    stands for ``ds`` (``table``: those rows already read); None (and no file) before the
    first tracking night."""
    if problem_store.night_as_of(root, ds) is None:
        return None
    if table is None:
        table = problem_store.read_problems(root, dept.code, as_of=ds)
    return write_workbook(path, table, dept.code)


def build_report(
    root: StorageRoot,
    dept: Department,
    ds: date,
    issues_by_table: dict[str, pa.Table | None] | None = None,
    problem_rows: pa.Table | None = None,
) -> dict[str, Any]:
    """The facts of one department night as a dict (the content of report.json);
    ``problem_rows``: the department's problem table as ``ds`` sees it, when already read."""
    if issues_by_table is None:
        issues_by_table = _issues_by_table(root, dept, ds)
    tables = [
        _table_entry(root, dept, ds, t.name, issues_by_table.get(t.name)) for t in dept.tables
    ]
    ok = sum(t["status"] == "success" for t in tables)
    status = "success" if ok == len(tables) else ("partial" if ok else "failed")
    totals: dict[str, Any] = {k: sum(t[k] for t in tables) for k in COUNTS}
    totals["reconciled"] = all(t["reconciled"] for t in tables)
    return {
        "schema_version": SCHEMA_VERSION,
        "department": dept.code,
        "department_name": dept.name,
        "business_date": ds.isoformat(),
        "generated_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "status": status,
        "status_zh": STATUS_ZH[status],
        "status_reasons": [
            {
                "table": t["table"],
                "failed_stage": t["failed_stage"],
                "failure_kind": t["failure_kind"],
                "failure_kind_zh": t["failure_kind_zh"],
            }
            for t in tables
            if t["status"] == "failed"
        ],
        "totals": totals,
        "tables": tables,
        "quality": report_sources.quality_results(root, dept.code, ds),
        "findings": report_sources.consistency_findings(root, dept.code, ds),
        "problems": problem_figures(root, dept, ds, problem_rows),
        "files": {
            "rejected_csv": "rejected.csv",
            "findings_csv": "findings.csv",
            "index_html": "index.html",
        },
    }


def write_department_report(
    root: StorageRoot, dept: Department, ds: date, problem_rows: pa.Table | None = None
) -> ReportFiles:
    """Write report.json, rejected.csv and index.html for one department night.

    Reads the night's run state (``runs/<dept>/<date>/``), the rejected issues of the tables
    that loaded, earlier nights' report.json (for the 30-night chart), and the quality-gate
    results and consistency findings when they exist. Works for a failed night too: a table
    without run state is reported as not run. Writes rejected.csv, findings.csv (every
    finding, masked), report.json with the headline and to-do list (``report_verdict``) and
    index.html. Every file is replaced atomically. ``problem_rows``: the department's rows of
    the problem table as ``ds`` sees them, when the caller has read them (else read here).
    """
    out = root.report_dir(dept.code, ds)
    out.mkdir(parents=True, exist_ok=True)
    issues = _issues_by_table(root, dept, ds)
    if problem_rows is None:  # for the section and the workbook
        problem_rows = problems_as_of(root, ds, dept.code)
    report = build_report(root, dept, ds, issues, problem_rows)
    report["rejected_csv_lines"] = _write_rejected_csv(dept, issues, out / "rejected.csv")
    findings = report_sources.finding_rows(
        root, dept.code, (report.get("findings") or {}).get("business_date")
    )
    report["findings_csv_lines"] = _write_findings_csv(
        findings, department_names(), out / "findings.csv"
    )
    try:
        report["workbook_problems"] = _write_workbook(root, dept, ds, out / WORKBOOK, problem_rows)
    except Exception as e:  # the page must be written even when the workbook cannot be
        log.warning("%s %s: feedback workbook not written: %s", dept.code, ds, e)
        report["workbook_problems"] = None
    if report["workbook_problems"] is not None:
        report["files"]["problems_xlsx"] = WORKBOOK
    report.update(report_verdict.verdict(report))
    replace_text(out / "report.json", json.dumps(report, ensure_ascii=False, indent=2))
    replace_text(out / "index.html", render_department(root, report))
    return ReportFiles(parent=out, status=report["status"], headline=report["headline"])


def write_overview(root: StorageRoot, depts: list[Department], ds: date, nights: int = 30) -> Path:
    """Write ``<root>/reports/index.html``: every department's status per night.

    Covers the ``nights`` nights ending at ``ds``, read from each night's report.json; each
    cell links to that department's report of that night.
    """
    anchor_finished_days(root)  # the audit trail's finished days, kept with the reports
    path = root.root / "reports" / "index.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_text(path, render_overview(root, depts, ds, nights))
    return path

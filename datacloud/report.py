"""The nightly load report of one department: ``reports/<dept>/<date>/``.

``report.json`` states per table rows in, accepted, rejected and deduplicated, which
reconcile (``rows_in = rows_accepted + rows_rejected + rows_deduplicated``), the rejections
by rule, and the night's status. ``rejected.csv`` (UTF-8 with BOM, so spreadsheet software
opens the Chinese correctly) has one line per rejected row and rule, with the raw value:
it goes to the department that owns the data, nowhere else.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from datacloud import runstate
from datacloud.config import Department
from datacloud.paths import StorageRoot
from transforms.rules import rule

SCHEMA_VERSION = 1
STATUS_ZH = {"success": "成功", "partial": "部分成功", "failed": "失败"}
CSV_HEADER = ["源主键", "字段", "源字段", "原始值", "规则代码", "原因", "修改建议"]


@dataclass(frozen=True)
class ReportFiles:
    parent: Path
    status: str


def _table_entry(dept: Department, ds: date, root: StorageRoot, name: str) -> dict[str, Any]:
    spec = dept.table(name)
    state = runstate.read(root, dept.code, ds, name)
    counts = {
        k: int(state.get(k, 0))
        for k in ("rows_in", "rows_accepted", "rows_rejected", "rows_deduplicated")
    }
    entry: dict[str, Any] = {
        "table": name,
        "description": spec.description,
        "status": "success" if state.get("status") == "success" else "failed",
        **counts,
        "reconciled": counts["rows_in"]
        == counts["rows_accepted"] + counts["rows_rejected"] + counts["rows_deduplicated"],
        "rejections_by_rule": dict(sorted(state.get("rejections", {}).items())),
        "warnings_by_rule": dict(sorted(state.get("warnings", {}).items())),
        "latest_source_update": state.get("latest_source_update"),
    }
    if entry["status"] == "failed":
        entry["failed_stage"] = state.get("stage", "not_run")
        entry["error"] = state.get("error", "the table was not processed this night")
    return entry


def _write_rejected_csv(root: StorageRoot, dept: Department, ds: date, path: Path) -> int:
    lines = 0
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_HEADER)
        for spec in dept.tables:
            qfile = root.rejected(dept.code, spec.name, ds) / "issues.parquet"
            if not qfile.is_file():
                continue
            issues = pq.read_table(qfile)
            issues = issues.filter(pc.equal(issues["severity"], "reject"))
            for row in issues.to_pylist():
                r = rule(row["rule_code"])
                w.writerow(
                    [
                        f"{spec.name}:{row['source_pk']}",
                        row["field"],
                        row["source_column"],
                        row["raw_value"] if row["raw_value"] is not None else "",
                        r.code,
                        r.zh,
                        r.hint_zh,
                    ]
                )
                lines += 1
    os.replace(tmp, path)
    return lines


def build_report(root: StorageRoot, dept: Department, ds: date) -> dict[str, Any]:
    tables = [_table_entry(dept, ds, root, t.name) for t in dept.tables]
    ok = sum(t["status"] == "success" for t in tables)
    status = "success" if ok == len(tables) else ("partial" if ok else "failed")
    totals = {
        k: sum(t[k] for t in tables)
        for k in ("rows_in", "rows_accepted", "rows_rejected", "rows_deduplicated")
    }
    return {
        "schema_version": SCHEMA_VERSION,
        "department": dept.code,
        "department_name": dept.name,
        "business_date": ds.isoformat(),
        "generated_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "status": status,
        "status_zh": STATUS_ZH[status],
        "totals": totals,
        "tables": tables,
        "files": {"rejected_csv": "rejected.csv"},
    }


def write_department_report(root: StorageRoot, dept: Department, ds: date) -> ReportFiles:
    """Write report.json and rejected.csv for one department night (atomic file replaces)."""
    out = root.report_dir(dept.code, ds)
    out.mkdir(parents=True, exist_ok=True)
    report = build_report(root, dept, ds)
    report["rejected_csv_lines"] = _write_rejected_csv(root, dept, ds, out / "rejected.csv")
    tmp = out / "report.json.tmp"
    tmp.write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    os.replace(tmp, out / "report.json")
    return ReportFiles(parent=out, status=report["status"])

"""What a report reads besides the night's run state: quality-gate results, consistency findings
and earlier nights' reports.

Each reader returns plain dicts for report.json and never raises on a missing or malformed
input: a report must be written whatever else failed. File contracts (docs/reports.md):

- ``quality/<dept>/<date>/gate.json``: ``{"suites": [{"suite", "table", "success",
  "severity": "critical"|"warning", "failed_expectations": [{"expectation", "column",
  "observed", optional "check_zh", "observed_zh"}], "data_docs": "<path relative to the storage root>"}]}``
- ``curated/consistency``: a Delta table with at least ``finding``, ``department``,
  ``authoritative_department``, ``id_number``, ``field``, ``business_date``.
"""

from __future__ import annotations

import json
import logging
from datetime import date, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa
from deltalake import QueryBuilder

from datacloud.delta import open_table, plain_types
from datacloud.masking import mask_id_number, mask_text
from datacloud.paths import StorageRoot

log = logging.getLogger(__name__)
EXAMPLES_PER_FINDING = 3
CONSISTENCY_TABLE = "consistency"


def gate_path(root: StorageRoot, dept: str, ds: date) -> Path:
    return root.quality() / dept / ds.isoformat() / "gate.json"


def _observed(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = mask_text(text)
    return text if len(text) <= 300 else text[:299] + "…"


def _data_docs(value: Any) -> str | None:
    """A Data Docs path relative to the storage root, or None when it is not one."""
    if not isinstance(value, str) or not value or "://" in value or value.startswith("/"):
        return None
    parts = PurePosixPath(value).parts
    return value if ".." not in parts else None


def _suite(raw: dict[str, Any]) -> dict[str, Any]:
    failed = raw.get("failed_expectations") or []
    return {
        "suite": str(raw.get("suite", "")),
        "table": str(raw.get("table", "")),
        "success": bool(raw.get("success")),
        "severity": "critical" if raw.get("severity") == "critical" else "warning",
        "failed_expectations": [
            {
                "expectation": str(f.get("expectation", "")),
                "column": None if f.get("column") is None else str(f.get("column")),
                "observed": _observed(f.get("observed")),
                "check_zh": _observed(f.get("check_zh") or ""),
                "observed_zh": _observed(f.get("observed_zh") or ""),
            }
            for f in failed
            if isinstance(f, dict)
        ],
        "data_docs": _data_docs(raw.get("data_docs")),
    }


def quality_results(root: StorageRoot, dept: str, ds: date) -> dict[str, Any]:
    """The quality-gate results of the night, ``{"available": False}`` when there are none."""
    path = gate_path(root, dept, ds)
    rel = path.relative_to(root.root).as_posix()
    if not path.is_file():
        return {"available": False, "path": rel}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        suites = [_suite(s) for s in data["suites"] if isinstance(s, dict)]
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("%s: quality results unreadable: %s", rel, e)
        return {"available": True, "path": rel, "error": f"文件无法读取：{type(e).__name__}"}
    return {
        "available": True,
        "path": rel,
        "passed": all(s["success"] for s in suites),
        "critical_failed": any(not s["success"] and s["severity"] == "critical" for s in suites),
        "suites": suites,
    }


def _query(table: Any, sql: str) -> pa.Table:
    reader = QueryBuilder().register("c", table).execute(sql)
    return plain_types(pa.table(reader.read_all()))


def consistency_findings(root: StorageRoot, dept: str, ds: date) -> dict[str, Any]:
    """Findings about this department's data in the latest comparison up to ``ds``.

    Counts per finding, field and authoritative department, with a few masked ID numbers as
    examples (and the finding's Chinese message when the table has ``finding_zh``).
    ``{"available": False}`` when the consistency table does not exist yet.
    """
    table = open_table(root.curated(CONSISTENCY_TABLE))
    if table is None:
        return {"available": False}
    # dept is a validated code ([a-z][a-z0-9_]*) and ds a date: safe to inline
    where = f"department = '{dept}' AND CAST(business_date AS VARCHAR) <= '{ds.isoformat()}'"
    keys = "finding, field, authoritative_department"
    if "finding_zh" in {f.name for f in table.schema().fields}:
        keys += ", finding_zh"
    try:
        latest = _query(
            table, f"SELECT MAX(CAST(business_date AS VARCHAR)) AS d FROM c WHERE {where}"
        )
        night = latest["d"][0].as_py()
        if night is None:
            return {"available": True, "business_date": None, "total": 0, "by_finding": []}
        where = f"department = '{dept}' AND CAST(business_date AS VARCHAR) = '{night}'"
        counts = _query(
            table,
            f"SELECT {keys}, COUNT(*) AS n FROM c WHERE {where} "
            f"GROUP BY {keys} ORDER BY n DESC, finding, field",
        )
        examples = _query(
            table,
            f"SELECT {keys}, id_number FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY {keys} "
            f"ORDER BY id_number) AS k FROM c WHERE {where}) WHERE k <= {EXAMPLES_PER_FINDING}",
        )
    except Exception as e:  # a table not (yet) following the contract must not stop the report
        log.warning("curated/consistency unreadable for %s: %s", dept, e)
        return {"available": True, "error": f"比对结果无法读取：{type(e).__name__}"}
    names = [k.strip() for k in keys.split(",")]
    masked = mask_id_number(examples["id_number"].cast(pa.string()))
    by_key: dict[tuple[Any, ...], list[str]] = {}
    for row, example in zip(examples.select(names).to_pylist(), masked.to_pylist(), strict=True):
        by_key.setdefault(tuple(row.values()), []).append(example)
    by_finding = []
    for r in counts.to_pylist():
        key = tuple(r[k] for k in names)
        by_finding.append(
            {**{k: r[k] for k in names}, "count": int(r["n"]), "examples": by_key.get(key, [])}
        )
    return {
        "available": True,
        "business_date": str(night)[:10],
        "total": sum(f["count"] for f in by_finding),
        "by_finding": by_finding,
    }


FINDING_COLUMNS = (
    "finding",
    "finding_zh",
    "field",
    "authoritative_department",
    "record_kinds",
    "id_number",
    "business_date",
)


def finding_rows(root: StorageRoot, dept: str, night: str | None) -> list[dict[str, Any]]:
    """Every finding about this department's data of one comparison night (``findings``'
    ``business_date``), ordered by finding, field and ID number, the ID number masked
    (``id_number`` holds the masked form only). Empty when there is no such night or the table
    is unreadable (the findings section says so already)."""
    table = open_table(root.curated(CONSISTENCY_TABLE)) if night else None
    if table is None or night is None:
        return []
    have = {f.name for f in table.schema().fields}
    wanted = [c for c in FINDING_COLUMNS if c in have]
    try:
        date.fromisoformat(night)  # inlined below: a date, nothing else
        rows = _query(
            table,
            f"SELECT {', '.join(wanted)} FROM c WHERE department = '{dept}' "
            f"AND CAST(business_date AS VARCHAR) = '{night}' ORDER BY finding, field, id_number",
        )
    except Exception as e:  # as consistency_findings: never stops the report
        log.warning("curated/consistency unreadable for %s: %s", dept, e)
        return []
    masked = mask_id_number(rows["id_number"].cast(pa.string())).to_pylist()
    out = []
    for row, shown in zip(rows.to_pylist(), masked, strict=True):
        row["id_number"] = shown
        row["business_date"] = str(row.get("business_date") or "")[:10]
        out.append({c: row.get(c) for c in FINDING_COLUMNS})
    return out


def night_range(ds: date, nights: int) -> list[date]:
    """The ``nights`` business dates ending at ``ds``, oldest first."""
    return [ds - timedelta(days=k) for k in range(nights - 1, -1, -1)]


def read_report(root: StorageRoot, dept: str, night: date) -> dict[str, Any] | None:
    """The report.json of one department night, or None when there is none (or it is unreadable)."""
    path = root.report_dir(dept, night) / "report.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None

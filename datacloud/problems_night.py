"""The tracking night of the problem-data loop: read tonight's problems of every department
(the rejected rows of the tables normalised tonight, tonight's cross-department findings),
apply the responses log, publish the problem table (``datacloud.problems``, docs/problems.md).

Runs in the curation DAG after ``curate`` (which publishes the findings) and before
``refresh_reports`` (which shows the table in each department's 问题整改 section). A rerun of a
night starts from the table as the nights before left it and writes the same rows: no new
Delta version. A night older than the table's latest is not tracked again (it would rewrite
later nights' state).
"""

from __future__ import annotations

import json
import logging
import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datacloud import problem_store, problems, runstate
from datacloud.config import Department
from datacloud.consistency import MENTIONS
from datacloud.consistency import TABLE as CONSISTENCY
from datacloud.curation_night import read_state
from datacloud.delta import open_table, read_loaded
from datacloud.landing import read_partition
from datacloud.normalise import SOURCE_PK, source_pk
from datacloud.paths import StorageRoot
from datacloud.working_days import WorkingCalendar
from transforms.id_number import is_valid_id_number, upgrade_15_to_18
from transforms.rules import RULES

log = logging.getLogger(__name__)


def normalised_tonight(root: StorageRoot, dept: str, ds: date, table: str) -> bool:
    """Whether the table's rows went through the rules tonight: it loaded, or the quality gate
    stopped it after normalising (its rejected rows are written before the gate)."""
    state = runstate.read(root, dept, ds, table)
    return state.get("status") == "success" or state.get("failure_kind") == "quality_gate"


def person_key(raw: Any) -> str | None:
    """A raw ID number as the 18-character number it names, None unless it is a valid one."""
    if raw is None:
        return None
    text = unicodedata.normalize("NFKC", str(raw)).replace(" ", "").upper()
    if len(text) == 15 and text.isdigit():
        text = upgrade_15_to_18(text)
    return text if len(text) == 18 and is_valid_id_number(text) else None


def _person_keys(root: StorageRoot, dept: Department, table: str, ds: date) -> dict[str, str]:
    """Source key -> the ID number of the person a rejected row concerns (its first person)."""
    spec = dept.table(table)
    people = MENTIONS.get(spec.kind) or []
    path = root.rejected(dept.code, table, ds) / "rows.parquet"
    if not people or not path.is_file():
        return {}
    column = spec.columns.get(people[0][0])
    if column is None or column.source is None:
        return {}
    rows = pq.read_table(path)
    if column.source not in rows.column_names or SOURCE_PK not in rows.column_names:
        return {}
    out = {}
    for pk, raw in zip(rows[SOURCE_PK].to_pylist(), rows[column.source].to_pylist(), strict=True):
        key = person_key(raw)
        if key is not None and pk is not None:
            out[str(pk)] = key
    return out


@dataclass
class Rejected:
    """Tonight's rejected-row problems (``problems.OBSERVED_SCHEMA``), the (department, table)
    sources normalised tonight and, per incremental table, the source keys read tonight."""

    observed: pa.Table
    covered: set[tuple[str, str]]
    keys_read: dict[tuple[str, str], set[str]]


def _keys_read(root: StorageRoot, dept: Department, table: str, ds: date) -> set[str]:
    """The source keys of the rows extracted tonight (its raw partition)."""
    spec = dept.table(table)
    raw = read_partition(root.raw_partition(dept.code, table, ds))
    if not raw.num_rows or any(c not in raw.column_names for c in spec.primary_key):
        return set()
    return {str(k) for k in source_pk(raw.select(spec.primary_key), spec).to_pylist()}


def read_rejected(root: StorageRoot, depts: list[Department], ds: date) -> Rejected:
    """Tonight's rejected rows of every department table normalised tonight, as problems."""
    parts = []
    covered: set[tuple[str, str]] = set()
    keys_read: dict[tuple[str, str], set[str]] = {}
    for dept in depts:
        for spec in dept.tables:
            if not normalised_tonight(root, dept.code, ds, spec.name):
                continue
            covered.add((dept.code, spec.name))
            if spec.mode == "incremental":
                keys_read[(dept.code, spec.name)] = _keys_read(root, dept, spec.name, ds)
            path = root.rejected(dept.code, spec.name, ds) / "issues.parquet"
            if not path.is_file():
                continue
            issues = pq.read_table(path)
            issues = issues.filter(pc.equal(issues["severity"], "reject"))
            if not issues.num_rows:
                continue
            keys = _person_keys(root, dept, spec.name, ds)
            pks = [str(k) for k in issues["source_pk"].to_pylist()]
            rules = issues["rule_code"].to_pylist()
            n = issues.num_rows
            parts.append(
                pa.table(
                    {
                        "kind": ["rejected_row"] * n,
                        "dept": [dept.code] * n,
                        "table": [spec.name] * n,
                        "source_key": pks,
                        "field": issues["field"].to_pylist(),
                        "rule": rules,
                        "message_zh": [RULES[c].zh if c in RULES else c for c in rules],
                        "person_key": [keys.get(k) for k in pks],
                    },
                    schema=problems.OBSERVED_SCHEMA,
                )
            )
    observed = pa.concat_tables(parts) if parts else problems.OBSERVED_SCHEMA.empty_table()
    return Rejected(observed, covered, keys_read)


def read_findings(
    root: StorageRoot, depts: list[Department], ds: date
) -> tuple[pa.Table, set[tuple[str, str]]]:
    """Tonight's cross-department findings as problems, and the departments' ``consistency``
    sources when curation compared tonight (findings of ``ds``, or the curation state says it
    ran for ``ds`` and found none)."""
    dt = open_table(root.curated(CONSISTENCY))
    rows = read_loaded(dt) if dt is not None else None
    if rows is not None and rows.num_rows:
        rows = rows.filter(pc.equal(pc.cast(rows["business_date"], pa.date32()), ds))
    state = read_state(root) or {}
    compared = (rows is not None and rows.num_rows > 0) or state.get("ds") == ds.isoformat()
    if not compared:
        return problems.OBSERVED_SCHEMA.empty_table(), set()
    covered = {(d.code, problems.FINDING_TABLE) for d in depts}
    if rows is None or not rows.num_rows:
        return problems.OBSERVED_SCHEMA.empty_table(), covered
    ids = pc.cast(rows["id_number"], pa.string())
    n = rows.num_rows
    zh = rows["finding_zh"] if "finding_zh" in rows.column_names else rows["finding"]
    observed = pa.table(
        {
            "kind": ["finding"] * n,
            "dept": pc.cast(rows["department"], pa.string()),
            "table": [problems.FINDING_TABLE] * n,
            "source_key": ids,
            "field": pc.cast(rows["field"], pa.string()),
            "rule": pc.cast(rows["finding"], pa.string()),
            "message_zh": pc.cast(zh, pa.string()),
            "person_key": ids,
        },
        schema=problems.OBSERVED_SCHEMA,
    )
    return observed, covered


def read_responses(root: StorageRoot, depts: list[Department]) -> list[problems.Response]:
    """Every response of the departments' logs; a line that does not follow the contract (a
    torn last line after a crash) is skipped with a warning."""
    out = []
    for dept in depts:
        path = root.problem_responses(dept.code)
        if not path.is_file():
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                response = problems.Response.from_record(record)
            except (ValueError, KeyError, TypeError) as e:
                log.warning("%s line %d: skipped, not a response record: %s", path.name, n, e)
                continue
            if response.dept == dept.code:
                out.append(response)
    return out


def track_night(
    root: StorageRoot,
    depts: list[Department],
    ds: date,
    run_id: str,
    calendar: WorkingCalendar | None = None,
) -> dict[str, Any]:
    """Track night ``ds``: tonight's problems against the table the nights before left, the
    responses applied, the table published (no new version when nothing changed). Returns
    the version, the counts per department and the calendar the due dates were counted on."""
    latest = problem_store.latest_night(root)
    if latest is not None and latest > ds:
        log.warning(
            "problems: night %s not tracked: the table already holds the later night %s",
            ds.isoformat(),
            latest.isoformat(),
        )
        return {"version": problem_store.version(root), "skipped": True, "counts": {}}
    calendar = calendar or WorkingCalendar.load()
    days = {d.code: d.problem_due_working_days for d in depts}

    def due(dept: str, day: date) -> date:
        return calendar.add(day, days.get(dept, 5))

    rejected = read_rejected(root, depts, ds)
    findings, compared = read_findings(root, depts, ds)
    observed = pa.concat_tables([rejected.observed, findings])
    responses = problems.latest_responses(read_responses(root, depts), ds)
    table = problems.track(
        problem_store.read_before(root, ds),
        observed,
        rejected.covered | compared,
        responses,
        ds,
        due,
        rejected.keys_read,
    )
    version = problem_store.write_problems(root, table, ds, run_id)
    counts = {
        d.code: problems.summary(table.filter(pc.equal(table["dept"], d.code)), ds) for d in depts
    }
    log.info(
        "problems: night %s, version %d, %d problems (%d open)",
        ds.isoformat(),
        version,
        table.num_rows,
        sum(c["open"] for c in counts.values()),
    )
    return {
        "version": version,
        "rows": table.num_rows,
        "counts": {k: {"open": v["open"], "overdue": v["overdue"]} for k, v in counts.items()},
        "calendar": calendar.source(),
    }

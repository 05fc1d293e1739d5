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
from deltalake import DeltaTable

from datacloud import problem_store, problems, runstate
from datacloud.config import Department
from datacloud.consistency import MENTIONS
from datacloud.consistency import TABLE as CONSISTENCY
from datacloud.curation_night import read_state
from datacloud.delta import has_deletion_vectors, open_table, plain_types, read_loaded
from datacloud.landing import MissingColumns, iter_partition
from datacloud.normalise import SOURCE_PK, source_pk
from datacloud.paths import StorageRoot
from datacloud.working_days import WorkingCalendar
from transforms.id_number import is_valid_id_number, upgrade_15_to_18
from transforms.rules import RULES

log = logging.getLogger(__name__)
KEY_BATCH_ROWS = 131_072  # rows of a raw partition's key columns decoded at a time
# the columns of a consistency finding a problem takes (finding_zh: not in older tables)
FINDING_COLUMNS = ("business_date", "department", "field", "finding", "finding_zh", "id_number")
Source = tuple[str, str]  # (department, table)


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
    sources normalised tonight and, of those, the incremental tables (whose rows not read
    again tonight are not fixed by their absence: ``keys_read``)."""

    observed: pa.Table
    covered: set[Source]
    incremental: set[Source]


def wanted_keys(*tables: pa.Table) -> dict[Source, set[str]]:
    """Per (department, table), the source keys of the problems in ``tables`` (the previous
    problem table, tonight's observed problems): the only keys ``problems.track`` asks
    ``keys_read`` about. Bounded by the problems, not by the sources' rows."""
    out: dict[Source, set[str]] = {}
    for table in tables:
        for dept, name, key in zip(
            table["dept"].to_pylist(),
            table["table"].to_pylist(),
            table["source_key"].to_pylist(),
            strict=True,
        ):
            out.setdefault((dept, name), set()).add(str(key))
    return out


def _keys_read(
    root: StorageRoot, dept: Department, table: str, ds: date, wanted: set[str]
) -> set[str]:
    """The keys of ``wanted`` that are source keys of rows extracted tonight (the table's raw
    partition). Only the primary-key columns are decoded, ``KEY_BATCH_ROWS`` rows at a time,
    each batch's keys (``normalise.source_pk``, the same text as the rejected rows carry)
    tested against ``wanted``: memory is a batch plus the hits, whatever the partition's size
    (``landing.iter_partition``). Without ``wanted`` nothing is decoded (the files are only
    counted), nor when a file lacks a key column (no key read tonight is known: none).
    Raises IncompletePartition as ``landing.read_partition`` would (no marker, a file it
    names missing, another row count than it names)."""
    spec = dept.table(table)
    partition = root.raw_partition(dept.code, table, ds)
    columns = list(spec.primary_key) if wanted else []
    values = pa.array(sorted(wanted), pa.string())
    hits: set[str] = set()
    try:
        for batch in iter_partition(partition, KEY_BATCH_ROWS, columns):
            if wanted:
                keys = source_pk(batch, spec)
                hits.update(keys.filter(pc.is_in(keys, value_set=values)).to_pylist())
    except MissingColumns:
        for _ in iter_partition(partition, KEY_BATCH_ROWS, []):
            pass  # the files are still counted against the marker
        return set()
    return hits


def keys_read(
    root: StorageRoot,
    depts: list[Department],
    ds: date,
    incremental: set[Source],
    wanted: dict[Source, set[str]],
) -> dict[Source, set[str]]:
    """Per incremental table normalised tonight, the keys of ``wanted`` (``wanted_keys``) read
    again tonight: what ``problems.track`` needs to tell a row fixed at its source from a row
    not extracted tonight, without holding every source key of the night."""
    by_code = {d.code: d for d in depts}
    return {
        (code, table): _keys_read(root, by_code[code], table, ds, wanted.get((code, table), set()))
        for code, table in sorted(incremental)
    }


def read_rejected(root: StorageRoot, depts: list[Department], ds: date) -> Rejected:
    """Tonight's rejected rows of every department table normalised tonight, as problems."""
    parts = []
    covered: set[Source] = set()
    incremental: set[Source] = set()
    for dept in depts:
        for spec in dept.tables:
            if not normalised_tonight(root, dept.code, ds, spec.name):
                continue
            covered.add((dept.code, spec.name))
            if spec.mode == "incremental":
                incremental.add((dept.code, spec.name))
            path = root.rejected(dept.code, spec.name, ds) / "issues.parquet"
            if not path.is_file():
                continue
            # the rejections only, the columns a problem takes: the file also holds every
            # warning of the night with its raw value, which grows with the rows read
            issues = pq.read_table(
                path,
                columns=["source_pk", "field", "rule_code"],
                filters=pc.field("severity") == "reject",
            )
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
    return Rejected(observed, covered, incremental)


def _findings_of(dt: DeltaTable, ds: date) -> pa.Table:
    """The ``consistency`` rows of night ``ds``, only the columns a problem takes: the date
    filter goes into the read (the table keeps ``KEEP_NIGHTS`` nights; the files and row
    groups of other nights are skipped on their statistics, the rest filtered as decoded)."""
    schema = pa.schema(dt.schema().to_arrow())
    columns = [c for c in FINDING_COLUMNS if c in schema.names]
    night = pc.field("business_date")
    if schema.field("business_date").type != pa.date32():  # cast, as the whole read did
        night = night.cast(pa.date32())
    where = night == pa.scalar(ds, pa.date32())
    if has_deletion_vectors(dt):  # deltalake's pyarrow dataset refuses such a table
        return read_loaded(dt, columns).filter(where)
    return plain_types(dt.to_pyarrow_table(columns=columns, filters=where))


def read_findings(
    root: StorageRoot, depts: list[Department], ds: date
) -> tuple[pa.Table, set[tuple[str, str]]]:
    """Tonight's cross-department findings as problems, and the departments' ``consistency``
    sources when curation compared tonight (findings of ``ds``, or the curation state says it
    ran for ``ds`` and found none)."""
    dt = open_table(root.curated(CONSISTENCY))
    rows = _findings_of(dt, ds) if dt is not None else None
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

    previous = problem_store.read_before(root, ds)
    rejected = read_rejected(root, depts, ds)
    findings, compared = read_findings(root, depts, ds)
    observed = pa.concat_tables([rejected.observed, findings])
    read = keys_read(root, depts, ds, rejected.incremental, wanted_keys(previous, observed))
    responses = problems.latest_responses(read_responses(root, depts), ds)
    table = problems.track(
        previous, observed, rejected.covered | compared, responses, ds, due, read
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

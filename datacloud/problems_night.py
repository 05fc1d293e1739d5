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

import itertools
import json
import logging
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable

from datacloud import problem_store, problems, runstate
from datacloud import problems_buckets as buckets
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
    where = _on_night(schema, ds)
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
    return _observed_findings(rows), covered


def _observed_findings(rows: pa.Table) -> pa.Table:
    """``consistency`` rows as problems (``problems.OBSERVED_SCHEMA``): the person's ID number
    is the source key."""
    ids = pc.cast(rows["id_number"], pa.string())
    n = rows.num_rows
    zh = rows["finding_zh"] if "finding_zh" in rows.column_names else rows["finding"]
    return pa.table(
        {
            "kind": pa.array(["finding"] * n, pa.string()),
            "dept": pc.cast(rows["department"], pa.string()),
            "table": pa.array([problems.FINDING_TABLE] * n, pa.string()),
            "source_key": ids,
            "field": pc.cast(rows["field"], pa.string()),
            "rule": pc.cast(rows["finding"], pa.string()),
            "message_zh": pc.cast(zh, pa.string()),
            "person_key": ids,
        },
        schema=problems.OBSERVED_SCHEMA,
    )


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


def _due(depts: list[Department], calendar: WorkingCalendar) -> problems.Due:
    days = {d.code: d.problem_due_working_days for d in depts}

    def due(dept: str, day: date) -> date:
        return calendar.add(day, days.get(dept, 5))

    return due


def _issues_path(root: StorageRoot, dept: Department, table: str, ds: date) -> Path:
    return root.rejected(dept.code, table, ds) / "issues.parquet"


def _sources(root: StorageRoot, depts: list[Department], ds: date) -> Rejected:
    """The sources normalised tonight and the incremental ones (``read_rejected``'s
    ``covered`` and ``incremental``), without reading their rows."""
    out = Rejected(problems.OBSERVED_SCHEMA.empty_table(), set(), set())
    for dept in depts:
        for spec in dept.tables:
            if normalised_tonight(root, dept.code, ds, spec.name):
                out.covered.add((dept.code, spec.name))
                if spec.mode == "incremental":
                    out.incremental.add((dept.code, spec.name))
    return out


def _rejected_batches(
    root: StorageRoot, dept: Department, table: str, ds: date
) -> Iterator[pa.Table]:
    """A source's rejected-row problems (``read_rejected``'s rows, ``person_key`` left null:
    it is joined in the bucket), ``KEY_BATCH_ROWS`` issues at a time, column-wise."""
    path = _issues_path(root, dept, table, ds)
    if not path.is_file():
        return
    # the rejections only, the columns a problem takes: the file also holds every warning
    columns = ["source_pk", "field", "rule_code", "severity"]
    for batch in pq.ParquetFile(path).iter_batches(KEY_BATCH_ROWS, columns=columns):
        issues = pa.Table.from_batches([batch])
        issues = issues.filter(pc.fill_null(pc.equal(issues["severity"], "reject"), False))
        n = issues.num_rows
        if not n:
            continue
        rules = pc.cast(issues["rule_code"], pa.string())
        texts = {c: RULES[c].zh if c in RULES else c for c in pc.unique(rules).to_pylist()}
        codes = [c for c in texts if c is not None]
        message = pc.take(
            pa.array([texts[c] for c in codes], pa.string()),
            pc.index_in(rules, value_set=pa.array(codes, pa.string())),
        )
        yield pa.table(
            {
                "kind": pa.array(["rejected_row"] * n, pa.string()),
                "dept": pa.array([dept.code] * n, pa.string()),
                "table": pa.array([table] * n, pa.string()),
                "source_key": pc.fill_null(pc.cast(issues["source_pk"], pa.string()), "None"),
                "field": pc.cast(issues["field"], pa.string()),
                "rule": rules,
                "message_zh": message,
                "person_key": pa.nulls(n, pa.string()),
            },
            schema=problems.OBSERVED_SCHEMA,
        )


def _person_batches(
    root: StorageRoot, dept: Department, table: str, ds: date
) -> Iterator[pa.Table]:
    """``_person_keys`` a batch at a time, as (dept, table, source_key, person_key) rows."""
    spec = dept.table(table)
    people = MENTIONS.get(spec.kind) or []
    path = root.rejected(dept.code, table, ds) / "rows.parquet"
    if not people or not path.is_file():
        return
    column = spec.columns.get(people[0][0])
    if column is None or column.source is None:
        return
    rows = pq.ParquetFile(path)
    if column.source not in rows.schema_arrow.names or SOURCE_PK not in rows.schema_arrow.names:
        return
    for batch in rows.iter_batches(KEY_BATCH_ROWS, columns=[SOURCE_PK, column.source]):
        found = [
            (str(pk), key)
            for pk, raw in zip(
                batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True
            )
            if pk is not None and (key := person_key(raw)) is not None
        ]
        n = len(found)
        yield pa.table(
            {
                "dept": [dept.code] * n,
                "table": [table] * n,
                "source_key": [k for k, _ in found],
                "person_key": [p for _, p in found],
            }
        )


def _read_batches(
    root: StorageRoot, dept: Department, table: str, ds: date, wanted: bool
) -> Iterator[pa.Table]:
    """``_keys_read`` without ``wanted``: every source key read tonight of the table, a batch
    at a time, as (dept, table, source_key) rows (the bucket tests them against its own
    problems). Raises MissingColumns (after counting the files) when a file lacks a key
    column; nothing is decoded when the table has no problem (``wanted`` false)."""
    spec = dept.table(table)
    partition = root.raw_partition(dept.code, table, ds)
    columns = list(spec.primary_key) if wanted else []
    try:
        for batch in iter_partition(partition, KEY_BATCH_ROWS, columns):
            if wanted:
                keys = source_pk(batch, spec)
                n = len(keys)
                yield pa.table({"dept": [dept.code] * n, "table": [table] * n, "source_key": keys})
    except MissingColumns:
        for _ in iter_partition(partition, KEY_BATCH_ROWS, []):
            pass  # the files are still counted against the marker
        raise


def _findings_stream(dt: DeltaTable, ds: date) -> Iterator[pa.Table]:
    """``_findings_of`` a batch at a time (the date filter in the read); a table with
    deletion vectors is read as ``_findings_of`` reads it."""
    if has_deletion_vectors(dt):
        yield _findings_of(dt, ds)
        return
    schema = pa.schema(dt.schema().to_arrow())
    columns = [c for c in FINDING_COLUMNS if c in schema.names]
    where = _on_night(schema, ds)
    dataset = dt.to_pyarrow_dataset()
    batches = dataset.to_batches(
        columns=columns,
        filter=where,
        batch_size=KEY_BATCH_ROWS,
        batch_readahead=1,  # pyarrow's default holds up to 16 batches of 4 files at once
        fragment_readahead=1,
    )
    for batch in batches:
        if batch.num_rows:
            yield plain_types(pa.Table.from_batches([batch]))


def _findings_batches(dt: DeltaTable | None, ds: date) -> Iterator[pa.Table]:
    """``read_findings``'s problems, ``KEY_BATCH_ROWS`` findings at a time."""
    if dt is None:
        return
    for rows in _findings_stream(dt, ds):
        for batch in rows.to_batches(max_chunksize=KEY_BATCH_ROWS):
            yield _observed_findings(pa.Table.from_batches([batch]))


def _tonight_findings(
    root: StorageRoot, depts: list[Department], ds: date
) -> tuple[DeltaTable | None, int, set[Source]]:
    """The ``consistency`` table when curation compared tonight, tonight's findings counted
    (none read), and the sources compared tonight, as ``read_findings`` decides them."""
    dt = open_table(root.curated(CONSISTENCY))
    found = 0
    if dt is not None:
        found = (
            sum(b.num_rows for b in _findings_stream(dt, ds))
            if has_deletion_vectors(dt)
            else _count_findings(dt, ds)
        )
    state = read_state(root) or {}
    if not found and state.get("ds") != ds.isoformat():
        return None, 0, set()
    return dt, found, {(d.code, problems.FINDING_TABLE) for d in depts}


def _count_findings(dt: DeltaTable, ds: date) -> int:
    """Tonight's findings counted on the ``business_date`` column alone."""
    where = _on_night(pa.schema(dt.schema().to_arrow()), ds)
    return int(dt.to_pyarrow_dataset().count_rows(filter=where))


def _on_night(schema: pa.Schema, ds: date) -> pc.Expression:
    """The filter on ``consistency``'s ``business_date`` for night ``ds`` (the column cast
    to a date when stored otherwise, as the whole read did), pushed into the reads."""
    night = pc.field("business_date")
    if schema.field("business_date").type != pa.date32():
        night = night.cast(pa.date32())
    return night == pa.scalar(ds, pa.date32())


def track_night(
    root: StorageRoot,
    depts: list[Department],
    ds: date,
    run_id: str,
    calendar: WorkingCalendar | None = None,
) -> dict[str, Any]:
    """Track night ``ds``: tonight's problems against the table the nights before left, the
    responses applied, the table published (no new version when nothing changed). Returns
    the version, the counts per department and the calendar the due dates were counted on.

    Every input is read a batch at a time and spilled into buckets on local disk, each bucket
    tracked alone and the table written slice by slice (``problems_buckets``): the same table
    as ``problems.track`` over ``read_before``, ``read_rejected``, ``read_findings`` and
    ``keys_read``, in memory that does not grow with the number of problems."""
    latest = problem_store.latest_night(root)
    if latest is not None and latest > ds:
        log.warning(
            "problems: night %s not tracked: the table already holds the later night %s",
            ds.isoformat(),
            latest.isoformat(),
        )
        return {"version": problem_store.version(root), "skipped": True, "counts": {}}
    calendar = calendar or WorkingCalendar.load()
    due = _due(depts, calendar)
    sources = _sources(root, depts, ds)
    findings, found, compared = _tonight_findings(root, depts, ds)
    previous = problem_store.BatchesBefore(root, ds)
    observed_rows = sum(
        pq.ParquetFile(_issues_path(root, d, s.name, ds)).metadata.num_rows
        for d in depts
        for s in d.tables
        if (d.code, s.name) in sources.covered and _issues_path(root, d, s.name, ds).is_file()
    )
    total = previous.num_rows + observed_rows + found
    responses = problems.latest_responses(read_responses(root, depts), ds)
    scratch = root.root / "scratch" / "problems"
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        spill = buckets.Spill(Path(tmp) / "in", buckets.buckets_for(total))
        spill.folder.mkdir()
        sizes: Counter[Source] = Counter()
        for batch in previous.batches():
            spill.add("previous", batch)
            sizes.update(buckets.sizes_of([batch]))
        by_code = {d.code: d for d in depts}
        observed = (
            b
            for code, table in sorted(sources.covered - compared)
            for b in _rejected_batches(root, by_code[code], table, ds)
        )
        for batch in itertools.chain(observed, _findings_batches(findings, ds)):
            spill.add("observed", buckets.observed_with_ids(batch))
            sizes.update(buckets.sizes_of([batch]))
        for code, table in sorted(sources.covered - compared):
            for batch in _person_batches(root, by_code[code], table, ds):
                spill.add("person", batch)
        unread: set[Source] = set()
        for code, table in sorted(sources.incremental):
            try:
                for batch in _read_batches(
                    root, by_code[code], table, ds, sizes[(code, table)] > 0
                ):
                    spill.add("read", batch)
            except MissingColumns:
                unread.add((code, table))
        spill.close()
        slices = buckets.Slices(Path(tmp) / "out", sizes)
        counts = buckets.Counts()
        for b in range(spill.buckets):
            result = buckets.track_bucket(
                spill,
                b,
                sources.covered | compared,
                sources.incremental,
                unread,
                responses,
                ds,
                due,
            )
            counts.add(result)
            slices.add(result)
        version = problem_store.write_problem_slices(root, slices, ds, run_id)
    open_total = sum(counts.open.values())
    log.info(
        "problems: night %s, version %d, %d problems (%d open)",
        ds.isoformat(),
        version,
        counts.rows,
        open_total,
    )
    return {
        "version": version,
        "rows": counts.rows,
        "counts": {
            d.code: {"open": counts.open[d.code], "overdue": counts.overdue[d.code]} for d in depts
        },
        "calendar": calendar.source(),
    }

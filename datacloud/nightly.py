"""The steps of a department night, one function per Airflow task.

Each function takes plain values (department code, table, business date, run id), does its
work against the storage root and returns a small dict of paths and counts for XCom.
Failures are recorded in the run state before they propagate, so the report can state them.
Error texts are masked (``mask_text``) before they are stored, logged or handed to Airflow: a
driver error may quote a row's ID or mobile number.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import traceback
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, NoReturn

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datacloud import failures, quality, runstate, schema_drift, staging_batches
from datacloud.atomic import replace_with
from datacloud.business_day import now_wall
from datacloud.config import Department, TableSpec, load_department, load_departments
from datacloud.delta import MergeResult, merge_by_key, open_table
from datacloud.delta.staged import merge_batches_by_key
from datacloud.extract import (
    ExtractionError,
    check_schema,
    empty_schema,
    extract_table,
    plan_chunks,
)
from datacloud.landing import chunk_folder, land_chunks, read_partition
from datacloud.masking import mask_text
from datacloud.normalise import (
    SOURCE_PK,
    SOURCE_UPDATED_AT,
    normalise_table,
    source_pk,
    unmapped_columns,
)
from datacloud.paths import StorageRoot, departments_dir
from datacloud.quality import GateResult, QualityGateError
from datacloud.report import problems_as_of, write_department_report, write_overview
from datacloud.staged_rows import staged_deletions

log = logging.getLogger(__name__)
LINEAGE = ["_source", "_ds", "_run_id", "_loaded_at"]


def department(code: str) -> Department:
    """The department of ``code`` (its YAML in the departments folder); the task edge loads it
    once and hands it to the step."""
    return load_department(departments_dir() / f"{code}.yaml")


def _failed(
    root: StorageRoot, code: str, ds: date, table: str, stage: str, error: str, kind: str
) -> None:
    """Record a failed step for the report (before the exception goes on to Airflow), its
    error text masked and its kind (``datacloud.failures``) classified where it failed."""
    runstate.update(
        root,
        code,
        ds,
        table,
        status="failed",
        stage=stage,
        error=mask_text(error),
        failure_kind=kind,
    )


def _reraise(e: BaseException) -> NoReturn:
    """Hand ``e`` on to Airflow, which logs its traceback with every chained exception.

    When neither its text nor anything it chains (a driver error behind ``from e``) holds an
    ID or mobile number, ``e`` goes on as it is. Otherwise a new exception of its type where
    possible carries the masked text ``from None``, so the original message is printed nowhere;
    it keeps the original's frames.
    """
    text = "".join(traceback.format_exception(e))
    if mask_text(text) == text:
        raise e
    masked = mask_text(str(e))
    new: BaseException
    try:
        new = type(e)(masked)
        if str(new) != masked:
            new = RuntimeError(f"{type(e).__name__}: {masked}")
    except Exception:
        new = RuntimeError(f"{type(e).__name__}: {masked}")
    if hasattr(e, "kind"):
        new.kind = e.kind  # type: ignore[attr-defined]
    raise new.with_traceback(e.__traceback__) from None


def initial_load(root: StorageRoot, code: str, table: TableSpec) -> bool:
    """Whether tonight is an incremental table's first load: no staged table yet (a new
    table, or every earlier night stopped before staging), so the whole source is read."""
    return table.mode == "incremental" and open_table(root.staged(code, table.name)) is None


def _load_kind(table: TableSpec, initial: bool) -> dict[str, Any]:
    """The run state's ``initial_load`` (incremental tables only)."""
    return {"initial_load": initial} if table.mode == "incremental" else {}


def extract(
    root: StorageRoot, dept: Department, table_name: str, ds: date, url: Any
) -> dict[str, Any]:
    """Extract one source table into its raw partition, after a schema-drift check (an
    incremental table's first night reads the whole source: ``initial_load``)."""
    code = dept.code
    table = dept.table(table_name)
    runstate.reset(root, code, ds, table_name)
    initial = initial_load(root, code, table)
    try:
        out = extract_table(
            url,
            dept,
            table,
            root.raw_partition(code, table_name, ds),
            ds,
            snapshot=root.schema_snapshot(code, table_name),
            initial=initial,
        )
    except ExtractionError as e:
        _failed(root, code, ds, table_name, "extract", str(e), e.kind)
        _reraise(e)
    runstate.update(
        root,
        code,
        ds,
        table_name,
        status="extracted",
        extracted_rows=out.rows,
        reader=out.reader,
        schema_changes=schema_drift.as_dicts(out.schema_changes),
        **_load_kind(table, initial),
    )
    return {"path": str(out.path), "rows": out.rows}


def plan(
    root: StorageRoot, dept: Department, table_name: str, ds: date, url: Any
) -> list[dict[str, Any]]:
    """Check the schema and cut a chunked table into key ranges (one mapped task each)."""
    code = dept.code
    table = dept.table(table_name)
    runstate.reset(root, code, ds, table_name)
    snapshot = root.schema_snapshot(code, table_name)
    initial = initial_load(root, code, table)
    try:
        changes, current = check_schema(url, dept, table, snapshot)
        chunks = plan_chunks(url, dept, table, ds, initial)
    except ExtractionError as e:
        _failed(root, code, ds, table_name, "extract", str(e), e.kind)
        _reraise(e)
    schema_drift.save(snapshot, current)
    runstate.update(
        root,
        code,
        ds,
        table_name,
        status="planned",
        chunks=len(chunks),
        schema_changes=schema_drift.as_dicts(changes),
        **_load_kind(table, initial),
    )
    return chunks


def extract_chunk(
    root: StorageRoot,
    dept: Department,
    table_name: str,
    ds: date,
    url: Any,
    chunk: dict[str, Any],
    run_key: str,
) -> dict[str, Any]:
    """Extract one key range of a chunked table into the run's chunk folder."""
    code = dept.code
    table = dept.table(table_name)
    partition = root.raw_partition(code, table_name, ds)
    try:
        out = extract_table(
            url,
            dept,
            table,
            partition,
            ds,
            chunk=chunk,
            chunk_dir=chunk_folder(partition, run_key),
            initial=initial_load(root, code, table),  # as planned: staged is written later
        )
    except ExtractionError as e:
        _failed(root, code, ds, table_name, "extract", f"{e} (chunk {chunk['index']})", e.kind)
        _reraise(e)
    return {"chunk": chunk["index"], "rows": out.rows}


def land(
    root: StorageRoot, dept: Department, table_name: str, ds: date, run_key: str, chunks: int
) -> dict[str, Any]:
    """Land every chunk of the run as the raw partition, all or nothing."""
    code = dept.code
    table = dept.table(table_name)
    partition = root.raw_partition(code, table_name, ds)
    try:
        rows = land_chunks(partition, chunk_folder(partition, run_key), chunks, empty_schema(table))
    except Exception as e:
        _failed(root, code, ds, table_name, "extract", str(e), failures.classify(e))
        _reraise(e)
    runstate.update(
        root, code, ds, table_name, status="extracted", extracted_rows=rows, reader="chunks"
    )
    return {"path": str(partition), "rows": rows}


def with_lineage(
    accepted: pa.Table, source: str, ds: date, run_id: str, now: datetime | None = None
) -> pa.Table:
    """Add the lineage columns _source, _ds, _run_id and _loaded_at (Shanghai wall time;
    ``now`` when given, so every batch of a night carries the same)."""
    n = accepted.num_rows
    now = now_wall() if now is None else now
    return (
        accepted.append_column("_source", pa.array([source] * n, pa.string()))
        .append_column("_ds", pa.array([ds] * n, pa.date32()))
        .append_column("_run_id", pa.array([run_id] * n, pa.string()))
        .append_column("_loaded_at", pa.array([now] * n, pa.timestamp("us")))
    )


def _write_parquet(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path)


def write_rejected(folder: Path, rows: pa.Table, issues: pa.Table) -> None:
    """Replace the night's rejected rows and issues (each file swapped in whole)."""
    for name, table in (("rows.parquet", rows), ("issues.parquet", issues)):
        replace_with(folder / name, functools.partial(_write_parquet, table))


def quality_gate(
    root: StorageRoot, code: str, table: TableSpec, raw: pa.Table, out: Any, ds: date
) -> GateResult:
    """Run the raw quality gate on the normalised batch and record it in gate.json.

    Returns the GateResult; the caller publishes only when ``result.passed``.
    """
    result = quality.check_raw(root, code, table, raw, out.issues, source_pk(raw, table), ds)
    quality.record(root, ds, result)
    return result


def _gate_summary(gate: GateResult) -> dict[str, Any]:
    return {
        "suite": gate.suite,
        "success": gate.success,
        "passed": gate.passed,
        "failed_checks": [o.check for o in gate.failed],
        "data_docs": gate.data_docs,
        "ge_seconds": round(gate.ge_seconds, 3),
    }


@dataclass
class _Staged:
    """What one stage step did, whichever path (batched or whole) did it."""

    rows_in: int
    rows_accepted: int
    rows_rejected: int
    rows_deduplicated: int
    rejections: Counter[str]
    warnings: Counter[str]
    gate: GateResult
    unmapped: list[str]
    merged: MergeResult | None = None
    latest: datetime | None = None


def _warn_unmapped(code: str, table_name: str, unmapped: list[str]) -> None:
    if unmapped:
        log.warning(
            "%s.%s: the query selects column(s) no mapping uses (raw only): %s",
            code,
            table_name,
            ", ".join(unmapped),
        )


def _check_reconciles(code: str, table_name: str, out: Any) -> None:
    if not out.reconciles():
        raise RuntimeError(
            f"department {code}, table {table_name}: counts do not reconcile: in {out.rows_in} "
            f"!= accepted {out.rows_accepted} + rejected {out.rows_rejected} "
            f"+ deduplicated {out.rows_deduplicated}"
        )


def _compare_columns(names: list[str]) -> list[str]:
    return [c for c in names if c not in LINEAGE and c != SOURCE_PK]


def _stage_whole(
    root: StorageRoot, dept: Department, table: TableSpec, ds: date, run_id: str
) -> _Staged:
    """The whole-table path: the raw partition read, normalised and merged in one piece."""
    code, table_name = dept.code, table.name
    raw = read_partition(root.raw_partition(code, table_name, ds))
    unmapped = unmapped_columns(raw, table)
    _warn_unmapped(code, table_name, unmapped)
    out = normalise_table(raw, dept, table, ds)
    _check_reconciles(code, table_name, out)
    gate = quality_gate(root, code, table, raw, out, ds)
    write_rejected(root.rejected(code, table_name, ds), out.rejected, out.issues)
    done = _Staged(
        out.rows_in,
        out.rows_accepted,
        out.rows_rejected,
        out.rows_deduplicated,
        out.rejections,
        out.warnings,
        gate,
        unmapped,
    )
    if gate.passed:
        accepted = with_lineage(out.accepted, f"{code}.{table_name}", ds, run_id)
        path = root.staged(code, table_name)
        losers = out.issues.filter(pc.equal(out.issues["rule_code"], "DUPLICATE_KEY"))
        deleted = staged_deletions(
            path,
            accepted,
            table.business_key,
            source_pk(raw, table) if table.mode == "full" else None,
            losers["source_pk"].combine_chunks(),
        )
        compare = _compare_columns(accepted.column_names)
        done.merged = merge_by_key(
            path, accepted, SOURCE_PK, compare, deleted, run_id, ds.isoformat()
        )
        done.latest = (
            pc.max(accepted[SOURCE_UPDATED_AT]).as_py()
            if SOURCE_UPDATED_AT in accepted.column_names and accepted.num_rows
            else None
        )
    return done


def _move(source: Path, tmp: Path) -> None:
    os.replace(source, tmp)


def _stage_batched(
    root: StorageRoot, dept: Department, table: TableSpec, ds: date, run_id: str, rows: int
) -> _Staged:
    """The batched path (``datacloud.staging_batches``): the raw partition ``rows`` rows at a
    time, deduplicated exactly across batches, merged from a stream in one commit."""
    code, table_name = dept.code, table.name
    rejected = root.rejected(code, table_name, ds)
    spill = staging_batches.spill_folder(rejected)
    try:
        out = staging_batches.normalise_partition(
            root.raw_partition(code, table_name, ds),
            dept,
            table,
            ds,
            rows,
            spill,
            quality.raw_profile_columns(table),
        )
        _warn_unmapped(code, table_name, out.unmapped)
        _check_reconciles(code, table_name, out)
        gate = quality.check_profile(root, code, table, out.profile, out.rows_in, ds)
        quality.record(root, ds, gate)
        out.profile = pa.table({})
        for name, spilled in (("rows.parquet", out.rejected), ("issues.parquet", out.issues)):
            replace_with(rejected / name, functools.partial(_move, spilled))
        done = _Staged(
            out.rows_in,
            out.rows_accepted,
            out.rows_rejected,
            out.rows_deduplicated,
            out.rejections,
            out.warnings,
            gate,
            out.unmapped,
            latest=out.latest,
        )
        if gate.passed and out.schema is not None:
            path = root.staged(code, table_name)
            current = open_table(path)
            deleted = (
                staging_batches.merge_plan(
                    out,
                    current,
                    table.business_key,
                    _compare_columns(out.schema.names),
                    full=table.mode == "full",
                )
                if current is not None
                else None
            )
            now = now_wall()
            source = f"{code}.{table_name}"
            schema = with_lineage(out.schema.empty_table(), source, ds, run_id, now).schema
            batches = (
                b
                for batch in out.accepted_batches()
                for b in with_lineage(
                    pa.Table.from_batches([batch]), source, ds, run_id, now
                ).to_batches()
            )
            done.merged = merge_batches_by_key(
                path,
                schema,
                batches,
                SOURCE_PK,
                _compare_columns(schema.names),
                deleted,
                run_id,
                ds.isoformat(),
            )
        return done
    finally:
        shutil.rmtree(spill, ignore_errors=True)


def stage(
    root: StorageRoot,
    dept: Department,
    table_name: str,
    ds: date,
    run_id: str,
    *,
    batch_rows: int | None = None,
    whole: bool = False,
) -> dict[str, Any]:
    """Normalise the raw partition, set rejected rows aside, gate the table and merge accepted
    rows into staged.

    The partition is read ``batch_rows`` rows at a time (default: ``DATACLOUD_STAGE_BATCH_ROWS``
    or ``staging_batches.DEFAULT_BATCH_ROWS``), never whole; ``whole=True`` takes the
    whole-table path (kept as the reference the batched path is tested against). Both give
    the same staged rows, counts, rejected rows and gate verdict.

    When a critical expectation of the raw suite fails, the rejected rows are still written,
    nothing is merged (the staged table keeps its previous content) and QualityGateError is
    raised, recorded in the run state as ``failure_kind="quality_gate"``.
    """
    code = dept.code
    table = dept.table(table_name)
    quality.forget(root, code, ds, table_name)
    try:
        if whole:
            out = _stage_whole(root, dept, table, ds, run_id)
        else:
            rows = staging_batches.batch_rows() if batch_rows is None else batch_rows
            out = _stage_batched(root, dept, table, ds, run_id, rows)
    except Exception as e:
        _failed(root, code, ds, table_name, "stage", str(e), failures.classify(e))
        _reraise(e)
    gate = out.gate
    if not gate.passed or out.merged is None:
        message = mask_text(gate.message())
        runstate.update(
            root,
            code,
            ds,
            table_name,
            quality_gate=_gate_summary(gate),
            unmapped_columns=out.unmapped,
            gate_counts={
                "rows_in": out.rows_in,
                "rows_rejected": out.rows_rejected,
                "rows_deduplicated": out.rows_deduplicated,
            },
        )
        _failed(root, code, ds, table_name, "stage", message, "quality_gate")
        log.error("%s", message)
        raise QualityGateError(message)
    merged, latest = out.merged, out.latest
    state = runstate.update(
        root,
        code,
        ds,
        table_name,
        status="success",
        rows_in=out.rows_in,
        rows_accepted=out.rows_accepted,
        rows_rejected=out.rows_rejected,
        rows_deduplicated=out.rows_deduplicated,
        rejections=dict(out.rejections),
        warnings=dict(out.warnings),
        staged_version=merged.version,
        staged_inserted=merged.inserted,
        staged_updated=merged.updated,
        staged_deleted=merged.deleted,
        latest_source_update=latest.isoformat() if latest else None,
        quality_gate=_gate_summary(gate),
        unmapped_columns=out.unmapped,
    )
    log.info(
        "%s.%s: in %d, accepted %d, rejected %d, deduplicated %d; staged v%d (+%d ~%d -%d)",
        code,
        table_name,
        out.rows_in,
        out.rows_accepted,
        out.rows_rejected,
        out.rows_deduplicated,
        merged.version,
        merged.inserted,
        merged.updated,
        merged.deleted,
    )
    return {
        k: state[k]
        for k in (
            "rows_in",
            "rows_accepted",
            "rows_rejected",
            "rows_deduplicated",
            "staged_version",
        )
    }


def report(root: StorageRoot, dept: Department, ds: date) -> dict[str, Any]:
    """Write the department's report for the night (and refresh the operators' overview);
    runs also when earlier tasks failed."""
    out = write_department_report(root, dept, ds)
    write_overview(root, load_departments(), ds)
    return {"path": str(out.parent), "status": out.status}


def refresh_reports(root: StorageRoot, depts: list[Department], ds: date) -> dict[str, str]:
    """Rewrite the reports of the departments that ran for ``ds`` (after curation, so they
    show that night's cross-department findings), and the overview; returns each status.
    Each department's rows of the problem table are read for its report alone (the
    department's filter pushed into the read), never the whole table."""
    written = {
        d.code: write_department_report(root, d, ds, problems_as_of(root, ds, d.code)).status
        for d in depts
        if root.run_state(d.code, ds).is_dir()
    }
    write_overview(root, depts, ds)
    return written

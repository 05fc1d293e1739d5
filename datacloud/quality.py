"""Data-quality gates: a night's table (raw) or a curated table is published only when its
Great Expectations suite has no failed *critical* expectation.

Row rules (``transforms/``) quarantine bad rows; the gates judge the batch as a whole: the
row count against the recent nights, the share of rows with a value, the share of values
passing their rules (raw), keys unique, identifiers 100% valid and links resolving (curated).
GE validates a compact profile of the row rules' verdicts (``datacloud.quality_profile``),
never the rows themselves. Results go to ``quality/<dept>/<date>/gate.json`` (read by the load
report) and Data Docs under ``quality/data_docs/``. docs/quality.md tells the whole story.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa

from datacloud import curated_tables, runstate
from datacloud import quality_suites as suites
from datacloud.atomic import locked, replace_text
from datacloud.config import QualitySpec, TableSpec
from datacloud.masking import mask_text
from datacloud.paths import StorageRoot
from datacloud.quality_ge import ExpectationOutcome, run_suite_slices
from datacloud.quality_profile import curated_profile, raw_profile
from datacloud.quality_words import check_zh

log = logging.getLogger(__name__)
CURATED_SCOPE = "curated"
_RATIO_CHECKS = (".present", ".valid")
PROFILE_SLICE_ROWS = 1_000_000  # the raw gate's rows per slice: one slice's frame in memory


class QualityGateError(RuntimeError):
    """A critical expectation failed: the table is not published tonight."""

    kind = "quality_gate"  # datacloud.failures


@dataclass
class GateResult:
    """The outcome of one suite on one table."""

    suite: str
    scope: str  # the department code, or "curated"
    table: str
    rows: int
    outcomes: list[ExpectationOutcome]
    data_docs: str | None
    notes: list[str] = field(default_factory=list)
    ge_seconds: float = 0.0

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    @property
    def critical_failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.failed if o.severity == "critical"]

    @property
    def passed(self) -> bool:
        """True when nothing critical failed (warnings publish)."""
        return not self.critical_failures

    @property
    def success(self) -> bool:
        return not self.failed

    def entry(self) -> dict[str, Any]:
        """This suite's entry of gate.json (the report's contract, plus a few keys)."""
        return {
            "suite": self.suite,
            "table": self.table,
            "success": self.success,
            "severity": "critical" if self.critical_failures or self.success else "warning",
            "failed_expectations": [
                {
                    "expectation": o.expectation,
                    "column": o.column,
                    "observed": mask_text(o.observed),
                    "check": o.check,
                    "severity": o.severity,
                    "check_zh": check_zh(o.check),
                    "observed_zh": mask_text(o.observed_zh),
                }
                for o in self.failed
            ],
            "data_docs": self.data_docs,
            "rows": self.rows,
            "evaluated": len(self.outcomes),
            "notes": self.notes,
        }

    def message(self) -> str:
        """Why the gate stopped the table: suite, expectation, column and observed value."""
        where = (
            f"curated table {self.table}"
            if self.scope == CURATED_SCOPE
            else f"department {self.scope}, table {self.table}"
        )
        parts = [
            f"suite {self.suite}, expectation {o.expectation} ({o.check})"
            + (f" on column {o.column}" if o.column else "")
            + f": observed {o.observed}"
            for o in self.critical_failures
        ]
        return mask_text(f"{where}: quality gate failed: " + "; ".join(parts))


# --- raw gate -----------------------------------------------------------------------------------


def volume_bounds(history: list[int], spec: QualitySpec) -> tuple[int, int] | None:
    """Row-count band from the median of the earlier nights, None without history."""
    if not history:
        return None
    median = statistics.median(history)
    return math.ceil(median * spec.volume.min_ratio), math.floor(median * spec.volume.max_ratio)


def prepare_raw_suite(
    suite: dict[str, Any],
    table: TableSpec,
    profile_columns: list[str],
    rows: int,
    bounds: tuple[int, int] | None,
) -> tuple[dict[str, Any], dict[str, float], list[str]]:
    """Tonight's copy of a raw suite for one table, its parameters and notes on what changed.

    Drops the volume check without history and checks of unmapped columns; applies the YAML's
    severity overrides; in a batch smaller than ``min_rows_for_ratios`` ratio checks only warn;
    the volume check of an incremental table warns unless the YAML says otherwise.
    """
    spec = table.quality
    notes: list[str] = []
    kept = []
    for e in suite["expectations"]:
        check = e["meta"]["check"]
        column = e["kwargs"].get("column")
        if check == "volume" and bounds is None:
            notes.append("volume: skipped, no successful earlier night to compare with")
            continue
        if column is not None and column not in profile_columns:
            notes.append(f"{check}: skipped, column {column} is not mapped from the source")
            continue
        if check == "volume" and table.mode == "incremental" and check not in spec.severity:
            e["severity"] = "warning"
        small = rows < spec.min_rows_for_ratios and check.endswith(_RATIO_CHECKS)
        if small and e["severity"] == "critical" and check not in spec.severity:
            e["severity"] = "warning"
            notes.append(
                f"{check}: warning only, {rows} rows < min_rows_for_ratios "
                f"{spec.min_rows_for_ratios}"
            )
        if check in spec.severity:
            e["severity"] = spec.severity[check]
        kept.append(e)
    unknown = sorted(set(spec.severity) - set(suites.checks(suite)))
    if unknown:
        raise ValueError(
            f"table {table.name}: quality.severity names {unknown}, not checks of suite "
            f"{suite['name']} ({', '.join(suites.checks(suite))})"
        )
    params: dict[str, float] = {}
    if bounds is not None:
        params["volume_min"], params["volume_max"] = bounds
    for c in profile_columns:
        for name in ("min_present", "min_valid", "warn_valid"):
            params[f"{c}__{name}"] = spec.threshold(c, name)
    return {**suite, "expectations": kept}, params, notes


def check_raw(
    root: StorageRoot,
    dept: str,
    table: TableSpec,
    raw: pa.Table,
    issues: pa.Table,
    pk: pa.Array,
    ds: date,
) -> GateResult:
    """Run the raw suite of the table's kind on tonight's batch (after normalising)."""
    profile = raw_profile(raw, table, issues, pk, raw_profile_columns(table))
    return check_profile(root, dept, table, profile, raw.num_rows, ds)


def raw_profile_columns(table: TableSpec) -> list[str]:
    """The profile columns the raw suite of the table's kind reads."""
    return suites.columns(suites.load_suite(suites.raw_suite_name(table.kind)))


def check_profile(
    root: StorageRoot,
    dept: str,
    table: TableSpec,
    profile: pa.Table,
    rows: int,
    ds: date,
    slice_rows: int = PROFILE_SLICE_ROWS,
) -> GateResult:
    """Run the raw suite on a night's raw profile of ``rows`` rows: the whole table's, built
    in one go (``check_raw``) or batch by batch and concatenated (``datacloud.staging_batches``);
    the verdict of each row depends on that row alone, so both are the same table.

    GE validates the profile ``slice_rows`` rows at a time (one slice's pandas frame alive at
    once) and the counts are added up (``quality_ge.run_suite_slices``); the row count and
    the column set are judged on the whole table: the result is the whole profile's."""
    suite = suites.load_suite(suites.raw_suite_name(table.kind))
    history = [
        n for _, n in runstate.history(root, dept, table.name, ds, table.quality.volume.nights)
    ]
    bounds = volume_bounds(history, table.quality)
    tonight, params, notes = prepare_raw_suite(suite, table, profile.column_names, rows, bounds)
    if bounds is not None:
        notes.append(
            f"volume: median of {len(history)} earlier nights {statistics.median(history):g}, "
            f"allowed {bounds[0]}..{bounds[1]} rows"
        )
    run = run_suite_slices(
        root,
        (dept, table.name),
        tonight,
        _profile_slices(profile, slice_rows),
        params,
        ds,
        table_level=True,
    )
    result = GateResult(
        suite["name"],
        dept,
        table.name,
        rows,
        run.outcomes,
        run.data_docs,
        notes,
        run.seconds,
    )
    log.info(
        "%s.%s: suite %s, %d expectations, %d failed (%d critical); GE %.2fs",
        dept,
        table.name,
        suite["name"],
        len(run.outcomes),
        len(result.failed),
        len(result.critical_failures),
        run.seconds,
    )
    return result


def _profile_slices(profile: pa.Table, slice_rows: int) -> Iterator[pa.Table]:
    """``profile`` as zero-copy slices of ``slice_rows`` rows (an empty profile: itself)."""
    if slice_rows < 1:
        raise ValueError(f"slice_rows must be at least 1, not {slice_rows}")
    for start in range(0, max(profile.num_rows, 1), slice_rows):
        yield profile.slice(start, slice_rows)


# --- curated gate -------------------------------------------------------------------------------


def check_curated(
    root: StorageRoot, name: str, table: pa.Table, ds: date, related: dict[str, pa.Table]
) -> GateResult:
    """Run the curated suite of ``name`` on the table about to be published, and record it.

    ``related`` holds the other curated tables the links resolve against (``person`` for
    owners, spouses and legal representatives; ``enterprise`` for roles); a link whose table
    is not given is skipped and noted. The result is written to
    ``quality/curated/<date>/gate.json``; publish only when ``result.passed``.
    """
    return check_curated_slices(root, name, [table], ds, related)


Related = dict[str, pa.Table] | Callable[[pa.Table], dict[str, pa.Table]]


def check_curated_slices(
    root: StorageRoot,
    name: str,
    slices: Iterable[pa.Table],
    ds: date,
    related: Related,
) -> GateResult:
    """``check_curated`` on a table given as disjoint slices of its rows (taken one at a
    time): each slice is profiled and validated alone, and the counts are added up into the
    one result (and Data Docs page) of the table (``quality_ge.run_suite_slices``).

    The result is the whole table's when no key repeats across slices, i.e. when the slices
    are ranges of a column of the suite's key (``meta.datacloud.key``; nulls of that column
    in one slice): every other check's verdict on a row depends on that row alone, and a link
    resolves against all of ``related`` in every slice. Slices without rows are skipped (all
    empty: the gate runs once on the empty table, as the whole table's would).

    ``related`` may be a call giving, for a slice's rows, the related tables as far as that
    slice's links need them (the same tables for every slice; each holding at least every
    key the slice's link columns name that the table has): the verdicts are the same.
    """
    lookup = related if callable(related) else (lambda _rows: related)
    declared = curated_tables.table(name).suite
    if declared is None:
        raise ValueError(f"curated table {name!r} has no quality suite (datacloud.curated_tables)")
    suite = suites.load_suite(declared)
    meta = suite["meta"]["datacloud"]
    tables = iter(slices)
    first: pa.Table | None = None
    for first in tables:  # the first slice with rows (or the last, when none has any)
        if first.num_rows:
            break
    if first is None:
        raise ValueError(f"curated table {name!r}: no slice to check")
    profile, missing = curated_profile(first, meta, lookup(first), ds)
    rows = first.num_rows
    pending = [profile]  # handed over, not kept: one slice's profile alive at a time
    del first, profile

    def profiles() -> Iterator[pa.Table]:
        nonlocal rows
        yield pending.pop()
        for table in tables:
            if not table.num_rows:
                continue
            rows += table.num_rows
            more, absent = curated_profile(table, meta, lookup(table), ds)
            del table
            if absent != missing:  # the same columns and related tables in every slice
                raise RuntimeError(f"curated table {name}: a slice lacks other profile columns")
            yield more

    notes = [f"{c}: skipped, not available" for c in missing]
    kept = [e for e in suite["expectations"] if e["kwargs"].get("column") not in missing]
    tonight = {**suite, "expectations": kept}
    run = run_suite_slices(root, (CURATED_SCOPE, name), tonight, profiles(), {}, ds)
    result = GateResult(
        suite["name"],
        CURATED_SCOPE,
        name,
        rows,
        run.outcomes,
        run.data_docs,
        notes,
        run.seconds,
    )
    record(root, ds, result)
    return result


# --- gate.json ----------------------------------------------------------------------------------


def record(root: StorageRoot, ds: date, result: GateResult) -> Path:
    """Write the suite's result and rebuild ``quality/<scope>/<date>/gate.json`` from all of them.

    Each table's entry is its own file (``<table>.json``), replaced atomically; gate.json is
    rebuilt from them under a lock, so tables gated in parallel never lose each other's entry.
    """
    folder = root.quality() / result.scope / ds.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    replace_text(folder / f"{result.table}.json", json.dumps(result.entry(), ensure_ascii=False))
    return _rebuild(folder)


def forget(root: StorageRoot, scope: str, ds: date, table: str) -> None:
    """Remove a table's entry of the night (a rerun starts clean, as the run state does)."""
    folder = root.quality() / scope / ds.isoformat()
    entry = folder / f"{table}.json"
    if entry.is_file():
        entry.unlink()
        _rebuild(folder)


def _rebuild(folder: Path) -> Path:
    gate = folder / "gate.json"
    with locked(gate):
        entries = [
            json.loads(p.read_text(encoding="utf-8"))
            for p in sorted(folder.glob("*.json"))
            if p.name != "gate.json"
        ]
        if entries:
            replace_text(gate, json.dumps({"suites": entries}, ensure_ascii=False, indent=2) + "\n")
        else:
            gate.unlink(missing_ok=True)
    return gate

"""A curation night: pin the staged versions, find the touched keys, build, check, publish.

Incremental: the staged tables record their row changes (Delta change data feed). A night
reads the changes since the staged versions the last curation consumed (the state file
``curated/_curation.json``, and the app transactions of the curated tables' log), recomputes
only the keys they touch from every source (``curation_keys``, ``curate``), and publishes them
in one Delta commit per curated table (a sorted rewrite or a merge, ``delta.publish``). The
first night, ``full=True``, a survivorship change or a staged table without a change feed
rebuild everything (the same code, every key touched). The consistency findings (比对) are
published last, on the same pinned versions; the state file is replaced after them, so a
crash anywhere leaves the next run to redo the same keys. The night ends by rebuilding the
resource catalogue (``catalogue_night``: ``catalogue/index.html`` and ``catalogue.json``).

The curation DAG spreads a full build over key ranges (``plan_night``, ``build_range`` per
range, ``publish_ranges``; ``curation_ranges``): each range task builds its keys' part of
every curated table into a scratch folder, and one publish commits each table from all parts,
as ``curate_all`` in full would.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from datacloud import (
    catalogue_night,
    consistency_night,
    curated_links,
    curated_tables,
    curation_ranges,
    delta,
    memory,
    quality,
    quality_suites,
)
from datacloud.atomic import replace_json
from datacloud.config import Department
from datacloud.curate import BUILDERS, LAYOUT, Night
from datacloud.curation_config import CurationConfig, load_curation_config
from datacloud.curation_keys import touched
from datacloud.delta import load, open_table, read_loaded, streamed
from datacloud.delta.read import physical_rows
from datacloud.paths import StorageRoot
from datacloud.quality import QualityGateError
from datacloud.staged_rows import pin_versions, read_changes
from datacloud.storage import DataPath

log = logging.getLogger(__name__)


# --- the state between nights ---------------------------------------------------------------


def state_path(root: StorageRoot) -> Path:
    return root.root / "curated" / "_curation.json"


def read_state(root: StorageRoot) -> dict[str, Any] | None:
    path = state_path(root)
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def write_state(root: StorageRoot, state: dict[str, Any]) -> None:
    """Replace the state file atomically (``atomic.replace_json``)."""
    replace_json(state_path(root), state, indent=2, sort_keys=True)


# --- the night ------------------------------------------------------------------------------

Check = Callable[[str, pa.Table], None]


def curate_all(
    root: StorageRoot,
    depts: list[Department],
    ds: date,
    run_id: str,
    *,
    full: bool = False,
    config: CurationConfig | None = None,
    check: Check | None = None,
) -> dict[str, Any]:
    """Build, check and publish every curated table: only touched keys, unless ``full``.

    Each curated table changes by one Delta merge commit (none when nothing changed); the
    staged versions consumed are written to ``curated/_curation.json`` after all publishes,
    so a crash anywhere leaves the next run to redo the same keys.
    """
    config = config or load_curation_config()
    fingerprint = config.fingerprint(depts)
    versions = pin_versions(root, depts)
    state = read_state(root)
    changes = None
    if not full and state is not None and state.get("fingerprint") == fingerprint:
        changes = read_changes(root, depts, state.get("staged", {}), versions)
    night = Night(root, depts, config, versions)
    incremental = changes is not None
    if changes is not None:
        night.touched = dict(touched(night, changes))
    meta = {
        "datacloud.staged": json.dumps(versions, sort_keys=True),
        "datacloud.full": "false" if incremental else "true",
    }
    published: dict[str, Any] = {}
    gated: dict[str, str] = {}
    commit = delta.CommitInfo(run_id, ds.isoformat(), meta, consumed=versions)
    for name, build in BUILDERS.items():
        night_for_table = night
        if incremental and _layout_changed(root.curated(name), name, night):
            night_for_table = Night(root, depts, config, versions)  # this table in full
        built = build(night_for_table)  # 1. build
        if built is None:
            log.warning("curated/%s: no staged source tables yet; not published", name)
            continue
        rows, gone = built
        if night_for_table.touched.get(name) is not None and _columns_differ(
            root.curated(name), rows
        ):  # tonight's build has another layout: only a full build may replace the table
            night_for_table = Night(root, depts, config, versions)
            rows, gone = build(night_for_table) or (rows, gone)
        table_full = night_for_table.touched.get(name) is None
        outcome = _check_and_publish(root, name, rows, gone, table_full, config, commit, check)
        if isinstance(outcome, str):
            gated[name] = outcome
        else:
            published[name] = outcome
    return _finish(root, depts, ds, run_id, versions, fingerprint, published, gated)


def _check_and_publish(
    root: StorageRoot,
    name: str,
    rows: pa.Table,
    gone: pa.Array,
    table_full: bool,
    config: CurationConfig,
    commit: delta.CommitInfo,
    check: Check | None,
) -> dict[str, Any] | str:
    """Check one curated table's rows (the gate), publish them in one commit and keep the
    table up; its figures, or the gate's verdict when it kept the table back."""
    key = LAYOUT[name][0]
    if check is not None:  # 2. check (the curated quality gate)
        verdict = _refused(check, name, rows)
        if verdict is not None:
            return verdict
    if table_full:
        gone = _keys_not_in(root.curated(name), key, rows[key])
    spec = _publish_spec(name, table_full, config)
    # the staged versions consumed go into the log too (app transactions, ``commit.consumed``)
    result = delta.publish(root.curated(name), rows, gone, spec, commit)  # 3. publish
    return _maintained(root, name, rows.num_rows, result, table_full, config, commit)


def _refused(check: Check, name: str, rows: pa.Table) -> str | None:
    """The curated quality gate on ``name``'s rows: its verdict when it keeps the table back
    (logged; the other tables go on), None when the table may be published."""
    return _gated(name, lambda: check(name, rows))


def _gated(name: str, gate: Callable[[], None]) -> str | None:
    """Run a gate on ``name``: its verdict when it keeps the table back (logged), or None."""
    try:
        gate()
    except QualityGateError as e:
        log.error("curated/%s: not published: %s", name, e)
        return str(e)
    return None


def _publish_spec(name: str, full: bool, config: CurationConfig) -> delta.PublishSpec:
    """How ``name`` is published: its key and layout, full or incremental, deletion vectors
    as ``dags/curation.yaml`` says."""
    key, sort_by = LAYOUT[name]
    return delta.PublishSpec(
        key,
        tuple(sort_by),
        full=full,
        deletion_vectors=config.publishing.deletion_vectors,
        deletion_vectors_under=delta.DELETION_VECTORS_UNDER,
    )


def _maintained(
    root: StorageRoot,
    name: str,
    rows_built: int,
    result: delta.MergeResult,
    table_full: bool,
    config: CurationConfig,
    commit: delta.CommitInfo,
) -> dict[str, Any]:
    """After a table's publish: keep it lookup-ready (``delta.maintain``); its figures."""
    sort_by = LAYOUT[name][1]
    upkeep = delta.maintain(
        root.curated(name),
        delta.MaintainSpec(
            sort_by[0],
            config.publishing.retention_days,
            config.publishing.compact_when_files_over,
        ),
        commit,
    )
    log.info(
        "curated/%s: %s, %d rows built; v%d (+%d ~%d -%d)",
        name,
        "full" if table_full else "incremental",
        rows_built,
        result.version,
        result.inserted,
        result.updated,
        result.deleted,
    )
    return {
        "rows_built": rows_built,
        "inserted": result.inserted,
        "updated": result.updated,
        "deleted": result.deleted,
        "version": result.version,
        "full": table_full,
        "path": str(root.curated(name)),
        **upkeep,
    }


def _finish(
    root: StorageRoot,
    depts: list[Department],
    ds: date,
    run_id: str,
    versions: dict[str, int],
    fingerprint: str,
    published: dict[str, Any],
    gated: dict[str, str],
) -> dict[str, Any]:
    """After the golden records: the gate's verdict, the consistency findings, the state file."""
    if gated:  # keep the state: the next run redoes tonight's keys once the data is fixed
        raise QualityGateError(
            "curated tables not published (quality gate): "
            + "; ".join(f"{name}: {why}" for name, why in gated.items())
        )
    # the consistency findings (比对), on the same pinned staged versions as the golden records
    findings = consistency_night.publish(root, depts, ds, run_id, versions=versions)
    published["consistency"] = findings
    write_state(root, {"staged": versions, "fingerprint": fingerprint, "ds": ds.isoformat()})
    return published


def _layout_changed(path: DataPath, name: str, night: Night) -> bool:
    """The published table lacks a column tonight's build has (or is missing): rebuild it."""
    dt = open_table(path)
    if dt is None:
        return True
    have = set(dt.schema().to_arrow().names)
    return LAYOUT[name][0] not in have or (name == "person" and "marital_status" not in have)


def _columns_differ(path: DataPath, rows: pa.Table) -> bool:
    """Whether the published table has other columns than ``rows`` (and its row hash)."""
    dt = open_table(path)
    return dt is not None and dt.schema().to_arrow().names != [*rows.column_names, delta.ROW_HASH]


def _keys_not_in(path: DataPath, key: str, keys: pa.Array) -> pa.Array:
    """Published keys absent from a full build (to delete)."""
    dt = open_table(path)
    if dt is None or key not in dt.schema().to_arrow().names:
        return pa.array([], pa.string())
    have = read_loaded(dt, [key])[key]
    return pc.drop_null(have.filter(pc.invert(pc.is_in(have, value_set=keys)))).combine_chunks()


# the curated tables a link of a curated suite resolves against, and the column it reads
LINK_TARGETS = {"person": "id_number", "enterprise": "credit_code"}


class QualityGate:
    """The curated quality gate: each table's GE suite (expectations/curated_<table>.json) on
    the rows about to be published; a failed critical expectation keeps the table unpublished
    (call it with the table's name and rows: ``QualityGateError``).

    Links (owners, spouses, legal representatives, roles) resolve against the curated person
    and enterprise tables as published so far tonight (person and enterprise go first), a
    slice's links against the keys of those tables that the slice names (``_related``).

    A full build's publish gates a table a slice at a time (``check_slices``, slices of
    ``slice_column``): one result per table, the one on the whole table.
    """

    def __init__(self, root: StorageRoot, ds: date) -> None:
        self.root, self.ds = root, ds

    def _related(self, name: str) -> Callable[[pa.Table], dict[str, pa.Table]]:
        """The link targets of ``name``'s gate, each loaded once at its current version, as a
        call giving a slice's: each target's keys among the slice's link values to it
        (``curated_links.keys_among``), never its whole key column. A target without a table
        is left out (its links are skipped and noted, as before)."""
        meta = self._meta(name) or {}
        links: dict[str, dict[str, str]] = meta.get("links", {})
        targets = {}
        for table in LINK_TARGETS:
            dt = open_table(self.root.curated(table)) if table != name else None
            if dt is not None:
                targets[table] = dt

        def related(rows: pa.Table) -> dict[str, pa.Table]:
            out = {}
            for table, dt in targets.items():
                column = LINK_TARGETS[table]
                named = [
                    pc.cast(rows[c], pa.string())
                    for c, link in links.items()
                    if link["table"] == table and c in rows.column_names
                ]
                values = pa.chunked_array([chunk for v in named for chunk in v.chunks], pa.string())
                out[table] = pa.table({column: curated_links.keys_among(dt, column, values)})
            return out

        return related

    @staticmethod
    def _meta(name: str) -> dict[str, Any] | None:
        declared = curated_tables.table(name).suite
        if declared is None:
            return None
        meta: dict[str, Any] = quality_suites.load_suite(declared)["meta"]["datacloud"]
        return meta

    def columns(self, name: str) -> list[str]:
        """The columns of ``name``'s rows its suite's profile reads (``curated_profile``):
        the suite's key, identifiers, link columns and ``birth_date`` when checked against
        an identifier; the gate's verdict on just these columns is the one on every column."""
        meta = self._meta(name)
        if meta is None:
            return []
        out = [*meta["key"], *meta.get("identifiers", {}), *meta.get("links", {})]
        if meta.get("birth_date_from"):
            out.append("birth_date")
        return list(dict.fromkeys(out))

    def slice_column(self, name: str) -> str | None:
        """The column whose ranges slice ``name``'s gate: the first sort column of its layout
        (the publish's slices) when it is part of the suite's key, else the key's first
        column; None without a suite. A key is then never split between two slices (a
        duplicate shares that column's value, nulls all go to one slice), so uniqueness per
        slice is uniqueness in the table."""
        meta = self._meta(name)
        if meta is None:
            return None
        first = LAYOUT[name][1][0]
        return first if first in meta["key"] else str(meta["key"][0])

    def check_slices(self, name: str, slices: Iterable[pa.Table]) -> None:
        """The gate on ``name``'s rows given as slices of ``slice_column``'s range."""
        related = self._related(name)
        result = quality.check_curated_slices(self.root, name, slices, self.ds, related)
        if not result.passed:
            raise QualityGateError(result.message())

    def __call__(self, name: str, rows: pa.Table) -> None:
        self.check_slices(name, [rows])


def quality_gate(root: StorageRoot, ds: date) -> QualityGate:
    """The curated quality gate of the night (``QualityGate``)."""
    return QualityGate(root, ds)


def curate_night(
    root: StorageRoot, depts: list[Department], ds: date, run_id: str, *, full: bool = False
) -> dict[str, Any]:
    """The curation task: every department's staged tables, through the curated quality
    gate, into the curated tables (the task edge passes the storage root and departments);
    last, the resource catalogue (资源目录) is rebuilt, also when the gate kept a table back
    (the catalogue shows it), without hiding that failure."""
    return _then_catalogue(
        root,
        depts,
        ds,
        lambda: curate_all(root, depts, ds, run_id, full=full, check=quality_gate(root, ds)),
    )


def _then_catalogue(
    root: StorageRoot, depts: list[Department], ds: date, night: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """Run the night, then rebuild the resource catalogue (also after a gate failure)."""
    try:
        published = night()
    except QualityGateError:
        try:
            catalogue_night.rebuild(root, depts, ds)
        except Exception:  # the gate's failure is the night's news; log this one beside it
            log.exception("resource catalogue: not rebuilt after the quality gate failed")
        raise
    catalogue_night.rebuild(root, depts, ds)
    return published


# --- a full build spread over key ranges (the curation DAG's plan, range and publish tasks) --

Plan = dict[str, Any]  # plan_night's answer, JSON (it travels as the plan task's XCom)


def plan_night(
    root: StorageRoot,
    depts: list[Department],
    run_id: str,
    *,
    full: bool = False,
    config: CurationConfig | None = None,
    count: int | None = None,
) -> Plan:
    """The plan task: does tonight need a full build, and over how many key ranges?

    ``mode`` ``incremental`` (``ranges`` empty: the one ``curate`` task does the night) or
    ``full`` (a range task per entry of ``ranges``, then ``publish_ranges``), with the
    pinned staged versions every range and the publish read, the survivorship fingerprint,
    the range count (``full_build`` in ``dags/curation.yaml``; ``count`` overrides it) and
    the scratch folder.
    """
    config = config or load_curation_config()
    fingerprint = config.fingerprint(depts)
    versions = pin_versions(root, depts)
    reason = _full_reason(root, depts, versions, fingerprint, full)
    plan: Plan = {"versions": versions, "fingerprint": fingerprint}
    if reason is None:
        return {**plan, "mode": "incremental", "reason": "staged changes", "count": 0, "ranges": []}
    staged = sum(physical_rows(load(root.staged(*t.split("/")), v)) for t, v in versions.items())
    count = count or config.full_build.count(staged)
    scratch = curation_ranges.scratch_dir(root, run_id, versions, fingerprint, count)
    curation_ranges.remove_stale(root, scratch)
    log.info(
        "curation: a full build (%s) over %d key ranges, %d staged rows", reason, count, staged
    )
    return {
        **plan,
        "mode": "full",
        "reason": reason,
        "count": count,
        "ranges": list(range(count)),
        "staged_rows": staged,
        "scratch": str(scratch),
    }


def range_tasks(plan: Plan) -> list[Plan]:
    """The plan as the curation DAG maps it: one entry per key range (the plan without its
    range list, and the range's ``index``); none for an incremental night."""
    entry = {k: v for k, v in plan.items() if k != "ranges"}
    return [{**entry, "index": i} for i in plan["ranges"]]


def _full_reason(
    root: StorageRoot,
    depts: list[Department],
    versions: dict[str, int],
    fingerprint: str,
    full: bool,
) -> str | None:
    """Why tonight is a full build (as ``curate_all`` decides it), or None: incremental."""
    if full:
        return "a full build asked for"
    state = read_state(root)
    if state is None:
        return "the first night"
    if state.get("fingerprint") != fingerprint:
        return "the survivorship rules changed"
    if read_changes(root, depts, state.get("staged", {}), versions) is None:
        return "a staged table has no change feed since the last night"
    return None


def build_range(
    root: StorageRoot,
    depts: list[Department],
    plan: Plan,
    index: int,
    *,
    config: CurationConfig | None = None,
) -> dict[str, Any]:
    """A range task: its part of every curated table, from the staged rows of its key range
    at the plan's versions, written to the plan's scratch folder (each part complete or
    absent, the range's marker last). A rerun rewrites the same parts."""
    config = config or load_curation_config()
    if config.fingerprint(depts) != plan["fingerprint"]:
        raise RuntimeError("the survivorship rules changed after the plan; run the night again")
    part = curation_ranges.KeyRange(index, int(plan["count"]))
    scratch = Path(plan["scratch"])
    night = Night(root, depts, config, dict(plan["versions"]), part=part, scratch=scratch)
    parts: dict[str, Any] = {}
    missing = []
    for name, build in BUILDERS.items():
        built = build(night)
        if built is None:
            missing.append(name)
            continue
        parts[name] = curation_ranges.write_part(scratch, name, part, built[0], LAYOUT[name][1])
    curation_ranges.write_marker(scratch, part, parts, missing)
    log.info(
        "curation range %d of %d: %s", index, part.count, {n: p["rows"] for n, p in parts.items()}
    )
    return {"range": index, "count": part.count, "rows": {n: p["rows"] for n, p in parts.items()}}


# a full build's publish writes a curated table a slice of its first sort column's range at
# a time, one data file per slice of about this many rows (fewer, larger files when the
# table would otherwise have more than ``compact_when_files_over``, which maintain compacts)
ROWS_PER_FILE = 1_048_576


def publish_ranges(
    root: StorageRoot,
    depts: list[Department],
    ds: date,
    run_id: str,
    plan: Plan,
    *,
    config: CurationConfig | None = None,
    check: Check | None = None,
    rows_per_file: int | None = None,
) -> dict[str, Any]:
    """The publish task of a full build: each curated table from every range's part, through
    the gate, in one Delta commit (as ``curate_all`` in full); then the consistency findings
    and the state file, and the scratch folder goes.

    Bounded in memory (docs/curation.md, "A full build over key ranges"): the curated gate
    runs a slice of a key column's range at a time and adds the counts up into the whole
    table's result (``_refused_parts``), on the columns its suite profiles
    (``QualityGate.columns``); the table is written a slice of its first sort column's range
    at a time (``delta.streamed``), one data file of about ``rows_per_file`` rows
    (``ROWS_PER_FILE``) per slice.

    Refuses (``curation_ranges.RangesIncomplete``) while a range has no marker."""
    config = config or load_curation_config()
    scratch = Path(plan["scratch"])
    versions = dict(plan["versions"])
    files, _ = curation_ranges.read_parts(scratch, int(plan["count"]))
    meta = {
        "datacloud.staged": json.dumps(versions, sort_keys=True),
        "datacloud.full": "true",
        "datacloud.ranges": str(plan["count"]),
    }
    commit = delta.CommitInfo(run_id, ds.isoformat(), meta, consumed=versions)
    published: dict[str, Any] = {}
    gated: dict[str, str] = {}
    for name in BUILDERS:
        if name not in files:
            log.warning("curated/%s: no staged source tables yet; not published", name)
            continue
        parts = curation_ranges.Parts(tuple(files[name]))
        outcome = _check_and_publish_parts(
            root, name, parts, config, commit, check, rows_per_file or ROWS_PER_FILE
        )
        if isinstance(outcome, str):
            gated[name] = outcome
        else:
            published[name] = {**outcome, "ranges": len(files[name])}
        memory.give_back()  # the next table starts from what the task holds, not this one's peak
    out = _finish(root, depts, ds, run_id, versions, plan["fingerprint"], published, gated)
    curation_ranges.remove_scratch(scratch)
    return out


def _check_and_publish_parts(
    root: StorageRoot,
    name: str,
    parts: curation_ranges.Parts,
    config: CurationConfig,
    commit: delta.CommitInfo,
    check: Check | None,
    rows_per_file: int,
) -> dict[str, Any] | str:
    """``_check_and_publish`` of a full build's table from its parts, a slice at a time: the
    gate (``_refused_parts``), then ``delta.streamed.publish`` (one commit)."""
    key, sort_by = LAYOUT[name]
    most = max(1, config.publishing.compact_when_files_over)
    bounds = _slicer(parts, max(rows_per_file, -(-parts.num_rows // most)))
    if check is not None:  # 2. check (the curated quality gate)
        verdict = _refused_parts(check, name, parts, bounds)
        if verdict is not None:
            return verdict
        memory.give_back()  # the gate's profile and frames are gone: the publish starts lean
    first = sort_by[0]
    slices = bounds(first)
    source = streamed.Source(
        schema=parts.schema,
        num_rows=parts.num_rows,
        keys=lambda: parts.column_batches(key),
        slices=[functools.partial(parts.read_slice, first, lo, hi) for lo, hi in slices],
        whole=parts.read,
        spill=parts.files[0].parent / "_spill" if parts.files else None,  # in the scratch
    )
    result = streamed.publish(root.curated(name), source, _publish_spec(name, True, config), commit)
    log.info("curated/%s: written in %d slices", name, len(slices))
    return _maintained(root, name, parts.num_rows, result, True, config, commit)


Bounds = Callable[[str], list[tuple[Any, Any]]]  # a column -> its slices' [lo, hi) bounds


def _slicer(parts: curation_ranges.Parts, rows: int) -> Bounds:
    """The slices of a column's range of about ``rows`` rows each (``cut_points``: cut on a
    sample of the column read batch by batch, never the whole column; the last also takes
    the nulls), cut once per column: the gate and the publish, slicing by the same column,
    read the same slices."""
    points: dict[str, list[Any]] = {}

    def bounds(column: str) -> list[tuple[Any, Any]]:
        if column not in points:
            points[column] = curation_ranges.cut_points(parts, column, rows)
        cuts = points[column]
        return list(zip([None, *cuts], [*cuts, None], strict=True))

    return bounds


def _refused_parts(
    check: Check,
    name: str,
    parts: curation_ranges.Parts,
    bounds: Bounds,
) -> str | None:
    """``_refused`` on a full build's table from its parts.

    The curated gate (``QualityGate``) runs a slice at a time (``check_slices``): the rows of
    each range of its ``slice_column``, as the publish cuts them, only the columns its suite
    profiles, so it holds one slice's rows, profile and pandas frame, never the table's.
    Another ``check`` gets the whole table (the columns it names with ``columns``, else all).
    """
    sliced = getattr(check, "check_slices", None)
    by = getattr(check, "slice_column", None)
    wanted = getattr(check, "columns", None)
    named = set(wanted(name)) if callable(wanted) else None
    columns = None if named is None else [c for c in parts.schema.names if c in named]
    column = by(name) if callable(by) else None
    if callable(sliced) and column is not None and column in parts.schema.names:
        keep = columns or parts.schema.names
        slices = (parts.read_slice(column, lo, hi, keep) for lo, hi in bounds(column))
        return _gated(name, lambda: sliced(name, slices))
    key = LAYOUT[name][0]
    if columns is not None:
        columns = [c for c in parts.schema.names if c in {key, *columns}]
    return _refused(check, name, parts.read(columns))


def publish_night(
    root: StorageRoot, depts: list[Department], ds: date, run_id: str, plan: Plan
) -> dict[str, Any]:
    """The publish task: ``publish_ranges`` through the curated quality gate, then the
    resource catalogue (as ``curate_night``)."""
    return _then_catalogue(
        root,
        depts,
        ds,
        lambda: publish_ranges(root, depts, ds, run_id, plan, check=quality_gate(root, ds)),
    )

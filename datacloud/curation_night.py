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
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from datacloud import catalogue_night, consistency_night, delta, quality
from datacloud.atomic import replace_json
from datacloud.config import Department
from datacloud.curate import BUILDERS, LAYOUT, Night
from datacloud.curation_config import CurationConfig, load_curation_config
from datacloud.curation_keys import touched
from datacloud.delta import open_table, read_loaded
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
    for name, build in BUILDERS.items():
        key, sort_by = LAYOUT[name]
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
        if check is not None:  # 2. check (the curated quality gate)
            try:
                check(name, rows)
            except QualityGateError as e:  # not published; the other tables go on
                log.error("curated/%s: not published: %s", name, e)
                gated[name] = str(e)
                continue
        table_full = night_for_table.touched.get(name) is None
        if table_full:
            gone = _keys_not_in(root.curated(name), key, rows[key])
        spec = delta.PublishSpec(
            key,
            tuple(sort_by),
            full=table_full,
            deletion_vectors=config.publishing.deletion_vectors,
            deletion_vectors_under=delta.DELETION_VECTORS_UNDER,
        )
        # the staged versions consumed go into the log too (app transactions)
        commit = delta.CommitInfo(run_id, ds.isoformat(), meta, consumed=versions)
        result = delta.publish(root.curated(name), rows, gone, spec, commit)  # 3. publish
        upkeep = delta.maintain(
            root.curated(name),
            delta.MaintainSpec(
                sort_by[0],
                config.publishing.retention_days,
                config.publishing.compact_when_files_over,
            ),
            commit,
        )
        published[name] = {
            "rows_built": rows.num_rows,
            "inserted": result.inserted,
            "updated": result.updated,
            "deleted": result.deleted,
            "version": result.version,
            "full": table_full,
            "path": str(root.curated(name)),
            **upkeep,
        }
        log.info(
            "curated/%s: %s, %d rows built; v%d (+%d ~%d -%d)",
            name,
            "full" if table_full else "incremental",
            rows.num_rows,
            result.version,
            result.inserted,
            result.updated,
            result.deleted,
        )
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


def quality_gate(root: StorageRoot, ds: date) -> Check:
    """The curated quality gate: each table's GE suite (expectations/curated_<table>.json) on
    the rows about to be published; a failed critical expectation keeps the table unpublished.

    Links (owners, spouses, legal representatives, roles) resolve against the curated person
    and enterprise tables as published so far tonight (person and enterprise go first).
    """
    keys: dict[str, tuple[int, pa.Table]] = {}  # link target -> (its version, its key column)

    def link_keys(table: str) -> pa.Table | None:
        """The key column of a link target, read once per published version of it."""
        dt = open_table(root.curated(table))
        if dt is None:
            return None
        version = dt.version()
        if table not in keys or keys[table][0] != version:
            column = [LINK_TARGETS[table]]
            keys[table] = (version, delta.read_table(root.curated(table), column, version))
        return keys[table][1]

    def check(name: str, rows: pa.Table) -> None:
        related = {}
        for table in LINK_TARGETS:
            found = link_keys(table) if table != name else None
            if found is not None:
                related[table] = found
        result = quality.check_curated(root, name, rows, ds, related)
        if not result.passed:
            raise QualityGateError(result.message())

    return check


def curate_night(
    root: StorageRoot, depts: list[Department], ds: date, run_id: str, *, full: bool = False
) -> dict[str, Any]:
    """The curation task: every department's staged tables, through the curated quality
    gate, into the curated tables (the task edge passes the storage root and departments);
    last, the resource catalogue (资源目录) is rebuilt, also when the gate kept a table back
    (the catalogue shows it), without hiding that failure."""
    try:
        published = curate_all(root, depts, ds, run_id, full=full, check=quality_gate(root, ds))
    except QualityGateError:
        try:
            catalogue_night.rebuild(root, depts, ds)
        except Exception:  # the gate's failure is the night's news; log this one beside it
            log.exception("resource catalogue: not rebuilt after the quality gate failed")
        raise
    catalogue_night.rebuild(root, depts, ds)
    return published

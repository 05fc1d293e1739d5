"""Keeping published tables lookup-ready and their history bounded: layout analysis (row
group key ranges from the Parquet footers), recluster, vacuum, checkpoints.
"""

from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path

import pyarrow.parquet as pq
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError

from datacloud.delta import log, protocol, rs
from datacloud.delta.lock import table_lock
from datacloud.delta.read import (
    file_loc,
    has_deletion_vectors,
    live_rows,
    load,
    physical_rows,
    read_loaded,
)
from datacloud.delta.rewrite import rewrite
from datacloud.delta.spec import (
    PUBLISH_ATTEMPTS,
    RECLUSTER_DELETED_OVER,
    CommitConflict,
    CommitInfo,
    MaintainSpec,
    VectorsUnknown,
    writer,
)
from datacloud.storage import DataPath, filesystem, is_object_store, parse

_log = logging.getLogger(__name__)
CHECKPOINT_EVERY = 10


def key_ranges(dt: DeltaTable, key: str) -> list[tuple[str, int, object, object]]:
    """(file, row group, min, max) of ``key`` for every row group of the table's data files,
    from the Parquet footers (``None`` bounds: no statistics, or only nulls)."""
    out: list[tuple[str, int, object, object]] = []
    if has_deletion_vectors(dt):  # pyarrow's dataset refuses them: each file's footer
        footers = []
        for u in dt.file_uris():
            fs, p = filesystem(file_loc(Path("/"), u))
            with fs.open_input_file(p) as f:
                footers.append((u, pq.ParquetFile(f).metadata))
    else:
        footers = [(f.path, f.metadata) for f in dt.to_pyarrow_dataset().get_fragments()]
    for path, meta in footers:
        col = meta.schema.names.index(key)
        for i in range(meta.num_row_groups):
            stats = meta.row_group(i).column(col).statistics
            lo, hi = (
                (stats.min, stats.max) if stats is not None and stats.has_min_max else (None, None)
            )
            out.append((path, i, lo, hi))
    return out


def overlapping_row_groups(dt: DeltaTable, key: str, *, within_files: bool = False) -> int:
    """How many row groups (of all data files) overlap another in ``key`` range; with
    ``within_files``, another of the same file.

    Row groups of a table written sorted by key share at most a boundary value (not counted);
    a row group without statistics counts as overlapping when there are others.
    """
    ranges = key_ranges(dt, key)
    if within_files:
        by_file: dict[str, list[tuple[str, int, object, object]]] = {}
        for r in ranges:
            by_file.setdefault(r[0], []).append(r)
        return sum(_overlapping(group) for group in by_file.values())
    return _overlapping(ranges)


def _overlapping(ranges: list[tuple[str, int, object, object]]) -> int:
    if len(ranges) < 2:
        return 0
    bounded = sorted((lo, hi) for _, _, lo, hi in ranges if lo is not None and hi is not None)
    overlapping: set[int] = set()
    reach: object = None
    reach_at = -1
    for i, (lo, hi) in enumerate(bounded):
        if reach is not None and lo < reach:  # type: ignore[operator]
            overlapping.update({i, reach_at})
        if reach is None or hi > reach:  # type: ignore[operator]
            reach, reach_at = hi, i
    return len(overlapping) + len(ranges) - len(bounded)


def maintain(path: DataPath, spec: MaintainSpec, commit: CommitInfo) -> dict[str, int]:
    """Keep a published table lookup-ready and its history bounded.

    Rewrite it sorted by ``spec.key`` in one commit (``datacloud.maintenance: recluster``;
    same rows: row groups of at most ``spec.row_group_rows`` rows that do not overlap in key
    range, so a point lookup reads one, and no deletion vectors) when

    - it holds more than ``spec.recluster_files_over`` files (small files);
    - row groups overlap in key range (Parquet footer statistics; a MERGE writes its
      output unsorted). In a table with deletion vectors each night's file of touched keys
      spans the whole key range by design (sorted within itself), so there only row groups
      of one file count, and a point lookup reads one row group per file;
    - more than ``RECLUSTER_DELETED_OVER`` of its physical rows are marked deleted.

    Then delete files no reader of the last ``spec.retention_days`` days needs (vacuum).
    Both commit only when they have something to do.
    """
    path = parse(path) if isinstance(path, str) else path  # callers may pass a str
    with table_lock(path):
        for attempt in range(PUBLISH_ATTEMPTS):
            try:
                return _maintain_once(path, spec, commit)
            except (CommitConflict, CommitFailedError, VectorsUnknown) as e:
                if attempt + 1 == PUBLISH_ATTEMPTS:
                    raise
                _log.warning("%s: %s; reloading and maintaining again", path, e)
                time.sleep(random.uniform(0.05, 0.25) * (attempt + 1))
    raise AssertionError("unreachable")


def _maintain_once(path: DataPath, spec: MaintainSpec, commit: CommitInfo) -> dict[str, int]:
    dt = load(path)
    out = {"reclustered_files": 0, "vacuumed_files": 0}
    files = len(dt.file_uris())
    with_dv = has_deletion_vectors(dt)
    physical = physical_rows(dt)
    dead = physical - live_rows(dt)
    if (
        files > spec.recluster_files_over
        or overlapping_row_groups(dt, spec.key, within_files=with_dv)
        or dead > RECLUSTER_DELETED_OVER * physical
    ):
        table = read_loaded(dt)
        # the same rows: not a publish, so no consumed staged versions
        info = CommitInfo(commit.run_id, commit.ds, {"datacloud.maintenance": "recluster"})
        if protocol.gate(dt).ours:
            rewrite(path, dt, None, table, spec.layout, info)
        else:
            write_deltalake(
                dt,
                table.sort_by([(spec.key, "ascending")]),
                mode="overwrite",
                writer_properties=writer(spec.row_group_rows),
                commit_properties=info.properties(),
            )
            rs.verify_commit(path, dt.version() - 1)
        out["reclustered_files"] = files
        dt = load(path)
    hours = spec.retention_days * 24
    # full: also files no version names (a publish killed before its commit), once older
    # than the retention, so never a file a running publish is about to commit
    due = dt.vacuum(retention_hours=hours, enforce_retention_duration=False, full=True)
    due = [f for f in due if log.exists(file_loc(path, f))]  # not gone already
    if due:
        out["vacuumed_files"] = len(
            dt.vacuum(
                retention_hours=hours,
                enforce_retention_duration=False,
                dry_run=False,
                full=True,
                commit_properties=CommitInfo(commit.run_id, commit.ds).properties(),
            )
        )
        dt = load(path)
    _checkpoint_if_due(path, dt)
    if not is_object_store(path):
        for aside in (Path(str(path)) / "_delta_log").glob(".*.json.tmp"):  # a killed commit
            if time.time() - aside.stat().st_mtime > 86_400:
                aside.unlink(missing_ok=True)
    return out


def _checkpoint_if_due(root: DataPath, dt: DeltaTable) -> None:
    """A checkpoint once ``CHECKPOINT_EVERY`` versions have passed since the last one, so a
    reader replays few log entries. delta-rs checkpoints after its own commits every 100
    versions; our own commits bypass that hook."""
    last = log.read_bytes(root / "_delta_log" / "_last_checkpoint")
    since = json.loads(last)["version"] if last is not None else -1
    if dt.version() - int(since) >= CHECKPOINT_EVERY:
        dt.create_checkpoint()

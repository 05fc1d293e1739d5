"""Publishing a curated table: one commit per night under the table's lock, retried on a
conflict, by the way that suits the night (docs/curation.md, "Publishing"):

- the first publish, or a rebuild with another layout: the table written sorted;
- a table whose features our writer does not implement (``protocol.gate``): a delta-rs MERGE;
- few touched keys: deletion vectors (``dv_writer``), no file rewritten;
- otherwise copy-on-write of the files in the touched keys' range, or of the whole table
  (sorted rewrite) when those files hold most of its rows.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError

from datacloud.delta import dv_writer, protocol, rs
from datacloud.delta.lock import table_lock
from datacloud.delta.read import (
    deleted_positions,
    files_in_range,
    live_rows,
    load,
    open_table,
    plain_types,
    read_where,
)
from datacloud.delta.rewrite import read_files, rewrite
from datacloud.delta.spec import (
    PUBLISH_ATTEMPTS,
    ROW_HASH,
    AppendOnly,
    Changes,
    CommitConflict,
    CommitInfo,
    MergeResult,
    MergeSpec,
    PublishSpec,
    Snapshot,
    VectorsUnknown,
    writer,
)
from datacloud.storage import DataPath, parse

log = logging.getLogger(__name__)


def publish(
    path: DataPath,
    rows: pa.Table,
    deleted_keys: pa.Array | None,
    spec: PublishSpec,
    commit: CommitInfo,
) -> MergeResult:
    """Publish curated rows by ``spec.key`` in one Delta commit: insert, update changed
    rows, delete ``deleted_keys``.

    ``spec.full=False`` says ``rows`` hold only some keys (an incremental night): then a
    table whose columns differ from ``rows`` is an error, never replaced by those rows alone.

    A row counts as changed only when one of its columns differs, and nothing changed means
    no commit, so a rerun of a night makes no new version. The first publish writes the table
    sorted by ``spec.sort_by`` with row groups of at most ``spec.row_group_rows``.

    Later publishes are adaptive. With ``spec.deletion_vectors`` (the first publish then lets
    the table's files carry them), touched and deleted keys of at most
    ``spec.deletion_vectors_under`` of its rows are published without rewriting a file
    (``dv_writer.merge``). Otherwise the Delta log's per-file min/max of the key tell which
    files can hold a touched or deleted key; when those files hold more than
    ``spec.rewrite_over`` of the table's rows, the table is rewritten sorted in one commit:
    a copy-on-write merge would rewrite those files anyway, unsorted and slower. Otherwise
    only those files are rewritten (``maintain`` reclusters when key ranges then overlap).

    ``commit.consumed`` (the staged versions the rows were built from) goes into the commit
    as app transactions (``read.consumed_versions``).
    """
    path = parse(path) if isinstance(path, str) else path  # callers may pass a str
    return with_retries(path, lambda: _publish_once(path, rows, deleted_keys, spec, commit))


def with_retries(path: DataPath, attempt: Callable[[], MergeResult]) -> MergeResult:
    """``attempt`` (one publish on a freshly loaded snapshot) under the table's lock, made
    again when another writer committed first, at most ``PUBLISH_ATTEMPTS`` times with a
    growing random pause; then ``CommitConflict``."""
    with table_lock(path):
        for n in range(PUBLISH_ATTEMPTS):
            try:
                return attempt()
            except (CommitConflict, CommitFailedError, VectorsUnknown) as e:
                if n + 1 == PUBLISH_ATTEMPTS:
                    raise CommitConflict(
                        f"{path}: other writers changed the table during {PUBLISH_ATTEMPTS} "
                        f"attempts to publish; last: {e}"
                    ) from e
                log.warning("%s: %s; reloading and publishing again", path, e)
                time.sleep(random.uniform(0.05, 0.25) * (n + 1))
    raise AssertionError("unreachable")


def _publish_once(
    path: DataPath,
    rows: pa.Table,
    deleted_keys: pa.Array | None,
    spec: PublishSpec,
    commit: CommitInfo,
) -> MergeResult:
    """One attempt of ``publish`` on a freshly loaded snapshot."""
    key = spec.key
    dt = open_table(path)
    if dt is not None:  # hash the values as the table stores them (decimal scale, int width)
        stored = pa.schema([f for f in pa.schema(dt.schema().to_arrow()) if f.name != ROW_HASH])
        if stored.names == [c for c in rows.column_names if c != ROW_HASH]:
            rows = rows.select(stored.names).cast(stored)
    rows = with_row_hash(rows).sort_by([(k, "ascending") for k in spec.sort_by])
    if dt is None or dt.schema().to_arrow().names != rows.column_names:
        return _write_whole(path, dt, rows, spec, commit)
    gate = protocol.gate(dt)
    gone = pa.array([], rows.schema.field(key).type) if deleted_keys is None else deleted_keys
    gone = pc.cast(gone, rows.schema.field(key).type)
    if isinstance(gone, pa.ChunkedArray):
        gone = gone.combine_chunks()
    if rows.num_rows == 0 and len(gone) == 0:
        return MergeResult(dt.version(), 0, 0, 0)
    if pc.any(pc.is_in(gone, value_set=rows[key].combine_chunks())).as_py():
        raise ValueError(f"{path}: a key is both published and deleted tonight")
    changes = Changes(rows, gone)
    touched = changes.touched(key)
    if gate.append_only:
        _refuse_changes(path, dt, changes, key)
    if not gate.ours or gate.append_only:
        log.info("%s: published by delta-rs MERGE: %s", path, gate.why or "append-only")
        merge_spec = MergeSpec(key, row_group_rows=spec.row_group_rows)
        result = rs.merge(dt, rows, gone, merge_spec, commit)
        rs.verify_commit(path, dt.version(), result.version)
        return result
    already = deleted_positions(dt)
    live = live_rows(dt, already)
    if spec.deletion_vectors and len(touched) <= spec.vectors_under * live:
        if not gate.vectors:
            log.info("%s: enabling deletion vectors (%s)", path, gate.why)
            protocol.enable_deletion_vectors(path, dt, commit)
            dt = load(path)
            already = deleted_positions(dt)
        return dv_writer.merge(Snapshot(path, dt, already), changes, spec, commit)
    if spec.deletion_vectors:
        log.info("%s: %d touched keys of %d rows: copy-on-write", path, len(touched), live)
    whole = share_to_rewrite(dt, key, touched) > spec.rewrite_over
    return _copy_on_write(Snapshot(path, dt, already), changes, spec, commit, whole)


def _write_whole(
    path: DataPath, dt: DeltaTable | None, rows: pa.Table, spec: PublishSpec, commit: CommitInfo
) -> MergeResult:
    """The first publish (delta-rs writes the table), or a full build with another layout
    (the table rewritten sorted); then the table's files may carry deletion vectors."""
    if dt is not None and not spec.full:
        raise ValueError(
            f"{path}: the published columns differ from tonight's; an incremental publish "
            "cannot replace the table (rebuild it in full)"
        )
    counts = commit.with_extra(rows_inserted=str(rows.num_rows), rows_updated="0")
    counts = counts.with_extra(rows_deleted="0")
    first = dt is None
    if dt is None:
        rs.write(
            path, rows, mode="overwrite", schema_mode="overwrite",
            writer_properties=writer(spec.row_group_rows), commit_properties=commit.properties(),
        )  # fmt: skip
        dt = load(path)
        version = rs.verify_commit(path, dt.version() - 1, dt.version())
    else:
        gate = protocol.gate(dt)
        if gate.append_only:
            raise AppendOnly(
                f"{path}: {protocol.APPEND_ONLY}=true; a rebuild with another layout "
                "would replace its rows: refused"
            )
        if gate.ours:
            version = rewrite(path, dt, None, rows, spec.layout, counts)
        else:
            log.warning("%s: rewritten by delta-rs: %s", path, gate.why)
            rs.write(
                path, rows, mode="overwrite", schema_mode="overwrite",
                writer_properties=writer(spec.row_group_rows),
                commit_properties=commit.properties(),
            )  # fmt: skip
            version = rs.verify_commit(path, dt.version())
    if spec.deletion_vectors:
        protocol.enable_deletion_vectors(path, load(path), commit)
        if first:  # the version now current (a rebuild reports its rewrite's)
            version = load(path).version()
    return MergeResult(version, rows.num_rows, 0, 0)


def with_row_hash(rows: pa.Table) -> pa.Table:
    """``rows`` with ``_row_hash``: a 64-bit hash of every other column's value (polars
    ``hash_rows``, fixed seeds). Two rows with the same values hash the same in one polars
    version; another version may hash differently, which makes the next incremental publish
    replace its touched rows although they are unchanged (same content, counted as updated).
    Two different rows of one key hash the same with a chance of 2**-64.
    """
    import polars as pl

    if ROW_HASH in rows.column_names:
        rows = rows.drop_columns([ROW_HASH])
    frame = pl.from_arrow(rows)
    assert isinstance(frame, pl.DataFrame)
    hashes = frame.hash_rows(seed=20261121)
    # Delta has no unsigned type: the same 64 bits as a signed long
    return rows.append_column(ROW_HASH, hashes.to_arrow().cast(pa.uint64()).view(pa.int64()))


def share_to_rewrite(dt: DeltaTable, key: str, touched: pa.ChunkedArray | pa.Array) -> float:
    """The share of the table's rows in files whose ``key`` range (Delta log statistics) can
    hold one of the ``touched`` keys: what a copy-on-write merge of them would rewrite.

    A file without statistics for ``key`` counts as holding one.
    """
    files = pa.table(dt.get_add_actions(flatten=True))
    total = pc.sum(files["num_records"]).as_py() or 0
    if total == 0:
        return 0.0
    keys = np.sort(np.asarray(pc.drop_null(touched).to_pylist(), dtype=object))
    lo_col, hi_col = f"min.{key}", f"max.{key}"
    if len(keys) == 0 or lo_col not in files.column_names:
        return 0.0 if len(keys) == 0 else 1.0
    lo = files[lo_col].to_pylist()
    hi = files[hi_col].to_pylist()
    n = files["num_records"].to_pylist()
    hit = 0
    for low, high, count in zip(lo, hi, n, strict=True):
        if low is None or high is None:
            hit += count
            continue
        first = np.searchsorted(keys, low, side="left")
        last = np.searchsorted(keys, high, side="right")
        hit += count if last > first else 0
    return hit / total


def _differs(old: pa.Table, new: pa.Table) -> pa.Array:
    """Per row of two equally keyed tables: whether any column differs (nulls compared)."""
    out = pa.array(np.zeros(old.num_rows, dtype=bool))
    for name in new.column_names:
        a, b = old[name], new[name]
        ne = pc.fill_null(pc.not_equal(a, b), False)
        one_null = pc.xor(pc.is_null(a), pc.is_null(b))
        out = pc.or_(out, pc.or_(ne, one_null))
    return out


def _copy_on_write(
    snapshot: Snapshot, changes: Changes, spec: PublishSpec, commit: CommitInfo, whole: bool
) -> MergeResult:
    """Copy-on-write in one commit of our own: the files whose key range can hold a touched
    key (``whole``: every file, the table then stays sorted) are read, their touched keys'
    rows replaced and the gone keys dropped, and written as one sorted file."""
    path, dt, key, gone = snapshot.path, snapshot.dt, spec.key, changes.gone
    touched = changes.touched(key)
    files = [a["path"] for a in pa.table(dt.get_add_actions(flatten=False)).to_pylist()]
    if not whole:
        files = list(files_in_range(dt, key, touched))
    current = read_files(path, dt, files, snapshot.deleted)
    rows = plain_types(changes.rows).select(current.column_names).cast(current.schema)
    new_keys = rows[key].combine_chunks()
    in_rows = pc.is_in(current[key], value_set=new_keys)
    in_gone = pc.is_in(current[key], value_set=gone.cast(new_keys.type))
    old = current.filter(in_rows).sort_by([(key, "ascending")])
    deleted = pc.sum(in_gone).as_py() or 0
    new = rows.filter(pc.is_in(new_keys, value_set=old[key].combine_chunks()))
    new = new.sort_by([(key, "ascending")])
    if old.num_rows != new.num_rows:  # a key twice in the table: cannot pair old and new
        raise ValueError(f"{dt.table_uri}: duplicate values of key column {key}")
    updated = (pc.sum(_differs(old, new)).as_py() or 0) if old.num_rows else 0
    inserted = rows.num_rows - new.num_rows
    if inserted == updated == deleted == 0:
        return MergeResult(dt.version(), 0, 0, 0)
    kept = current.filter(pc.invert(pc.or_(in_rows, in_gone)))
    table = pa.concat_tables([kept, rows])
    counts = {"inserted": inserted, "updated": updated, "deleted": deleted}
    info = commit.with_extra(**{f"rows_{k}": str(v) for k, v in counts.items()})
    operation = "WRITE" if whole else "MERGE"
    version = rewrite(path, dt, files, table, spec.layout, info, operation)
    return MergeResult(version, inserted, updated, deleted)


def _refuse_changes(path: DataPath, dt: DeltaTable, changes: Changes, key: str) -> None:
    """``delta.appendOnly=true``: a publish may only insert new keys."""
    rows, gone = changes.rows, changes.gone
    touched = pa.concat_arrays([rows[key].combine_chunks(), gone.cast(rows.schema.field(key).type)])
    old = read_where(dt, [key, ROW_HASH], [key], touched)
    deleting = pc.sum(pc.is_in(old[key], value_set=gone)).as_py() or 0
    again = rows.filter(pc.is_in(rows[key], value_set=old[key].combine_chunks()))
    pairs = old.filter(pc.is_in(old[key], value_set=again[key].combine_chunks()))
    pairs = pairs.sort_by([(key, "ascending")])
    again = again.sort_by([(key, "ascending")])
    updating = pc.sum(pc.not_equal(pairs[ROW_HASH], again[ROW_HASH])).as_py() or 0
    if deleting or updating:
        raise AppendOnly(
            f"{path}: {protocol.APPEND_ONLY}=true, but tonight would update {updating} "
            f"and delete {deleting} rows: refused (only new keys may be added)"
        )

"""Delta Lake writes for staged and curated tables.

Delta commits are the only way these tables change: a reader sees the last committed
version or the next, never a partial write. Files are sorted by key with row groups of at
most 128k rows, so point lookups prune on statistics.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import random
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import (
    ColumnProperties,
    CommitProperties,
    DeltaTable,
    WriterProperties,
    write_deltalake,
)
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import CommitFailedError, TableNotFoundError

from datacloud import deletion_vectors, delta_protocol
from datacloud.delta_protocol import CommitConflict
from datacloud.storage import (
    DataPath,
    filesystem,
    is_object_store,
    parse,
    prepare_parent,
    storage_options,
    uri,
)
from datacloud.table_lock import table_lock

log = logging.getLogger(__name__)

ROW_GROUP_ROWS = 128 * 1024
# publish rewrites a curated table sorted (one overwrite) instead of merging when the files
# that can hold a touched key hold more than this share of its rows (docs/curation.md)
REWRITE_OVER = 0.5
# an incremental publish of a local table marks the touched keys' old rows deleted (deletion
# vectors) and adds their new rows in one file, while they are at most this share of its rows
DELETION_VECTORS_UNDER = 0.2
# maintain rewrites a table sorted once this share of its physical rows is marked deleted
RECLUSTER_DELETED_OVER = 0.2
DV_FEATURE = "deletionVectors"
# a publish that finds another writer's commit after its snapshot reloads and starts again
PUBLISH_ATTEMPTS = 5
# a commit whose version another writer took with an entry that changes no file, protocol or
# metadata (vacuum's START/END) takes the next version instead, at most this many times
REBASES = 50
# every published curated row carries a 64-bit hash of its other columns: an incremental
# publish compares it instead of reading the old rows whole
ROW_HASH = "_row_hash"


def _writer(row_group_rows: int = ROW_GROUP_ROWS) -> WriterProperties:
    """ZSTD Parquet, row groups of at most ``row_group_rows``, min/max statistics per page."""
    return WriterProperties(
        max_row_group_size=row_group_rows,
        compression="ZSTD",
        default_column_properties=ColumnProperties(statistics_enabled="PAGE"),
    )


_WRITER = _writer()
# staged tables record their row changes (Delta change data feed): curation reads them
CDF = "delta.enableChangeDataFeed"
_STRING_VIEW_SAFE = {pa.string_view(): pa.string(), pa.binary_view(): pa.binary()}


@dataclass(frozen=True)
class MergeResult:
    version: int
    inserted: int
    updated: int
    deleted: int


def load(path: DataPath, version: int | None = None) -> DeltaTable:
    """The Delta table at ``path`` (local or on the object store), at ``version`` or the latest.

    A given version never changes, so its loaded log is kept (the last 128) and shared: do
    not ``update_incremental`` or write through a table loaded at a version.
    """
    options = storage_options(path)
    if version is None:
        return DeltaTable(uri(path), storage_options=options)
    return _load_version(uri(path), version, tuple(sorted((options or {}).items())))


@functools.lru_cache(maxsize=128)
def _load_version(location: str, version: int, options: tuple[tuple[str, str], ...]) -> DeltaTable:
    return DeltaTable(location, version=version, storage_options=dict(options) or None)


def open_table(path: DataPath, version: int | None = None) -> DeltaTable | None:
    """The table at ``path`` (at ``version``), or None when there is none."""
    try:
        return load(path, version)
    except TableNotFoundError:
        return None


def _write(path: DataPath, table: pa.Table, **kwargs: object) -> None:
    """``write_deltalake`` to a new or existing table at ``path`` (parent folder made locally)."""
    prepare_parent(path)
    write_deltalake(uri(path), table, storage_options=storage_options(path), **kwargs)  # type: ignore[call-overload]


def _latest(dt: DeltaTable) -> int:
    """The version now current of a table another call just wrote."""
    dt.update_incremental()
    return dt.version()


def version_as_of(path: DataPath, ds: str) -> int | None:
    """The latest version committed for a business date on or before ``ds`` (ISO date).

    Every datacloud commit records its business date (``datacloud.ds``) in the commit
    metadata; ``None`` when no commit is that old (or the table does not exist).
    """
    dt = open_table(path)
    if dt is None:
        return None
    best: int | None = None
    for commit in dt.history():
        committed_ds = commit.get("datacloud.ds")
        version = commit.get("version")
        if committed_ds is None or version is None or str(committed_ds) > ds:
            continue
        if best is None or int(version) > best:
            best = int(version)
    return best


def read_table(
    path: DataPath, columns: list[str] | None = None, version: int | None = None
) -> pa.Table:
    """Read a whole Delta table (or some columns) as Arrow, with plain string types.

    A table with deletion vectors is read through delta-rs's own engine (``scan``), which
    applies them; deltalake's pyarrow dataset refuses such tables.
    """
    return read_loaded(load(path, version), columns)


def read_loaded(dt: DeltaTable, columns: list[str] | None = None) -> pa.Table:
    """``read_table`` of a table already loaded (at its loaded version)."""
    if not has_deletion_vectors(dt):
        return plain_types(dt.to_pyarrow_table(columns=columns))
    table = pa.RecordBatchReader.from_stream(dt.scan(columns=columns)).read_all()
    names = columns if columns is not None else dt.schema().to_arrow().names
    return plain_types(table).select(names)


def has_deletion_vectors(dt: DeltaTable) -> bool:
    """Whether the table's protocol lets its files carry deletion vectors."""
    return DV_FEATURE in (dt.protocol().reader_features or [])


def read_where(dt: DeltaTable, columns: list[str], where: list[str], values: pa.Array) -> pa.Table:
    """The rows of a loaded table whose value in any of the ``where`` columns is in
    ``values``, as Arrow with the table's own types (``columns`` only).

    A local table is read by polars, which decodes the ``where`` columns first and the other
    columns only for the matching rows: reading 1% of a table's rows costs a fraction of
    reading it whole. On the object store: a whole read, then a filter.
    """
    schema = pa.schema(dt.schema().to_arrow())
    where = [c for c in where if c in schema.names]
    target = pa.schema([schema.field(c) for c in columns])
    if not where:
        return target.empty_table()
    if urlparse(dt.table_uri).scheme not in ("file", ""):
        table = read_loaded(dt, columns + [c for c in where if c not in columns])
        mask = pc.is_in(table[where[0]], value_set=values)
        for c in where[1:]:
            mask = pc.or_kleene(mask, pc.is_in(table[c], value_set=values))
        return table.filter(mask).select(columns).cast(target)
    import polars as pl

    wanted = pl.Series("v", pa.array(values).cast(pa.large_string())).implode()
    condition = pl.any_horizontal([pl.col(c).is_in(wanted) for c in where])
    if has_deletion_vectors(dt):
        frame = pl.scan_delta(dt)
    else:
        # a file written before the table gained a column has none: nulls (as Delta reads it)
        frame = pl.scan_parquet(
            sorted(str(_local_path(u)) for u in dt.file_uris()),
            schema=pl.from_arrow(schema.empty_table()).schema,  # type: ignore[union-attr]
            missing_columns="insert",
            extra_columns="ignore",
        )
    out = frame.filter(condition).select(columns).collect().to_arrow()
    return out.cast(target)


def plain_types(table: pa.Table) -> pa.Table:
    """Cast string_view/binary_view columns (as delta-rs returns them) to string/binary."""
    fields = [f.with_type(_STRING_VIEW_SAFE.get(f.type, f.type)) for f in table.schema]
    schema = pa.schema(fields)
    return table if schema == table.schema else table.cast(schema)


def _metadata(run_id: str, ds: str, extra: dict[str, str] | None = None) -> CommitProperties:
    meta = {"datacloud.run_id": run_id, "datacloud.ds": ds, **(extra or {})}
    return CommitProperties(custom_metadata=meta)


def _enable_cdf(dt: DeltaTable) -> DeltaTable:
    if dt.metadata().configuration.get(CDF) == "true":
        return dt
    dt.alter.set_table_properties({CDF: "true"}, raise_if_not_exists=False)
    dt.update_incremental()
    return dt


def overwrite(path: DataPath, table: pa.Table, sort_by: list[str], run_id: str, ds: str) -> int:
    """Replace the table's content in one commit, unless the content is unchanged.

    Returns the table version now current. Rerunning a night with the same input makes
    no new version.
    """
    table = table.sort_by([(k, "ascending") for k in sort_by])
    current = open_table(path)
    if current is not None:
        existing = read_loaded(current)
        if existing.schema == table.schema and existing.num_rows == table.num_rows:
            existing = existing.sort_by([(k, "ascending") for k in sort_by])
            if existing.equals(table):
                return current.version()
    _write(
        path,
        table,
        mode="overwrite",
        schema_mode="overwrite",
        writer_properties=_WRITER,
        commit_properties=_metadata(run_id, ds),
    )
    return load(path).version()


def _merge_source(rows: pa.Table, key: str, deleted_keys: pa.Array | None) -> pa.Table:
    """The merge source: ``rows`` marked ``_op = 'U'``, then one ``'D'`` row per deleted key."""
    source = rows.append_column("_op", pa.array(["U"] * rows.num_rows, pa.string()))
    if deleted_keys is None or len(deleted_keys) == 0:
        return source
    tomb = {
        c: pa.nulls(len(deleted_keys), source.schema.field(c).type) for c in source.column_names
    }
    tomb[key] = pc.cast(deleted_keys, source.schema.field(key).type)
    tomb["_op"] = pa.array(["D"] * len(deleted_keys), pa.string())
    return pa.concat_tables([source, pa.table(tomb, schema=source.schema)])


def merge_by_key(
    path: DataPath,
    rows: pa.Table,
    key: str,
    compare: list[str],
    deleted_keys: pa.Array | None,
    run_id: str,
    ds: str,
) -> MergeResult:
    """Merge ``rows`` into the table by ``key``: insert new keys, update changed rows, delete keys.

    A matched row is updated only when one of the ``compare`` columns differs, so rerunning a
    night changes no content. ``deleted_keys`` (from a full snapshot) are deleted.
    """
    rows = rows.sort_by([(key, "ascending")])
    dt = open_table(path)
    if dt is None:
        _write(
            path,
            rows,
            mode="append",
            writer_properties=_WRITER,
            commit_properties=_metadata(run_id, ds),
            configuration={CDF: "true"},
        )
        return MergeResult(load(path).version(), rows.num_rows, 0, 0)
    dt = _enable_cdf(dt)
    return _merge(
        dt, rows, key, deleted_keys, _WRITER, run_id, ds, None, compare=compare, merge_schema=True
    )


def has_cdf(path: DataPath, version: int) -> bool:
    """Whether the table recorded its row changes (change data feed) from ``version`` on."""
    try:
        dt = load(path, version)
    except Exception:  # vacuumed log or a version that never existed
        return False
    return dt.metadata().configuration.get(CDF) == "true"


def changes(path: DataPath, after: int, upto: int, columns: list[str]) -> pa.Table:
    """The rows inserted, updated (old and new image) or deleted in versions ``after+1..upto``."""
    dt = load(path, upto)
    if after >= upto:
        return pa.table({c: pa.array([], pa.string()) for c in columns})
    reader = dt.load_cdf(starting_version=after + 1, ending_version=upto, columns=columns)
    return plain_types(pa.table(reader).select(columns))


def publish(
    path: DataPath,
    rows: pa.Table,
    key: str,
    deleted_keys: pa.Array | None,
    sort_by: list[str],
    run_id: str,
    ds: str,
    metadata: dict[str, str] | None = None,
    *,
    rewrite_over: float = REWRITE_OVER,
    deletion_vectors_under: float | None = None,
    row_group_rows: int = ROW_GROUP_ROWS,
    full: bool = True,
    deletion_vectors: bool = True,
) -> MergeResult:
    """Publish curated rows by ``key`` in one Delta commit: insert, update changed rows, delete.

    ``full=False`` says ``rows`` hold only some keys (an incremental night): then a table
    whose columns differ from ``rows`` is an error, never replaced by those rows alone.

    A row counts as changed only when one of its columns differs, and nothing changed means
    no commit, so a rerun of a night makes no new version. The first publish writes the table
    sorted by ``sort_by`` with row groups of at most ``row_group_rows`` (statistics on).

    Later publishes are adaptive. With ``deletion_vectors`` (a local table; the first
    publish then lets its files carry them), touched and deleted keys of at most
    ``deletion_vectors_under`` of its rows are published without rewriting a file: the old
    rows are marked deleted, the new ones written to one sorted file (see
    ``_deletion_vector_merge``). Otherwise the Delta log's per-file min/max of ``key`` tell
    which files can hold a touched or deleted key; when those files hold more than
    ``rewrite_over`` of the table's rows, the table is rewritten sorted in one overwrite
    commit (the touched keys' rows replaced in Arrow): a copy-on-write merge would rewrite
    those files anyway, unsorted and slower. Otherwise one MERGE rewrites only those files
    (unsorted: ``maintain`` reclusters when file key ranges then overlap).
    """
    path = parse(path) if isinstance(path, str) else path  # callers may pass a str
    with table_lock(path):
        for attempt in range(PUBLISH_ATTEMPTS):
            try:
                return _publish_once(
                    path, rows, key, deleted_keys, sort_by, run_id, ds, metadata,
                    rewrite_over=rewrite_over, deletion_vectors_under=deletion_vectors_under,
                    row_group_rows=row_group_rows, full=full, deletion_vectors=deletion_vectors,
                )  # fmt: skip
            except (CommitConflict, CommitFailedError, VectorsUnknown) as e:
                if attempt + 1 == PUBLISH_ATTEMPTS:
                    raise CommitConflict(
                        f"{path}: other writers changed the table during {PUBLISH_ATTEMPTS} "
                        f"attempts to publish; last: {e}"
                    ) from e
                log.warning("%s: %s; reloading and publishing again", path, e)
                time.sleep(random.uniform(0.05, 0.25) * (attempt + 1))
    raise AssertionError("unreachable")


def _publish_once(
    path: DataPath,
    rows: pa.Table,
    key: str,
    deleted_keys: pa.Array | None,
    sort_by: list[str],
    run_id: str,
    ds: str,
    metadata: dict[str, str] | None,
    *,
    rewrite_over: float,
    deletion_vectors_under: float | None,
    row_group_rows: int,
    full: bool,
    deletion_vectors: bool,
) -> MergeResult:
    """One attempt of ``publish`` on a freshly loaded snapshot."""
    writer = _writer(row_group_rows)
    dt = open_table(path)
    if dt is not None:  # hash the values as the table stores them (decimal scale, int width)
        stored = pa.schema([f for f in pa.schema(dt.schema().to_arrow()) if f.name != ROW_HASH])
        if stored.names == [c for c in rows.column_names if c != ROW_HASH]:
            rows = rows.select(stored.names).cast(stored)
    rows = with_row_hash(rows).sort_by([(k, "ascending") for k in sort_by])
    if dt is not None and dt.schema().to_arrow().names != rows.column_names and not full:
        raise ValueError(
            f"{path}: the published columns differ from tonight's; an incremental publish "
            "cannot replace the table (rebuild it in full)"
        )
    meta = {**(metadata or {}), "datacloud.rows_inserted": str(rows.num_rows)}
    meta |= {"datacloud.rows_updated": "0", "datacloud.rows_deleted": "0"}
    if dt is None:
        _write(
            path,
            rows,
            mode="overwrite",
            schema_mode="overwrite",
            writer_properties=writer,
            commit_properties=_metadata(run_id, ds, metadata),
        )
        dt = load(path)
        _verify_delta_rs_commit(path, dt.version() - 1, dt.version())
        if deletion_vectors:
            _enable_deletion_vectors(path, dt, run_id, ds)
        return MergeResult(load(path).version(), rows.num_rows, 0, 0)
    gate = delta_protocol.gate(dt)
    if dt.schema().to_arrow().names != rows.column_names:  # a full build with another layout
        if gate.append_only:
            raise delta_protocol.AppendOnly(
                f"{path}: {delta_protocol.APPEND_ONLY}=true; a rebuild with another layout "
                "would replace its rows: refused"
            )
        if gate.ours:
            version = _rewrite(path, dt, None, rows, sort_by, row_group_rows, run_id, ds, meta)
        else:
            log.warning("%s: rewritten by delta-rs: %s", path, gate.why)
            _write(
                path, rows, mode="overwrite", schema_mode="overwrite", writer_properties=writer,
                commit_properties=_metadata(run_id, ds, metadata),
            )  # fmt: skip
            version = _verify_delta_rs_commit(path, dt.version())
        if deletion_vectors:
            _enable_deletion_vectors(path, load(path), run_id, ds)
        return MergeResult(version, rows.num_rows, 0, 0)
    gone = pa.array([], rows.schema.field(key).type) if deleted_keys is None else deleted_keys
    gone = pc.cast(gone, rows.schema.field(key).type)
    if isinstance(gone, pa.ChunkedArray):
        gone = gone.combine_chunks()
    if rows.num_rows == 0 and len(gone) == 0:
        return MergeResult(dt.version(), 0, 0, 0)
    if pc.any(pc.is_in(gone, value_set=rows[key].combine_chunks())).as_py():
        raise ValueError(f"{path}: a key is both published and deleted tonight")
    touched = pa.chunked_array([rows[key].combine_chunks(), gone], rows.schema.field(key).type)
    if gate.append_only:
        _refuse_changes(path, dt, rows, key, gone)
    if not gate.ours or gate.append_only:
        log.info("%s: published by delta-rs MERGE: %s", path, gate.why or "append-only")
        result = _merge(dt, rows, key, gone, writer, run_id, ds, metadata)
        _verify_delta_rs_commit(path, dt.version(), result.version)
        return result
    already = deleted_positions(dt)
    live = live_rows(dt, already)
    under = DELETION_VECTORS_UNDER if deletion_vectors_under is None else deletion_vectors_under
    if deletion_vectors and len(touched) <= under * live:
        if not gate.vectors:
            log.info("%s: enabling deletion vectors (%s)", path, gate.why)
            _enable_deletion_vectors(path, dt, run_id, ds)
            dt = load(path)
            already = deleted_positions(dt)
        return _deletion_vector_merge(
            path, dt, already, rows, key, gone, sort_by, row_group_rows, run_id, ds, metadata
        )
    if deletion_vectors:
        log.info("%s: %d touched keys of %d rows: copy-on-write", path, len(touched), live)
    return _copy_on_write(
        path, dt, already, rows, key, gone, sort_by, row_group_rows, run_id, ds, metadata,
        share_to_rewrite(dt, key, touched) > rewrite_over,
    )  # fmt: skip


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


def _local_path(file_uri: str) -> Path:
    parsed = urlparse(file_uri)
    return Path(unquote(parsed.path)) if parsed.scheme in ("file", "") else Path(file_uri)


def deleted_positions(dt: DeltaTable) -> dict[str, np.ndarray]:
    """Data file (path relative to the table) -> the row positions its deletion vector deletes.

    Only files with a deletion vector; empty for a table without them.
    """
    if not has_deletion_vectors(dt):
        return {}
    root = dt.table_uri.rstrip("/") + "/"
    out: dict[str, np.ndarray] = {}
    for batch in pa.RecordBatchReader.from_stream(dt.deletion_vectors()):
        batch = pa.record_batch(batch)
        selection = batch.column(1)
        flat = pc.invert(selection.flatten()).to_numpy(zero_copy_only=False)
        offsets = selection.offsets.to_numpy()
        for i, file_uri in enumerate(batch.column(0).to_pylist()):
            rel = unquote(file_uri.removeprefix(root))
            out[rel] = np.flatnonzero(flat[offsets[i] : offsets[i + 1]])
    return out


def _physical_rows(dt: DeltaTable) -> int:
    """Rows in the table's data files, deleted ones included (the log's ``numRecords``)."""
    return int(pc.sum(pa.table(dt.get_add_actions(flatten=True))["num_records"]).as_py() or 0)


def live_rows(dt: DeltaTable, already: dict[str, np.ndarray] | None = None) -> int:
    """Rows a reader sees: the physical rows less those deletion vectors mark deleted
    (``already``: ``deleted_positions(dt)``, when the caller has it)."""
    already = deleted_positions(dt) if already is None else already
    return _physical_rows(dt) - sum(len(p) for p in already.values())


def _stat_value(v: Any) -> Any:
    """A min/max as Delta statistics write it: dates and times in ISO form."""
    return v.isoformat() if hasattr(v, "isoformat") else v


def _stats_json(table: pa.Table) -> str:
    """Delta ``add`` statistics: row count, null counts, min/max of the primitive columns."""
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for name in table.column_names:
        column = table[name]
        nulls[name] = column.null_count
        t = column.type
        if not (
            pa.types.is_string(t)
            or pa.types.is_integer(t)
            or pa.types.is_floating(t)
            or pa.types.is_date32(t)
        ):
            continue
        if pa.types.is_floating(t):  # NaN and ±inf have no JSON: no bounds for such a column
            column = pc.drop_null(column)
            if not pc.all(pc.is_finite(column)).as_py():
                continue
        bounds = pc.min_max(column)
        lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
        if lo is not None:
            mins[name], maxs[name] = _stat_value(lo), _stat_value(hi)
    stats = {"numRecords": table.num_rows, "minValues": mins, "maxValues": maxs}
    doc = {**stats, "nullCount": nulls, "tightBounds": True}
    return json.dumps(doc, ensure_ascii=False, allow_nan=False)


def _enable_deletion_vectors(path: DataPath, dt: DeltaTable, run_id: str, ds: str) -> None:
    """Let the table's writers write deletion vectors, in one commit of our own: reader 3 /
    writer 7 with ``deletionVectors`` added to the features it has, and the property
    ``delta.enableDeletionVectors=true`` (``delta_protocol``). Not for a table whose features
    our writer does not implement (the reason is logged)."""
    gate = delta_protocol.gate(dt)
    if gate.vectors:
        return
    if not gate.can_enable_vectors:
        log.info("%s: no deletion vectors: %s", path, gate.why)
        return
    info = _commit_info(
        "ADD FEATURE", {"name": json.dumps([DV_FEATURE])}, run_id, ds,
        {"datacloud.maintenance": "deletion vectors"},
    )  # fmt: skip
    actions = [info, *delta_protocol.enable_deletion_vectors_actions(dt)]
    _commit_files(path, dt.version() + 1, actions, {})


def _commit_info(
    operation: str, parameters: dict[str, str], run_id: str, ds: str, extra: dict[str, str]
) -> dict[str, Any]:
    return {
        "commitInfo": {
            "timestamp": int(time.time() * 1000),
            "operation": operation,
            "operationParameters": parameters,
            "clientVersion": "datacloud",
            "datacloud.run_id": run_id,
            "datacloud.ds": ds,
            **extra,
        }
    }


def _parquet_bytes(table: pa.Table, row_group_rows: int) -> bytes:
    """A data file as delta-rs would write it here (ZSTD, page index), in memory: the same
    bytes can be written again if an outside vacuum deletes the file before our commit."""
    sink = pa.BufferOutputStream()
    pq.write_table(
        plain_types(table),
        sink,
        row_group_size=row_group_rows,
        compression="zstd",
        write_page_index=True,
    )
    return bytes(sink.getvalue().to_pybytes())


def _commit_files(
    path: DataPath, version: int, actions: list[dict[str, Any]], files: dict[str, bytes]
) -> None:
    """Write the night's data files, then commit ``actions`` as log entry ``version`` (only
    if free). A file that vanished before the commit (an outsider's vacuum of unreferenced
    files) is written again, byte for byte, once the log names it."""
    for name, data in files.items():
        delta_protocol.write_bytes(path / name, data)
    for _ in range(REBASES):
        try:
            delta_protocol.commit(path, version, actions)
            break
        except CommitConflict:
            if delta_protocol.only_commit_info(path, version):  # e.g. VACUUM START/END
                version += 1  # nothing our entry relies on changed: take the next version
                continue
            for name in files:  # another writer changed the table: tonight's files are nobody's
                _delete_file(path / name)
            raise
    else:
        raise CommitConflict(f"{path}: {REBASES} commits by other writers in a row")
    # an outsider's vacuum that listed the table before our commit may still be deleting
    # (a 0-hour vacuum): look a few times over a short while
    for pause in (0.0, 0.1, 0.3, 1.0) if files else ():
        time.sleep(pause)
        for name, data in files.items():
            if not delta_protocol.exists(path / name):
                log.warning("%s: %s vanished around its commit; written again", path, name)
                delta_protocol.write_bytes(path / name, data)


def _delete_file(loc: DataPath) -> None:
    fs, p = filesystem(loc)
    with contextlib.suppress(FileNotFoundError):
        fs.delete_file(p)


def _new_file(table: pa.Table, row_group_rows: int, now: int) -> tuple[dict[str, Any], bytes]:
    name = f"part-00000-{uuid.uuid4()}-c000.zstd.parquet"
    data = _parquet_bytes(table, row_group_rows)
    add = {
        "path": name,
        "partitionValues": {},
        "size": len(data),
        "modificationTime": now,
        "dataChange": True,
        "stats": _stats_json(table),
    }
    return add, data


def _files_in_range(dt: DeltaTable, key: str, touched: pa.Array) -> dict[str, dict[str, Any]]:
    """The table's files (delta-rs's add actions) whose ``key`` range can hold a touched key."""
    bounds = pc.min_max(touched)
    lowest, highest = bounds["min"].as_py(), bounds["max"].as_py()
    files = {}
    for action in pa.table(dt.get_add_actions(flatten=False)).to_pylist():
        low = (action.get("min") or {}).get(key)
        high = (action.get("max") or {}).get(key)
        if lowest is None or low is None or high is None or not (high < lowest or low > highest):
            files[action["path"]] = action
    return files


def _read_files(
    path: DataPath, dt: DeltaTable, files: list[str], already: dict[str, np.ndarray]
) -> pa.Table:
    """The live rows of some of the table's files (deletion vectors applied), in its schema."""
    schema = pa.schema(dt.schema().to_arrow())
    target = pa.schema([f.with_type(_STRING_VIEW_SAFE.get(f.type, f.type)) for f in schema])
    parts = [target.empty_table()]
    for name in files:
        fs, p = filesystem(path / unquote(name))
        t = pq.read_table(p, filesystem=fs)
        dead = already.get(name)
        if dead is not None and len(dead):
            keep = np.ones(t.num_rows, bool)
            keep[dead] = False
            t = t.filter(pa.array(keep))
        cols = [
            t[f.name] if f.name in t.column_names else pa.nulls(t.num_rows, f.type) for f in target
        ]
        parts.append(pa.table(cols, names=target.names).cast(target))
    return pa.concat_tables(parts)


def _rewrite(
    path: DataPath,
    dt: DeltaTable,
    files: list[str] | None,
    table: pa.Table,
    sort_by: list[str],
    row_group_rows: int,
    run_id: str,
    ds: str,
    extra: dict[str, str],
    operation: str = "WRITE",
) -> int:
    """Replace ``files`` (None: every file, and the schema with ``table``'s) by ``table``
    sorted, in one commit of our own at exactly the snapshot's version + 1: a concurrent
    commit (an outside OPTIMIZE) makes ours fail and the publish start again, and one after
    ours finds its files removed and fails in its own conflict check."""
    logged = delta_protocol.logged_adds(path, dt.version())
    now = int(time.time() * 1000)
    actions = [_commit_info(operation, {"mode": "copy-on-write"}, run_id, ds, extra)]
    table = plain_types(table.sort_by([(k, "ascending") for k in sort_by]))
    if files is None:
        files = list(logged)
        if pa.schema(dt.schema().to_arrow()).names != table.column_names:
            m = dt.metadata()
            schema = DeltaSchema.from_arrow(table.schema).to_json()
            actions.append(
                {
                    "metaData": {
                        "id": m.id, "name": m.name, "description": m.description,
                        "format": {"provider": "parquet", "options": {}},
                        "schemaString": schema, "partitionColumns": [],
                        "configuration": m.configuration, "createdTime": m.created_time,
                    }
                }
            )  # fmt: skip
    for name in files:
        if name not in logged:
            raise VectorsUnknown(f"{name} is not in the log as read")
        actions.append({"remove": delta_protocol.remove_action(logged[name], now)})
    new: dict[str, bytes] = {}
    if table.num_rows:
        add, data = _new_file(table, row_group_rows, now)
        new[add["path"]] = data
        actions.append({"add": add})
    version = dt.version() + 1
    _commit_files(path, version, actions, new)
    return version


def _copy_on_write(
    path: DataPath,
    dt: DeltaTable,
    already: dict[str, np.ndarray],
    rows: pa.Table,
    key: str,
    gone: pa.Array,
    sort_by: list[str],
    row_group_rows: int,
    run_id: str,
    ds: str,
    metadata: dict[str, str] | None,
    whole: bool,
) -> MergeResult:
    """Copy-on-write in one commit of our own: the files whose key range can hold a touched
    key (``whole``: every file, the table then stays sorted) are read, their touched keys'
    rows replaced and ``gone`` dropped, and written as one sorted file."""
    touched = pa.chunked_array([rows[key].combine_chunks(), gone], rows.schema.field(key).type)
    touched = touched.combine_chunks()
    files = [a["path"] for a in pa.table(dt.get_add_actions(flatten=False)).to_pylist()]
    if not whole:
        files = list(_files_in_range(dt, key, touched))
    current = _read_files(path, dt, files, already)
    rows = plain_types(rows).select(current.column_names).cast(current.schema)
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
    extra = {**(metadata or {}), **{f"datacloud.rows_{k}": str(v) for k, v in counts.items()}}
    version = _rewrite(
        path, dt, files, table, sort_by, row_group_rows, run_id, ds, extra,
        "WRITE" if whole else "MERGE",
    )  # fmt: skip
    return MergeResult(version, inserted, updated, deleted)


def _refuse_changes(
    path: DataPath, dt: DeltaTable, rows: pa.Table, key: str, gone: pa.Array
) -> None:
    """``delta.appendOnly=true``: a publish may only insert new keys."""
    touched = pa.concat_arrays([rows[key].combine_chunks(), gone.cast(rows.schema.field(key).type)])
    old = read_where(dt, [key, ROW_HASH], [key], touched)
    deleting = pc.sum(pc.is_in(old[key], value_set=gone)).as_py() or 0
    again = rows.filter(pc.is_in(rows[key], value_set=old[key].combine_chunks()))
    pairs = old.filter(pc.is_in(old[key], value_set=again[key].combine_chunks()))
    pairs = pairs.sort_by([(key, "ascending")])
    again = again.sort_by([(key, "ascending")])
    updating = pc.sum(pc.not_equal(pairs[ROW_HASH], again[ROW_HASH])).as_py() or 0
    if deleting or updating:
        raise delta_protocol.AppendOnly(
            f"{path}: {delta_protocol.APPEND_ONLY}=true, but tonight would update {updating} "
            f"and delete {deleting} rows: refused (only new keys may be added)"
        )


def _verify_delta_rs_commit(path: DataPath, read_version: int, version: int | None = None) -> int:
    """After a delta-rs commit on a snapshot at ``read_version``: every file it added exists,
    and no commit in between removed a file it removed too (an outside OPTIMIZE whose output
    would then duplicate rows). Either is an error naming the table: we cannot repair it."""
    version = load(path).version() if version is None else version
    entries = {}
    for v in range(read_version + 1, version + 1):
        text = (delta_protocol.read_bytes(path / "_delta_log" / f"{v:020d}.json") or b"").decode()
        entries[v] = [json.loads(line) for line in text.splitlines() if line.strip()]
    ours = entries.get(version, [])
    removed = {a["remove"]["path"] for a in ours if "remove" in a}
    for v, actions in entries.items():
        twice = removed & {a["remove"]["path"] for a in actions if "remove" in a}
        if v != version and twice:
            raise RuntimeError(
                f"{path}: version {v} (another writer) and our version {version} both removed "
                f"{sorted(twice)[:3]}: its rows may be duplicated; restore version {read_version}"
            )
    for a in ours:
        if "add" in a and not delta_protocol.exists(path / unquote(a["add"]["path"])):
            raise RuntimeError(
                f"{path}: version {version} names {a['add']['path']}, which is gone "
                "(an outside vacuum): restore the previous version"
            )
    return version


def _published_hashes(
    path: DataPath,
    files: list[str],
    key: str,
    touched: pa.Array,
    already: dict[str, np.ndarray],
) -> pa.Table:
    """Per published row of the given files whose ``key`` is touched and not yet deleted:
    ``key``, ``_row_hash``, its file (``_file``) and position in it (``_at``). Only the two
    columns are read (locally by polars, on the object store by pyarrow)."""
    import polars as pl

    wanted = pl.Series("k", touched.cast(pa.large_string())).implode()
    parts = []
    for name in files:
        loc = path / unquote(name)
        if is_object_store(path):
            fs, p = filesystem(loc)
            frame = pl.from_arrow(pq.read_table(p, columns=[key, ROW_HASH], filesystem=fs))
            assert isinstance(frame, pl.DataFrame)
            scan = frame.lazy()
        else:
            scan = pl.scan_parquet(str(loc)).select(key, ROW_HASH)
        found = (
            scan.with_row_index("_at").filter(pl.col(key).cast(pl.String).is_in(wanted)).collect()
        )
        at = found["_at"].to_numpy().astype(np.int64)
        keep = np.ones(len(at), bool)
        dead = already.get(name)
        if dead is not None and len(dead):
            keep = ~np.isin(at, dead)
        if keep.any():
            part = pa.table(
                {
                    key: found[key].to_arrow().cast(touched.type).filter(keep),
                    ROW_HASH: found[ROW_HASH].to_arrow().filter(keep),
                    "_at": pa.array(at[keep], pa.int64()),
                }
            )
            parts.append(part.append_column("_file", pa.array([name] * len(part), pa.string())))
    if not parts:
        return pa.table({key: touched.slice(0, 0), ROW_HASH: pa.array([], pa.int64())})
    return pa.concat_tables(parts, promote_options="permissive")


def _deletion_vector_merge(
    path: DataPath,
    dt: DeltaTable,
    already: dict[str, np.ndarray],
    rows: pa.Table,
    key: str,
    gone: pa.Array,
    sort_by: list[str],
    row_group_rows: int,
    run_id: str,
    ds: str,
    metadata: dict[str, str] | None,
) -> MergeResult:
    """Publish touched keys in one commit without rewriting the files that hold them.

    Each file whose ``key`` range can hold a touched key gets a deletion vector marking the
    old rows of the keys that changed or are gone (added to the rows it already deletes);
    the inserted and changed rows, sorted by ``sort_by``, go to one new file. A row whose
    ``_row_hash`` equals the published one is left alone; nothing changed, no commit. Only
    the key and hash columns of the published files are read. The ``remove`` and the new
    ``add`` of a file carry its vector, tags and statistics exactly as the log holds them
    (statistics with ``"tightBounds": false``).
    """
    schema = pa.schema(dt.schema().to_arrow())
    rows = rows.cast(schema)
    touched = pa.chunked_array([rows[key].combine_chunks(), gone], schema.field(key).type)
    touched = touched.combine_chunks()
    files = _files_in_range(dt, key, touched)
    old = None
    if files:
        found = _published_hashes(path, list(files), key, touched, already)
        old = found.sort_by([(key, "ascending")]) if found.num_rows else None
    # pair the published rows with the new ones by key: equal hashes stay, others go
    drop_keys = gone
    changed = rows
    updated = 0
    if old is not None:
        again = rows.filter(pc.is_in(rows[key], value_set=old[key].combine_chunks()))
        again = again.sort_by([(key, "ascending")])
        paired = old.filter(pc.is_in(old[key], value_set=again[key].combine_chunks()))
        if paired.num_rows != again.num_rows:  # a key twice in the table: cannot pair
            raise ValueError(f"{path}: duplicate values of key column {key}")
        differs = pc.not_equal(paired[ROW_HASH], again[ROW_HASH])
        updated = pc.sum(differs).as_py() or 0
        same = paired[key].filter(pc.invert(differs))
        changed = rows.filter(pc.invert(pc.is_in(rows[key], value_set=same)))
        changed_keys = paired[key].filter(differs).combine_chunks()
        drop_keys = pa.concat_arrays([gone, changed_keys.cast(gone.type)])
    deleted = 0
    now = int(time.time() * 1000)
    actions: list[dict[str, Any]] = []
    logged = delta_protocol.logged_adds(path, dt.version())
    if old is not None:
        leaving = old.filter(pc.is_in(old[key], value_set=drop_keys))
        deleted = pc.sum(pc.is_in(leaving[key], value_set=gone)).as_py() or 0
        for name in pc.unique(leaving["_file"]).to_pylist():
            dead = already.get(name, np.array([], np.int64))
            entry = logged.get(name)
            vector = (entry or {}).get("deletionVector")
            if entry is None or (len(dead) != (vector or {}).get("cardinality", 0)):
                raise VectorsUnknown(f"{name}: its vector is not in the log as expected")
            at = leaving.filter(pc.equal(leaving["_file"], name))["_at"].to_numpy()
            added = {k: v for k, v in entry.items() if v is not None}
            added |= {
                "dataChange": True,
                "stats": delta_protocol.loose_stats(entry.get("stats")),
                "deletionVector": deletion_vectors.descriptor(np.union1d(dead, at)),
            }
            if added["stats"] is None:
                raise VectorsUnknown(f"{name}: no statistics (numRecords) in the log")
            actions += [{"remove": delta_protocol.remove_action(entry, now)}, {"add": added}]
    inserted = changed.num_rows - updated
    new: dict[str, bytes] = {}
    if changed.num_rows:
        add, data = _new_file(
            changed.sort_by([(k, "ascending") for k in sort_by]), row_group_rows, now
        )
        new[add["path"]] = data
        actions.append({"add": add})
    if not actions:
        return MergeResult(dt.version(), 0, 0, 0)
    counts = {"inserted": inserted, "updated": updated, "deleted": deleted}
    info = _commit_info(
        "MERGE",
        {"predicate": f"{key} in touched keys", "mode": "deletion vectors"},
        run_id,
        ds,
        {
            "datacloud.publish": "deletion_vectors",
            **(metadata or {}),
            **{f"datacloud.rows_{k}": str(v) for k, v in counts.items()},
        },
    )
    version = dt.version() + 1
    _commit_files(path, version, [info, *actions], new)
    return MergeResult(version, inserted, updated, deleted)


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


def _merge(
    dt: DeltaTable,
    rows: pa.Table,
    key: str,
    gone: pa.Array | None,
    writer: WriterProperties,
    run_id: str,
    ds: str,
    metadata: dict[str, str] | None,
    compare: list[str] | None = None,
    merge_schema: bool = False,
) -> MergeResult:
    """One copy-on-write MERGE: insert new keys, update rows where one of ``compare`` (default:
    every column but the key) differs, delete the ``gone`` keys."""
    source = _merge_source(rows, key, gone)
    data_cols = [c for c in rows.column_names]
    compare = [c for c in data_cols if c != key] if compare is None else compare
    # each comparison in parentheses: delta-rs's parser binds OR inside IS DISTINCT FROM
    changed = " OR ".join(f'(t."{c}" IS DISTINCT FROM s."{c}")' for c in compare) or "false"
    stats = (
        dt.merge(
            source,
            predicate=f't."{key}" = s."{key}"',
            source_alias="s",
            target_alias="t",
            writer_properties=writer,
            commit_properties=_metadata(run_id, ds, metadata),
            merge_schema=merge_schema,
        )
        .when_matched_delete(predicate="s._op = 'D'")
        .when_matched_update(
            updates={c: f's."{c}"' for c in data_cols}, predicate=f"s._op = 'U' AND ({changed})"
        )
        .when_not_matched_insert(
            updates={c: f's."{c}"' for c in data_cols}, predicate="s._op = 'U'"
        )
        .execute()
    )
    return MergeResult(
        version=_latest(dt),
        inserted=int(stats.get("num_target_rows_inserted", 0)),
        updated=int(stats.get("num_target_rows_updated", 0)),
        deleted=int(stats.get("num_target_rows_deleted", 0)),
    )


def key_ranges(dt: DeltaTable, key: str) -> list[tuple[str, int, object, object]]:
    """(file, row group, min, max) of ``key`` for every row group of the table's data files,
    from the Parquet footers (``None`` bounds: no statistics, or only nulls)."""
    out: list[tuple[str, int, object, object]] = []
    if has_deletion_vectors(dt):  # pyarrow's dataset refuses them: each file's footer
        footers = []
        for u in dt.file_uris():
            fs, p = filesystem(_file_loc(Path("/"), u))
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


def maintain(
    path: DataPath,
    key: str,
    retention_days: int,
    recluster_files_over: int,
    run_id: str,
    ds: str,
    *,
    row_group_rows: int = ROW_GROUP_ROWS,
) -> dict[str, int]:
    """Keep a published table lookup-ready and its history bounded.

    Rewrite it sorted by ``key`` in one commit (``datacloud.maintenance: recluster``; same
    rows: row groups of at most ``row_group_rows`` rows that do not overlap in key range, so
    a point lookup reads one, and no deletion vectors) when

    - it holds more than ``recluster_files_over`` files (small files);
    - row groups overlap in ``key`` range (Parquet footer statistics; a MERGE writes its
      output unsorted). In a table with deletion vectors each night's file of touched keys
      spans the whole key range by design (sorted within itself), so there only row groups
      of one file count, and a point lookup reads one row group per file;
    - more than ``RECLUSTER_DELETED_OVER`` of its physical rows are marked deleted.

    Then delete files no reader of the last ``retention_days`` days needs (vacuum). Both
    commit only when they have something to do.
    """
    path = parse(path) if isinstance(path, str) else path  # callers may pass a str
    with table_lock(path):
        for attempt in range(PUBLISH_ATTEMPTS):
            try:
                return _maintain_once(
                    path, key, retention_days, recluster_files_over, run_id, ds, row_group_rows
                )
            except (CommitConflict, CommitFailedError, VectorsUnknown) as e:
                if attempt + 1 == PUBLISH_ATTEMPTS:
                    raise
                log.warning("%s: %s; reloading and maintaining again", path, e)
                time.sleep(random.uniform(0.05, 0.25) * (attempt + 1))
    raise AssertionError("unreachable")


def _maintain_once(
    path: DataPath,
    key: str,
    retention_days: int,
    recluster_files_over: int,
    run_id: str,
    ds: str,
    row_group_rows: int,
) -> dict[str, int]:
    dt = load(path)
    out = {"reclustered_files": 0, "vacuumed_files": 0}
    files = len(dt.file_uris())
    with_dv = has_deletion_vectors(dt)
    physical = _physical_rows(dt)
    dead = physical - live_rows(dt)
    if (
        files > recluster_files_over
        or overlapping_row_groups(dt, key, within_files=with_dv)
        or dead > RECLUSTER_DELETED_OVER * physical
    ):
        table = read_loaded(dt)
        extra = {"datacloud.maintenance": "recluster"}
        if delta_protocol.gate(dt).ours:
            _rewrite(path, dt, None, table, [key], row_group_rows, run_id, ds, extra)
        else:
            write_deltalake(
                dt,
                table.sort_by([(key, "ascending")]),
                mode="overwrite",
                writer_properties=_writer(row_group_rows),
                commit_properties=_metadata(run_id, ds, extra),
            )
            _verify_delta_rs_commit(path, dt.version() - 1)
        out["reclustered_files"] = files
        dt = load(path)
    hours = retention_days * 24
    # full: also files no version names (a publish killed before its commit), once older
    # than the retention, so never a file a running publish is about to commit
    due = dt.vacuum(retention_hours=hours, enforce_retention_duration=False, full=True)
    due = [f for f in due if delta_protocol.exists(_file_loc(path, f))]  # not gone already
    if due:
        out["vacuumed_files"] = len(
            dt.vacuum(
                retention_hours=hours,
                enforce_retention_duration=False,
                dry_run=False,
                full=True,
                commit_properties=_metadata(run_id, ds),
            )
        )
        dt = load(path)
    _checkpoint_if_due(path, dt)
    if not is_object_store(path):
        for aside in (Path(str(path)) / "_delta_log").glob(".*.json.tmp"):  # a killed _commit
            if time.time() - aside.stat().st_mtime > 86_400:
                aside.unlink(missing_ok=True)
    return out


def _file_loc(path: DataPath, file: str) -> DataPath:
    """A file vacuum or delta-rs names (absolute URI, or relative to the table)."""
    if "://" in file and not file.startswith("file:"):
        return parse(file)
    local = _local_path(file)
    return local if local.is_absolute() else path / unquote(file)


CHECKPOINT_EVERY = 10


def _checkpoint_if_due(root: DataPath, dt: DeltaTable) -> None:
    """A checkpoint once ``CHECKPOINT_EVERY`` versions have passed since the last one, so a
    reader replays few log entries. delta-rs checkpoints after its own commits every 100
    versions; our own commits bypass that hook."""
    last = delta_protocol.read_bytes(root / "_delta_log" / "_last_checkpoint")
    since = json.loads(last)["version"] if last is not None else -1
    if dt.version() - int(since) >= CHECKPOINT_EVERY:
        dt.create_checkpoint()


class VectorsUnknown(Exception):
    """A file's current deletion vector is not in the log as expected (another writer)."""


def history(path: DataPath) -> list[dict[str, object]]:
    """Every commit, newest first: version, time, business date, run id, operation, row counts."""
    out: list[dict[str, object]] = []
    for c in load(path).history():
        m = c.get("operationMetrics") or {}
        added = m.get("num_target_rows_inserted", m.get("num_added_rows"))
        updated = m.get("num_target_rows_updated")
        removed = m.get("num_target_rows_deleted", m.get("num_removed_rows"))
        if c.get("datacloud.rows_inserted") is not None:  # a sorted rewrite by publish
            added, updated, removed = (
                int(c[f"datacloud.rows_{k}"]) for k in ("inserted", "updated", "deleted")
            )
        out.append(
            {
                "version": c.get("version"),
                "timestamp": c.get("timestamp"),
                "ds": c.get("datacloud.ds"),
                "run_id": c.get("datacloud.run_id"),
                "operation": c.get("operation"),
                "rows_added": added,
                "rows_updated": updated,
                "rows_removed": removed,
                "full_rebuild": c.get("datacloud.full"),
            }
        )
    return out

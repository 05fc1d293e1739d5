"""The consistency findings (比对) of a night: read the staged and rejected tables, find
(``consistency.find_inconsistencies``), publish ``curated/consistency`` in one Delta commit.

Only accepted (staged) rows are compared, at the staged versions curation pinned; the rejected
rows of the night only silence findings their person's number is quarantined in.

Bounded in memory: a large night is found in ``buckets`` hash buckets of the ID number
(``curation_ranges.bucket_of`` of the text the comparisons join on). The staged tables are
read once, batch by batch, and their rows scattered into a file per bucket (``scatter``, in a
temporary folder under the storage root's scratch, removed after): a bucket holds the mentions
of its ID numbers and the registrations whose husband or wife is one of them, and its findings
are those of its persons only (``find_inconsistencies``'s ``persons``). Memory holds one
bucket's rows, one batch and the findings; the findings equal the one-pass build's, row for
row. Without a complete scatter a bucket streams the staged tables itself
(``curation_ranges.stack_in_range``), the same rows.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datacloud import memory, scatter
from datacloud.config import Department
from datacloud.consistency import (
    KEEP_NIGHTS,
    MARRIAGE_SCHEMA,
    MENTION_SCHEMA,
    MENTIONS,
    REGISTER_FIELD,
    SCHEMA,
    SORT_BY,
    TABLE,
    authority_of,
    count_by_department,
    find_inconsistencies,
    id_body,
)
from datacloud.curation_ranges import KeyRange, stack_in_range
from datacloud.delta import open_table, overwrite, read_loaded
from datacloud.delta.read import physical_rows
from datacloud.paths import StorageRoot
from datacloud.scatter import Spread
from datacloud.staged_rows import pin_versions, stack

log = logging.getLogger(__name__)

# mention rows (persons seen in staged records) per bucket of a large night; a night with
# fewer is found in one pass
MENTIONS_PER_BUCKET = 4_000_000
MAX_BUCKETS = 256
# a scatter folder left by a killed night is removed by a later bucketed build after this long
SCATTER_KEEP_S = 24 * 3600
MARRIAGE_COLUMNS = ["registration_type", "husband_id_number", "wife_id_number", "registered_date"]
SPOUSES = ["husband_id_number", "wife_id_number"]


def _mention_columns(kind: str) -> list[str]:
    """The staged columns the mentions of a ``kind`` table are made of."""
    columns = sorted({c for spec in MENTIONS[kind] for c in spec[:3] if c is not None})
    if kind == "enterprise_role":
        columns.append("role")
    return columns


def _spread(kinds: set[str], columns: list[str], ids: list[str]) -> Spread:
    """Staged rows as a bucketed build reads them: in the bucket of each of their ``ids``."""
    name = f"consistency_{'_'.join(sorted(kinds))}_by_{'_'.join(ids)}"
    return Spread(
        name, frozenset(kinds), tuple(columns), lambda rows: [_id_text(rows[c]) for c in ids]
    )


def spreads() -> list[Spread]:
    """Every stack a bucketed build reads (``read_mentions``, ``read_marriages``)."""
    out = [
        _spread({kind}, _mention_columns(kind), [spec[0] for spec in people])
        for kind, people in MENTIONS.items()
    ]
    return [*out, _spread({"marriage"}, MARRIAGE_COLUMNS, SPOUSES)]


def read_mentions(
    root: StorageRoot,
    depts: list[Department],
    versions: Mapping[str, int] | None = None,
    part: KeyRange | None = None,
    scattered: Path | None = None,
) -> pa.Table:
    """Every person seen in a staged record (``MENTION_SCHEMA``), at the pinned ``versions``
    (``"<dept>/<table>"`` -> staged version) when given; only the persons whose ID number
    falls in ``part`` when given (from the scatter in ``scattered`` when complete, else read
    as a stream)."""
    parts = []
    for kind, people in MENTIONS.items():
        columns = _mention_columns(kind)
        ids = [spec[0] for spec in people]
        rows = _staged(root, depts, {kind}, columns, versions, part, ids, scattered)
        if rows is None:
            continue
        for id_col, name_col, sex_col, role in people:
            if part is not None and len(people) > 1:  # the row's other person is in part
                rows_of = rows.filter(part.holds(_id_text(rows[id_col])))
            else:
                rows_of = rows
            part_rows = _mentions_of(rows_of, kind, id_col, name_col, sex_col, role)
            parts.append(part_rows.filter(pc.is_valid(part_rows["id_number"])))
    if not parts:
        return MENTION_SCHEMA.empty_table()
    return pa.concat_tables(parts)


def _mentions_of(
    rows: pa.Table, kind: str, id_col: str, name_col: str | None, sex_col: str | None, role: str
) -> pa.Table:
    """One person column group of staged rows as mentions (``MENTION_SCHEMA``)."""
    n = rows.num_rows
    roles = pa.array([role] * n, pa.string())
    if kind == "enterprise_role":  # a role table may list legal representatives too
        named = pc.if_else(
            pc.equal(rows["role"], "legal_representative"), "legal_rep", "shareholder"
        )
        roles = pc.coalesce(named, roles)
    return pa.table(
        {
            "id_number": _id_text(rows[id_col]),
            "name": _text(rows, name_col, n),
            "sex": _text(rows, sex_col, n),
            "department": rows["source"],
            "kind": pa.array([kind] * n, pa.string()),
            "role": roles,
        },
        schema=MENTION_SCHEMA,
    )


def _id_text(values: pa.Array | pa.ChunkedArray) -> Any:
    """An ID column as the text the findings compare (and the buckets hash)."""
    return pc.cast(values, pa.string())


def _staged(
    root: StorageRoot,
    depts: list[Department],
    kinds: set[str],
    columns: list[str],
    versions: Mapping[str, int] | None,
    part: KeyRange | None = None,
    ids: list[str] | None = None,
    scattered: Path | None = None,
) -> pa.Table | None:
    """Staged rows with ``source`` and ``as_of`` (pinned when asked; ``staged_rows.stack``);
    with ``part``, only the rows where one of the ``ids`` columns falls in it: the part's file
    of the scatter in ``scattered`` when complete, else each staged table streamed in batches
    (``curation_ranges.stack_in_range``)."""
    if part is None:
        return stack(root, depts, kinds, columns, versions=versions)
    pinned = pin_versions(root, depts) if versions is None else versions
    spread = _spread(kinds, columns, ids or [])
    if scattered is not None:
        try:
            return scatter.read(scattered, spread, part, depts, pinned)
        except scatter.NotScattered as e:
            log.warning("consistency bucket %d of %d: %s; streaming", part.index, part.count, e)

    def keep(rows: pa.Table) -> pa.Array:
        return part.holds(*spread.keys(rows))

    return stack_in_range(root, depts, kinds, columns, pinned, keep)


def _text(rows: pa.Table, column: str | None, n: int) -> pa.Array:
    if column is None or column not in rows.column_names:
        return pa.nulls(n, pa.string())
    return pc.cast(rows[column], pa.string())


def read_marriages(
    root: StorageRoot,
    depts: list[Department],
    versions: Mapping[str, int] | None = None,
    part: KeyRange | None = None,
    scattered: Path | None = None,
) -> pa.Table:
    """Every staged marriage registration (``MARRIAGE_SCHEMA``); only those whose husband or
    wife falls in ``part`` when given (from the scatter in ``scattered``, as ``read_mentions``)."""
    rows = _staged(root, depts, {"marriage"}, MARRIAGE_COLUMNS, versions, part, SPOUSES, scattered)
    if rows is None:
        return MARRIAGE_SCHEMA.empty_table()
    return pa.table(
        {
            "registration_type": pc.cast(rows["registration_type"], pa.string()),
            "husband_id_number": _id_text(rows["husband_id_number"]),
            "wife_id_number": _id_text(rows["wife_id_number"]),
            "registered_date": pc.cast(rows["registered_date"], pa.date32()),
            "department": rows["source"],
        },
        schema=MARRIAGE_SCHEMA,
    )


def _latest_rejected(root: StorageRoot, dept: str, table: str, ds: date) -> pa.Table | None:
    """The rejected rows of the latest night on or before ``ds`` (what staged reflects)."""
    folder = root.rejected(dept, table, ds).parent
    nights = sorted(
        p.name for p in folder.glob("ds=*") if p.name[3:] <= ds.isoformat()
    ) if folder.is_dir() else []  # fmt: skip
    if not nights:
        return None
    path = folder / nights[-1] / "rows.parquet"
    return pq.read_table(path) if path.is_file() else None


def read_quarantine(
    root: StorageRoot, depts: list[Department], codes: Iterable[str], kind: str, ds: date
) -> pa.Array:
    """``id_body`` of the ID numbers in the rejected rows of the ``kind`` tables of ``codes``."""
    wanted = set(codes)
    parts: list[pa.Array] = []
    for dept in depts:
        if dept.code not in wanted:
            continue
        for spec in dept.tables:
            if spec.kind != kind:
                continue
            rows = _latest_rejected(root, dept.code, spec.name, ds)
            if rows is None:
                continue
            for id_col, *_ in MENTIONS[kind]:
                column = spec.columns.get(id_col)
                if column is not None and column.source in rows.column_names:
                    parts.append(id_body(rows[column.source]).drop_null())
    if not parts:
        return pa.array([], pa.string())
    return pc.unique(pa.concat_arrays(parts))


def bucket_count(
    root: StorageRoot, depts: list[Department], versions: Mapping[str, int] | None = None
) -> int:
    """How many buckets a night's findings need: one per ``MENTIONS_PER_BUCKET`` mention
    rows, counted from the staged tables' Delta logs (rows times the persons a row names),
    at most ``MAX_BUCKETS``; 1 for a small night."""
    rows = 0
    for dept in depts:
        for spec in dept.tables:
            if spec.kind not in MENTIONS:
                continue
            pinned = None if versions is None else versions.get(f"{dept.code}/{spec.name}")
            if versions is not None and pinned is None:
                continue
            dt = open_table(root.staged(dept.code, spec.name), pinned)
            if dt is not None:
                rows += physical_rows(dt) * len(MENTIONS[spec.kind])
    return max(1, min(MAX_BUCKETS, -(-rows // MENTIONS_PER_BUCKET)))


def build(
    root: StorageRoot,
    depts: list[Department],
    ds: date,
    versions: Mapping[str, int] | None = None,
    *,
    buckets: int | None = None,
) -> pa.Table:
    """The night's findings from every department's staged tables (``SCHEMA``), read at the
    pinned staged ``versions`` when given (as curation pins them).

    ``buckets`` (None: ``bucket_count``): 1 reads the staged tables whole in one pass; more
    find the findings bucket by bucket of the ID number, the staged rows read once and
    scattered into the buckets' files (``scatter``, a temporary folder removed after), the
    same rows in the same order."""
    authority = authority_of(depts)
    register_quarantine = read_quarantine(
        root, depts, authority.get(REGISTER_FIELD, []), "person", ds
    )
    marriage_quarantine = read_quarantine(root, depts, [d.code for d in depts], "marriage", ds)
    count = bucket_count(root, depts, versions) if buckets is None else buckets
    if count <= 1:
        return find_inconsistencies(
            read_mentions(root, depts, versions),
            read_marriages(root, depts, versions),
            authority,
            ds,
            register_quarantine=register_quarantine,
            marriage_quarantine=marriage_quarantine,
        )
    if versions is None:  # every bucket reads the same snapshot
        versions = pin_versions(root, depts)
    log.info("consistency: findings in %d buckets of the ID number", count)
    parts = []
    folder = _scatter_folder(root)
    try:
        scatter.scatter(root, depts, versions, spreads(), count, folder)
        memory.give_back()
        for index in range(count):
            part = KeyRange(index, count)
            parts.append(
                find_inconsistencies(
                    read_mentions(root, depts, versions, part, folder),
                    read_marriages(root, depts, versions, part, folder),
                    authority,
                    ds,
                    register_quarantine=register_quarantine,
                    marriage_quarantine=marriage_quarantine,
                    persons=part.holds,
                )
            )
            memory.give_back()  # the bucket's mentions are gone: the next starts lean
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    table = pa.concat_tables(parts)
    return table.sort_by([(k, "ascending") for k in SORT_BY])


def scatter_root(root: StorageRoot) -> Path:
    return root.root / "scratch" / "consistency"


def _scatter_folder(root: StorageRoot) -> Path:
    """A new temporary folder for a bucketed build's scatter (beside the staged data, not in
    the system's temporary space: it holds the staged rows once); those a killed night left
    go after ``SCATTER_KEEP_S``."""
    parent = scatter_root(root)
    parent.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for child in parent.iterdir():
        if child.is_dir() and now - child.stat().st_mtime > SCATTER_KEEP_S:
            shutil.rmtree(child, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix="buckets-", dir=parent))


def publish(
    root: StorageRoot,
    depts: list[Department],
    ds: date,
    run_id: str,
    versions: Mapping[str, int] | None = None,
    *,
    buckets: int | None = None,
) -> dict[str, Any]:
    """Write the night's findings to ``curated/consistency`` in one Delta commit.

    The table keeps the findings of the ``KEEP_NIGHTS`` nights before ``ds`` (and of later
    nights, when an earlier night is rerun); the night's own rows are replaced, so a rerun
    with the same staged data makes no new version. Returns rows, version, path and the
    counts per department and finding. ``buckets``: as for ``build``.
    """
    night = build(root, depts, ds, versions, buckets=buckets)
    path = root.curated(TABLE)
    current = open_table(path)
    table = night
    if current is not None:
        earlier = read_loaded(current)
        if earlier.schema == SCHEMA:
            dates = earlier["business_date"]
            keep = pc.and_(
                pc.not_equal(dates, pa.scalar(ds, pa.date32())),
                pc.greater(dates, pa.scalar(ds - timedelta(days=KEEP_NIGHTS), pa.date32())),
            )
            table = pa.concat_tables([earlier.filter(keep), night])
    version = overwrite(path, table, SORT_BY, run_id, ds.isoformat())
    counts = count_by_department(night)
    log.info(
        "curated/%s: %d findings for %s, version %d: %s",
        TABLE,
        night.num_rows,
        ds.isoformat(),
        version,
        counts,
    )
    return {"rows": night.num_rows, "version": version, "path": str(path), "counts": counts}

"""The consistency findings (比对) of a night: read the staged and rejected tables, find
(``consistency.find_inconsistencies``), publish ``curated/consistency`` in one Delta commit.

Only accepted (staged) rows are compared, at the staged versions curation pinned; the rejected
rows of the night only silence findings their person's number is quarantined in.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

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
from datacloud.delta import open_table, overwrite, read_loaded
from datacloud.paths import StorageRoot
from datacloud.staged_rows import stack

log = logging.getLogger(__name__)


def read_mentions(
    root: StorageRoot, depts: list[Department], versions: Mapping[str, int] | None = None
) -> pa.Table:
    """Every person seen in a staged record (``MENTION_SCHEMA``), at the pinned ``versions``
    (``"<dept>/<table>"`` -> staged version) when given."""
    parts = []
    for kind, people in MENTIONS.items():
        columns = sorted({c for spec in people for c in spec[:3] if c is not None})
        if kind == "enterprise_role":
            columns.append("role")
        rows = _staged(root, depts, {kind}, columns, versions)
        if rows is None:
            continue
        for id_col, name_col, sex_col, role in people:
            n = rows.num_rows
            roles = pa.array([role] * n, pa.string())
            if kind == "enterprise_role":  # a role table may list legal representatives too
                named = pc.if_else(
                    pc.equal(rows["role"], "legal_representative"), "legal_rep", "shareholder"
                )
                roles = pc.coalesce(named, roles)
            part = pa.table(
                {
                    "id_number": pc.cast(rows[id_col], pa.string()),
                    "name": _text(rows, name_col, n),
                    "sex": _text(rows, sex_col, n),
                    "department": rows["source"],
                    "kind": pa.array([kind] * n, pa.string()),
                    "role": roles,
                },
                schema=MENTION_SCHEMA,
            )
            parts.append(part.filter(pc.is_valid(part["id_number"])))
    if not parts:
        return MENTION_SCHEMA.empty_table()
    return pa.concat_tables(parts)


def _staged(
    root: StorageRoot,
    depts: list[Department],
    kinds: set[str],
    columns: list[str],
    versions: Mapping[str, int] | None,
) -> pa.Table | None:
    """Staged rows with ``source`` and ``as_of`` (pinned when asked; ``staged_rows.stack``)."""
    return stack(root, depts, kinds, columns, versions=versions)


def _text(rows: pa.Table, column: str | None, n: int) -> pa.Array:
    if column is None or column not in rows.column_names:
        return pa.nulls(n, pa.string())
    return pc.cast(rows[column], pa.string())


def read_marriages(
    root: StorageRoot, depts: list[Department], versions: Mapping[str, int] | None = None
) -> pa.Table:
    """Every staged marriage registration (``MARRIAGE_SCHEMA``)."""
    columns = ["registration_type", "husband_id_number", "wife_id_number", "registered_date"]
    rows = _staged(root, depts, {"marriage"}, columns, versions)
    if rows is None:
        return MARRIAGE_SCHEMA.empty_table()
    return pa.table(
        {
            "registration_type": pc.cast(rows["registration_type"], pa.string()),
            "husband_id_number": pc.cast(rows["husband_id_number"], pa.string()),
            "wife_id_number": pc.cast(rows["wife_id_number"], pa.string()),
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


def build(
    root: StorageRoot,
    depts: list[Department],
    ds: date,
    versions: Mapping[str, int] | None = None,
) -> pa.Table:
    """The night's findings from every department's staged tables (``SCHEMA``), read at the
    pinned staged ``versions`` when given (as curation pins them)."""
    authority = authority_of(depts)
    return find_inconsistencies(
        read_mentions(root, depts, versions),
        read_marriages(root, depts, versions),
        authority,
        ds,
        register_quarantine=read_quarantine(
            root, depts, authority.get(REGISTER_FIELD, []), "person", ds
        ),
        marriage_quarantine=read_quarantine(root, depts, [d.code for d in depts], "marriage", ds),
    )


def publish(
    root: StorageRoot,
    depts: list[Department],
    ds: date,
    run_id: str,
    versions: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Write the night's findings to ``curated/consistency`` in one Delta commit.

    The table keeps the findings of the ``KEEP_NIGHTS`` nights before ``ds`` (and of later
    nights, when an earlier night is rerun); the night's own rows are replaced, so a rerun
    with the same staged data makes no new version. Returns rows, version, path and the
    counts per department and finding.
    """
    night = build(root, depts, ds, versions)
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

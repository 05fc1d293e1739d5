"""Reading the staged tables: what curation and the consistency findings (比对) read.

``stack`` reads the rows of every staged table of some kinds (with their department and
as-of date), pinned to the versions ``pin_versions`` took when a night began; ``read_changes``
reads the row changes since the versions the last curation consumed (the Delta change data
feed). ``staged_deletions`` is the department night's side: the staged keys a merge deletes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from datacloud.config import Department
from datacloud.delta import changes, has_cdf, load, open_table, read_loaded, read_where
from datacloud.normalise import SOURCE_PK
from datacloud.paths import StorageRoot
from datacloud.storage import DataPath

log = logging.getLogger(__name__)

# staged kind -> the columns a change of its rows touches curated keys through
CHANGE_COLUMNS = {
    "person": ["id_number"],
    "housing_fund_account": ["id_number", "account_no"],
    "marriage": ["husband_id_number", "wife_id_number", "registration_id"],
    "enterprise": ["credit_code", "reg_number"],
    "enterprise_role": ["credit_code", "reg_number"],
    "enterprise_code_map": ["reg_number", "credit_code"],
    "property_right": ["certificate_no", "owner_id_number"],
}


def stack(
    root: StorageRoot,
    depts: list[Department],
    kinds: set[str],
    columns: list[str],
    *,
    versions: Mapping[str, int] | None = None,
    where: tuple[list[str], pa.Array] | None = None,
) -> pa.Table | None:
    """Rows of every staged table of the given kinds, with their source department and as_of.

    ``versions`` pins each staged table (``"<dept>/<table>"``) to a version; ``where`` keeps
    the rows whose value in any of the given columns is in the given set.
    """
    parts = []
    for dept in depts:
        for spec in dept.tables:
            if spec.kind not in kinds:
                continue
            path = root.staged(dept.code, spec.name)
            pinned = (versions or {}).get(f"{dept.code}/{spec.name}")
            if versions is not None and pinned is None:
                continue
            dt = open_table(path, pinned)
            if dt is None:
                continue
            present = set(dt.schema().to_arrow().names)
            wanted = [c for c in (*columns, "_source_updated_at", "_ds") if c in present]
            if where is None:
                t = read_loaded(dt, wanted)
            else:
                t = read_where(dt, wanted, where[0], pc.cast(where[1], pa.string()))
            n = t.num_rows
            cols_out: dict[str, Any] = {}
            for c in columns:
                cols_out[c] = t[c] if c in t.column_names else pa.nulls(n)
            as_of = (
                pc.cast(t["_source_updated_at"], pa.date32())
                if "_source_updated_at" in t.column_names
                else t["_ds"]
            )
            cols_out["source"] = pa.array([dept.code] * n, pa.string())
            cols_out["as_of"] = pc.coalesce(as_of, t["_ds"])
            parts.append(pa.table(cols_out))
    if not parts:
        return None
    out = pa.concat_tables(parts, promote_options="permissive")
    untyped = [f.with_type(pa.string()) if f.type == pa.null() else f for f in out.schema]
    return out.cast(pa.schema(untyped))


def pin_versions(root: StorageRoot, depts: list[Department]) -> dict[str, int]:
    """The current version of every staged table: everything tonight reads is at these."""
    out = {}
    for d in depts:
        for t in d.tables:
            dt = open_table(root.staged(d.code, t.name))
            if dt is not None:
                out[f"{d.code}/{t.name}"] = dt.version()
    return out


def read_changes(
    root: StorageRoot, depts: list[Department], since: dict[str, int], upto: dict[str, int]
) -> dict[str, pa.Table] | None:
    """Staged row changes since the last curation, per staged table; None when some table
    cannot tell (no change feed at that version, or its history was vacuumed)."""
    out = {}
    for d in depts:
        for t in d.tables:
            name = f"{d.code}/{t.name}"
            if name not in upto:
                continue
            path = root.staged(d.code, t.name)
            after = since.get(name, -1)
            if after > upto[name] or not has_cdf(path, max(after, 0)):
                log.info("staged %s: no change feed from version %d; full rebuild", name, after)
                return None
            present = set(load(path).schema().to_arrow().names)
            cols = [c for c in CHANGE_COLUMNS[t.kind] if c in present]
            try:
                out[name] = changes(path, after, upto[name], cols)
            except Exception as e:  # a vacuumed change feed: rebuild in full
                log.info("staged %s: change feed unreadable (%s); full rebuild", name, e)
                return None
    return out


def with_change_columns(rows: pa.Table, dept: Department, table: str) -> pa.Table:
    """Change rows with every key column the kind needs (absent ones as nulls)."""
    kind = dept.table(table).kind
    for c in CHANGE_COLUMNS[kind]:
        if c not in rows.column_names:
            rows = rows.append_column(c, pa.nulls(rows.num_rows, pa.string()))
    return rows


def _business_key_text(rows: pa.Table, key: list[str]) -> tuple[pa.Array, pa.Array]:
    """Each row's business key as one text (parts joined like ``normalise.deduplicate`` groups
    them), and whether it has one: a row whose every part is empty matches nothing."""
    parts = [pc.cast(rows[k], pa.string()).combine_chunks() for k in key]
    has = pc.is_valid(parts[0])
    for part in parts[1:]:
        has = pc.or_(has, pc.is_valid(part))
    text = (
        parts[0]
        if len(parts) == 1
        else pc.binary_join_element_wise(
            *parts, "\x1f", null_handling="replace", null_replacement="\x00"
        )
    )
    return text, has


def staged_deletions(
    staged: DataPath,
    accepted: pa.Table,
    business_key: list[str],
    raw_keys: pa.Array | None,
    losers: pa.Array,
) -> pa.Array | None:
    """The staged source keys tonight's merge deletes, so staged keeps one row per business key.

    - a full snapshot (``raw_keys``): keys absent from it (rejected rows are not absent), and
      tonight's deduplication losers (present, but another row won their business key);
    - every mode: a staged row whose business key a row accepted tonight carries under another
      source key (the newly accepted row replaces it).

    Never a key accepted tonight; each key once (the merge takes one source row per key).
    """
    current = open_table(staged)
    if current is None:
        return None
    names = set(current.schema().to_arrow().names)
    key = [c for c in business_key if c in names and c in accepted.column_names]
    rows = read_loaded(current, [SOURCE_PK, *key])
    keys = pc.cast(rows[SOURCE_PK], pa.string()).combine_chunks()
    drop = pc.is_in(keys, value_set=pc.cast(losers, pa.string()))
    if raw_keys is not None:
        drop = pc.or_(drop, pc.invert(pc.is_in(keys, value_set=raw_keys)))
    if key and len(key) == len(business_key) and accepted.num_rows:
        staged_key, staged_has = _business_key_text(rows, key)
        tonight, tonight_has = _business_key_text(accepted, key)
        taken = pc.and_(staged_has, pc.is_in(staged_key, value_set=tonight.filter(tonight_has)))
        drop = pc.or_(drop, taken)
    accepted_keys = pc.cast(accepted[SOURCE_PK], pa.string()).combine_chunks()
    drop = pc.and_(drop, pc.invert(pc.is_in(keys, value_set=accepted_keys)))
    return pc.unique(keys.filter(drop))

"""Curation: golden records (一人一档, 一企一档) and relation tables from the staged tables.

Survivorship per field (一数一源): a department that declares authority for a field wins
where it has a value; otherwise the most recently updated non-null value wins. Each golden
field carries its source department and as-of date.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from datacloud.config import Department
from datacloud.delta import open_table, overwrite, plain_types
from datacloud.paths import StorageRoot

log = logging.getLogger(__name__)

# golden person field -> authority field name in the department YAML
PERSON_FIELDS = {
    "name": "name",
    "sex": "sex",
    "birth_date": "birth_date",
    "ethnicity": "ethnicity",
    "registered_address": "registered_address",
    "phone": None,
}
ENTERPRISE_COLUMNS = [
    "credit_code",
    "reg_number",
    "org_code",
    "name",
    "enterprise_type",
    "status",
    "legal_rep_id_number",
    "legal_rep_name",
    "registered_capital",
    "established_date",
    "address",
]
PROPERTY_COLUMNS = [
    "certificate_no",
    "owner_id_number",
    "owner_name",
    "unit_no",
    "location",
    "floor_area_m2",
    "registered_date",
    "status",
]
FUND_COLUMNS = [
    "account_no",
    "id_number",
    "employer_name",
    "employer_credit_code",
    "opened_date",
    "status",
    "monthly_contribution",
]
MARRIAGE_COLUMNS = [
    "registration_id",
    "registration_type",
    "husband_id_number",
    "wife_id_number",
    "registered_date",
    "office",
]
ROLE_COLUMNS = [
    "credit_code",
    "reg_number",
    "id_number",
    "name",
    "role",
    "subscribed_capital",
    "share_ratio",
]


def _stack(
    root: StorageRoot, depts: list[Department], kinds: set[str], columns: list[str]
) -> pa.Table | None:
    """Rows of every staged table of the given kinds, with their source department and as_of."""
    parts = []
    for dept in depts:
        for spec in dept.tables:
            if spec.kind not in kinds:
                continue
            dt = open_table(root.staged(dept.code, spec.name))
            if dt is None:
                continue
            present = set(dt.schema().to_arrow().names)
            wanted = [c for c in (*columns, "_source_updated_at", "_ds") if c in present]
            t = plain_types(dt.to_pyarrow_table(columns=wanted))
            n = t.num_rows
            cols: dict[str, Any] = {}
            for c in columns:
                cols[c] = t[c] if c in t.column_names else pa.nulls(n, pa.string())
            as_of = (
                pc.cast(t["_source_updated_at"], pa.date32())
                if "_source_updated_at" in t.column_names
                else t["_ds"]
            )
            cols["source"] = pa.array([dept.code] * n, pa.string())
            cols["as_of"] = pc.coalesce(as_of, t["_ds"])
            parts.append(pa.table(cols))
    if not parts:
        return None
    return pa.concat_tables(parts, promote_options="permissive")


def _with_rank(rows: pa.Table, depts: list[Department], authority: str | None = None) -> pa.Table:
    """Add ``_rank``: 1 for rows from a department authoritative for ``authority``, else 0."""
    sources = [d.code for d in depts if authority is not None and authority in d.authority]
    rank = pc.cast(pc.is_in(rows["source"], value_set=pa.array(sources, pa.string())), pa.int8())
    return rows.append_column("_rank", rank)


def _first_per_key(rows: pa.Table, key: list[str]) -> pa.Table:
    """The best row per key: highest authority rank, then the latest as_of."""
    order = [(k, "ascending", "at_end") for k in key] + [
        ("_rank", "descending", "at_end"),
        ("as_of", "descending", "at_end"),
    ]
    rows = rows.take(pc.sort_indices(rows, sort_keys=order))
    idx = pa.array(range(rows.num_rows), pa.int64())
    firsts = (
        rows.select(key)
        .append_column("_i", idx)
        .group_by(key, use_threads=False)
        .aggregate([("_i", "min")])
    )
    return rows.take(firsts["_i_min"]).drop_columns(["_rank"])


def person_records(root: StorageRoot, depts: list[Department]) -> pa.Table | None:
    """curated/person: one row per ID number of the household register, each field with source and as-of."""
    register = _stack(root, depts, {"person"}, ["id_number"])
    if register is None:
        return None
    candidates = _stack(
        root, depts, {"person", "housing_fund_account"}, ["id_number", *PERSON_FIELDS]
    )
    assert candidates is not None
    ids = pc.unique(register["id_number"].drop_null()).sort()
    out: dict[str, Any] = {"id_number": ids}
    for field, authority in PERSON_FIELDS.items():
        cand = candidates.select(["id_number", field, "source", "as_of"])
        cand = _with_rank(cand.filter(pc.is_valid(cand[field])), depts, authority)
        best = _first_per_key(cand, ["id_number"])
        pos = pc.index_in(ids, best["id_number"])
        out[field] = best[field].take(pos)
        out[f"{field}_source"] = best["source"].take(pos)
        out[f"{field}_as_of"] = best["as_of"].take(pos)
    return pa.table(out)


def enterprise_records(root: StorageRoot, depts: list[Department]) -> pa.Table | None:
    """curated/enterprise: one row per credit code; legacy numbers kept as their own rows."""
    rows = _stack(root, depts, {"enterprise"}, ENTERPRISE_COLUMNS)
    if rows is None:
        return None
    rows = _with_rank(rows, depts, "enterprise_name")
    key = pc.coalesce(
        rows["credit_code"], pc.binary_join_element_wise("REG:", rows["reg_number"], "")
    )
    rows = rows.append_column("_key", key).filter(pc.is_valid(key))
    return _first_per_key(rows, ["_key"]).drop_columns(["_key"])


def relation(
    root: StorageRoot, depts: list[Department], kind: str, columns: list[str], key: list[str]
) -> pa.Table | None:
    rows = _stack(root, depts, {kind}, columns)
    if rows is None:
        return None
    return _first_per_key(_with_rank(rows, depts), key)


def enterprise_roles(root: StorageRoot, depts: list[Department]) -> pa.Table | None:
    """curated/enterprise_role: shareholders, and legal representatives from the enterprise records."""
    parts = []
    holders = _stack(root, depts, {"enterprise_role"}, ROLE_COLUMNS)
    if holders is not None:
        parts.append(_with_rank(holders, depts))
    ents = _stack(root, depts, {"enterprise"}, ENTERPRISE_COLUMNS)
    if ents is not None:
        ents = _with_rank(ents, depts, "legal_representative")
        ents = ents.filter(pc.is_valid(ents["legal_rep_id_number"]))
        n = ents.num_rows
        parts.append(
            pa.table(
                {
                    "credit_code": ents["credit_code"],
                    "reg_number": ents["reg_number"],
                    "id_number": ents["legal_rep_id_number"],
                    "name": ents["legal_rep_name"],
                    "role": pa.array(["legal_representative"] * n, pa.string()),
                    "subscribed_capital": pa.nulls(
                        n, holders.schema.field("subscribed_capital").type
                    )
                    if holders is not None
                    else pa.nulls(n, pa.string()),
                    "share_ratio": pa.nulls(n, holders.schema.field("share_ratio").type)
                    if holders is not None
                    else pa.nulls(n, pa.string()),
                    "source": ents["source"],
                    "as_of": ents["as_of"],
                    "_rank": ents["_rank"],
                }
            )
        )
    if not parts:
        return None
    rows = pa.concat_tables(parts, promote_options="permissive")
    return _first_per_key(rows, ["id_number", "credit_code", "reg_number", "role"])


def curate_all(root: StorageRoot, depts: list[Department], ds: date, run_id: str) -> dict[str, Any]:
    """Build every curated table and publish each in one Delta commit."""
    builders = {
        "person": (lambda: person_records(root, depts), ["id_number"]),
        "enterprise": (lambda: enterprise_records(root, depts), ["credit_code", "reg_number"]),
        "property_right": (
            lambda: relation(
                root,
                depts,
                "property_right",
                PROPERTY_COLUMNS,
                ["certificate_no", "owner_id_number"],
            ),
            ["owner_id_number", "certificate_no"],
        ),
        "housing_fund_account": (
            lambda: relation(root, depts, "housing_fund_account", FUND_COLUMNS, ["account_no"]),
            ["id_number", "account_no"],
        ),
        "marriage": (
            lambda: relation(root, depts, "marriage", MARRIAGE_COLUMNS, ["registration_id"]),
            ["husband_id_number", "wife_id_number", "registered_date"],
        ),
        "enterprise_role": (
            lambda: enterprise_roles(root, depts),
            ["id_number", "credit_code", "role"],
        ),
    }
    published: dict[str, Any] = {}
    for name, (build, sort_by) in builders.items():
        table = build()
        if table is None:
            log.warning("curated/%s: no staged source tables yet; not published", name)
            continue
        version = overwrite(root.curated(name), table, sort_by, run_id, ds.isoformat())
        published[name] = {
            "rows": table.num_rows,
            "version": version,
            "path": str(root.curated(name)),
        }
        log.info("curated/%s: %d rows, version %d", name, table.num_rows, version)
    return published

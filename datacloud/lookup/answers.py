"""The answers of the three lookups, built from any curated view, and their masked forms.

A view answers ``rows(table, column, key)`` (rows whose ``column`` equals ``key``),
``version(table)``, ``ds(table)`` (the business date of that version) and
``distinct(table, column)``: the in-memory ``Snapshot`` does, and the benchmark's
PostgreSQL-backed anchor does the same through SQL.

Only property rights with status 现势 (current) count as owned property; 历史 (historical)
rights are listed in the person's linked facts but not counted.

A property status says whether the household register (curated ``person``: one row per ID
number the register holds) knows the person (``person_known``). ``owns_property: false`` is
only ever said of a person it knows: for anyone else the answer would be a no-house
certificate for someone the platform knows nothing about (the service refuses it, see
``service.PersonUnknown``); a current right of a person outside the register is still a true
``owns_property: true``.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from datacloud.curated_tables import TABLES as CURATED
from datacloud.lookup.keys import EnterpriseKey
from datacloud.masking import mask_id_number, mask_name, mask_phone
from datacloud.matters import MatterCatalogue

CURRENT_RIGHT = "现势"
Row = dict[str, Any]


class CuratedView(Protocol):
    def rows(self, table: str, column: str, key: str) -> list[Row]: ...
    def version(self, table: str) -> int | None: ...
    def ds(self, table: str) -> str | None: ...
    def distinct(self, table: str, column: str) -> list[str]: ...


def _json(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return value


def _clean(row: Row) -> Row:
    """JSON-ready values; internal columns (``_``-prefixed, such as curation keys) left out."""
    return {k: _json(v) for k, v in row.items() if not k.startswith("_")}


def _curated(view: CuratedView, *tables: str) -> dict[str, Any]:
    return {t: {"version": view.version(t), "as_of": view.ds(t)} for t in tables}


def golden_fields(row: Row) -> list[str]:
    """Columns that carry ``<field>_source`` and ``<field>_as_of`` beside them."""
    return [
        c for c in row if not c.startswith("_") and f"{c}_source" in row and f"{c}_as_of" in row
    ]


def person(view: CuratedView, id_number: str) -> Row | None:
    """Golden record (each field with source and as-of date) and linked facts, or None."""
    found = view.rows("person", "id_number", id_number)
    if not found:
        return None
    rec = found[0]
    fields = {
        f: {"value": _json(rec[f]), "source": rec[f"{f}_source"], "as_of": _json(rec[f"{f}_as_of"])}
        for f in golden_fields(rec)
    }
    marriages = {
        r["registration_id"]: r
        for column in ("husband_id_number", "wife_id_number")
        for r in view.rows("marriage", column, id_number)
    }
    return {
        "id_number": id_number,
        "fields": fields,
        "property_rights": [
            _clean(r) for r in view.rows("property_right", "owner_id_number", id_number)
        ],
        "housing_fund_accounts": [
            _clean(r) for r in view.rows("housing_fund_account", "id_number", id_number)
        ],
        "marriages": [_clean(r) for _, r in sorted(marriages.items())],
        "enterprise_roles": [
            _clean(r) for r in view.rows("enterprise_role", "id_number", id_number)
        ],
        "curated": _curated(
            view, "person", "property_right", "housing_fund_account", "marriage", "enterprise_role"
        ),
    }


def enterprise(view: CuratedView, key: EnterpriseKey) -> Row | None:
    """Golden record, legal representative and shareholders, or None."""
    found = view.rows("enterprise", key.kind, key.value)
    if not found:
        return None
    rec = _clean(found[0])
    roles: dict[tuple[Any, ...], Row] = {}
    for column in ("credit_code", "reg_number"):
        if rec.get(column):
            for r in view.rows("enterprise_role", column, rec[column]):
                roles[(r["id_number"], r["role"])] = _clean(r)
    shareholders = sorted(
        (r for r in roles.values() if r["role"] == "shareholder"),
        # share ratios are DECIMAL at the source (strings once cleaned) or floats (SQLite)
        key=lambda r: (-Decimal(str(r.get("share_ratio") or 0)), r["id_number"]),
    )
    legal_rep = {
        "id_number": rec.get("legal_rep_id_number"),
        "name": rec.get("legal_rep_name"),
        "source": rec.get("legal_representative_source"),
        "as_of": rec.get("legal_representative_as_of"),
    }
    return {
        "key": {"kind": key.kind, "value": key.value},
        "record": rec,
        "legal_representative": legal_rep if legal_rep["id_number"] else None,
        "shareholders": shareholders,
        "curated": _curated(view, "enterprise", "enterprise_role"),
    }


def property_status(view: CuratedView, id_number: str) -> Row:
    """Whether the person holds a current (现势) property right in the province, and whether
    the household register knows the person (``person_known``)."""
    rights = view.rows("property_right", "owner_id_number", id_number)
    current = [r for r in rights if r.get("status") == CURRENT_RIGHT]
    return {
        "id_number": id_number,
        "person_known": bool(view.rows("person", "id_number", id_number)),
        "owns_property": bool(current),
        "property_count": len(current),
        "as_of": view.ds("property_right"),
        "sources": view.distinct("property_right", "source"),
        "curated": _curated(view, "property_right"),
    }


# --- what a matter may read ---------------------------------------------------------------------

# the parts of the person and enterprise answers that list rows of one curated table
ROW_PARTS: dict[str, dict[str, str]] = {
    "person": {
        "property_rights": "property_right",
        "housing_fund_accounts": "housing_fund_account",
        "marriages": "marriage",
        "enterprise_roles": "enterprise_role",
    },
    "enterprise": {"shareholders": "enterprise_role"},
}
# an answer's own keys that are the query or the answer's shape, not data items
QUERY_KEYS = {"person": ("id_number",), "enterprise": ("key",)}
PROVENANCE = ("source", "as_of")  # a relation row's department and date
LEGAL_REP = {"id_number": "legal_rep_id_number", "name": "legal_rep_name"}


class MatterHasNoItem(LookupError):
    """The matter has no data item the endpoint answers (or is not in the catalogue)."""


def allowed_columns(endpoint: str, matter: str, catalogue: MatterCatalogue) -> dict[str, set[str]]:
    """Per curated table, the columns ``matter``'s items for ``endpoint`` expose, with their
    provenance: a golden field's ``<field>_source`` and ``<field>_as_of`` when one of its
    columns is exposed, a relation row's ``source`` and ``as_of`` when any column is."""
    items = catalogue.items_for(matter, endpoint)
    if not items:
        raise MatterHasNoItem(f"matter {matter!r} has no data item the {endpoint} lookup answers")
    out: dict[str, set[str]] = {}
    for item in items:
        out.setdefault(item.table, set()).update(item.fields)
    for table, columns in out.items():
        decl = CURATED[table]
        for f in decl.fields:
            if columns.intersection(f.value_columns):
                columns.update((f"{f.name}_source", f"{f.name}_as_of"))
        if decl.columns:
            columns.update(PROVENANCE)
    return out


def restrict(endpoint: str, answer: Row, matter: str, catalogue: MatterCatalogue) -> Row:
    """The answer with only ``matter``'s data items for ``endpoint`` (docs/lookup.md#matters):
    each golden field, row column and part of the answer that no item of the matter exposes
    is left out (a part whose table no item reads is not in the answer at all), as is the
    version of a curated table none of them reads. The query echo (``id_number``, ``key``)
    stays. A property status is one item: the whole answer. Pure; ``MatterHasNoItem`` when
    the matter has no item for the endpoint. Whatever the role: masking comes after."""
    allowed = allowed_columns(endpoint, matter, catalogue)
    if endpoint == "property_status":
        return dict(answer)
    out: Row = {k: answer[k] for k in QUERY_KEYS[endpoint] if k in answer}
    if endpoint == "person" and "person" in allowed and "fields" in answer:
        out["fields"] = {f: v for f, v in answer["fields"].items() if f in allowed["person"]}
    if endpoint == "enterprise" and "enterprise" in allowed:
        columns = allowed["enterprise"]
        if "record" in answer:
            out["record"] = {k: v for k, v in answer["record"].items() if k in columns}
        if "legal_representative" in answer and columns.intersection(LEGAL_REP.values()):
            rep = answer["legal_representative"]
            out["legal_representative"] = (
                None
                if rep is None
                else {
                    k: v
                    for k, v in rep.items()
                    if k in PROVENANCE or LEGAL_REP.get(k, "") in columns
                }
            )
    for part, table in ROW_PARTS[endpoint].items():
        if table in allowed and part in answer:
            out[part] = [
                {k: v for k, v in row.items() if k in allowed[table]} for row in answer[part]
            ]
    if "curated" in answer:
        out["curated"] = {t: v for t, v in answer["curated"].items() if t in allowed}
    return out


def sources(endpoint: str, answer: Row) -> list[str]:
    """The source departments an answer's values come from, sorted (a proof's ``sources``)."""
    if endpoint == "property_status":
        return sorted(str(s) for s in answer.get("sources", []))
    found: set[str] = set()

    def walk(node: Any, key: str = "") -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list):
            for v in node:
                walk(v, key)
        elif isinstance(node, str) and (key == "source" or key.endswith("_source")):
            found.add(node)

    walk({k: v for k, v in answer.items() if k not in ("curated", "key")})
    return sorted(found)


# --- masking for the clerk role ------------------------------------------------------------------

_DISTRICT = re.compile(r"^.{1,12}?(?:区|县|旗)")
_CITY = re.compile(r"^.{1,9}?市")
ID_COLUMNS = {
    "id_number",
    "owner_id_number",
    "husband_id_number",
    "wife_id_number",
    "legal_rep_id_number",
}
NAME_COLUMNS = {"owner_name", "legal_rep_name"}
ADDRESS_COLUMNS = {"registered_address", "location"}
NUMBER_COLUMNS = {"certificate_no", "unit_no", "account_no", "registration_id"}


def mask_address(value: str | None) -> str | None:
    """Keep the administrative part of an address (up to 区/县/旗, else 市), hide the rest.

    ``浙江省宁波市北仑区魏路340号`` → ``浙江省宁波市北仑区****``; without a division word in
    the first characters, only the first three characters are kept.
    """
    if value is None:
        return None
    text = value.strip()
    m = _DISTRICT.match(text) or _CITY.match(text)
    return (m.group(0) if m else text[:3]) + "****"


def mask_number(value: str | None) -> str | None:
    """A certificate, unit or account number: only its last 4 characters."""
    if value is None:
        return None
    return "*" * max(len(value) - 4, 4) + value[-4:] if len(value) > 4 else "****"


def _mask_value(column: str, value: Any, person_names: bool) -> Any:
    if not isinstance(value, str):
        return value
    if column in ID_COLUMNS:
        return mask_id_number(value)
    if column in NAME_COLUMNS or (person_names and column == "name"):
        return mask_name(value)
    if column == "phone":
        return mask_phone(value)
    if column in ADDRESS_COLUMNS:
        return mask_address(value)
    if column in NUMBER_COLUMNS:
        return mask_number(value)
    return value


# What a clerk sees, per part of an answer: each table's allow-list in the registry
# (datacloud.curated_tables, ``clerk``); any other column (a new curated column, say) is left out
# of a clerk's answer until it is listed there.
PART_TABLES = {
    "fields": "person",
    "property_rights": "property_right",
    "housing_fund_accounts": "housing_fund_account",
    "marriages": "marriage",
    "enterprise_roles": "enterprise_role",
    "shareholders": "enterprise_role",
    "record": "enterprise",
}
CLERK_COLUMNS: dict[str, tuple[str, ...]] = {
    part: CURATED[table].clerk for part, table in PART_TABLES.items()
}
# the enterprise answer's legal representative (from the golden record's columns)
CLERK_COLUMNS["legal_representative"] = ("id_number", "name", "source", "as_of")


def _mask_row(part: str, row: Row, person_names: bool = False) -> Row:
    return {k: _mask_value(k, row[k], person_names) for k in CLERK_COLUMNS[part] if k in row}


def masked(kind: str, answer: Row) -> Row:
    """The answer as a clerk sees it: IDs, person names, phones, addresses, numbers masked."""
    out = dict(answer)
    if "id_number" in out:
        out["id_number"] = mask_id_number(out["id_number"])
    # a part may be missing: a matter's answer holds only its items (``restrict``)
    if kind == "person":
        if "fields" in answer:
            out["fields"] = {
                f: {**v, "value": _mask_value(f, v["value"], person_names=True)}
                for f, v in answer["fields"].items()
                if f in CLERK_COLUMNS["fields"]
            }
        for part in ("property_rights", "housing_fund_accounts", "marriages"):
            if part in answer:
                out[part] = [_mask_row(part, r) for r in answer[part]]
        if "enterprise_roles" in answer:
            out["enterprise_roles"] = [
                _mask_row("enterprise_roles", r, person_names=True)
                for r in answer["enterprise_roles"]
            ]
    elif kind == "enterprise":
        if "record" in answer:
            out["record"] = _mask_row("record", answer["record"])
        if answer.get("legal_representative"):
            out["legal_representative"] = _mask_row(
                "legal_representative", answer["legal_representative"], person_names=True
            )
        if "shareholders" in answer:
            out["shareholders"] = [
                _mask_row("shareholders", r, person_names=True) for r in answer["shareholders"]
            ]
    return out

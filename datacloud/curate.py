"""Curation: golden records (一人一档, 一企一档) and relation tables from the staged tables.

Survivorship per field (一数一源, ``dags/curation.yaml``, ``transforms.survivorship``): the
authority departments of a field win, in order, where they have a value; otherwise the most
recently updated non-null value wins. Each golden person and enterprise field carries its
source department and as-of date. Legacy registration numbers (注册号) take the credit code
the crosswalk (kind ``enterprise_code_map``) maps them to, so a legacy record merges into its
credit code's golden record; unmapped ones stay their own rows (``REG:<注册号>``).

Incremental: the staged tables record their row changes (Delta change data feed). A night
reads the changes since the staged versions the last curation consumed (``curated/_curation.json``),
recomputes only the keys they touch from every source, and publishes them in one Delta commit
per curated table (a sorted rewrite or a merge, see ``delta.publish``). The first night,
``full=True``, a survivorship change or a staged table without a change feed rebuild
everything (the same code, every key touched).
"""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from datacloud import delta
from datacloud.config import Department
from datacloud.curation_config import (
    FIELD_COLUMNS,
    PERSON_FIELDS,
    CurationConfig,
    load_curation_config,
)
from datacloud.delta import open_table, read_loaded
from datacloud.paths import StorageRoot
from datacloud.quality import QualityGateError
from datacloud.storage import DataPath
from transforms.code_map import mapped_credit_codes, resolve_crosswalk
from transforms.survivorship import first_per_key, survive

log = logging.getLogger(__name__)

KEY = "_key"  # the merge key of every curated table but person (its key is id_number)
MARRIED, DIVORCED = "20", "40"  # GB/T 2261.2 marital status
REGISTRATION_STATUS = {"结婚": MARRIED, "离婚": DIVORCED}
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
    "employer_reg_number",
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


@dataclass(frozen=True)
class Relation:
    kind: str
    columns: list[str]
    key: list[str]  # identifies a row; joined into _key
    sort_by: list[str]  # file order for lookups
    crosswalk: tuple[str, str] | None = None  # (credit code, 注册号) columns the crosswalk maps


RELATIONS = {
    "property_right": Relation(
        "property_right",
        PROPERTY_COLUMNS,
        ["certificate_no", "owner_id_number"],
        ["owner_id_number", "certificate_no"],
    ),
    "housing_fund_account": Relation(
        "housing_fund_account",
        FUND_COLUMNS,
        ["account_no"],
        ["id_number", "account_no"],
        ("employer_credit_code", "employer_reg_number"),
    ),
    "marriage": Relation(
        "marriage",
        MARRIAGE_COLUMNS,
        ["registration_id"],
        ["husband_id_number", "wife_id_number", "registered_date"],
    ),
}
ROLE_KEY = ["id_number", "credit_code", "reg_number", "role"]
# curated table -> (merge key, sort order)
LAYOUT: dict[str, tuple[str, list[str]]] = {
    "person": ("id_number", ["id_number"]),
    "enterprise": (KEY, ["credit_code", "reg_number"]),
    **{n: (KEY, r.sort_by) for n, r in RELATIONS.items()},
    "enterprise_role": (KEY, ["id_number", "credit_code", "role"]),
}


# --- reading staged tables ------------------------------------------------------------------


def _stack(
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
                t = delta.read_where(dt, wanted, where[0], pc.cast(where[1], pa.string()))
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


# --- survivorship (pure; the rules themselves are transforms.survivorship) -------------------


def _joined_key(rows: pa.Table, columns: list[str], prefix: str = "") -> pa.Array:
    parts = [pc.fill_null(pc.cast(rows[c], pa.string()), "") for c in columns]
    return (
        pc.binary_join_element_wise(*parts, "|")
        if len(parts) > 1
        else pc.cast(parts[0], pa.string())
    )


def enterprise_key(rows: pa.Table) -> pa.Array:
    """Credit code, or ``REG:<registration number>`` for a legacy record without one."""
    return pc.coalesce(
        rows["credit_code"], pc.binary_join_element_wise("REG:", rows["reg_number"], "")
    )


def with_credit_codes(
    rows: pa.Table, crosswalk: pa.Table, credit: str = "credit_code", reg: str = "reg_number"
) -> pa.Table:
    """Rows whose credit code is null and whose 注册号 the crosswalk maps get its credit code."""
    mapped = mapped_credit_codes(rows[credit], rows[reg], crosswalk)
    return rows.set_column(rows.schema.get_field_index(credit), credit, mapped)


def role_key(rows: pa.Table) -> pa.Array:
    """The ``_key`` of an enterprise role: ID number, credit code, 注册号 and role joined by ``|``;
    the 注册号 only where no credit code is known, so a legacy row mapped to a credit code has
    the key of that credit code's rows."""
    legacy_only = pc.if_else(
        pc.is_valid(rows["credit_code"]), pa.scalar(None, pa.string()), rows["reg_number"]
    )
    parts = rows.select(["id_number", "credit_code", "role"]).append_column(
        "reg_number", legacy_only
    )
    return _joined_key(parts, ROLE_KEY)


def role_enterprises(rows: pa.Table) -> pa.Array:
    """The enterprise key of each role row; ``""`` for a row naming no enterprise at all."""
    return pc.fill_null(enterprise_key(rows), "")


def marital_candidates(registrations: pa.Table) -> pa.Table:
    """Two rows per marriage registration (husband, wife): ``marital_status`` and its date.

    结婚 → ``20`` married, 离婚 → ``40`` divorced (GB/T 2261.2); as_of is the registration date,
    so the latest registration of a person wins.
    """
    kinds = pa.array(list(REGISTRATION_STATUS), pa.string())
    codes = pa.array(list(REGISTRATION_STATUS.values()), pa.string())
    status = codes.take(pc.index_in(registrations["registration_type"], value_set=kinds))
    as_of = pc.coalesce(registrations["registered_date"], registrations["as_of"])
    parts = [
        pa.table(
            {
                "id_number": registrations[col],
                "marital_status": status,
                "source": registrations["source"],
                "as_of": as_of,
            }
        )
        for col in ("husband_id_number", "wife_id_number")
    ]
    return pa.concat_tables(parts)


# --- building the curated tables ------------------------------------------------------------


@dataclass
class Night:
    """What one curation run reads: pinned staged versions, and the keys touched (None = all)."""

    root: StorageRoot
    depts: list[Department]
    config: CurationConfig
    versions: dict[str, int]
    touched: dict[str, pa.Array | None] = field(default_factory=dict)
    _crosswalk: pa.Table | None = field(default=None, repr=False)

    @property
    def sources(self) -> list[str]:
        return [d.code for d in self.depts]

    def crosswalk(self) -> pa.Table:
        """注册号 -> credit code from the ``enterprise_code_map`` tables at the pinned versions,
        one credit code per 注册号 (``transforms.code_map.resolve_crosswalk``)."""
        if self._crosswalk is None:
            rows = _stack(
                self.root,
                self.depts,
                {"enterprise_code_map"},
                ["reg_number", "credit_code"],
                versions=self.versions,
            )
            self._crosswalk = resolve_crosswalk(rows, self.sources)
        return self._crosswalk

    def stack(
        self, kinds: set[str], columns: list[str], table: str, key_cols: list[str] | None = None
    ) -> pa.Table | None:
        """Staged rows at the pinned versions; only the touched keys' when ``key_cols`` hold them."""
        keys = self.touched.get(table)
        where = None if keys is None or key_cols is None else (key_cols, keys)
        return _stack(self.root, self.depts, kinds, columns, versions=self.versions, where=where)


def person_records(night: Night) -> tuple[pa.Table, pa.Array] | None:
    """curated/person rows for the touched ID numbers of the household register, and the
    touched ID numbers no longer in it (to delete)."""
    rules = night.config.person_rules(night.depts)
    fields = [f for f in PERSON_FIELDS if f != "marital_status"]
    # the household register's rows are the register and candidates both: read them once
    register = night.stack({"person"}, ["id_number", *fields], "person", ["id_number"])
    if register is None:
        return None
    keys = pc.unique(register["id_number"].drop_null()).sort()
    funds = night.stack({"housing_fund_account"}, ["id_number", *fields], "person", ["id_number"])
    candidates = register if funds is None else _concat(register, funds)
    regs = night.stack(
        {"marriage"},
        ["husband_id_number", "wife_id_number", "registration_type", "registered_date"],
        "person",
        ["husband_id_number", "wife_id_number"],
    )
    if regs is not None and regs.num_rows:
        marital = marital_candidates(regs)
        candidates = pa.concat_tables([candidates, marital], promote_options="permissive")
    else:
        candidates = candidates.append_column(
            "marital_status", pa.nulls(candidates.num_rows, pa.string())
        )
    golden = survive(keys, "id_number", candidates, rules, night.sources)
    return golden, _gone(night.touched.get("person"), keys)


def _concat(a: pa.Table, b: pa.Table) -> pa.Table:
    """Two stacks of the same columns; a column only one of them holds (the other's is all
    null) takes the holder's type."""
    fields = []
    for fa, fb in zip(a.schema, b.schema, strict=True):
        fields.append(fb if a[fa.name].null_count == a.num_rows else fa)
    schema = pa.schema(fields)
    return pa.concat_tables([a.cast(schema), b.cast(schema)])


def _gone(touched: pa.Array | None, present: pa.Array) -> pa.Array:
    if touched is None:
        return pa.array([], pa.string())
    return touched.filter(pc.invert(pc.is_in(touched, value_set=present)))


def _with_key(rows: pa.Table, key: pa.Array) -> pa.Table:
    return rows.append_column(KEY, key).filter(pc.is_valid(key))


def golden_enterprises(night: Night, keys: pa.Array | None) -> pa.Table | None:
    """Golden enterprise records of ``keys`` (enterprise keys; None: all), per field.

    Candidates are the ``enterprise`` rows, legacy ones mapped through the crosswalk (so they
    join their credit code's group), and the crosswalk's rows, which give a credit code its
    注册号. ``credit_code`` is the key's credit code (null for an unmapped legacy record).
    """
    rows = night.stack({"enterprise"}, ENTERPRISE_COLUMNS, "enterprise")
    if rows is None:
        return None
    crosswalk = night.crosswalk()
    rows = with_credit_codes(rows, crosswalk)
    rows = _with_key(rows, enterprise_key(rows))
    if keys is not None:
        rows = rows.filter(pc.is_in(rows[KEY], value_set=keys))
    present = pc.unique(rows[KEY]).sort()
    links = crosswalk.filter(pc.is_in(crosswalk["credit_code"], value_set=present))
    links = links.append_column(KEY, links["credit_code"])
    candidates = pa.concat_tables([rows, links], promote_options="permissive")
    rules = night.config.enterprise_rules(night.depts)
    golden = survive(present, KEY, candidates, rules, night.sources, FIELD_COLUMNS)
    credit = pc.if_else(
        pc.starts_with(golden[KEY], "REG:"), pa.scalar(None, pa.string()), golden[KEY]
    )
    return pa.table(
        {
            "credit_code": credit,
            **{c: golden[c] for c in golden.column_names if c != KEY},
            KEY: golden[KEY],
        }
    )


def enterprise_records(night: Night) -> tuple[pa.Table, pa.Array] | None:
    """curated/enterprise: one row per credit code (legacy 注册号 mapped through the crosswalk);
    an unmapped legacy number is its own row."""
    touched = night.touched.get("enterprise")
    out = golden_enterprises(night, touched)
    if out is None:
        return None
    return out, _gone(touched, out[KEY])


def relation(night: Night, name: str) -> tuple[pa.Table, pa.Array] | None:
    spec = RELATIONS[name]
    rows = night.stack({spec.kind}, spec.columns, name)
    if rows is None:
        return None
    if spec.crosswalk is not None:
        rows = with_credit_codes(rows, night.crosswalk(), *spec.crosswalk)
    rows = _with_key(rows, _joined_key(rows, spec.key))
    touched = night.touched.get(name)
    if touched is not None:
        rows = rows.filter(pc.is_in(rows[KEY], value_set=touched))
    out = first_per_key(rows, KEY, [], night.sources)
    return out, _gone(touched, out[KEY])


def enterprise_roles(night: Night) -> tuple[pa.Table, pa.Array] | None:
    """curated/enterprise_role: shareholders (legacy 注册号 mapped through the crosswalk) and the
    legal representative of each golden enterprise record (its ``legal_representative``).

    Touched keys are enterprise keys: every role of a touched enterprise is rebuilt, and its
    published roles that the build no longer has are deleted.
    """
    touched = night.touched.get("enterprise_role")
    holders = night.stack({"enterprise_role"}, ROLE_COLUMNS, "enterprise_role")
    golden = golden_enterprises(night, touched)
    parts = []
    if holders is not None:
        holders = with_credit_codes(holders, night.crosswalk())
        if touched is not None:
            holders = holders.filter(pc.is_in(role_enterprises(holders), value_set=touched))
        parts.append(holders)
    if golden is not None:
        parts.append(legal_representatives(golden, holders.schema if holders is not None else None))
    if not parts:
        return None
    rows = pa.concat_tables(parts, promote_options="permissive")
    rows = rows.append_column(KEY, role_key(rows))
    authority = night.config.enterprise_rules(night.depts)["legal_representative"]
    out = first_per_key(rows, KEY, authority, night.sources)
    published = None if touched is None else _published_roles(night.root, touched)
    return out, _gone(published, out[KEY])


def _published_roles(root: StorageRoot, enterprises: pa.Array) -> pa.Array:
    """The published role keys of the given enterprise keys (role_enterprises)."""
    dt = open_table(root.curated("enterprise_role"))
    if dt is None:
        return pa.array([], pa.string())
    t = read_loaded(dt, [KEY, "credit_code", "reg_number"])
    mine = pc.is_in(role_enterprises(t), value_set=enterprises)
    return t[KEY].filter(mine).combine_chunks()


def legal_representatives(golden: pa.Table, holders: pa.Schema | None) -> pa.Table:
    """Golden enterprise records as ``legal_representative`` role rows (columns of the role
    table), with the legal representative's source and as-of date; none without an ID number."""
    golden = golden.filter(pc.is_valid(golden["legal_rep_id_number"]))
    n = golden.num_rows

    def nulls(c: str) -> pa.Array:
        return pa.nulls(n, holders.field(c).type if holders is not None else pa.string())

    return pa.table(
        {
            "credit_code": golden["credit_code"],
            "reg_number": golden["reg_number"],
            "id_number": golden["legal_rep_id_number"],
            "name": golden["legal_rep_name"],
            "role": pa.array(["legal_representative"] * n, pa.string()),
            "subscribed_capital": nulls("subscribed_capital"),
            "share_ratio": nulls("share_ratio"),
            "source": golden["legal_representative_source"],
            "as_of": golden["legal_representative_as_of"],
        }
    )


BUILDERS: dict[str, Callable[[Night], tuple[pa.Table, pa.Array] | None]] = {
    "person": person_records,
    "enterprise": enterprise_records,
    "property_right": lambda n: relation(n, "property_right"),
    "housing_fund_account": lambda n: relation(n, "housing_fund_account"),
    "marriage": lambda n: relation(n, "marriage"),
    "enterprise_role": enterprise_roles,
}


# --- touched keys ---------------------------------------------------------------------------


def _touched(night: Night, changes: dict[str, pa.Table]) -> dict[str, pa.Array]:
    """Curated table -> the keys the staged changes touch (old and new images, deletions).

    A crosswalk change (注册号 R mapped to credit code C, or no longer) touches the enterprise
    keys ``REG:R`` and ``C`` of both images, the roles of those enterprises, and the relation
    rows (housing-fund accounts) whose employer is written as R.
    """

    def of(kind: str, fn: Callable[[pa.Table], pa.Array]) -> list[pa.Array]:
        out = []
        for d in night.depts:
            for t in d.tables:
                rows = changes.get(f"{d.code}/{t.name}")
                if t.kind == kind and rows is not None and rows.num_rows:
                    out.append(pc.cast(fn(_fill(rows, d, t.name)), pa.string()))
        return out

    def ids(*cols: str) -> Callable[[pa.Table], pa.Array]:
        return lambda r: _strings([r[c] for c in cols if c in r.column_names])

    def union(arrays: list[pa.Array]) -> pa.Array:
        if not arrays:
            return pa.array([], pa.string())
        return pc.unique(_strings(arrays).combine_chunks().drop_null())

    def rel(name: str) -> Callable[[pa.Table], pa.Array]:
        return lambda r: _joined_key(r, RELATIONS[name].key)

    crosswalk = night.crosswalk()

    def both(key: Callable[[pa.Table], pa.Array]) -> Callable[[pa.Table], pa.Array]:
        """A row's enterprise key as written and through tonight's crosswalk (an image from
        before a crosswalk change is covered by the change's own keys, below)."""
        return lambda r: _strings([key(r), key(with_credit_codes(r, crosswalk))])

    def remapped(r: pa.Table) -> pa.Array:  # a crosswalk row: its 注册号's and its credit code's
        legacy = pc.binary_join_element_wise("REG:", r["reg_number"], "")
        return _strings([legacy, r["credit_code"]])

    regs = union(of("enterprise_code_map", ids("reg_number")))

    def employers(name: str) -> list[pa.Array]:
        """Relation rows naming a remapped 注册号 (housing-fund employers)."""
        spec = RELATIONS[name]
        if spec.crosswalk is None or not len(regs):
            return []
        reg = spec.crosswalk[1]
        rows = _stack(
            night.root,
            night.depts,
            {spec.kind},
            [*spec.key, reg],
            versions=night.versions,
            where=([reg], regs),
        )
        return [] if rows is None else [_joined_key(rows, spec.key)]

    enterprises = of("enterprise", both(enterprise_key)) + of("enterprise_code_map", remapped)
    return {
        "person": union(
            of("person", ids("id_number"))
            + of("housing_fund_account", ids("id_number"))
            + of("marriage", ids("husband_id_number", "wife_id_number"))
        ),
        "enterprise": union(enterprises),
        **{n: union(of(RELATIONS[n].kind, rel(n)) + employers(n)) for n in RELATIONS},
        # enterprise keys: the roles of these enterprises are rebuilt (enterprise_roles)
        "enterprise_role": union(enterprises + of("enterprise_role", both(role_enterprises))),
    }


def _strings(arrays: list[pa.Array] | list[pa.ChunkedArray]) -> pa.ChunkedArray:
    """Arrays or chunked arrays as one chunked string array. (``pa.chunked_array`` given a
    chunked array reads it value by value, in Python.)"""
    chunks: list[pa.Array] = []
    for a in arrays:
        a = pc.cast(a, pa.string())
        chunks.extend(a.chunks if isinstance(a, pa.ChunkedArray) else [a])
    return pa.chunked_array(chunks, pa.string())


_CHANGE_COLUMNS = {
    "person": ["id_number"],
    "housing_fund_account": ["id_number", "account_no"],
    "marriage": ["husband_id_number", "wife_id_number", "registration_id"],
    "enterprise": ["credit_code", "reg_number"],
    "enterprise_role": ["credit_code", "reg_number"],
    "enterprise_code_map": ["reg_number", "credit_code"],
    "property_right": ["certificate_no", "owner_id_number"],
}


def _fill(rows: pa.Table, dept: Department, table: str) -> pa.Table:
    """Change rows with every key column the kind needs (absent ones as nulls)."""
    kind = dept.table(table).kind
    for c in _CHANGE_COLUMNS[kind]:
        if c not in rows.column_names:
            rows = rows.append_column(c, pa.nulls(rows.num_rows, pa.string()))
    return rows


# --- the state between nights ---------------------------------------------------------------


def state_path(root: StorageRoot) -> Path:
    return root.root / "curated" / "_curation.json"


def read_state(root: StorageRoot) -> dict[str, Any] | None:
    path = state_path(root)
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def write_state(root: StorageRoot, state: dict[str, Any]) -> None:
    """Replace the state file atomically (write, fsync, rename)."""
    path = state_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(state, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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
            if after > upto[name] or not delta.has_cdf(path, max(after, 0)):
                log.info("staged %s: no change feed from version %d; full rebuild", name, after)
                return None
            present = set(delta.load(path).schema().to_arrow().names)
            cols = [c for c in _CHANGE_COLUMNS[t.kind] if c in present]
            try:
                out[name] = delta.changes(path, after, upto[name], cols)
            except Exception as e:  # a vacuumed change feed: rebuild in full
                log.info("staged %s: change feed unreadable (%s); full rebuild", name, e)
                return None
    return out


# --- the entry point ------------------------------------------------------------------------

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
        night.touched = dict(_touched(night, changes))
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
        _crash_point(f"before:{name}")
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
        _crash_point(f"after:{name}")
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
    from datacloud import consistency

    findings = consistency.publish(root, depts, ds, run_id, versions=versions)
    published["consistency"] = findings
    _crash_point("state")
    write_state(root, {"staged": versions, "fingerprint": fingerprint, "ds": ds.isoformat()})
    return published


def _crash_point(point: str) -> None:
    """Die as ``kill -9`` would at a named point (tests/integration/test_publish_crash.py)."""
    if os.environ.get("DATACLOUD_CURATE_CRASH_AT") == point:
        os.kill(os.getpid(), signal.SIGKILL)


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
_LINK_TARGETS = {"person": "id_number", "enterprise": "credit_code"}


def quality_gate(root: StorageRoot, ds: date) -> Check:
    """The curated quality gate: each table's GE suite (expectations/curated_<table>.json) on
    the rows about to be published; a failed critical expectation keeps the table unpublished.

    Links (owners, spouses, legal representatives, roles) resolve against the curated person
    and enterprise tables as published so far tonight (person and enterprise go first).
    """
    from datacloud import quality

    keys: dict[str, tuple[int, pa.Table]] = {}  # link target -> (its version, its key column)

    def link_keys(table: str) -> pa.Table | None:
        """The key column of a link target, read once per published version of it."""
        dt = open_table(root.curated(table))
        if dt is None:
            return None
        version = dt.version()
        if table not in keys or keys[table][0] != version:
            column = [_LINK_TARGETS[table]]
            keys[table] = (version, delta.read_table(root.curated(table), column, version))
        return keys[table][1]

    def check(name: str, rows: pa.Table) -> None:
        related = {}
        for table in _LINK_TARGETS:
            found = link_keys(table) if table != name else None
            if found is not None:
                related[table] = found
        result = quality.check_curated(root, name, rows, ds, related)
        if not result.passed:
            raise QualityGateError(result.message())

    return check


def curate_night(ds: date, run_id: str, *, full: bool = False) -> dict[str, Any]:
    """The curation task: every department's staged tables, through the curated quality
    gate, into the curated tables."""
    from datacloud.config import load_departments

    root = StorageRoot.from_env()
    return curate_all(root, load_departments(), ds, run_id, full=full, check=quality_gate(root, ds))

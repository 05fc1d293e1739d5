"""Curation: golden records (一人一档, 一企一档) and relation tables from the staged tables.

Survivorship per field (一数一源, ``dags/curation.yaml``, ``transforms.survivorship``): the
authority departments of a field win, in order, where they have a value; otherwise the most
recently updated non-null value wins. Each golden person and enterprise field carries its
source department and as-of date. Legacy registration numbers (注册号) take the credit code
the crosswalk (kind ``enterprise_code_map``) maps them to, so a legacy record merges into its
credit code's golden record; unmapped ones stay their own rows (``REG:<注册号>``).

This module builds the rows of each curated table (``BUILDERS``) for the keys a night touches
(``Night.touched``; None: every key); the columns, keys and file order are the registry's
(``datacloud.curated_tables``). Which keys a night touches is ``curation_keys``; the night
itself (pinning, the quality gate, publishing, the state file) is ``curation_night``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from datacloud import curated_tables as registry
from datacloud import scatter, staged_rows
from datacloud.config import Department, register_departments
from datacloud.curated_tables import KEY
from datacloud.curation_config import FIELD_COLUMNS, PERSON_FIELDS, CurationConfig
from datacloud.curation_ranges import KeyRange, stack_in_range
from datacloud.delta import open_table, read_loaded
from datacloud.paths import StorageRoot
from datacloud.scatter import Spread
from transforms.code_map import mapped_credit_codes, resolve_crosswalk
from transforms.survivorship import first_per_key, survive

log = logging.getLogger(__name__)

MARRIED, DIVORCED = "20", "40"  # GB/T 2261.2 marital status
REGISTRATION_STATUS = {"结婚": MARRIED, "离婚": DIVORCED}
ENTERPRISE_COLUMNS = registry.ENTERPRISE.read_columns()
ROLE_COLUMNS = registry.ENTERPRISE_ROLE.read_columns()
ROLE_KEY = list(registry.ENTERPRISE_ROLE.key)


@dataclass(frozen=True)
class Relation:
    kind: str
    columns: list[str]
    key: list[str]  # identifies a row; joined into _key
    sort_by: list[str]  # file order for lookups
    crosswalk: tuple[str, str] | None = None  # (credit code, 注册号) columns the crosswalk maps


RELATIONS = {
    n: Relation(t.sources[0], t.read_columns(), list(t.key), list(t.sort_by), t.crosswalk)
    for n in registry.RELATIONS
    for t in [registry.TABLES[n]]
}
# curated table -> (merge key, sort order)
LAYOUT: dict[str, tuple[str, list[str]]] = {
    n: (registry.TABLES[n].merge_key, list(registry.TABLES[n].sort_by)) for n in registry.BUILT
}


# --- survivorship (pure; the rules themselves are transforms.survivorship) -------------------


def joined_key(rows: pa.Table, columns: list[str], prefix: str = "") -> pa.Array:
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
    return joined_key(parts, ROLE_KEY)


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


@dataclass(frozen=True)
class RangeKey:
    """A staged row's key(s) for the range it falls in (any of them in range: the row is read),
    by name: the scatter (``curation_scatter``) and a range task agree on a stack by its name,
    kinds and columns (``Stack``), never by the function."""

    name: str
    keys: Callable[[Night, pa.Table], list[pa.Array]] = field(compare=False, repr=False)


@dataclass(frozen=True)
class Stack:
    """The staged rows a builder reads: the tables of ``kinds``, ``columns`` (with ``source``
    and ``as_of``), and in a range task the key a row falls in a range by."""

    kinds: frozenset[str]
    columns: tuple[str, ...]
    range_key: RangeKey

    def spread(self, night: Night) -> Spread:
        """This stack as the scatter and a range read it, its keys computed as ``night``'s."""
        keys = self.range_key.keys
        return Spread(self.range_key.name, self.kinds, self.columns, lambda r: keys(night, r))


def _columns_key(name: str, *columns: str) -> RangeKey:
    return RangeKey(name, lambda _night, rows: [rows[c] for c in columns])


@dataclass
class Night:
    """What one curation run reads: pinned staged versions, and the keys touched (None = all).

    ``part``: a range task of a full build (``curation_ranges``) reads and builds only the
    keys of its range; each builder's stack names the key a staged row falls in a range by
    (``Stack.range_key``), so every survivorship group lands whole in one range. ``scratch``:
    the plan's scratch folder; a range reads each stack from its scattered file there
    (``scatter.read``, written once by ``curation_scatter.scatter_night``), and streams the
    staged tables (``stack_in_range``) where the scatter is absent or incomplete.
    """

    root: StorageRoot
    depts: list[Department]
    config: CurationConfig
    versions: dict[str, int]
    touched: dict[str, pa.Array | None] = field(default_factory=dict)
    part: KeyRange | None = None
    scratch: Path | None = None
    _crosswalk: pa.Table | None = field(default=None, repr=False)

    @property
    def sources(self) -> list[str]:
        return [d.code for d in self.depts]

    def crosswalk(self) -> pa.Table:
        """注册号 -> credit code from the ``enterprise_code_map`` tables at the pinned versions,
        one credit code per 注册号 (``transforms.code_map.resolve_crosswalk``)."""
        if self._crosswalk is None:
            rows = staged_rows.stack(
                self.root,
                self.depts,
                {"enterprise_code_map"},
                ["reg_number", "credit_code"],
                versions=self.versions,
            )
            self._crosswalk = resolve_crosswalk(rows, self.sources)
        return self._crosswalk

    def stack(self, what: Stack, table: str, key_cols: list[str] | None = None) -> pa.Table | None:
        """Staged rows at the pinned versions; only the touched keys' when ``key_cols`` hold them;
        in a range task only the rows ``what.range_key`` places in its range (``in_range``)."""
        if self.part is not None:
            return self.in_range(what, self.part)
        keys = self.touched.get(table)
        where = None if keys is None or key_cols is None else (key_cols, keys)
        return staged_rows.stack(
            self.root,
            self.depts,
            set(what.kinds),
            list(what.columns),
            versions=self.versions,
            where=where,
        )

    def in_range(self, what: Stack, part: KeyRange) -> pa.Table | None:
        """The rows of ``what`` in ``part``: its scattered file when the scatter is complete,
        else the staged tables streamed and filtered (the same rows either way)."""
        spread = what.spread(self)
        if self.scratch is not None:
            try:
                return scatter.read(
                    scatter.in_scratch(self.scratch), spread, part, self.depts, self.versions
                )
            except scatter.NotScattered as e:
                log.info(
                    "range %d of %d: %s; streaming the staged tables", part.index, part.count, e
                )
        return stack_in_range(
            self.root,
            self.depts,
            set(what.kinds),
            list(what.columns),
            self.versions,
            lambda rows: part.holds(*spread.keys(rows)),
        )


# the staged rows each builder reads (a range task: by its range key) -- every stack a
# builder asks for is in STACKS, which the scatter writes
BY_ID = _columns_key("id_number", "id_number")
BY_SPOUSE = _columns_key("spouse", "husband_id_number", "wife_id_number")  # a spouse in range
BY_ENTERPRISE = RangeKey(
    "enterprise", lambda night, r: [enterprise_key(with_credit_codes(r, night.crosswalk()))]
)
# roles fall in their enterprise's range (the legal representatives come from the golden
# enterprise records of that range)
BY_ROLE_ENTERPRISE = RangeKey(
    "role_enterprise",
    lambda night, r: [role_enterprises(with_credit_codes(r, night.crosswalk()))],
)
_PERSON_COLUMNS = ("id_number", *(f for f in PERSON_FIELDS if f != "marital_status"))
PERSONS = Stack(frozenset({"person"}), _PERSON_COLUMNS, BY_ID)
FUND_HOLDERS = Stack(frozenset({"housing_fund_account"}), _PERSON_COLUMNS, BY_ID)
REGISTRATIONS = Stack(
    frozenset({"marriage"}),
    ("husband_id_number", "wife_id_number", "registration_type", "registered_date"),
    BY_SPOUSE,
)
ENTERPRISES = Stack(frozenset({"enterprise"}), tuple(ENTERPRISE_COLUMNS), BY_ENTERPRISE)
ROLES = Stack(frozenset({"enterprise_role"}), tuple(ROLE_COLUMNS), BY_ROLE_ENTERPRISE)


def _relation_stack(name: str, spec: Relation) -> Stack:
    """A relation's rows, in the range of their ``_key`` (after the crosswalk)."""
    key = RangeKey(f"{name}_key", lambda night, r: [_relation_key(night, spec, r)])
    return Stack(frozenset({spec.kind}), tuple(spec.columns), key)


RELATION_STACKS = {name: _relation_stack(name, spec) for name, spec in RELATIONS.items()}
STACKS: tuple[Stack, ...] = (
    PERSONS,
    FUND_HOLDERS,
    REGISTRATIONS,
    ENTERPRISES,
    ROLES,
    *RELATION_STACKS.values(),
)


def person_records(night: Night) -> tuple[pa.Table, pa.Array] | None:
    """curated/person rows for the touched ID numbers of the household register, and the
    touched ID numbers no longer in it (to delete).

    The register is the person tables of the departments authoritative for ``name``
    (``config.register_departments``): only its ID numbers enter curated/person. Other
    departments' person rows are candidates for the register's persons' fields; a person only
    they know is a consistency finding (``unregistered_person``), not a golden record."""
    rules = night.config.person_rules(night.depts)
    # every person table's rows are candidates; the register's also give the keys: read once
    persons = night.stack(PERSONS, "person", ["id_number"])
    if persons is None:
        return None
    registers = pa.array(register_departments(night.depts), pa.string())
    register = persons.filter(pc.is_in(persons["source"], value_set=registers))
    keys = pc.unique(register["id_number"].drop_null()).sort()
    funds = night.stack(FUND_HOLDERS, "person", ["id_number"])
    candidates = persons if funds is None else _concat(persons, funds)
    regs = night.stack(REGISTRATIONS, "person", ["husband_id_number", "wife_id_number"])
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
    rows = night.stack(ENTERPRISES, "enterprise")
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
    rows = night.stack(RELATION_STACKS[name], name)
    if rows is None:
        return None
    if spec.crosswalk is not None:
        rows = with_credit_codes(rows, night.crosswalk(), *spec.crosswalk)
    rows = _with_key(rows, joined_key(rows, spec.key))
    touched = night.touched.get(name)
    if touched is not None:
        rows = rows.filter(pc.is_in(rows[KEY], value_set=touched))
    out = first_per_key(rows, KEY, [], night.sources)
    return out, _gone(touched, out[KEY])


def _relation_key(night: Night, spec: Relation, rows: pa.Table) -> pa.Array:
    """A relation row's ``_key`` (after the crosswalk), the key its range is chosen by."""
    if spec.crosswalk is not None:
        rows = with_credit_codes(rows, night.crosswalk(), *spec.crosswalk)
    return joined_key(rows, spec.key)


def enterprise_roles(night: Night) -> tuple[pa.Table, pa.Array] | None:
    """curated/enterprise_role: shareholders (legacy 注册号 mapped through the crosswalk) and the
    legal representative of each golden enterprise record (its ``legal_representative``).

    Touched keys are enterprise keys: every role of a touched enterprise is rebuilt, and its
    published roles that the build no longer has are deleted.
    """
    touched = night.touched.get("enterprise_role")
    holders = night.stack(ROLES, "enterprise_role")  # a range task: by their enterprise
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

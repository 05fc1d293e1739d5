"""The registry of curated tables: one typed declaration per table, read by every consumer.

A table's contract lives here and nowhere else: its columns and their types, its key and merge
key, its file order, the staged kinds it is built from, the lookup indexes over it, the columns
a clerk may see (an explicit allow-list: a new column stays hidden from clerks until it is
listed), and the quality suite that gates it (``expectations/<suite>.json``). ``curate`` builds
the tables by it, ``curation_config`` takes the golden fields and their authority from it,
``lookup.snapshot`` loads and indexes by it, ``lookup.answers`` masks by it and the curated
gate runs its suite. ``tests/unit/test_curated_tables.py`` holds the suites and
``docs/data-dictionary.md`` against it.

Pure Python (no pyarrow), so DAG files may read it at parse time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

KEY: Final = "_key"  # the merge key of every curated table but person (the key columns joined)
SOURCE_COLUMNS: Final = ("source", "as_of")  # a relation row's department and as-of date

# column types, as the docs write them; ``source`` keeps the type the department's column has
STRING, DATE, CAPITAL, SOURCE = "string", "date", "decimal(20,6)", "source"


@dataclass(frozen=True)
class Column:
    name: str
    type: str = STRING


@dataclass(frozen=True)
class Field:
    """A golden field decided by survivorship (一数一源): its columns, all from one source row,
    each published with ``<field>_source`` and ``<field>_as_of``; ``authority`` is the field a
    department YAML names under ``authority:`` for it (None: no department can be)."""

    name: str
    type: str = STRING
    authority: str | None = None
    columns: tuple[str, ...] = ()  # a field of several columns (default: its own name)

    @property
    def value_columns(self) -> tuple[str, ...]:
        return self.columns or (self.name,)


@dataclass(frozen=True)
class CuratedTable:
    name: str
    title: str
    sources: tuple[str, ...]  # the staged kinds read
    key: tuple[str, ...]  # the columns that identify a row (joined into ``_key`` by ``|``)
    merge_key: str  # the column a publish merges on
    sort_by: tuple[str, ...]  # file order (point lookups prune on the first)
    lead: tuple[Column, ...] = ()  # golden tables: the key column(s) before the fields
    fields: tuple[Field, ...] = ()  # golden tables: the survivorship fields
    columns: tuple[Column, ...] = ()  # relations: the columns read from the staged rows
    crosswalk: tuple[str, str] | None = None  # (credit code, 注册号) the crosswalk maps
    indexes: tuple[str, ...] = ()  # lookup key columns with an index (lookup.snapshot)
    clerk: tuple[str, ...] = ()  # what a clerk may see (golden tables: field names)
    suite: str | None = None  # the curated quality suite, expectations/<suite>.json
    lookup: bool = True  # loaded by the lookup service

    @property
    def golden(self) -> bool:
        return bool(self.fields)

    def read_columns(self) -> list[str]:
        """The columns read from the staged tables of ``sources``."""
        if self.golden:
            return [c.name for c in self.lead] + [c for f in self.fields for c in f.value_columns]
        return [c.name for c in self.columns]

    def published(self) -> dict[str, str]:
        """Every published column and its type, in order (``_row_hash`` not included)."""
        out: dict[str, str] = {c.name: c.type for c in self.lead}
        for f in self.fields:
            out.update({c: f.type for c in f.value_columns})
            out.update({f"{f.name}_source": STRING, f"{f.name}_as_of": DATE})
        out.update({c.name: c.type for c in self.columns})
        if self.columns and self.name != "consistency":
            out.update({"source": STRING, "as_of": DATE})
        if self.merge_key == KEY:
            out[KEY] = STRING
        return out


def _c(*names: str, type: str = STRING) -> tuple[Column, ...]:
    return tuple(Column(n, type) for n in names)


PERSON = CuratedTable(
    "person",
    "golden person records (一人一档)",
    sources=("person", "housing_fund_account", "marriage"),
    key=("id_number",),
    merge_key="id_number",
    sort_by=("id_number",),
    lead=_c("id_number"),
    fields=(
        Field("name", authority="name"),
        Field("sex", authority="sex"),
        Field("birth_date", DATE, authority="birth_date"),
        Field("ethnicity", authority="ethnicity"),
        Field("registered_address", authority="registered_address"),
        Field("phone"),
        Field("marital_status", authority="marital_status"),
    ),
    indexes=("id_number",),
    clerk=(
        "name",
        "sex",
        "birth_date",
        "ethnicity",
        "registered_address",
        "phone",
        "marital_status",
    ),
    suite="curated_person",
)
ENTERPRISE = CuratedTable(
    "enterprise",
    "golden enterprise records (一企一档)",
    sources=("enterprise", "enterprise_code_map"),
    key=("credit_code", "reg_number"),
    merge_key=KEY,
    sort_by=("credit_code", "reg_number"),
    lead=_c("credit_code"),
    fields=(
        Field("reg_number"),
        Field("org_code"),
        Field("name", authority="enterprise_name"),
        Field("enterprise_type"),
        Field("status", authority="enterprise_status"),
        Field(
            "legal_representative",
            authority="legal_representative",
            columns=("legal_rep_id_number", "legal_rep_name"),
        ),
        Field("registered_capital", CAPITAL),
        Field("established_date", DATE),
        Field("address"),
    ),
    indexes=("credit_code", "reg_number", "org_code"),
    clerk=(  # each golden field with the department it comes from and its date
        "credit_code",
        "reg_number",
        "reg_number_source",
        "reg_number_as_of",
        "org_code",
        "org_code_source",
        "org_code_as_of",
        "name",
        "name_source",
        "name_as_of",
        "enterprise_type",
        "enterprise_type_source",
        "enterprise_type_as_of",
        "status",
        "status_source",
        "status_as_of",
        "legal_rep_id_number",
        "legal_rep_name",
        "legal_representative_source",
        "legal_representative_as_of",
        "registered_capital",
        "registered_capital_source",
        "registered_capital_as_of",
        "established_date",
        "established_date_source",
        "established_date_as_of",
        "address",
        "address_source",
        "address_as_of",
    ),
    suite="curated_enterprise",
)
PROPERTY_RIGHT = CuratedTable(
    "property_right",
    "property rights (不动产权利)",
    sources=("property_right",),
    key=("certificate_no", "owner_id_number"),
    merge_key=KEY,
    sort_by=("owner_id_number", "certificate_no"),
    columns=(
        *_c("certificate_no", "owner_id_number", "owner_name", "unit_no", "location"),
        Column("floor_area_m2", SOURCE),
        Column("registered_date", DATE),
        Column("status"),
    ),
    indexes=("owner_id_number",),
    clerk=(
        "certificate_no",
        "owner_id_number",
        "owner_name",
        "location",
        "floor_area_m2",
        "registered_date",
        "status",
        "source",
        "as_of",
    ),
    suite="curated_property_right",
)
HOUSING_FUND_ACCOUNT = CuratedTable(
    "housing_fund_account",
    "housing-fund accounts (公积金账户)",
    sources=("housing_fund_account",),
    key=("account_no",),
    merge_key=KEY,
    sort_by=("id_number", "account_no"),
    columns=(
        *_c("account_no", "id_number", "employer_name", "employer_credit_code"),
        Column("employer_reg_number"),
        Column("opened_date", DATE),
        Column("status"),
        Column("monthly_contribution", SOURCE),
    ),
    crosswalk=("employer_credit_code", "employer_reg_number"),
    indexes=("id_number",),
    clerk=(
        "account_no",
        "id_number",
        "employer_name",
        "employer_credit_code",
        "opened_date",
        "status",
        "source",
        "as_of",
    ),
    suite="curated_housing_fund_account",
)
MARRIAGE = CuratedTable(
    "marriage",
    "marriage registrations (婚姻登记)",
    sources=("marriage",),
    key=("registration_id",),
    merge_key=KEY,
    sort_by=("husband_id_number", "wife_id_number", "registered_date"),
    columns=(
        *_c("registration_id", "registration_type", "husband_id_number", "wife_id_number"),
        Column("registered_date", DATE),
        Column("office"),
    ),
    indexes=("husband_id_number", "wife_id_number"),
    clerk=(
        "registration_type",
        "husband_id_number",
        "wife_id_number",
        "registered_date",
        "office",
        "source",
        "as_of",
    ),
    suite="curated_marriage",
)
ENTERPRISE_ROLE = CuratedTable(
    "enterprise_role",
    "shareholders and legal representatives (企业人员)",
    sources=("enterprise_role", "enterprise", "enterprise_code_map"),
    key=("id_number", "credit_code", "reg_number", "role"),
    merge_key=KEY,
    sort_by=("id_number", "credit_code", "role"),
    columns=(
        *_c("credit_code", "reg_number", "id_number", "name", "role"),
        Column("subscribed_capital", CAPITAL),
        Column("share_ratio", SOURCE),
    ),
    indexes=("id_number", "credit_code", "reg_number"),
    clerk=(
        "credit_code",
        "reg_number",
        "id_number",
        "name",
        "role",
        "share_ratio",
        "source",
        "as_of",
    ),
    suite="curated_enterprise_role",
)
CONSISTENCY = CuratedTable(
    "consistency",
    "cross-department findings (比对), for platform operators",
    sources=(
        "person",
        "housing_fund_account",
        "property_right",
        "enterprise",
        "enterprise_role",
        "marriage",
    ),
    key=("business_date", "department", "finding", "id_number"),
    merge_key="business_date",  # a night's findings replace that night's (datacloud.consistency)
    sort_by=("business_date", "department", "finding", "id_number"),
    columns=(
        *_c("finding", "finding_zh", "department", "authoritative_department", "field"),
        Column("record_kinds"),
        Column("id_number"),
        Column("business_date", DATE),
    ),
    lookup=False,
)

# publishing order: person and enterprise first (the links of the others resolve against them)
TABLES: Final[dict[str, CuratedTable]] = {
    t.name: t
    for t in (
        PERSON,
        ENTERPRISE,
        PROPERTY_RIGHT,
        HOUSING_FUND_ACCOUNT,
        MARRIAGE,
        ENTERPRISE_ROLE,
        CONSISTENCY,
    )
}
# the tables built by survivorship and relations (curate), in publishing order
BUILT: Final[tuple[str, ...]] = tuple(n for n in TABLES if n != "consistency")
# the relations: one row per key, the latest as-of (or the authority) wins
RELATIONS: Final[tuple[str, ...]] = ("property_right", "housing_fund_account", "marriage")
# the tables the lookup service loads
LOOKUP: Final[tuple[str, ...]] = tuple(n for n, t in TABLES.items() if t.lookup)


def table(name: str) -> CuratedTable:
    """The declaration of curated table ``name``; KeyError naming the known tables."""
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"no curated table {name!r}; known: {list(TABLES)}") from None

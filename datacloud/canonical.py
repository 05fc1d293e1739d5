"""The canonical kinds of record the platform curates, and the columns each must provide.

Pure Python (no pyarrow), so the DAG files can validate department YAML at parse time
without importing anything heavy. A kind beyond the built-in ones is added by configuration:
its raw quality suite ``expectations/raw_<kind>.json`` (``kinds()``).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

from datacloud import quality_suites
from datacloud.curated_tables import TABLES

# kind -> canonical columns a department table of that kind must map (the business key first)
REQUIRED_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "person": ("id_number", "name"),
    "enterprise": ("credit_code", "name"),
    "enterprise_role": ("credit_code", "id_number", "role"),
    "property_right": ("certificate_no", "owner_id_number"),
    "housing_fund_account": ("account_no", "id_number"),
    "marriage": ("registration_id", "husband_id_number", "wife_id_number"),
    # the crosswalk of legacy 注册号 to the credit codes that replaced them (换照)
    "enterprise_code_map": ("reg_number", "credit_code"),
}

# The built-in kinds (curation reads them); ``kinds()`` adds those configured by a raw suite.
KINDS: Final[tuple[str, ...]] = tuple(REQUIRED_COLUMNS)
REQUIRED_CHECK = "required_columns"


@lru_cache(maxsize=1)
def kinds() -> dict[str, tuple[str, ...]]:
    """Every kind a table may have -> the canonical columns it must map (business key first):
    the built-in ``REQUIRED_COLUMNS``, and a kind added by configuration for each raw suite
    ``expectations/raw_<kind>.json`` (its ``required_columns`` check's ``column_set``;
    docs/configuration.md, "Kinds"). Plain JSON, no pyarrow: DAG files validate with it."""
    out = dict(REQUIRED_COLUMNS)
    for path in sorted(quality_suites.EXPECTATIONS_DIR.glob("raw_*.json")):
        kind = path.stem.removeprefix("raw_")
        if kind in out:
            continue
        suite = quality_suites.load_suite(path.stem)
        found = [e for e in suite["expectations"] if e["meta"]["check"] == REQUIRED_CHECK]
        columns = tuple(found[0]["kwargs"].get("column_set") or []) if found else ()
        if not columns:
            raise ValueError(
                f"{path}: a raw suite that adds the kind {kind!r} needs a {REQUIRED_CHECK!r} "
                "check whose column_set lists the columns its tables must map (business key "
                'first; docs/configuration.md, "Kinds")'
            )
        out[kind] = columns
    return out


# The curated tables the curation DAG publishes, in publishing order (the registry's).
CURATED_TABLES: Final[tuple[str, ...]] = tuple(TABLES)

# Names of the normalisers in transforms.registry.NORMALISERS (a unit test keeps them equal),
# plus "keep": the value passes through with its source type (decimals stay exact).
NORMALISER_NAMES: Final[frozenset[str]] = frozenset(
    {
        "id_number",
        "credit_code",
        "reg_number",
        "person_name",
        "text",
        "enterprise_name",
        "sex",
        "date",
        "phone",
        "capital",
        "ethnicity",
        "division",
        "keep",
    }
)

# Names of the quirk adapters in transforms.adapters.ADAPTERS (a unit test keeps them equal):
# applied in order to a raw column before its normaliser.
ADAPTER_NAMES: Final[frozenset[str]] = frozenset(
    {"empty_as_null", "strip_excel_apostrophe", "decode_gbk", "null_sentinels", "digits_only"}
)

# Canonical fields a department can be authoritative for (一数一源).
AUTHORITY_FIELDS: Final[frozenset[str]] = frozenset(
    {
        "name",
        "sex",
        "birth_date",
        "ethnicity",
        "registered_address",
        "marital_status",
        "enterprise_name",
        "enterprise_status",
        "legal_representative",
        "property_ownership",
        "housing_fund_account",
    }
)

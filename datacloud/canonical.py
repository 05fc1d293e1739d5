"""The canonical kinds of record the platform curates, and the columns each must provide.

Pure Python (no pyarrow), so the DAG files can validate department YAML at parse time
without importing anything heavy.
"""

from __future__ import annotations

from typing import Final

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

KINDS: Final[tuple[str, ...]] = tuple(REQUIRED_COLUMNS)

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

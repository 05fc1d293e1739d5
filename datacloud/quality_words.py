"""Quality-gate results in plain Chinese, for the department's load report.

The gate names its checks ``<column>.<kind>`` (``id_number.valid``, ``key.unique``,
``volume``…) and GE reports counts; a department data officer reads "身份证号码 合规率" and
"不合规 0.85%（20,213 个值中 172 个），提醒线 0.50%", not expectation class names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# canonical column -> its Chinese name (columns without one are shown as they are)
FIELD_ZH = {
    "id_number": "身份证号码",
    "name": "姓名",
    "sex": "性别",
    "birth_date": "出生日期",
    "ethnicity": "民族",
    "registered_address": "户籍地址",
    "phone": "联系电话",
    "credit_code": "统一社会信用代码",
    "reg_number": "注册号",
    "legal_rep_id_number": "法定代表人身份证号码",
    "legal_rep_name": "法定代表人姓名",
    "established_date": "成立日期",
    "registered_capital": "注册资本",
    "certificate_no": "不动产权证书号",
    "owner_id_number": "权利人身份证号码",
    "owner_name": "权利人姓名",
    "registered_date": "登记日期",
    "account_no": "公积金账号",
    "employer_credit_code": "单位统一社会信用代码",
    "opened_date": "开户日期",
    "registration_id": "婚姻登记编号",
    "husband_id_number": "男方身份证号码",
    "wife_id_number": "女方身份证号码",
    "key": "主键",
}
# check kind (the part after the column) -> what it checks
KIND_ZH = {
    "present": "填写率",
    "valid": "合规率",
    "valid_warn": "合规率（提醒线）",
    "resolves": "能否关联到登记",
    "matches_id_number": "与身份证号码一致",
    "unique": "不重复",
}


def check_zh(check: str) -> str:
    """``id_number.valid`` -> ``身份证号码 合规率``; ``volume`` -> ``数据量（与近几晚相比）``."""
    if check == "volume":
        return "数据量（与近几晚相比）"
    column, _, kind = check.partition(".")
    return f"{FIELD_ZH.get(column, column)} {KIND_ZH.get(kind, kind)}".strip()


@dataclass(frozen=True)
class Observation:
    """What GE saw for one expectation, as counts only (never a value of a row)."""

    what: str  # rows | value | empty | duplicates | invalid
    bad: int = 0
    of: int = 0
    share: float = 0.0  # percent
    allowed: float = 0.0  # percent
    value: Any = None  # rows: the row count; value: GE's observed value
    low: Any = None
    high: Any = None


def observation(kind: str, kwargs: dict[str, Any], result: dict[str, Any]) -> Observation:
    """Read one GE expectation result (``SUMMARY`` format) into counts."""
    if kind == "expect_table_row_count_to_be_between":
        return Observation(
            "rows",
            value=result.get("observed_value"),
            low=kwargs.get("min_value"),
            high=kwargs.get("max_value"),
        )
    if "observed_value" in result:
        return Observation("value", value=result["observed_value"])
    total = int(result.get("element_count") or 0)
    bad = int(result.get("unexpected_count") or 0)
    allowed = (1 - float(kwargs.get("mostly", 1))) * 100
    if kind == "expect_column_values_to_not_be_null":
        share = float(result.get("unexpected_percent") or 0)
        return Observation("empty", bad, total, share, allowed)
    present = total - int(result.get("missing_count") or 0)
    if kind == "expect_column_values_to_be_unique":
        return Observation("duplicates", bad, present)
    share = float(
        result.get("unexpected_percent_nonmissing", result.get("unexpected_percent")) or 0
    )
    return Observation("invalid", bad, present, share, allowed)


def _pct(x: float) -> str:
    return f"{x:.2f}%"


def _n(x: Any) -> str:
    return f"{x:,}" if isinstance(x, int) else str(x)


def in_english(o: Observation) -> str:
    """For engineers (gate messages, logs)."""
    if o.what == "rows":
        return f"{o.value} rows; expected {o.low}..{o.high}"
    if o.what == "value":
        return f"{o.value}"
    if o.what == "duplicates":
        return f"{o.bad:,} of {o.of:,} rows share a key with another row"
    noun = "rows" if o.what == "empty" else "values"
    return f"{_pct(o.share)} {o.what} ({o.bad:,} of {o.of:,} {noun}); at most {_pct(o.allowed)} allowed"


def in_chinese(o: Observation) -> str:
    """For the department's data officer (the load report)."""
    if o.what == "rows":
        return f"本晚 {_n(o.value)} 行，应在 {_n(o.low)}–{_n(o.high)} 行之间"
    if o.what == "value":
        return f"{o.value}"
    if o.what == "duplicates":
        return f"{o.of:,} 行中有 {o.bad:,} 行与其他行重复"
    if o.what == "empty":
        return f"为空 {_pct(o.share)}（{o.of:,} 行中 {o.bad:,} 行），最多允许 {_pct(o.allowed)}"
    return f"不合规 {_pct(o.share)}（{o.of:,} 个值中 {o.bad:,} 个），最多允许 {_pct(o.allowed)}"

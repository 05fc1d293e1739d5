"""Code tables (GB/T 2260 divisions, GB/T 3304 ethnicities) and the normalisers that use them.

The CSV files beside this module are the only data ``transforms`` reads; ``SOURCES.md`` says
where they come from. Tables are read once per process.
"""

from __future__ import annotations

import csv
import functools
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms._arrow import (
    as_string_array,
    bool_np,
    compact_identifier,
    issues_array,
    lookup_codes,
    via_distinct,
)
from transforms._arrow import (
    map_distinct as map_distinct,
)
from transforms.result import NormaliseContext, Normalised

_DIR = Path(__file__).resolve().parent

# GB/T 2260 province-level codes: the first two digits of a division code, by region.
PROVINCE_CODES: frozenset[str] = frozenset(
    {
        *("11", "12", "13", "14", "15"),  # 华北: 北京 天津 河北 山西 内蒙古
        *("21", "22", "23"),  # 东北: 辽宁 吉林 黑龙江
        *("31", "32", "33", "34", "35", "36", "37"),  # 华东: 上海 江苏 浙江 安徽 福建 江西 山东
        *("41", "42", "43", "44", "45", "46"),  # 中南: 河南 湖北 湖南 广东 广西 海南
        *("50", "51", "52", "53", "54"),  # 西南: 重庆 四川 贵州 云南 西藏
        *("61", "62", "63", "64", "65"),  # 西北: 陕西 甘肃 青海 宁夏 新疆
        *("71", "81", "82"),  # 台湾 香港 澳门
    }
)


def _read_csv(name: str) -> list[dict[str, str]]:
    with (_DIR / name).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@functools.cache
def _division_rows() -> tuple[dict[str, str], ...]:
    return tuple(_read_csv("gb2260.csv"))


@functools.cache
def division_table() -> pa.Table:
    """GB/T 2260 codes in force: columns ``code``, ``name``, ``level`` (all ``pa.string()``).

    ``level`` is ``province``, ``prefecture`` or ``county``.
    """
    rows = _division_rows()
    return pa.table(
        {
            "code": pa.array([r["code"] for r in rows], pa.string()),
            "name": pa.array([r["name"] for r in rows], pa.string()),
            "level": pa.array([r["level"] for r in rows], pa.string()),
        }
    )


@functools.cache
def retired_division_table() -> pa.Table:
    """Retired county-level codes: columns ``code``, ``name``, ``successor``, ``year``."""
    rows = _read_csv("gb2260_retired.csv")
    return pa.table(
        {
            "code": pa.array([r["code"] for r in rows], pa.string()),
            "name": pa.array([r["name"] for r in rows], pa.string()),
            "successor": pa.array([r["successor"] for r in rows], pa.string()),
            "year": pa.array([int(r["year"]) for r in rows], pa.int16()),
        }
    )


@functools.cache
def ethnicity_table() -> pa.Table:
    """GB/T 3304 ethnicities: columns ``code`` (two digits, ``pa.string()``) and ``name``."""
    rows = _read_csv("gb3304.csv")
    return pa.table(
        {
            "code": pa.array([r["code"] for r in rows], pa.string()),
            "name": pa.array([r["name"] for r in rows], pa.string()),
        }
    )


ZHEJIANG_COUNTY_CODES: tuple[str, ...] = tuple(
    r["code"] for r in _division_rows() if r["code"].startswith("33") and r["level"] == "county"
)
HISTORICAL_COUNTY_CODES: tuple[str, ...] = tuple(
    r["code"] for r in _read_csv("gb2260_retired.csv") if r["code"].startswith("33")
)


@functools.cache
def known_division_lookup() -> np.ndarray:
    """Boolean array of length 1,000,000: ``lookup[int(code)]`` is true for codes in force."""
    lookup = np.zeros(1_000_000, dtype=bool)
    lookup[np.array([int(r["code"]) for r in _division_rows()], dtype=np.int64)] = True
    return lookup


def is_known_division(codes: pa.Array) -> pa.Array:
    """True where a six-digit code is in the current GB/T 2260 table (false for nulls).

    Input: ``pa.string()`` (or anything castable to it) division codes. Output: ``pa.bool_()``.
    """
    return pc.is_in(compact_identifier(codes), value_set=division_table().column("code"))


def normalise_division(raw: pa.Array, ctx: NormaliseContext) -> Normalised:
    """Validate GB/T 2260 administrative division codes.

    Input: ``pa.string()`` (numbers are cast) codes such as ``"330102"``. Output ``values``:
    ``pa.string()`` code with spaces removed, kept even when unknown; ``issues``:
    ``DIVISION_UNKNOWN`` (warn) when the code is not in the current table. No extras.
    """
    values = compact_identifier(raw)
    known = bool_np(is_known_division(values))
    unknown = ~known & bool_np(values.is_valid())
    codes = np.where(unknown, 0, -1).astype(np.int8)
    return Normalised(values=values, issues=issues_array(codes, ["DIVISION_UNKNOWN"]))


_ETHNICITY_ALIASES = {
    "毛难": "36",
    "其他": "97",
    "其它": "97",
    "未识别": "97",
    "未识别民族": "97",
    "其他民族": "97",
    "外国血统": "98",
    "外国人入籍": "98",
    "入籍": "98",
}
_DIGITS = re.compile(r"^0*(\d{1,2})(?:\.0+)?$")


@functools.cache
def _ethnicity_index() -> dict[str, str]:
    table = ethnicity_table()
    index: dict[str, str] = {}
    for code, name in zip(
        table.column("code").to_pylist(), table.column("name").to_pylist(), strict=True
    ):
        index[name] = code
        index[name.removesuffix("族")] = code
    index.update(_ETHNICITY_ALIASES)
    return index


def _ethnicity_code(value: str) -> str | None:
    index = _ethnicity_index()
    digits = _DIGITS.match(value)
    if digits:
        code = digits.group(1).zfill(2)
        return code if code in index.values() else None
    return index.get(value) or index.get(value.removesuffix("族"))


def normalise_ethnicity(raw: pa.Array, ctx: NormaliseContext) -> Normalised:
    """Map ethnicity names or codes to GB/T 3304 two-digit codes.

    Input: ``pa.string()`` (numbers are cast) such as ``"汉族"``, ``"汉"``, ``"01"`` or ``1``.
    Output ``values``: ``pa.string()`` code ``"01"``…``"56"``, ``"97"``, ``"98"``, null when
    unknown; ``issues``: ``ETHNICITY_UNKNOWN`` (warn) for unrecognised values. No extras.
    """
    return via_distinct(as_string_array(raw), _ethnicity_codes)


def _ethnicity_codes(raw: pa.StringArray) -> Normalised:
    return lookup_codes(compact_identifier(raw), _ethnicity_code, "ETHNICITY_UNKNOWN")

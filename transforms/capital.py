"""注册资本 text ("500万元", "1.2亿", "300,000.00元") to exact decimals in 万元."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms._arrow import bool_np, issues_array, trimmed
from transforms.result import NormaliseContext, Normalised

CAPITAL_TYPE = pa.decimal128(20, 6)
_SCALE = 6  # decimal places of CAPITAL_TYPE

# Unit → power of ten relative to 万元.
UNIT_EXPONENTS: dict[str, int] = {
    "元": -4,
    "千元": -1,
    "万": 0,
    "万元": 0,
    "萬": 0,
    "萬元": 0,
    "百万": 2,
    "百万元": 2,
    "千万": 3,
    "千万元": 3,
    "亿": 4,
    "亿元": 4,
    "億": 4,
    "億元": 4,
}
_BARE_UNITS = {"元": -4, "万元": 0, "万": 0}

_FOREIGN = (
    r"(?i)美元|美金|港元|港币|欧元|日元|英镑|澳元|加元|加拿大元|新加坡元|新台币|台币|法郎|马克|"
    r"卢布|韩元|USD|HKD|EUR|JPY|GBP|AUD|CAD|SGD|CHF|\$"
)
_CNY_MARKERS = r"(?i)人民币|RMB|CNY|¥|[\s,()]"
_UNITS = "|".join(sorted(UNIT_EXPONENTS, key=len, reverse=True))
_AMOUNT = rf"^(?P<int>\d+)(?:\.(?P<frac>\d*))?(?P<unit>{_UNITS})?$"

_ISSUES = ("CAPITAL_CURRENCY", "CAPITAL_UNPARSEABLE")


def _units(int_part: pa.Array, frac: pa.Array, exponent: int) -> tuple[np.ndarray, np.ndarray]:
    """Amounts as integer multiples of 10**-6 万元, and whether they fit (no float involved)."""
    e = exponent + _SCALE  # digits of the fraction that survive
    frac = frac.fill_null("")
    fits = bool_np(pc.less_equal(pc.add(pc.binary_length(int_part), e), 18))
    int_digits = pc.if_else(fits, int_part, "0")
    padded = pc.utf8_rpad(frac, width=e + 1, padding="0")
    kept = pc.utf8_slice_codeunits(padded, 0, e) if e > 0 else None
    next_digit = pc.utf8_slice_codeunits(padded, e, e + 1)
    units = pc.cast(int_digits, pa.int64()).to_numpy() * 10**e
    if kept is not None:
        units = units + pc.cast(kept, pa.int64()).to_numpy()
    units = units + (pc.cast(next_digit, pa.int64()).to_numpy() >= 5)  # round half up
    return units, fits


def _decimal_array(units: np.ndarray, valid: np.ndarray) -> pa.Array:
    """``decimal128(20, 6)`` from unscaled non-negative int64 values."""
    words = np.zeros((len(units), 2), dtype=np.int64)
    words[:, 0] = np.where(valid, units, 0)
    validity = pa.array(valid, pa.bool_()).buffers()[1]
    return pa.Array.from_buffers(
        CAPITAL_TYPE, len(units), [validity, pa.py_buffer(words.tobytes())]
    )


def normalise_capital(raw: pa.Array, ctx: NormaliseContext) -> Normalised:
    """Parse registered capital to an exact amount in 万元 (10,000 CNY).

    Input: ``pa.string()`` (numbers are cast) such as "500万元", "500 万元人民币", "1.2亿元",
    "300,000.00元", full-width digits, or a bare number (万元 by default; ``ctx.options
    ["bare_unit"]`` may be "元" or "万元"). Output ``values``: ``pa.decimal128(20, 6)`` in 万元,
    computed from the digits without floating point ("1.2亿元" → 12000.000000; more than six
    decimal places are rounded half up); ``issues``: CAPITAL_CURRENCY (warn: a foreign currency,
    not converted, value null) or CAPITAL_UNPARSEABLE (warn, value null). No extras.
    """
    text = trimmed(raw)
    n = len(text)
    present = bool_np(text.is_valid())
    foreign = bool_np(pc.match_substring_regex(text, _FOREIGN))
    cleaned = pc.replace_substring_regex(text, _CNY_MARKERS, "")
    parts = pc.extract_regex(cleaned, _AMOUNT).flatten()
    int_part, frac, unit = parts
    matched = bool_np(int_part.is_valid())

    bare = _BARE_UNITS.get(str(ctx.options.get("bare_unit", "万元")))
    if bare is None:
        raise ValueError(f"bare_unit must be one of {sorted(_BARE_UNITS)}")
    unit = pc.if_else(pc.equal(unit, ""), None, unit)
    units = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=bool)
    encoded = pc.dictionary_encode(unit)
    unit_index = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    for k, name in [(-1, None), *enumerate(encoded.dictionary.to_pylist())]:
        rows = np.flatnonzero(matched & (unit_index == k))
        if len(rows) == 0:
            continue
        exponent = bare if name is None else UNIT_EXPONENTS[name]
        taken = pa.array(rows)
        units[rows], ok[rows] = _units(int_part.take(taken), frac.take(taken), exponent)

    codes = np.full(n, -1, dtype=np.int8)
    codes[present & ~(matched & ok)] = 1
    codes[present & foreign] = 0
    valid = present & (codes < 0)
    return Normalised(values=_decimal_array(units, valid), issues=issues_array(codes, _ISSUES))

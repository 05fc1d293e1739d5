"""性别 to GB/T 2261.1 codes, and the cross-check against the ID number."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from transforms._arrow import (
    as_string_array,
    lookup_codes,
    trimmed,
    via_distinct,
)
from transforms.result import NormaliseContext, Normalised

# GB/T 2261.1-2003: 0 未知的性别, 1 男性, 2 女性, 9 未说明的性别. Keys are lower-case.
SEX_CODES: dict[str, str] = {
    "0": "0",
    "1": "1",
    "2": "2",
    "9": "9",
    "男": "1",
    "男性": "1",
    "女": "2",
    "女性": "2",
    "m": "1",
    "f": "2",
    "male": "1",
    "female": "2",
    "未知": "0",
    "未知的性别": "0",
    "unknown": "0",
    "未说明": "9",
    "未说明的性别": "9",
}


def _sex_code(value: str) -> str | None:
    key = value.lower()
    if key.endswith(".0") and key[:-2] in SEX_CODES:  # numbers that went through a float
        key = key[:-2]
    return SEX_CODES.get(key)


def normalise_sex(raw: pa.Array, ctx: NormaliseContext) -> Normalised:
    """Map sex values to GB/T 2261.1 codes.

    Input: ``pa.string()`` (numbers are cast) such as "男", "女性", "M", "female", 1, "9",
    "未说明". Output ``values``: ``pa.string()`` "0" unknown, "1" male, "2" female, "9" not
    stated; null for unrecognised values, with ``issues`` SEX_UNKNOWN_VALUE (warn). No extras.
    """
    return via_distinct(as_string_array(raw), _sex_codes)


def _sex_codes(raw: pa.StringArray) -> Normalised:
    return lookup_codes(trimmed(raw), _sex_code, "SEX_UNKNOWN_VALUE")


def sex_mismatch(sex_codes: pa.Array, id_sex: pa.Array) -> pa.Array:
    """True where both codes are known (1 or 2) and differ (a SEX_ID_MISMATCH finding).

    Input: two ``pa.string()`` arrays of GB/T 2261.1 codes of the same length, e.g. the
    ``values`` of ``normalise_sex`` and the ``sex`` extra of ``normalise_id_number``.
    Output: ``pa.bool_()`` without nulls.
    """
    known = pa.array(["1", "2"], pa.string())
    a = pc.cast(sex_codes, pa.string())
    b = pc.cast(id_sex, pa.string())
    both = pc.and_(pc.is_in(a, value_set=known), pc.is_in(b, value_set=known))
    return pc.and_(both, pc.not_equal(a, b)).fill_null(False)

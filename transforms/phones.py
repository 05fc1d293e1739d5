"""Mainland China phone numbers: mobiles to 11 digits, landlines to "区号-号码"."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms._arrow import (
    as_string_array,
    blank_to_null,
    bool_np,
    fixed_width_matrix,
    issues_array,
    nfkc,
)
from transforms.result import NormaliseContext, Normalised

_SEPARATORS = r"[\s\-()\[\]./]"
# 3-digit area codes are 010 (Beijing) and 020-029; every other area code has 4 digits.
_LANDLINE_3 = r"^(0(?:10|2\d))([2-9]\d{6,7})$"
_LANDLINE_4 = r"^(0[3-9]\d{2})([2-9]\d{6,7})$"
_MOBILE = r"^1[3-9]\d{9}$"
_VALID = r"^(?:1[3-9]\d{9}|0\d{2,3}-[2-9]\d{6,7})$"


def normalise_phone(raw: pa.Array, ctx: NormaliseContext) -> Normalised:
    """Normalise phone numbers.

    Input: ``pa.string()`` (numbers are cast). Spaces, dashes, dots and brackets are removed;
    a "+86"/"0086" prefix is dropped (and the trunk "0" restored for landlines), as is "86"
    before an 11-digit mobile. Output ``values``: ``pa.string()``, mobiles as 11 digits
    ("13812345678"), landlines as "<area code>-<number>" ("0571-88888888", "010-12345678");
    with ``ctx.options["default_area_code"]`` a bare 7-8 digit local number gets that area
    code. Invalid numbers are null with ``issues`` PHONE_INVALID (warn). No extras.
    """
    arr = as_string_array(raw)
    codes = np.full(len(arr), -1, dtype=np.int8)
    # Mobiles written as 11 plain digits (nearly all) are already in canonical form.
    other = ~_plain_mobiles(arr) & bool_np(arr.is_valid())
    if other.any():
        mask = pa.array(other)
        values, codes[other] = _normalise_phones(pc.filter(arr, mask), ctx)
        arr = pc.replace_with_mask(arr, mask, values)
    return Normalised(values=arr, issues=issues_array(codes, ["PHONE_INVALID"]))


def _plain_mobiles(arr: pa.StringArray) -> np.ndarray:
    """True where the value is exactly a mobile number, 1[3-9] and nine more ASCII digits."""
    n_bytes = pc.binary_length(arr).fill_null(0).to_numpy()
    idx = np.flatnonzero(n_bytes == 11)
    m = fixed_width_matrix(pc.take(arr, idx), 11)
    ok = ((m >= ord("0")) & (m <= ord("9"))).all(axis=1)
    ok &= (m[:, 0] == ord("1")) & (m[:, 1] >= ord("3"))
    plain = np.zeros(len(arr), dtype=bool)
    plain[idx[ok]] = True
    return plain


def _normalise_phones(arr: pa.StringArray, ctx: NormaliseContext) -> tuple[pa.Array, np.ndarray]:
    """Values and issue codes (-1 or 0 PHONE_INVALID) for any phone numbers."""
    arr = nfkc(arr)
    arr = blank_to_null(pc.replace_substring_regex(arr, _SEPARATORS, ""))
    present = bool_np(arr.is_valid())
    international = pc.match_substring_regex(arr, r"^(?:\+|00)86")
    arr = pc.replace_substring_regex(arr, r"^(?:\+|00)86", "")
    # After an international prefix the landline trunk "0" is omitted: +86 571 8888 8888.
    arr = pc.if_else(
        pc.and_(
            international, pc.match_substring_regex(arr, r"^(?:10|2\d|[3-9]\d{2})[2-9]\d{6,7}$")
        ),
        pc.binary_join_element_wise("0", arr, ""),
        arr,
    )
    arr = pc.replace_substring_regex(arr, r"^86(1[3-9]\d{9})$", r"\1")
    area = ctx.options.get("default_area_code")
    if area:
        local = pc.match_substring_regex(arr, r"^[2-9]\d{6,7}$")
        arr = pc.if_else(local, pc.binary_join_element_wise(str(area), arr, ""), arr)
    arr = pc.replace_substring_regex(arr, _LANDLINE_3, r"\1-\2")
    arr = pc.replace_substring_regex(arr, _LANDLINE_4, r"\1-\2")
    valid = pc.match_substring_regex(arr, _VALID).fill_null(False)
    invalid = present & ~bool_np(valid)
    codes = np.where(invalid, 0, -1).astype(np.int8)
    return pc.if_else(valid, arr, None), codes

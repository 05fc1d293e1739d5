"""Masking of personal information wherever a person reads it (PIPL, GB/T 35273-2020).

Each function takes a ``str`` (or ``None``) or an Arrow string array and masks it the same way:

- ID number: the first 6 characters, eight ``*``, the last 4 (``330106********0012``);
  anything shorter than 11 characters becomes all ``*``.
- Person name: the first character, then one ``*`` (``张*``), whatever the length.
- Phone: the first 3 digits, ``****``, the last 4 digits (``138****5678``); non-digits are
  dropped first; fewer than 8 digits become all ``*``.

Nulls stay null. ``mask_text`` masks ID numbers (18 or 15 digits) and mobile numbers found
inside free text such as an error message.
"""

from __future__ import annotations

import re
from typing import TypeVar, overload

import pyarrow as pa
import pyarrow.compute as pc

ID_STARS = "********"
PHONE_STARS = "****"
_ID_MIN = 11  # 6 shown + at least 1 hidden + 4 shown
_PHONE_MIN = 8  # 3 shown + at least 1 hidden + 4 shown

_ArrowStrings = TypeVar("_ArrowStrings", pa.Array, pa.ChunkedArray)

# 18-character ID numbers (17 digits + digit or X) and legacy 15-digit ones, not inside longer
# digit runs; mainland mobile numbers (1[3-9] + 9 digits), optionally after +86.
_ID_IN_TEXT = re.compile(r"(?<![0-9])(?:[0-9]{17}[0-9Xx]|[0-9]{15})(?![0-9])")
_MOBILE_IN_TEXT = re.compile(r"(?<![0-9])(?:\+?86[- ]?)?1[3-9][0-9]{9}(?![0-9])")


def _id_scalar(s: str) -> str:
    s = s.strip()
    return s[:6] + ID_STARS + s[-4:] if len(s) >= _ID_MIN else "*" * len(s)


def _name_scalar(s: str) -> str:
    s = s.strip()
    return s[0] + "*" if s else ""


def _phone_scalar(s: str) -> str:
    digits = re.sub(r"[^0-9]", "", s)
    if len(digits) == 13 and digits.startswith("86"):  # +86 country code
        digits = digits[2:]
    return (
        digits[:3] + PHONE_STARS + digits[-4:] if len(digits) >= _PHONE_MIN else "*" * len(digits)
    )


def _all_stars(arr: pa.Array) -> pa.Array:
    return pc.replace_substring_regex(arr, pattern=".", replacement="*")


def _id_array(arr: pa.Array) -> pa.Array:
    s = pc.utf8_trim_whitespace(arr)
    masked = pc.binary_join_element_wise(
        pc.utf8_slice_codeunits(s, start=0, stop=6),
        pc.utf8_slice_codeunits(s, start=-4),
        ID_STARS,
    )  # the last argument is the separator: first6 + ******** + last4
    return pc.if_else(pc.greater_equal(pc.utf8_length(s), _ID_MIN), masked, _all_stars(s))


def _name_array(arr: pa.Array) -> pa.Array:
    s = pc.utf8_trim_whitespace(arr)
    first = pc.utf8_slice_codeunits(s, start=0, stop=1)
    return pc.if_else(
        pc.greater(pc.utf8_length(s), 0), pc.binary_join_element_wise(first, "*", ""), s
    )


def _phone_array(arr: pa.Array) -> pa.Array:
    digits = pc.replace_substring_regex(arr, pattern=r"[^0-9]", replacement="")
    with_country = pc.and_(pc.equal(pc.utf8_length(digits), 13), pc.starts_with(digits, "86"))
    digits = pc.if_else(with_country, pc.utf8_slice_codeunits(digits, start=2), digits)
    masked = pc.binary_join_element_wise(
        pc.utf8_slice_codeunits(digits, start=0, stop=3),
        pc.utf8_slice_codeunits(digits, start=-4),
        PHONE_STARS,
    )
    return pc.if_else(
        pc.greater_equal(pc.utf8_length(digits), _PHONE_MIN), masked, _all_stars(digits)
    )


def _as_strings(arr: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    return arr if pa.types.is_string(arr.type) else pc.cast(arr, pa.string())


@overload
def mask_id_number(value: str) -> str: ...
@overload
def mask_id_number(value: None) -> None: ...
@overload
def mask_id_number(value: _ArrowStrings) -> _ArrowStrings: ...
def mask_id_number(value: str | pa.Array | pa.ChunkedArray | None) -> object:
    """Mask an ID number: first 6, ``********``, last 4 (``330106********0012``)."""
    if value is None or isinstance(value, str):
        return None if value is None else _id_scalar(value)
    return _id_array(_as_strings(value))


@overload
def mask_name(value: str) -> str: ...
@overload
def mask_name(value: None) -> None: ...
@overload
def mask_name(value: _ArrowStrings) -> _ArrowStrings: ...
def mask_name(value: str | pa.Array | pa.ChunkedArray | None) -> object:
    """Mask a person name: the first character and one ``*`` (``张*``)."""
    if value is None or isinstance(value, str):
        return None if value is None else _name_scalar(value)
    return _name_array(_as_strings(value))


@overload
def mask_phone(value: str) -> str: ...
@overload
def mask_phone(value: None) -> None: ...
@overload
def mask_phone(value: _ArrowStrings) -> _ArrowStrings: ...
def mask_phone(value: str | pa.Array | pa.ChunkedArray | None) -> object:
    """Mask a phone number: first 3 digits, ``****``, last 4 digits (``138****5678``)."""
    if value is None or isinstance(value, str):
        return None if value is None else _phone_scalar(value)
    return _phone_array(_as_strings(value))


def mask_text(text: str) -> str:
    """Mask every ID number (18 or 15 digits) and mobile number inside free text."""
    text = _ID_IN_TEXT.sub(lambda m: _id_scalar(m.group(0)), text)
    return _MOBILE_IN_TEXT.sub(lambda m: _phone_scalar(m.group(0)[-11:]), text)

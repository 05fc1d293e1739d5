"""Masking of personal information wherever a person reads it (PIPL, GB/T 35273-2020).

Each function takes a ``str`` (or ``None``) or an Arrow string array and masks it the same way:

- ID number: the first 6 characters, eight ``*``, the last 4 (``330106********0012``);
  anything shorter than 11 characters becomes all ``*``.
- Person name: the first character, then one ``*`` (``张*``), whatever the length.
- Phone: the first 3 digits, ``****``, the last 4 digits (``138****5678``); non-digits are
  dropped first; fewer than 8 digits become all ``*``.

Nulls stay null. ``mask_text`` masks ID numbers (18 or 15 characters) and mobile numbers found
inside free text such as an error message or a lookup's purpose, also when they are typed with
full-width digits, with spaces or hyphens between digit groups, or with invisible characters
between the digits (see its docstring).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import TypeVar, overload

import pyarrow as pa
import pyarrow.compute as pc

from transforms.id_number import id_check_char

ID_STARS = "********"
PHONE_STARS = "****"
_ID_MIN = 11  # 6 shown + at least 1 hidden + 4 shown
_PHONE_MIN = 8  # 3 shown + at least 1 hidden + 4 shown

_ArrowStrings = TypeVar("_ArrowStrings", pa.Array, pa.ChunkedArray)

# Free text is searched in a normalised view of itself (see mask_text). A run: digit groups with
# separators (whitespace, hyphens, dashes) between them, optionally ending in an X.
_SEPARATORS = r"\s\-\u2010-\u2015\u2212\ufe58\ufe63"
_RUN = re.compile(f"[0-9]+(?:[{_SEPARATORS}]+[0-9]+)*(?:[{_SEPARATORS}]*[Xx])?")
_GROUP = re.compile(r"[0-9]+|[Xx]")
_ID_SHAPE = re.compile(r"[0-9]{17}[0-9Xx]|[0-9]{15}")
_MOBILE = re.compile(r"(?:86)?1[3-9][0-9]{9}")
_LONG_STRETCH = 15  # digits in two or more groups that no ID or mobile number explains
# not seen in print: format characters (zero-width spaces and joiners, U+2060, the BOM, the soft
# hyphen, ...) and combining marks; the view of the digits leaves them out
_INVISIBLE = frozenset({"Cf", "Mn", "Me"})


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


def _view(text: str) -> tuple[str, list[int] | None]:
    """The text as a reader sees its digits (NFKC, every decimal digit as ASCII, invisible
    characters left out) and, per character of the view, the index of the character of ``text``
    it comes from (None when the text is ASCII: its own view)."""
    if text.isascii():
        return text, None
    chars: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):  # bounded by the text
        for c in unicodedata.normalize("NFKC", ch):
            if unicodedata.category(c) in _INVISIBLE:
                continue
            digit = unicodedata.decimal(c, None)
            chars.append(str(digit) if digit is not None else c)
            origin.append(i)
    return "".join(chars), origin


def _valid_id(compact: str) -> bool:
    return (
        len(compact) == 18
        and _ID_SHAPE.fullmatch(compact) is not None
        and id_check_char(compact[:17]) == compact[17].upper()
    )


def _id_shaped(compact: str) -> bool:
    return _ID_SHAPE.fullmatch(compact) is not None


def _mobile(compact: str) -> bool:
    return _MOBILE.fullmatch(compact) is not None


def _take(
    groups: list[str],
    taken: list[bool],
    accept: Callable[[str], bool],
    mask: Callable[[str], str],
    found: list[tuple[int, int, str]],
) -> None:
    """Mark and mask, left to right, the longest run of whole untaken groups that ``accept``s."""
    i = 0
    while i < len(groups):  # each step moves i forward
        best = 0
        compact = ""
        for j in range(i, len(groups)):  # bounded: stops past 18 characters
            if taken[j]:
                break
            compact += groups[j]
            if len(compact) > 18:
                break
            if accept(compact):
                best = j + 1
        if best:
            found.append((i, best, mask("".join(groups[i:best]))))
            taken[i:best] = [True] * (best - i)
            i = best
        else:
            i += 1


def _masks(groups: list[str]) -> list[tuple[int, int, str]]:
    """(first group, last group + 1, masked text) for what one run of digit groups hides: ID
    numbers with a right check character, other 18- or 15-character ID numbers, mobile numbers,
    each of whole groups; then any stretch of two or more groups left with 15 or more digits."""
    taken = [False] * len(groups)
    found: list[tuple[int, int, str]] = []
    _take(groups, taken, _valid_id, _id_scalar, found)
    _take(groups, taken, _id_shaped, _id_scalar, found)
    _take(groups, taken, _mobile, _phone_scalar, found)
    i = 0
    while i < len(groups):  # stretches of untaken groups
        if taken[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(groups) and not taken[j + 1]:
            j += 1
        stretch = "".join(groups[i : j + 1])
        if j > i and sum(c.isdigit() for c in stretch) >= _LONG_STRETCH:
            found.append((i, j + 1, _id_scalar(stretch)))
        i = j + 1
    return sorted(found)


def mask_text(text: str) -> str:
    """Mask every ID number and mobile number inside free text; the rest stays as it was.

    The text is searched in a normalised view: NFKC (full-width ``０-９`` and ``Ｘ`` become
    ASCII), any decimal digit read as its ASCII digit, invisible characters (zero-width space,
    joiners U+200B-U+200D, U+2060, U+FEFF, soft hyphen, other format characters, combining
    marks) left out, and digit groups separated by whitespace or hyphens/dashes read as one run.
    In a run, made of whole groups: 18-character ID numbers (17 digits + digit or X, those with a
    right check character first) and 15-digit legacy ones become first 6 + ``********`` + last 4,
    mainland mobile numbers (``1[3-9]`` + 9 digits, optionally after ``+86``/``86``) 3 + ``****``
    + 4. Any stretch of two or more groups left with 15 or more digits is masked like an ID
    number, so no ID number typed in unusual groups survives. A single unbroken digit string of
    another length (a 16-digit number) stays, as before.
    """
    view, origin = _view(text)
    pieces: list[str] = []
    done = 0  # text[:done] is in pieces
    for run in _RUN.finditer(view):  # bounded by the text
        spans = [(g.start() + run.start(), g.end() + run.start()) for g in _GROUP.finditer(run[0])]
        for first, last, masked in _masks([view[a:b] for a, b in spans]):
            start, end = spans[first][0], spans[last - 1][1]
            if start > 0 and view[start - 1] == "+" and view.startswith("86", start):
                start -= 1  # "+86" goes with the number it prefixes
            a = origin[start] if origin is not None else start
            b = origin[end - 1] + 1 if origin is not None else end
            pieces.append(text[done : max(a, done)])
            pieces.append(masked)
            done = max(b, done)
    pieces.append(text[done:])
    return "".join(pieces)

"""Person names, enterprise names and free text."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms._arrow import (
    as_string_array,
    blank_to_null,
    bool_np,
    issues_array,
    nfkc,
    via_distinct,
)
from transforms.result import NormaliseContext, Normalised

_CJK = r"[\x{3400}-\x{9fff}\x{f900}-\x{faff}]"
# Middle-dot look-alikes used in transliterated names (e.g. 阿依古丽·买买提). After NFKC the
# half-width katakana dot U+FF65 becomes U+30FB and U+0387 becomes U+00B7.
_DOTS = r"[\x{00b7}\x{2022}\x{2027}\x{30fb}\x{ff65}.\x{2219}\x{22c5}]"
_SPACE_BETWEEN_CJK = rf"({_CJK})\s+({_CJK})"
_MARK = "\ue000"  # private-use character marking a dot that follows a CJK character
MIDDLE_DOT = "\u00b7"
# CJK ideographs that are letters in every Unicode version since 11.0 and that NFKC leaves
# alone (unlike the compatibility ideographs U+F900-U+FAFF): a name of these is clean.
_IDEOGRAPHS = r"[\x{3400}-\x{4db5}\x{4e00}-\x{9fef}]"


def _collapse_whitespace(arr: pa.StringArray) -> pa.StringArray:
    return pc.utf8_trim_whitespace(pc.replace_substring_regex(arr, r"\s+", " "))


def _clean_name(arr: pa.StringArray) -> pa.StringArray:
    # A dot between two CJK characters becomes U+00B7. RE2 has no look-behind and its matches
    # do not overlap, so mark dots after a CJK character first, then rewrite the marked dots
    # that a CJK character follows (one pass handles "爱新觉罗•溥•仪").
    arr = pc.replace_substring_regex(arr, rf"({_CJK})(\s*{_DOTS}\s*)", rf"\1{_MARK}\2")
    arr = pc.replace_substring_regex(arr, rf"{_MARK}\s*{_DOTS}\s*({_CJK})", rf"{MIDDLE_DOT}\1")
    arr = pc.replace_substring(arr, _MARK, "")
    # Whitespace between CJK characters goes; a second pass catches every other gap
    # ("张 三 丰"), because matches do not overlap.
    for _ in range(2):
        arr = pc.replace_substring_regex(arr, _SPACE_BETWEEN_CJK, r"\1\2")
    return _collapse_whitespace(arr)


def _plain(arr: pa.StringArray, pattern: str) -> np.ndarray:
    """True where the whole (non-empty) value matches ``pattern``'s characters (nulls false)."""
    return bool_np(pc.match_substring_regex(arr, rf"^{pattern}+$"))


def _clean_person_names(arr: pa.StringArray) -> tuple[pa.StringArray, np.ndarray]:
    """Cleaned names and issue codes (-1, 0 NAME_EMPTY, 1 NAME_CHARS) for any names."""
    arr = pc.utf8_trim_whitespace(nfkc(arr))
    present = bool_np(arr.is_valid())
    # Only names with something besides letters (spaces, dots, digits…) need the regexes.
    dirty = pc.invert(pc.utf8_is_alpha(arr)).fill_null(False)
    if pc.any(dirty).as_py():
        arr = pc.replace_with_mask(arr, dirty, _clean_name(pc.filter(arr, dirty)))
    has_digit = bool_np(pc.match_substring_regex(arr, r"\d"))
    has_letter = bool_np(pc.match_substring_regex(arr, r"\pL"))
    codes = np.full(len(arr), -1, dtype=np.int8)
    codes[present & ~has_letter] = 0
    codes[present & has_digit] = 1
    return arr, codes


def normalise_person_name(raw: pa.Array, ctx: NormaliseContext) -> Normalised:
    """Clean person names.

    Input: ``pa.string()`` raw names. Cleaning: NFKC, trim, spaces between CJK characters
    removed ("张 三" → "张三"), middle-dot variants between CJK characters unified to U+00B7
    ("阿依古丽•买买提" → "阿依古丽·买买提"), runs of whitespace in Latin names collapsed to one
    space. Output ``values``: ``pa.string()``, null when rejected; ``issues``: NAME_EMPTY
    (reject: blank, or no letter at all) or NAME_CHARS (reject: contains a digit). No extras.
    Null input stays null without an issue.
    """
    # Names repeat (a few ten thousand distinct in a million rows): clean each one once.
    return via_distinct(as_string_array(raw), _person_names)


def _person_names(arr: pa.StringArray) -> Normalised:
    codes = np.full(len(arr), -1, dtype=np.int8)
    # Names of CJK ideographs only (nearly all) are clean and valid as they are.
    other = ~_plain(arr, _IDEOGRAPHS) & bool_np(arr.is_valid())
    if other.any():
        mask = pa.array(other)
        cleaned, codes[other] = _clean_person_names(pc.filter(arr, mask))
        arr = pc.replace_with_mask(arr, mask, cleaned)
    values = pc.if_else(pa.array(codes < 0), arr, None)
    return Normalised(values=values, issues=issues_array(codes, ["NAME_EMPTY", "NAME_CHARS"]))


# Characters certainly unchanged by NFKC and not whitespace: printable ASCII, the middle
# dot, 、 and 。, and the CJK ideographs (Extension A and the basic block). Text made of them
# only (nearly every address) is already clean.
_STABLE_TEXT = r"[\x21-\x7e\x{00b7}\x{3001}\x{3002}\x{3400}-\x{4dbf}\x{4e00}-\x{9fff}]"


def normalise_text(raw: pa.Array, ctx: NormaliseContext) -> Normalised:
    """Clean free text (addresses, descriptions).

    Input: ``pa.string()`` (other types are cast). Output ``values``: ``pa.string()`` after
    NFKC, trimming and collapsing whitespace runs to one space; null when blank. ``issues`` is
    always null. No extras.
    """
    arr = as_string_array(raw)
    other = ~_plain(arr, _STABLE_TEXT) & bool_np(arr.is_valid())
    if other.any():
        mask = pa.array(other)
        arr = pc.replace_with_mask(arr, mask, _collapse_whitespace(nfkc(pc.filter(arr, mask))))
    arr = blank_to_null(arr)
    return Normalised(values=arr, issues=pa.nulls(len(arr), pa.string()))


def normalise_enterprise_name(raw: pa.Array, ctx: NormaliseContext) -> Normalised:
    """Clean enterprise names: the same as ``normalise_text``.

    Input/output as ``normalise_text``. Note that NFKC turns full-width brackets into ASCII
    ones, so "杭州某某（集团）有限公司" becomes "杭州某某(集团)有限公司"; compare names only after
    this normalisation.
    """
    return normalise_text(raw, ctx)

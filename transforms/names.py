"""Person names, enterprise names and free text."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms._arrow import (
    as_string_array,
    blank_to_null,
    bool_np,
    first_issue,
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
# Printable ASCII other than '<', '>' and '&', and the CJK ideographs: no hostile character.
_SAFE_CHARS = (
    r"[\x20-\x25\x27-\x3b\x3d\x3f-\x7e\x{00b7}\x{3001}\x{3002}\x{3400}-\x{4dbf}\x{4e00}-\x{9fff}]"
)
_MARK = "\ue000"  # private-use character marking a dot that follows a CJK character
MIDDLE_DOT = "\u00b7"
# CJK ideographs that are letters in every Unicode version since 11.0 and that NFKC leaves
# alone (unlike the compatibility ideographs U+F900-U+FAFF): a name of these is clean.
_IDEOGRAPHS = r"[\x{3400}-\x{4db5}\x{4e00}-\x{9fef}]"

# Hostile characters (docs/rules.md, "text"). Control: every C0 character (a tab or line break
# the cleaning turned into a space is gone by then), DEL, C1, the zero-width characters and
# directional marks U+200B-U+200F, the line and paragraph separators, the word joiner and
# invisible operators U+2060-U+2064, and the BOM. Bidi: the embeddings and overrides
# U+202A-U+202E and the isolates U+2066-U+2069 (Trojan Source, CVE-2021-42574), and the
# Arabic letter mark U+061C.
CONTROL_CHARS = (
    r"[\x{0}-\x{1f}\x{7f}-\x{9f}\x{200b}-\x{200f}\x{2028}\x{2029}\x{2060}-\x{2064}\x{feff}]"
)
BIDI_CHARS = r"[\x{061c}\x{202a}-\x{202e}\x{2066}-\x{2069}]"
# A tag-like '<' or '>' (after NFKC, so full-width ＜＞ too) or an HTML character reference.
_MARKUP = r"[<>]|&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);"
# Maximum lengths in characters after cleaning, unless a column's ``options: {max_length: N}``
# says otherwise (docs/rules.md, TEXT_TOO_LONG, says where each comes from).
MAX_LENGTH = {"person_name": 50, "enterprise_name": 100, "text": 200}
_HOSTILE = ["TEXT_TOO_LONG", "TEXT_CONTROL_CHAR", "TEXT_BIDI_CHAR", "TEXT_MARKUP"]


def max_length(ctx: NormaliseContext, normaliser: str) -> int:
    """The column's ``max_length`` option, else the normaliser's default."""
    return int(ctx.options.get("max_length", MAX_LENGTH[normaliser]))


def hostile_checks(
    arr: pa.StringArray, limit: int | None, markup: bool
) -> list[tuple[np.ndarray, str]]:
    """Per value of a cleaned text array: (mask, rule code) of each hostile-value rule, in
    order of precedence: too long, control characters, bidi controls, markup (names only).
    Nulls are never flagged. The regexes only run on values that are not plain ASCII text or
    CJK ideographs (nearly every value is)."""
    n = len(arr)
    checks: list[tuple[np.ndarray, str]] = []
    if limit is not None:
        checks.append((bool_np(pc.greater(pc.utf8_length(arr), limit)), "TEXT_TOO_LONG"))
    suspect = ~_plain(arr, _SAFE_CHARS) & bool_np(arr.is_valid())
    patterns = [(CONTROL_CHARS, "TEXT_CONTROL_CHAR"), (BIDI_CHARS, "TEXT_BIDI_CHAR")]
    if markup:
        patterns.append((_MARKUP, "TEXT_MARKUP"))
    some = pc.filter(arr, pa.array(suspect)) if suspect.any() else None
    for pattern, code in patterns:
        mask = np.zeros(n, dtype=bool)
        if some is not None:
            mask[suspect] = bool_np(pc.match_substring_regex(some, pattern))
        checks.append((mask, code))
    return checks


def _codes(n: int, checks: list[tuple[np.ndarray, str]], names: list[str]) -> np.ndarray:
    return first_issue(n, [(mask, names.index(code)) for mask, code in checks])


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
    space. Output ``values``: ``pa.string()``, null when rejected; ``issues`` (all reject,
    first that applies): TEXT_TOO_LONG (over ``max_length``, default 50 characters),
    TEXT_CONTROL_CHAR, TEXT_BIDI_CHAR, TEXT_MARKUP (``<``, ``>`` or an HTML character
    reference), NAME_EMPTY (blank, or no letter at all), NAME_CHARS (contains a digit). No
    extras. Null input stays null without an issue.
    """
    limit = max_length(ctx, "person_name")
    # Names repeat (a few ten thousand distinct in a million rows): clean each one once.
    return via_distinct(as_string_array(raw), lambda arr: _person_names(arr, limit))


_PERSON_CODES = [*_HOSTILE, "NAME_EMPTY", "NAME_CHARS"]


def _person_names(arr: pa.StringArray, limit: int) -> Normalised:
    n = len(arr)
    name_codes = np.full(n, -1, dtype=np.int8)
    # Names of CJK ideographs only (nearly all) are clean and valid as they are.
    other = ~_plain(arr, _IDEOGRAPHS) & bool_np(arr.is_valid())
    if other.any():
        mask = pa.array(other)
        cleaned, name_codes[other] = _clean_person_names(pc.filter(arr, mask))
        arr = pc.replace_with_mask(arr, mask, cleaned)
    checks = hostile_checks(arr, limit, markup=True)
    checks += [(name_codes == 0, "NAME_EMPTY"), (name_codes == 1, "NAME_CHARS")]
    codes = _codes(n, checks, _PERSON_CODES)
    values = pc.if_else(pa.array(codes < 0), arr, None)
    return Normalised(values=values, issues=issues_array(codes, _PERSON_CODES))


# Characters certainly unchanged by NFKC and not whitespace: printable ASCII, the middle
# dot, 、 and 。, and the CJK ideographs (Extension A and the basic block). Text made of them
# only (nearly every address) is already clean.
_STABLE_TEXT = r"[\x21-\x7e\x{00b7}\x{3001}\x{3002}\x{3400}-\x{4dbf}\x{4e00}-\x{9fff}]"


def _clean_text(raw: pa.Array) -> pa.StringArray:
    arr = as_string_array(raw)
    other = ~_plain(arr, _STABLE_TEXT) & bool_np(arr.is_valid())
    if other.any():
        mask = pa.array(other)
        arr = pc.replace_with_mask(arr, mask, _collapse_whitespace(nfkc(pc.filter(arr, mask))))
    return blank_to_null(arr)


def _rejecting(arr: pa.StringArray, checks: list[tuple[np.ndarray, str]]) -> Normalised:
    names = [code for _, code in checks]
    codes = _codes(len(arr), checks, names)
    values = pc.if_else(pa.array(codes < 0), arr, None)
    return Normalised(values=values, issues=issues_array(codes, names))


def normalise_text(raw: pa.Array, ctx: NormaliseContext) -> Normalised:
    """Clean free text (addresses, descriptions).

    Input: ``pa.string()`` (other types are cast). Output ``values``: ``pa.string()`` after
    NFKC, trimming and collapsing whitespace runs (tabs and line breaks included) to one
    space; null when blank or rejected. ``issues`` (all reject, first that applies):
    TEXT_TOO_LONG (over ``max_length``, default 200 characters), TEXT_CONTROL_CHAR,
    TEXT_BIDI_CHAR. No extras.
    """
    arr = _clean_text(raw)
    return _rejecting(arr, hostile_checks(arr, max_length(ctx, "text"), markup=False))


def normalise_enterprise_name(raw: pa.Array, ctx: NormaliseContext) -> Normalised:
    """Clean enterprise names: the cleaning of ``normalise_text``, and name rules.

    Input/output as ``normalise_text``; ``issues`` (all reject, first that applies):
    TEXT_TOO_LONG (over ``max_length``, default 100 characters), TEXT_CONTROL_CHAR,
    TEXT_BIDI_CHAR, TEXT_MARKUP (``<``, ``>`` or an HTML character reference),
    TEXT_NO_LETTER (no letter of any script). Note that NFKC turns full-width brackets into
    ASCII ones, so "杭州某某（集团）有限公司" becomes "杭州某某(集团)有限公司"; compare names only
    after this normalisation.
    """
    arr = _clean_text(raw)
    checks = hostile_checks(arr, max_length(ctx, "enterprise_name"), markup=True)
    no_letter = bool_np(pc.invert(pc.match_substring_regex(arr, r"\pL")))
    return _rejecting(arr, [*checks, (no_letter, "TEXT_NO_LETTER")])

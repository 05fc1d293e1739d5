"""Spreadsheet cells a department opens: rejected.csv (``datacloud.report``) and the feedback
workbook (``datacloud.problem_workbook``) make every cell safe by this one rule."""

from __future__ import annotations

import re

# Spreadsheet cells (docs/reports.md, rejected.csv). OWASP's CSV-injection rule: a cell that
# starts with = + - @ TAB or CR (or NUL, ASVS 1.2.10) gets a leading apostrophe, so Excel, WPS
# and LibreOffice show it as text instead of evaluating a formula. The full-width ＝＋－＠ too:
# NFKC (which this platform and many tools apply) turns them into the ASCII triggers, and
# typing them in a Chinese input method starts a formula in WPS; an apostrophe costs nothing.
# Leading spaces (ASCII, U+3000) and line feeds are looked through.
FORMULA_STARTS = frozenset("=+-@\t\r\x00\uff1d\uff0b\uff0d\uff20")
CELL_MAX = 32_767  # Excel's limit on the characters of a cell (UTF-16 code units)
TRUNCATED = "…[截断 truncated, {n} chars]"
# Invisible characters shown as escapes (\x00, \u202e): control characters but TAB, LF and CR
# (quoted by the csv module), C1, zero-width and bidi controls, separators, the BOM.
_HIDDEN = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e"
    "\u2060-\u2064\u2066-\u2069\ufeff]"
)


def _escape_char(m: re.Match[str]) -> str:
    c = ord(m.group(0))
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def safe_cell(value: object) -> str:
    """A value as a safe spreadsheet cell (rejected.csv, the feedback workbook): invisible
    characters escaped, a formula start neutralised with a leading apostrophe, and at most
    ``CELL_MAX`` UTF-16 code units, a longer value cut with a visible marker giving its
    original length in characters."""
    text = "" if value is None else str(value)
    n = len(text)
    if _HIDDEN.search(text):
        text = _HIDDEN.sub(_escape_char, text)
    head = text.lstrip(" \u3000\n")
    prefix = "'" if head and head[0] in FORMULA_STARTS else ""
    cell = prefix + text
    if _units(cell) <= CELL_MAX:
        return cell
    marker = TRUNCATED.format(n=n)
    keep = CELL_MAX - _units(marker) - _units(prefix)
    # cut on a code unit boundary; half a surrogate pair at the cut is dropped
    kept = text.encode("utf-16-le")[: 2 * keep].decode("utf-16-le", errors="ignore")
    return prefix + kept + marker

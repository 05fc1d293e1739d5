"""公民身份号码 (GB 11643-1999): cleaning, 15→18 upgrade and validation, vectorised."""

from __future__ import annotations

import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms._arrow import (
    compact_identifier,
    date32_array,
    days_from_civil,
    epoch_days,
    first_issue,
    fixed_width_matrix,
    identifier_shape,
    issues_array,
    matrix_to_strings,
    valid_ymd,
)
from transforms.codes import PROVINCE_CODES, known_division_lookup
from transforms.result import NormaliseContext, Normalised

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK_CHARS = "10X98765432"
EARLIEST_BIRTH = datetime.date(1900, 1, 1)

_WEIGHTS = np.array(ID_WEIGHTS, dtype=np.int32)
_CHECK = np.frombuffer(ID_CHECK_CHARS.encode("ascii"), dtype=np.uint8)
_PROVINCE_OK = np.zeros(100, dtype=bool)
_PROVINCE_OK[[int(p) for p in PROVINCE_CODES]] = True

# Issue codes, in priority order: the first failing check of a row is reported.
_ISSUES = (
    "ID_LENGTH",
    "ID_CHARS",
    "ID_CHECK_DIGIT",
    "ID_PROVINCE",
    "ID_BIRTH_DATE",
    "ID_LEGACY_15",
    "ID_COUNTY_HISTORICAL",
)
_LENGTH, _CHARS, _CHECK_DIGIT, _PROVINCE, _BIRTH, _LEGACY, _COUNTY = range(len(_ISSUES))
_FIRST_WARN = _LEGACY


def _is_ascii_digits(s: str) -> bool:
    return s.isascii() and s.isdigit()


def id_check_char(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character for the first 17 digits of an ID number."""
    if len(first17) != 17 or not _is_ascii_digits(first17):
        raise ValueError(f"expected 17 digits, got {len(first17)} characters")
    total = sum(int(c) * w for c, w in zip(first17, ID_WEIGHTS, strict=True))
    return ID_CHECK_CHARS[total % 11]


def upgrade_15_to_18(s: str) -> str:
    """Upgrade a 15-digit ID number: insert "19" before the 2-digit year, append the check char."""
    s = s.strip()
    if len(s) != 15 or not _is_ascii_digits(s):
        raise ValueError("expected a 15-digit legacy ID number")
    first17 = s[:6] + "19" + s[6:]
    return first17 + id_check_char(first17)


def is_valid_id_number(s: str, business_date: datetime.date | None = None) -> bool:
    """Scalar check of an 18-character ID number (upper- or lower-case x accepted).

    True when the characters, check character, province and birth date are valid; the birth
    date must not be before 1900-01-01 nor, when ``business_date`` is given, after it.
    """
    s = s.strip().upper()
    if len(s) != 18 or not _is_ascii_digits(s[:17]) or not (s[17].isdigit() or s[17] == "X"):
        return False
    if id_check_char(s[:17]) != s[17] or s[:2] not in PROVINCE_CODES:
        return False
    try:
        born = datetime.date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        return False
    return born >= EARLIEST_BIRTH and (business_date is None or born <= business_date)


def _upgrade_matrix(m15: np.ndarray) -> np.ndarray:
    """(k, 15) digit bytes of legacy numbers to (k, 18) bytes of the upgraded numbers."""
    out = np.empty((m15.shape[0], 18), dtype=np.uint8)
    out[:, :6] = m15[:, :6]
    out[:, 6] = ord("1")
    out[:, 7] = ord("9")
    out[:, 8:17] = m15[:, 6:]
    total = (out[:, :17].astype(np.int32) - ord("0")) @ _WEIGHTS
    out[:, 17] = _CHECK[total % 11]
    return out


def normalise_id_number(raw: pa.Array, ctx: NormaliseContext) -> Normalised:
    """Clean and validate 公民身份号码 (GB 11643-1999).

    Input: ``pa.string()`` (large_string, string_view and numbers are cast) raw ID numbers.
    Cleaning: NFKC (full-width to half-width), spaces and ``- _ .`` removed anywhere, ``x`` to
    ``X``; 15-digit legacy numbers upgraded to 18. Output ``values``: ``pa.string()`` 18-char
    number, null on any reject; ``issues``: ID_LENGTH, ID_CHARS, ID_CHECK_DIGIT, ID_PROVINCE,
    ID_BIRTH_DATE (reject, checked in that order), else ID_LEGACY_15 or ID_COUNTY_HISTORICAL
    (warn, value kept); extras ``birth_date`` (``pa.date32()``) and ``sex`` (``pa.string()``,
    GB/T 2261.1 "1" male / "2" female from the 17th digit), null where the row is rejected.
    Blank strings are treated as null (no issue).
    """
    cleaned = compact_identifier(raw)
    n = len(cleaned)
    present, n_chars, n_bytes, ascii_ = identifier_shape(cleaned)

    codes = np.where(present, _LENGTH, -1).astype(np.int8)
    codes[((n_chars == 18) | (n_chars == 15)) & ~ascii_] = _CHARS

    idx18 = np.flatnonzero((n_bytes == 18) & ascii_)
    idx15 = np.flatnonzero((n_bytes == 15) & ascii_)
    m18 = fixed_width_matrix(pc.take(cleaned, idx18), 18)
    m15 = fixed_width_matrix(pc.take(cleaned, idx15), 15)
    digits15 = ((m15 >= ord("0")) & (m15 <= ord("9"))).all(axis=1)
    codes[idx15[~digits15]] = _CHARS
    upgraded = _upgrade_matrix(m15[digits15])

    idx = np.concatenate([idx18, idx15[digits15]])
    k = len(idx)
    legacy = np.arange(k) >= len(idx18)
    # One row per character position (18, k): every column operation below is contiguous.
    t = np.empty((18, k), dtype=np.uint8)
    t[:, : len(idx18)] = m18.T
    t[:, len(idx18) :] = upgraded.T
    d = t - np.uint8(ord("0"))  # uint8: anything that is not a digit wraps to >= 10
    is_digit = d < 10
    chars_ok = is_digit[:17].all(axis=0) & (is_digit[17] | (t[17] == ord("X")))
    d = np.where(is_digit, d, np.uint8(0))
    total = np.zeros(k, dtype=np.uint16)  # at most 17 * 9 * 10
    for i, w in enumerate(ID_WEIGHTS):
        total += d[i] * np.uint16(w)
    check_ok = _CHECK[total % 11] == t[17]

    def number(first: int, last: int) -> np.ndarray:
        out = np.zeros(k, dtype=np.int32)
        for i in range(first, last):
            out = out * 10 + d[i]
        return out

    province_ok = _PROVINCE_OK[number(0, 2)]
    year, month, day = number(6, 10), number(10, 12), number(12, 14)
    days = days_from_civil(year, month, day)
    birth_ok = (
        valid_ymd(year, month, day)
        & (days >= epoch_days(EARLIEST_BIRTH))
        & (days <= epoch_days(ctx.business_date))
    )
    county_known = known_division_lookup()[number(0, 6)]

    sub = first_issue(
        k,
        [
            (~chars_ok, _CHARS),
            (~check_ok, _CHECK_DIGIT),
            (~province_ok, _PROVINCE),
            (~birth_ok, _BIRTH),
            (legacy, _LEGACY),
            (~county_known, _COUNTY),
        ],
    )
    codes[idx] = sub
    ok = (sub < 0) | (sub >= _FIRST_WARN)
    accepted = np.zeros(n, dtype=bool)
    accepted[idx[ok]] = True

    # An accepted 18-character number is the cleaned value itself; legacy ones are upgraded.
    values = pc.if_else(pa.array(accepted), cleaned, pa.scalar(None, pa.string()))
    upgraded_ok = ok[len(idx18) :]
    if upgraded_ok.any():
        mask = np.zeros(n, dtype=bool)
        mask[idx15[digits15][upgraded_ok]] = True
        values = pc.replace_with_mask(
            values, pa.array(mask), matrix_to_strings(upgraded[upgraded_ok])
        )
    birth_days = np.zeros(n, dtype=np.int64)
    birth_days[idx] = days
    female = np.zeros(n, dtype=np.int8)
    female[idx] = d[16] % 2 == 0
    sex = pc.take(pa.array(["1", "2"], pa.string()), pa.array(female, mask=~accepted))
    return Normalised(
        values=values,
        issues=issues_array(codes, _ISSUES),
        extras={"birth_date": date32_array(birth_days, accepted), "sex": sex},
    )

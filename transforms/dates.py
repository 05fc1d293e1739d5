"""Dates in the many spellings departments use, to ``pa.date32()``, vectorised."""

from __future__ import annotations

import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms._arrow import (
    as_string_array,
    bool_np,
    date32_array,
    days_from_civil,
    epoch_days,
    first_issue,
    issues_array,
    trimmed,
    valid_ymd,
    via_distinct,
)
from transforms.result import NormaliseContext, Normalised

SENTINEL_DATES = (datetime.date(1900, 1, 1), datetime.date(9999, 12, 31))
EXCEL_EPOCH = datetime.date(1899, 12, 31)  # serial 1 is 1900-01-01

_TIME = r"(?:(?:\s+|T)\d{1,2}:\d{1,2}(?::\d{1,2}(?:\.\d{1,9})?)?\s*(?:Z|[+-]\d{2}:?\d{2})?)?"
_PATTERN = (
    r"^(?:(?P<y1>\d{4})\s*[-/.年]\s*(?P<m1>\d{1,2})\s*[-/.月]\s*(?P<d1>\d{1,2})\s*日?"
    r"|(?P<y2>\d{4})(?P<m2>\d{2})(?P<d2>\d{2}))" + _TIME + "$"
    r"|^(?P<serial>\d{1,5})(?:\.\d+)?$"
)

_ISSUES = ("DATE_UNPARSEABLE", "DATE_SENTINEL", "DATE_IMPOSSIBLE", "DATE_IN_FUTURE")
_UNPARSEABLE, _SENTINEL, _IMPOSSIBLE, _FUTURE = range(len(_ISSUES))


def _int_field(a: pa.Array, b: pa.Array | None = None) -> np.ndarray:
    """Digits of one (or two alternative, one of them empty) captured groups as int64."""
    s = a if b is None else pc.binary_join_element_wise(a, b, "")
    s = pc.if_else(pc.equal(pc.binary_length(s), 0), "0", s).fill_null("0")
    return pc.cast(s, pa.int64()).to_numpy()


def _finish(
    present: np.ndarray,
    parsed: np.ndarray,
    sentinel: np.ndarray,
    possible: np.ndarray,
    days: np.ndarray,
    ctx: NormaliseContext,
) -> Normalised:
    future = days > epoch_days(ctx.business_date)
    if ctx.options.get("allow_future"):
        future = np.zeros_like(future)
    codes = first_issue(
        len(present),
        [
            (present & ~parsed, _UNPARSEABLE),
            (present & sentinel, _SENTINEL),
            (present & ~possible, _IMPOSSIBLE),
            (present & future, _FUTURE),
        ],
    )
    values = date32_array(np.where(codes < 0, days, 0), present & (codes < 0))
    return Normalised(values=values, issues=issues_array(codes, _ISSUES))


def _from_temporal(arr: pa.Array, ctx: NormaliseContext) -> Normalised:
    d32 = arr if pa.types.is_date32(arr.type) else pc.cast(arr, pa.date32())
    present = bool_np(d32.is_valid())
    days = pc.cast(d32, pa.int32()).fill_null(0).to_numpy().astype(np.int64)
    sentinel = np.isin(days, [epoch_days(d) for d in SENTINEL_DATES])
    ok = np.ones(len(arr), dtype=bool)
    return _finish(present, ok, sentinel, ok, days, ctx)


def normalise_date(raw: pa.Array, ctx: NormaliseContext) -> Normalised:
    """Parse dates to ``pa.date32()``.

    Input: ``pa.string()`` (numbers are cast) in any of "1990-01-01", "1990/1/1", "1990-1-1",
    "19900101", "1990年1月1日", "1990.01.01", optionally followed by a time ("1990-01-01
    08:30:00", "1990-01-01T08:30:00"); ``pa.date32``/``date64``/``timestamp`` input is taken as
    is. With ``ctx.options["excel_serial"]`` true, 1-5 digit numbers are spreadsheet serials
    (1900 system: 1 = 1900-01-01, serials after 59 shifted for the 1900 leap-year bug).
    Output ``values``: ``pa.date32()``, null on any issue; ``issues``: DATE_UNPARSEABLE,
    DATE_IMPOSSIBLE (2月30日), DATE_IN_FUTURE (after ``ctx.business_date``, unless
    ``ctx.options["allow_future"]``) reject, DATE_SENTINEL (0000-00-00, 00000000, 1900-01-01,
    9999-12-31, serial 0) warn. No extras. Blank strings are null without an issue.
    """
    arr = raw.combine_chunks() if isinstance(raw, pa.ChunkedArray) else raw
    if pa.types.is_date(arr.type) or pa.types.is_timestamp(arr.type):
        return _from_temporal(arr, ctx)

    # Dates repeat (at most ~50,000 distinct days in a century): parse each distinct text once.
    return via_distinct(as_string_array(arr), lambda distinct: _parse_texts(distinct, ctx))


def _parse_texts(raw: pa.StringArray, ctx: NormaliseContext) -> Normalised:
    text = trimmed(raw)
    present = bool_np(text.is_valid())
    groups = pc.extract_regex(text, _PATTERN).flatten()
    y1, m1, d1, y2, m2, d2, serial_text = groups
    matched = bool_np(groups[0].is_valid())
    is_serial = bool_np(pc.greater(pc.binary_length(serial_text), 0))

    year, month, day = _int_field(y1, y2), _int_field(m1, m2), _int_field(d1, d2)
    zero = (year == 0) & (month == 0) & (day == 0) & ~is_serial
    possible = valid_ymd(year, month, day)
    days = np.where(possible, days_from_civil(year, month, day), 0)

    parsed = matched & ~is_serial
    if ctx.options.get("excel_serial"):
        serial = _int_field(serial_text)
        serial_days = epoch_days(EXCEL_EPOCH) + serial - (serial > 59)
        days = np.where(is_serial, serial_days, days)
        possible = possible | is_serial
        zero = zero | (is_serial & (serial == 0))
        parsed = matched
    sentinel = zero | np.isin(days, [epoch_days(d) for d in SENTINEL_DATES])
    return _finish(present, parsed, sentinel & parsed, possible | zero, days, ctx)

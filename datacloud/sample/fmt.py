"""Vectorised date arithmetic and the departments' text formats (dates, phones, capital)."""

from __future__ import annotations

import datetime as dt

import numpy as np

from datacloud.sample.pools import numbers, zfill

DAY = np.timedelta64(1, "D")
DATE_STYLES = ("compact", "slash", "cn", "iso", "dot")
MOBILE_PREFIXES = (
    130, 131, 132, 133, 135, 136, 137, 138, 139, 150, 151, 152, 153, 155, 156, 157, 158, 159,
    166, 176, 177, 178, 180, 181, 182, 183, 185, 186, 187, 188, 189, 198, 199,
)  # fmt: skip


def day(value: dt.date) -> np.datetime64:
    return np.datetime64(value.isoformat(), "D")


def ymd(dates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Year, month and day (int64 arrays) of datetime64[D] values."""
    months = dates.astype("datetime64[M]")
    years = dates.astype("datetime64[Y]").astype(np.int64) + 1970
    return (
        years,
        months.astype(np.int64) % 12 + 1,
        (dates - months.astype("datetime64[D]")).astype(np.int64) + 1,
    )


def make_dates(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """datetime64[D] from components; a day past the month's end rolls over (Feb 29 -> Mar 1)."""
    months = (np.asarray(y, dtype=np.int64) - 1970) * 12 + np.asarray(m, dtype=np.int64) - 1
    return months.astype("datetime64[M]").astype("datetime64[D]") + (np.asarray(d) - 1) * DAY


def years_after(dates: np.ndarray, years: int) -> np.ndarray:
    """The date ``years`` years later (a 29 February birthday falls on 1 March)."""
    y, m, d = ymd(dates)
    return make_dates(y + years, m, d)


def age_on(birth: np.ndarray, on: dt.date) -> np.ndarray:
    y, m, d = ymd(birth)
    before = (m > on.month) | ((m == on.month) & (d > on.day))
    return on.year - y - before.astype(np.int64)


def uniform_dates(rng: np.random.Generator, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """A uniform date in [low, high] per row (high is clipped up to low)."""
    span = np.maximum((high - low).astype(np.int64), 0)
    return low + np.floor(rng.random(len(span)) * (span + 1)).astype(np.int64) * DAY


def format_date(y: np.ndarray, m: np.ndarray, d: np.ndarray, style: str) -> np.ndarray:
    """Dates as text (object array), components as given (so impossible dates stay visible).

    compact 'YYYYMMDD', slash 'YYYY/M/D', cn 'YYYY年M月D日', iso 'YYYY-MM-DD', dot 'YYYY.MM.DD'.
    """
    ys = zfill(y, 4)
    if style == "slash":
        return ys + "/" + numbers(m) + "/" + numbers(d)
    if style == "cn":
        return ys + "年" + numbers(m) + "月" + numbers(d) + "日"
    sep = {"compact": "", "iso": "-", "dot": "."}[style]
    return ys + sep + zfill(m, 2) + sep + zfill(d, 2)


def iso(dates: np.ndarray) -> np.ndarray:
    return format_date(*ymd(dates), style="iso")


def mobiles(rng: np.random.Generator, n: int) -> np.ndarray:
    """Canonical 11-digit mobile numbers (object array)."""
    prefix = np.asarray(MOBILE_PREFIXES, dtype=np.int64)[rng.integers(0, len(MOBILE_PREFIXES), n)]
    return numbers(prefix * 10**8 + rng.integers(0, 10**8, size=n))


def mobile_styles(phones: np.ndarray, style: np.ndarray) -> np.ndarray:
    """Style 0 '13812345678', 1 '+86 138 1234 5678', 2 '138-1234-5678'; None stays None."""
    out = phones.copy()
    for i in np.flatnonzero(style > 0).tolist():
        p = phones[i]
        if p is not None:
            out[i] = (
                f"+86 {p[:3]} {p[3:7]} {p[7:]}" if style[i] == 1 else f"{p[:3]}-{p[3:7]}-{p[7:]}"
            )
    return out


def capital_text(yuan: np.ndarray, style: np.ndarray) -> np.ndarray:
    """Capital amounts in yuan as text with units, by style.

    0 '500万元' (or '1.2亿元' from 1亿), 1 '50万', 2 '100万元人民币', 3 '300000元'.
    """
    out = np.empty(len(yuan), dtype=object)
    for i, (amount, s) in enumerate(zip(yuan.tolist(), style.tolist(), strict=True)):
        if s == 3:
            out[i] = f"{amount}元"
        elif s == 0 and amount >= 10**8:
            out[i] = f"{_trim(amount / 10**8)}亿元"
        else:
            out[i] = _trim(amount / 10**4) + ("万元", "万", "万元人民币")[s]
    return out


def _trim(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".")


def update_times(rng: np.random.Generator, since: np.ndarray, business_date: dt.date) -> np.ndarray:
    """Last-update timestamps (datetime64[s]) after ``since`` (at most six years back) and
    strictly before the business date: rows changed on the business date are dirt."""
    midnight = np.datetime64(business_date.isoformat(), "s")
    low = np.maximum(since.astype("datetime64[s]"), midnight - np.timedelta64(6 * 365, "D"))
    low = np.minimum(low, midnight - np.timedelta64(1, "D"))
    span = (midnight - low).astype(np.int64)
    return low + np.floor(rng.random(len(span)) * span).astype("timedelta64[s]")

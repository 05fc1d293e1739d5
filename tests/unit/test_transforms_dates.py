"""Dates: formats, sentinels, impossible and future dates, spreadsheet serials."""

from __future__ import annotations

import datetime

import pyarrow as pa
import pytest

from transforms.dates import normalise_date
from transforms.result import NormaliseContext

BUSINESS_DATE = datetime.date(2026, 11, 20)
CTX = NormaliseContext(business_date=BUSINESS_DATE)
D = datetime.date


def run(values: list[object], ctx: NormaliseContext = CTX) -> list[tuple[object, object]]:
    result = normalise_date(pa.array(values), ctx)
    assert result.values.type == pa.date32()
    return list(zip(result.values.to_pylist(), result.issues.to_pylist(), strict=True))


@pytest.mark.parametrize(
    "raw",
    [
        "1990-01-01",
        "1990/1/1",
        "1990/01/01",
        "1990-1-1",
        "19900101",
        "1990年1月1日",
        "1990年01月01日",
        "1990.01.01",
        "1990.1.1",
        " 1990-01-01 ",
        "1990-01-01 08:30:00",
        "1990-01-01T08:30:00",
        "1990-01-01 08:30",
        "1990-01-01T08:30:00.123Z",
        "1990-01-01T08:30:00+08:00",
        "1990/1/1 8:30:00",
        "19900101 083000".replace(" 083000", " 08:30:00"),
        "１９９０－０１－０１",
        "1990年1月1日 08:30",
    ],
)
def test_formats(raw: str) -> None:
    assert run([raw]) == [(D(1990, 1, 1), None)]


def test_integer_yyyymmdd() -> None:
    assert run([19900101]) == [(D(1990, 1, 1), None)]


@pytest.mark.parametrize(
    "raw", ["0000-00-00", "00000000", "1900-01-01", "9999-12-31", "0000-00-00 00:00:00", "1900/1/1"]
)
def test_sentinels(raw: str) -> None:
    assert run([raw]) == [(None, "DATE_SENTINEL")]


@pytest.mark.parametrize(
    "raw", ["1990-02-30", "2019-13-01", "2019-02-29", "1900-02-29", "1990-04-31", "1990-00-10"]
)
def test_impossible(raw: str) -> None:
    assert run([raw]) == [(None, "DATE_IMPOSSIBLE")]


def test_leap_days() -> None:
    assert run(["2020-02-29", "2000-02-29"]) == [(D(2020, 2, 29), None), (D(2000, 2, 29), None)]


@pytest.mark.parametrize(
    "raw", ["abc", "1990", "90-01-01", "1990-01", "01/02/1990", "1990-01-01 junk", "32874", "8:30"]
)
def test_unparseable(raw: str) -> None:
    assert run([raw]) == [(None, "DATE_UNPARSEABLE")]


def test_future() -> None:
    assert run(["2026-11-20", "2026-11-21"]) == [(D(2026, 11, 20), None), (None, "DATE_IN_FUTURE")]
    allow = NormaliseContext(business_date=BUSINESS_DATE, options={"allow_future": True})
    assert run(["2030-01-01"], allow) == [(D(2030, 1, 1), None)]


def test_excel_serials() -> None:
    ctx = NormaliseContext(business_date=BUSINESS_DATE, options={"excel_serial": True})
    assert run(["32874", "2", "59", "60", "61", "45000", "45000.5", "0"], ctx) == [
        (D(1990, 1, 1), None),
        (D(1900, 1, 2), None),
        (D(1900, 2, 28), None),
        (D(1900, 2, 28), None),  # Excel's fictitious 1900-02-29
        (D(1900, 3, 1), None),
        (D(2023, 3, 15), None),
        (D(2023, 3, 15), None),
        (None, "DATE_SENTINEL"),
    ]
    assert run([32874], ctx) == [(D(1990, 1, 1), None)]
    # Other formats still work with the option on.
    assert run(["19900101", "1990-01-01"], ctx) == [(D(1990, 1, 1), None)] * 2


def test_nulls_and_blanks() -> None:
    assert run([None, "", "  "]) == [(None, None)] * 3


def test_date_and_timestamp_input_pass_through() -> None:
    dates = pa.array([D(1990, 1, 1), None, D(1900, 1, 1), D(2030, 1, 1)], pa.date32())
    assert run(dates.to_pylist()) == run([d.isoformat() if d else None for d in dates.to_pylist()])
    result = normalise_date(dates, CTX)
    assert result.values.to_pylist() == [D(1990, 1, 1), None, None, None]
    assert result.issues.to_pylist() == [None, None, "DATE_SENTINEL", "DATE_IN_FUTURE"]
    stamps = pa.array([datetime.datetime(1990, 1, 1, 8, 30)], pa.timestamp("us"))
    assert normalise_date(stamps, CTX).values.to_pylist() == [D(1990, 1, 1)]

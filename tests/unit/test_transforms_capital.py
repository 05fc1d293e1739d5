"""Registered capital to exact decimals in 万元."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from transforms.capital import normalise_capital
from transforms.result import NormaliseContext

CTX = NormaliseContext(business_date=datetime.date(2026, 11, 20))


def run(values: list[object], ctx: NormaliseContext = CTX) -> list[tuple[object, object]]:
    result = normalise_capital(pa.array(values), ctx)
    assert result.values.type == pa.decimal128(20, 6)
    return list(zip(result.values.to_pylist(), result.issues.to_pylist(), strict=True))


@pytest.mark.parametrize(
    ("raw", "wan"),
    [
        ("500万元", "500"),
        ("500万", "500"),
        ("500 万元人民币", "500"),
        ("人民币500万元", "500"),
        ("500万元(人民币)", "500"),
        ("1.2亿元", "12000"),
        ("1.2亿", "12000"),
        ("300000元", "30"),
        ("300,000.00元", "30"),
        ("300，000元", "30"),
        ("500", "500"),
        ("５００万元", "500"),
        ("１．５万元", "1.5"),
        ("0.01元", "0.000001"),
        ("1234.5678万元", "1234.5678"),
        ("50千万元", "50000"),
        ("3百万元", "300"),
        ("8千元", "0.8"),
        ("0", "0"),
        ("123456789012万元", "123456789012"),  # the largest magnitude accepted: 10**12 万元
        ("¥500万元", "500"),
    ],
)
def test_units_exact(raw: str, wan: str) -> None:
    [(value, issue)] = run([raw])
    assert issue is None
    assert value == Decimal(wan)
    assert value.as_tuple().exponent == -6


def test_no_float_rounding() -> None:
    # 0.1 + 0.2 style errors would show in the sixth decimal place.
    assert run(["0.3万元", "1.1亿元", "999999999.99元"]) == [
        (Decimal("0.300000"), None),
        (Decimal("11000.000000"), None),
        (Decimal("99999.999999"), None),
    ]


def test_more_than_six_decimals_round_half_up() -> None:
    assert run(["1.2345675万元", "1.2345674万元"]) == [
        (Decimal("1.234568"), None),
        (Decimal("1.234567"), None),
    ]


def test_bare_unit_option() -> None:
    yuan = NormaliseContext(business_date=CTX.business_date, options={"bare_unit": "元"})
    assert run(["500000", "500万元"], yuan) == [(Decimal("50"), None), (Decimal("500"), None)]
    with pytest.raises(ValueError):
        normalise_capital(pa.array(["1"]), NormaliseContext(CTX.business_date, {"bare_unit": "x"}))


@pytest.mark.parametrize(
    "raw", ["100万美元", "(美元)100万", "100万港元", "USD 1000000", "$100", "50万欧元"]
)
def test_foreign_currency(raw: str) -> None:
    assert run([raw]) == [(None, "CAPITAL_CURRENCY")]


@pytest.mark.parametrize("raw", ["abc", "五百万", "500万股", "-500万元", "1.2.3万元", "万元"])
def test_unparseable(raw: str) -> None:
    assert run([raw]) == [(None, "CAPITAL_UNPARSEABLE")]


def test_too_large_is_unparseable_not_wrong() -> None:
    assert run(["1234567890123万元", "12345678901234567元"]) == [(None, "CAPITAL_UNPARSEABLE")] * 2


def test_nulls_and_numbers() -> None:
    assert run([None, ""]) == [(None, None), (None, None)]
    assert run([500]) == [(Decimal("500"), None)]

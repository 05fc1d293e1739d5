"""Mobile and landline numbers."""

from __future__ import annotations

import datetime

import pyarrow as pa
import pytest

from transforms.phones import normalise_phone
from transforms.result import NormaliseContext

CTX = NormaliseContext(business_date=datetime.date(2026, 11, 20))


def run(values: list[object], ctx: NormaliseContext = CTX) -> list[tuple[object, object]]:
    result = normalise_phone(pa.array(values), ctx)
    return list(zip(result.values.to_pylist(), result.issues.to_pylist(), strict=True))


@pytest.mark.parametrize(
    "raw",
    [
        "13812345678",
        "138 1234 5678",
        "138-1234-5678",
        "+86 138 1234 5678",
        "+8613812345678",
        "(+86)13812345678",
        "0086-13812345678",
        "8613812345678",
        "１３８１２３４５６７８",
    ],
)
def test_mobiles(raw: str) -> None:
    assert run([raw]) == [("13812345678", None)]


def test_mobile_as_integer() -> None:
    assert run([13812345678]) == [("13812345678", None)]


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("0571-88888888", "0571-88888888"),
        ("(0571)88888888", "0571-88888888"),
        ("（0571）88888888", "0571-88888888"),
        ("057188888888", "0571-88888888"),
        ("0571 8888 8888", "0571-88888888"),
        ("0571-8888888", "0571-8888888"),
        ("010-62345678", "010-62345678"),
        ("01062345678", "010-62345678"),
        ("021 5432 1000", "021-54321000"),
        ("+86 571 8888 8888", "0571-88888888"),
        ("0086 10 6234 5678", "010-62345678"),
    ],
)
def test_landlines(raw: str, clean: str) -> None:
    assert run([raw]) == [(clean, None)]


@pytest.mark.parametrize(
    "raw",
    [
        "12345",
        "88888888",
        "12812345678",
        "1381234567",
        "138123456789",
        "0571-0888888",
        "abc",
        "110",
    ],
)
def test_invalid(raw: str) -> None:
    assert run([raw]) == [(None, "PHONE_INVALID")]


def test_default_area_code() -> None:
    ctx = NormaliseContext(datetime.date(2026, 11, 20), options={"default_area_code": "0571"})
    assert run(["88888888", "13812345678"], ctx) == [("0571-88888888", None), ("13812345678", None)]


def test_nulls_and_blanks() -> None:
    assert run([None, "", " - "]) == [(None, None)] * 3

"""性别 codes and the cross-check with the ID number."""

from __future__ import annotations

import datetime

import pyarrow as pa
import pytest

from transforms.result import NormaliseContext
from transforms.sex import normalise_sex, sex_mismatch

CTX = NormaliseContext(business_date=datetime.date(2026, 11, 20))


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("男", "1"),
        ("男性", "1"),
        (" 女 ", "2"),
        ("女性", "2"),
        ("M", "1"),
        ("m", "1"),
        ("F", "2"),
        ("f", "2"),
        ("Male", "1"),
        ("FEMALE", "2"),
        ("1", "1"),
        ("2", "2"),
        ("0", "0"),
        ("9", "9"),
        ("未知", "0"),
        ("未说明", "9"),
        ("未说明的性别", "9"),
        ("１", "1"),
    ],
)
def test_known_values(raw: str, code: str) -> None:
    result = normalise_sex(pa.array([raw]), CTX)
    assert result.values.to_pylist() == [code]
    assert result.issues.to_pylist() == [None]


def test_numbers_are_accepted() -> None:
    assert normalise_sex(pa.array([1, 2, None]), CTX).values.to_pylist() == ["1", "2", None]
    assert normalise_sex(pa.array([1.0, 2.0]), CTX).values.to_pylist() == ["1", "2"]


def test_unknown_values() -> None:
    result = normalise_sex(pa.array(["x", "3", "男女", None, ""]), CTX)
    assert result.values.to_pylist() == [None, None, None, None, None]
    assert result.issues.to_pylist() == ["SEX_UNKNOWN_VALUE"] * 3 + [None, None]


def test_sex_mismatch() -> None:
    sex = pa.array(["1", "2", "1", "0", None, "9", "2"])
    id_sex = pa.array(["1", "1", "2", "1", "2", "2", None])
    assert sex_mismatch(sex, id_sex).to_pylist() == [False, True, True, False, False, False, False]

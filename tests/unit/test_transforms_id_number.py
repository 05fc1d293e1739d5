"""公民身份号码: cleaning, upgrade, validation and the vectorised/scalar agreement."""

from __future__ import annotations

import datetime
import random
import time

import pyarrow as pa
import pytest

from transforms.codes import HISTORICAL_COUNTY_CODES, ZHEJIANG_COUNTY_CODES, division_table
from transforms.id_number import (
    id_check_char,
    is_valid_id_number,
    normalise_id_number,
    upgrade_15_to_18,
)
from transforms.result import NormaliseContext

BUSINESS_DATE = datetime.date(2026, 11, 20)
CTX = NormaliseContext(business_date=BUSINESS_DATE)

# Published examples from GB 11643-1999.
GB_EXAMPLE = "11010519491231002X"
GB_EXAMPLE_15 = "110105491231002"
GB_EXAMPLE_1880 = "440524188001010014"


def make_id(first17: str) -> str:
    return first17 + id_check_char(first17)


def run(values: list[object], ctx: NormaliseContext = CTX) -> list[tuple[object, object]]:
    result = normalise_id_number(pa.array(values), ctx)
    return list(zip(result.values.to_pylist(), result.issues.to_pylist(), strict=True))


def test_published_check_characters() -> None:
    assert id_check_char(GB_EXAMPLE[:17]) == "X"
    assert id_check_char(GB_EXAMPLE_1880[:17]) == "4"
    assert is_valid_id_number(GB_EXAMPLE)
    assert is_valid_id_number(GB_EXAMPLE.lower())
    # Its check digit is right, but a birth date before 1900 is not accepted.
    assert not is_valid_id_number(GB_EXAMPLE_1880)


def test_published_example_is_accepted_with_birth_date_and_sex() -> None:
    result = normalise_id_number(pa.array([GB_EXAMPLE]), CTX)
    assert result.values.to_pylist() == [GB_EXAMPLE]
    assert result.issues.to_pylist() == [None]
    assert result.extras["birth_date"].to_pylist() == [datetime.date(1949, 12, 31)]
    assert result.extras["sex"].to_pylist() == ["2"]  # 17th digit 2 is even: female


def test_1880_example_fails_on_birth_date_not_check_digit() -> None:
    assert run([GB_EXAMPLE_1880]) == [(None, "ID_BIRTH_DATE")]


@pytest.mark.parametrize(
    "dirty",
    [
        "11010519491231002x",  # lower-case x
        " 11010519491231002X\t",  # surrounding whitespace
        "１１０１０５１９４９１２３１００２Ｘ",  # full-width digits and X
        "１１０１０５１９４９１２３１００２ｘ",  # full-width lower-case x
        "110105 19491231 002X",  # spaces inside
        "110105-1949-1231-002X",  # dashes
        "110105_19491231.002X",  # underscore and dot
        "110105\u300019491231\u3000002X",  # ideographic spaces
        "\ufeff11010519491231002X",  # byte-order mark
    ],
)
def test_dirt_is_cleaned(dirty: str) -> None:
    assert run([dirty]) == [(GB_EXAMPLE, None)]


def test_15_digit_upgrade_exact_result() -> None:
    assert upgrade_15_to_18(GB_EXAMPLE_15) == GB_EXAMPLE
    result = normalise_id_number(pa.array([GB_EXAMPLE_15, " 330102800101123 "]), CTX)
    assert result.values.to_pylist() == [GB_EXAMPLE, "33010219800101123" + "X"]
    assert id_check_char("33010219800101123") == "X"
    assert result.issues.to_pylist() == ["ID_LEGACY_15", "ID_LEGACY_15"]
    assert result.extras["birth_date"].to_pylist() == [
        datetime.date(1949, 12, 31),
        datetime.date(1980, 1, 1),
    ]
    assert result.extras["sex"].to_pylist() == ["2", "1"]


def test_15_digit_with_bad_birth_date_is_rejected() -> None:
    assert run(["330102800231123"]) == [(None, "ID_BIRTH_DATE")]


def test_wrong_check_digit() -> None:
    wrong = GB_EXAMPLE[:17] + "1"
    assert run([wrong]) == [(None, "ID_CHECK_DIGIT")]
    assert not is_valid_id_number(wrong)


def test_impossible_birth_date() -> None:
    number = make_id("33010219900231123")
    assert run([number]) == [(None, "ID_BIRTH_DATE")]
    assert not is_valid_id_number(number)


def test_future_birth_date_depends_on_business_date() -> None:
    number = make_id("33010220261121123")
    assert run([number]) == [(None, "ID_BIRTH_DATE")]
    later = NormaliseContext(business_date=datetime.date(2026, 11, 21))
    assert run([number], later) == [(number, None)]
    assert not is_valid_id_number(number, BUSINESS_DATE)
    assert is_valid_id_number(number)


def test_birth_date_before_1900() -> None:
    assert run([make_id("33010218991231123")]) == [(None, "ID_BIRTH_DATE")]
    assert run([make_id("33010219000101123")])[0][1] is None


def test_bad_province() -> None:
    number = make_id("99010219900101123")
    assert run([number]) == [(None, "ID_PROVINCE")]
    assert not is_valid_id_number(number)


def test_length_and_characters() -> None:
    assert run([GB_EXAMPLE[:17], GB_EXAMPLE + "1", "12345", "abc"]) == [
        (None, "ID_LENGTH"),
        (None, "ID_LENGTH"),
        (None, "ID_LENGTH"),
        (None, "ID_LENGTH"),
    ]
    assert run(["1101051949123100XX", "11010519491231002Y", "11010519491231002中"]) == [
        (None, "ID_CHARS"),
        (None, "ID_CHARS"),
        (None, "ID_CHARS"),
    ]
    assert run(["11010549123100A"]) == [(None, "ID_CHARS")]


def test_historical_county_is_a_warning_not_a_reject() -> None:
    numbers = [make_id(code + "19900101123") for code in HISTORICAL_COUNTY_CODES]
    result = normalise_id_number(pa.array(numbers), CTX)
    assert result.values.to_pylist() == numbers
    assert set(result.issues.to_pylist()) == {"ID_COUNTY_HISTORICAL"}
    assert all(is_valid_id_number(n) for n in numbers)


def test_current_zhejiang_counties_have_no_issue() -> None:
    numbers = [make_id(code + "19900101123") for code in ZHEJIANG_COUNTY_CODES]
    result = normalise_id_number(pa.array(numbers), CTX)
    assert result.issues.null_count == len(numbers)


def test_nulls_and_blanks() -> None:
    result = normalise_id_number(pa.array([None, "", "   ", GB_EXAMPLE]), CTX)
    assert result.values.to_pylist() == [None, None, None, GB_EXAMPLE]
    assert result.issues.to_pylist() == [None, None, None, None]
    assert result.extras["sex"].to_pylist() == [None, None, None, "2"]


def test_output_types_and_lengths() -> None:
    result = normalise_id_number(pa.array([GB_EXAMPLE, "x", None]), CTX)
    assert result.values.type == pa.string()
    assert result.issues.type == pa.string()
    assert result.extras["birth_date"].type == pa.date32()
    assert result.extras["sex"].type == pa.string()
    assert {len(a) for a in [result.values, result.issues, *result.extras.values()]} == {3}


@pytest.mark.parametrize(
    "arr",
    [
        pa.array([GB_EXAMPLE, None], pa.large_string()),
        pa.array([GB_EXAMPLE, None], pa.string_view()),
        pa.chunked_array([[GB_EXAMPLE], [None]]),
    ],
)
def test_other_string_types(arr: pa.Array) -> None:
    result = normalise_id_number(arr, CTX)
    assert result.values.to_pylist() == [GB_EXAMPLE, None]


def test_numeric_input() -> None:
    number = make_id("33010219900101123")
    if not number.endswith("X"):
        result = normalise_id_number(pa.array([int(number)], pa.int64()), CTX)
        assert result.values.to_pylist() == [number]


def test_sliced_input() -> None:
    arr = pa.array(["junk", GB_EXAMPLE, make_id("33010219900101123")])[1:]
    assert [v for v, _ in run(arr.to_pylist())] == normalise_id_number(arr, CTX).values.to_pylist()


def _random_first17(rng: random.Random, counties: list[str]) -> str:
    born = datetime.date(1900, 1, 1) + datetime.timedelta(days=rng.randrange(46000))
    return f"{rng.choice(counties)}{born:%Y%m%d}{rng.randrange(1000):03d}"


def test_property_vectorised_agrees_with_scalar() -> None:
    rng = random.Random(20261120)
    counties = [
        c
        for c, lv in zip(
            *division_table().select(["code", "level"]).to_pydict().values(), strict=True
        )
        if lv == "county"
    ]
    valid = [make_id(_random_first17(rng, counties)) for _ in range(10_000)]
    corrupted = []
    for number in valid:
        pos = rng.randrange(18)
        choices = "0123456789X" if pos == 17 else "0123456789"
        new = rng.choice([c for c in choices if c != number[pos]])
        corrupted.append(number[:pos] + new + number[pos + 1 :])

    ok = normalise_id_number(pa.array(valid), CTX)
    assert [is_valid_id_number(n, BUSINESS_DATE) for n in valid] == [True] * len(valid)
    assert ok.values.to_pylist() == valid
    assert ok.issues.null_count == len(valid)

    bad = normalise_id_number(pa.array(corrupted), CTX)
    assert set(bad.issues.to_pylist()) == {"ID_CHECK_DIGIT"}
    assert bad.values.null_count == len(corrupted)
    assert not any(is_valid_id_number(n, BUSINESS_DATE) for n in corrupted)


def test_property_random_strings_agree_with_scalar() -> None:
    rng = random.Random(7)
    samples = []
    for _ in range(5_000):
        first17 = f"{rng.randrange(10**17):017d}"
        samples.append(first17 + rng.choice("0123456789X"))
    result = normalise_id_number(pa.array(samples), CTX)
    accepted = [v is not None for v in result.values.to_pylist()]
    assert accepted == [is_valid_id_number(s, BUSINESS_DATE) for s in samples]


def test_scalar_helpers_reject_bad_input() -> None:
    with pytest.raises(ValueError):
        id_check_char("123")
    with pytest.raises(ValueError):
        upgrade_15_to_18("11010549123100X")
    assert not is_valid_id_number("")
    assert not is_valid_id_number(GB_EXAMPLE + "0")


def test_fast_enough() -> None:
    numbers = [make_id("33010619900101" + f"{i % 1000:03d}") for i in range(2_000)] * 100
    arr = pa.array(numbers)
    normalise_id_number(arr[:10], CTX)
    start = time.perf_counter()
    result = normalise_id_number(arr, CTX)
    assert time.perf_counter() - start < 2.0  # 200k rows; ~0.1 s on the dev machine
    assert result.issues.null_count == len(numbers)

"""统一社会信用代码 and the legacy 注册号 / 组织机构代码 paths."""

from __future__ import annotations

import datetime
import random

import pyarrow as pa
import pytest

from transforms.credit_code import (
    AUTHORITY_TYPES,
    CC_ALPHABET,
    credit_code_check_char,
    is_valid_credit_code,
    normalise_credit_code,
    org_code_check_char,
    reg_number_check_digit,
)
from transforms.result import NormaliseContext

CTX = NormaliseContext(business_date=datetime.date(2026, 11, 20))

# Published examples: GB 32100-2015, a Beijing enterprise, GS 15-2006 and GB 11714-1997.
GB_EXAMPLE = "91350100M000100Y43"
BEIJING = "91110000600037341L"
REG_NUMBER = "110108000000016"
ORG_CODE = "D2143569X"


def make_code(first8: str, org8: str) -> str:
    """A credit code with a correct organisation-code check and check character."""
    first17 = first8 + org8 + org_code_check_char(org8)
    return first17 + credit_code_check_char(first17)


def run(values: list[object]) -> list[tuple[object, object]]:
    result = normalise_credit_code(pa.array(values), CTX)
    return list(zip(result.values.to_pylist(), result.issues.to_pylist(), strict=True))


def test_published_examples() -> None:
    assert credit_code_check_char(GB_EXAMPLE[:17]) == "3"
    assert org_code_check_char("M000100Y") == "4"
    assert org_code_check_char("60003734") == "1"
    assert org_code_check_char("D2143569") == "X"
    assert reg_number_check_digit(REG_NUMBER[:14]) == "6"
    assert is_valid_credit_code(GB_EXAMPLE)
    assert is_valid_credit_code(BEIJING)
    assert run([GB_EXAMPLE, BEIJING]) == [(GB_EXAMPLE, None), (BEIJING, None)]


@pytest.mark.parametrize(
    "dirty",
    [
        "91350100m000100y43",
        " 91350100M000100Y43 ",
        "9135 0100 M000 100Y 43",
        "91350100-M000100Y4-3",
        "９１３５０１００Ｍ０００１００Ｙ４３",
    ],
)
def test_cleaning(dirty: str) -> None:
    assert run([dirty]) == [(GB_EXAMPLE, None)]


def test_computed_codes_are_valid() -> None:
    codes = [
        make_code("91330106", "MA2A1111"),
        make_code("92330102", "12345678"),
        make_code("12330000", "47000123"),
        make_code("51330100", "50001234"),
        make_code("Y1330100", "MA0000PP"),
    ]
    assert all(is_valid_credit_code(c) for c in codes)
    assert run(codes) == [(c, None) for c in codes]


@pytest.mark.parametrize("letter", ["I", "O", "S", "V", "Z"])
def test_alphabet_exclusions(letter: str) -> None:
    assert letter not in CC_ALPHABET
    code = GB_EXAMPLE[:10] + letter + GB_EXAMPLE[11:]
    assert run([code]) == [(None, "CC_CHARS")]
    assert not is_valid_credit_code(code)


def test_check_char() -> None:
    wrong = GB_EXAMPLE[:17] + "4"
    assert run([wrong]) == [(None, "CC_CHECK_CHAR")]
    assert not is_valid_credit_code(wrong)


# Registration authority + entity type: every pair of the national code table is accepted;
# types an authority does not define, authorities that do not exist, and the letters of the
# alphabet that are no authority are rejected.
ALLOWED_PAIRS = [
    *("11", "12", "13", "19"),  # 机构编制
    *("21", "29"),  # 外交
    *("31", "32", "33", "34", "35", "39"),  # 司法行政
    *("41", "49"),  # 文化
    *("51", "52", "53", "59"),  # 民政
    *("61", "62", "69"),  # 旅游
    *("71", "72", "79"),  # 宗教
    *("81", "89"),  # 工会
    *("91", "92", "93"),  # 工商/市场监管
    *("A1", "A9"),  # 中央军委改革和编制办公室
    *("N1", "N2", "N3", "N9"),  # 农业
    "Y1",  # 其他
]
REJECTED_PAIRS = [
    *("10", "14", "22", "36", "38", "42", "54", "63", "73", "82"),
    *("90", "94", "99", "A2", "N4", "Y0", "Y2", "Y9", "01", "B1", "G1"),
]


@pytest.mark.parametrize("first2", REJECTED_PAIRS)
def test_authority_and_type(first2: str) -> None:
    code = make_code(first2 + "330100", "12345678")
    assert run([code]) == [(None, "CC_AUTHORITY_TYPE")]
    assert not is_valid_credit_code(code)


@pytest.mark.parametrize("first2", ALLOWED_PAIRS)
def test_every_allowed_authority_type(first2: str) -> None:
    code = make_code(first2 + "330100", "12345678")
    assert run([code]) == [(code, None)]
    assert is_valid_credit_code(code)


def test_authority_table_is_the_published_one() -> None:
    assert sorted(AUTHORITY_TYPES) == [*"123456789", "A", "N", "Y"]
    pairs = sorted(a + t for a, types in AUTHORITY_TYPES.items() for t in types)
    assert pairs == sorted(ALLOWED_PAIRS)


@pytest.mark.parametrize("division", ["990100", "000000", "33A100", "3301H0"])
def test_division(division: str) -> None:
    code = make_code("91" + division, "12345678")
    assert run([code]) == [(None, "CC_DIVISION")]


def test_org_code_part() -> None:
    first17 = "91330100" + "12345678" + "0"  # wrong organisation-code check
    assert org_code_check_char("12345678") != "0"
    code = first17 + credit_code_check_char(first17)
    assert run([code]) == [(None, "CC_ORG_CODE")]
    assert not is_valid_credit_code(code)


def test_length() -> None:
    assert (
        run([GB_EXAMPLE[:17], GB_EXAMPLE + "0", "12345", "1234567890123456"])
        == [(None, "CC_LENGTH")] * 4
    )


def test_legacy_registration_number() -> None:
    result = normalise_credit_code(pa.array([REG_NUMBER, " 110108-000000016 "]), CTX)
    assert result.values.to_pylist() == [None, None]
    assert result.issues.to_pylist() == ["CC_LEGACY_REG_NUMBER"] * 2
    assert result.extras["reg_number"].to_pylist() == [REG_NUMBER, REG_NUMBER]
    assert result.extras["org_code"].to_pylist() == [None, None]


def test_bad_registration_number_is_rejected() -> None:
    result = normalise_credit_code(pa.array(["110108000000017"]), CTX)
    assert result.issues.to_pylist() == ["CC_REG_NUMBER_CHECK"]
    assert result.extras["reg_number"].to_pylist() == [None]


def test_legacy_organisation_code() -> None:
    result = normalise_credit_code(pa.array(["D2143569-X", "d2143569x", "60003734-1"]), CTX)
    assert result.values.to_pylist() == [None, None, None]
    assert result.issues.to_pylist() == ["CC_LEGACY_ORG_CODE"] * 3
    assert result.extras["org_code"].to_pylist() == [ORG_CODE, ORG_CODE, "600037341"]
    assert result.extras["reg_number"].to_pylist() == [None, None, None]


def test_bad_organisation_code_is_rejected() -> None:
    assert run(["D2143569-1", "D2143569-Y"]) == [(None, "CC_ORG_CODE"), (None, "CC_CHARS")]


def test_extras_always_present_and_nulls() -> None:
    result = normalise_credit_code(pa.array([GB_EXAMPLE, None, ""]), CTX)
    assert set(result.extras) == {"reg_number", "org_code"}
    assert result.values.to_pylist() == [GB_EXAMPLE, None, None]
    assert result.issues.to_pylist() == [None, None, None]
    assert all(a.type == pa.string() and len(a) == 3 for a in result.extras.values())


def test_vectorised_agrees_with_scalar_on_random_codes() -> None:
    rng = random.Random(3)
    samples = [GB_EXAMPLE, BEIJING]
    for _ in range(3_000):
        body = "".join(rng.choice(CC_ALPHABET) for _ in range(17))
        samples.append(body + rng.choice(CC_ALPHABET))
        org8 = "".join(rng.choice(CC_ALPHABET) for _ in range(8))
        samples.append(make_code(rng.choice(["91", "92", "93", "12", "51"]) + "330106", org8))
    result = normalise_credit_code(pa.array(samples), CTX)
    accepted = [v is not None for v in result.values.to_pylist()]
    assert accepted == [is_valid_credit_code(s) for s in samples]
    assert sum(accepted) >= 3_000


def test_reg_number_check_digit_property() -> None:
    rng = random.Random(5)
    numbers = []
    for _ in range(2_000):
        first14 = f"{rng.randrange(10**14):014d}"
        numbers.append(first14 + reg_number_check_digit(first14))
    result = normalise_credit_code(pa.array(numbers), CTX)
    assert set(result.issues.to_pylist()) == {"CC_LEGACY_REG_NUMBER"}
    corrupted = [n[:-1] + str((int(n[-1]) + 1) % 10) for n in numbers]
    result = normalise_credit_code(pa.array(corrupted), CTX)
    assert set(result.issues.to_pylist()) == {"CC_REG_NUMBER_CHECK"}

"""Property-based tests (hypothesis) of every normaliser in transforms.registry.NORMALISERS.

1. Robustness: any text (None, full-width, control characters, emoji, combining marks, very
   long, near-valid identifiers and dates) gives no exception, arrays of the input's length,
   known rule codes, and no row that is both kept and rejected.
   The fast paths (values already clean are left alone, repeated values are cleaned once)
   give exactly what the general path gives on every value.
2. Idempotence: normalising the normalised values again gives the same values and no reject.
   It holds for every normaliser, because each one writes its output in a form its own input
   grammar reads back unchanged: 18-character ID numbers and credit codes, cleaned names and
   text, GB/T 2261.1 / GB/T 3304 / GB/T 2260 codes, "13812345678" / "0571-88888888" phones.
   Two need their typed output written as text first, as a department would send it back:
   dates as ISO strings ("1990-01-01"), and capital as its decimal string in 万元
   ("12000.000000"), which holds only under the default ``bare_unit`` 万元 (with "元" a bare
   number means 元, so a second pass would divide by 10,000 again; that is the option's
   purpose, not a defect). Warnings that describe the value itself may recur
   (ID_COUNTY_HISTORICAL, DIVISION_UNKNOWN); ID_LEGACY_15 disappears after the upgrade.
3. Check characters against python-stdnum, an independent implementation, on random valid
   numbers and on corrupted ones (one character changed, two adjacent ones transposed).
   What each side checks, from stdnum 2.2's source (``stdnum/cn/ric.py``, ``cn/uscc.py``):

   ID numbers (``stdnum.cn.ric.validate``): length 18, 17 digits, the MOD 11-2 check character,
   a birth date that exists (any year), and the address code in stdnum's own table
   (``numdb cn/loc``) *for the birth year* (e.g. 110118 密云区 only from 2015; 330113 临平区
   is missing). Ours: the same length, characters and check character; a birth date between
   1900-01-01 and the business date; a valid province; an unknown or retired county is only a
   warning (domain rule: never reject a number because its county code is historical).
   Where the definitions coincide: our ID_CHARS ⇔ stdnum InvalidFormat and our ID_CHECK_DIGIT
   ⇔ stdnum InvalidChecksum for every 18-character string, and full accept ⇔ valid when
   stdnum knows the county for that birth year and the birth date is in our range.

   Credit codes (``stdnum.cn.uscc.validate``): length 18, the first 8 characters digits, the
   rest from the GB 32100 alphabet, the MOD 31 check character; nothing else. Ours: every
   character from the alphabet, the check character, the authority/entity-type pair of the
   national table (which has letter authorities A, N, Y that stdnum rejects as
   InvalidFormat), a valid province in the division code, and the organisation code's own
   GB 11714 check. Where they coincide: our CC_CHECK_CHAR ⇔ stdnum InvalidChecksum for every
   18-character string of the alphabet whose first 8 characters are digits, and our accept ⇒
   stdnum valid when the authority is a digit.

Examples are bounded (``max_examples``) so the file runs in a few seconds.
"""

from __future__ import annotations

import datetime

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from stdnum import exceptions as stdnum_errors
from stdnum.cn import ric, uscc

from transforms._arrow import (
    _settle,
    blank_to_null,
    compact_identifier,
    first_issue,
    issues_array,
    nfkc,
)
from transforms.codes import division_table
from transforms.credit_code import (
    AUTHORITY_TYPES,
    CC_ALPHABET,
    credit_code_check_char,
    normalise_credit_code,
    org_code_check_char,
)
from transforms.dates import _parse_texts
from transforms.id_number import id_check_char, normalise_id_number
from transforms.names import (
    _PERSON_CODES,
    MAX_LENGTH,
    _clean_person_names,
    _collapse_whitespace,
    hostile_checks,
)
from transforms.phones import _normalise_phones
from transforms.registry import NORMALISERS
from transforms.result import NormaliseContext, Normalised
from transforms.rules import RULES

BUSINESS_DATE = datetime.date(2026, 11, 20)
CTX = NormaliseContext(business_date=BUSINESS_DATE)
FAST = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- strategies ---------------------------------------------------------------------------------

FULLWIDTH = "０１２３４５６７８９Ｘｘ－．／（）　"
SPECIAL = (
    FULLWIDTH
    + "\t\n\r\x00\x07\x1b\x7f\x85\u00a0\u200b\u2028\ufeff\u0301\u0338"  # control, space, marks
    + "·•・.-_/年月日万元亿人民币¥$+"
    + "张三阿依古丽买买提汉族男女未说明"
    + "😀👨\u200d👩\u200d👧🇨🇳"
    + "0123456789xX "
)
_ID_LIKE = r"\s?[0-9０-９]{6}(19)?[0-9]{6}[0-9]{3}[0-9xX]?\s?"
_DATE_LIKE = r"(19|20|00|99)\d\d[-/.年]?[01]?\d[-/.月]?[0-3]?\d日?( \d\d:\d\d(:\d\d)?)?"
_PHONE_LIKE = r"((\+86|0086)\s?)?(1[3-9]\d{9}|0\d{2,3}-?[1-9]\d{6,7}|[2-9]\d{6,7})"
_CAPITAL_LIKE = r"\d{1,20}(\.\d{0,8})?(万元|元|亿元|亿|万|千元|美元|万元人民币)?"
_CODE_LIKE = r"[0-9A-Za-z\- ]{8,20}"
_NAME_LIKE = r"[张王李阿依古丽买买提]{1,4}(\s?[·•・.]\s?[艾力古丽]{1,3})?"


def _long(s: str, k: int) -> str:
    return s * k


TEXT = st.one_of(
    st.none(),
    st.text(max_size=24),
    st.text(alphabet=SPECIAL, max_size=24),
    st.from_regex(_ID_LIKE, fullmatch=True),
    st.from_regex(_DATE_LIKE, fullmatch=True),
    st.from_regex(_PHONE_LIKE, fullmatch=True),
    st.from_regex(_CAPITAL_LIKE, fullmatch=True),
    st.from_regex(_CODE_LIKE, fullmatch=True),
    st.from_regex(_NAME_LIKE, fullmatch=True),
    st.builds(_long, st.text(alphabet=SPECIAL, min_size=1, max_size=8), st.integers(200, 1500)),
)
VALUES = st.lists(TEXT, max_size=12)

# Options that change what a normaliser does; each normaliser also runs with no options.
OPTIONS: dict[str, list[dict[str, object]]] = {
    "date": [{"excel_serial": True}, {"allow_future": True}],
    "phone": [{"default_area_code": "0571"}],
    "capital": [{"bare_unit": "元"}],
}
CASES = [(name, {}) for name in sorted(NORMALISERS)] + [
    (name, opts) for name, options in sorted(OPTIONS.items()) for opts in options
]
VALUE_TYPES = {"date": pa.date32(), "capital": pa.decimal128(20, 6)}


def run(
    name: str, values: list[str | None], options: dict[str, object] | None = None
) -> Normalised:
    ctx = NormaliseContext(business_date=BUSINESS_DATE, options=options or {})
    return NORMALISERS[name](pa.array(values, pa.string()), ctx)


def _is_reject(code: str | None) -> bool:
    return code is not None and RULES[code].severity == "reject"


# -- 1. no exception on any text ----------------------------------------------------------------


@pytest.mark.parametrize(("name", "options"), CASES, ids=[f"{n}{o or ''}" for n, o in CASES])
@FAST
@given(values=VALUES)
def test_any_text_gives_well_formed_output(
    name: str, options: dict[str, object], values: list[str | None]
) -> None:
    out = run(name, values, options)
    n = len(values)
    assert len(out.values) == n and len(out.issues) == n
    assert out.values.type == VALUE_TYPES.get(name, pa.string())
    assert out.issues.type == pa.string()
    assert all(len(extra) == n for extra in out.extras.values())
    out.values.validate(full=True)
    for raw, value, code in zip(
        values, out.values.to_pylist(), out.issues.to_pylist(), strict=True
    ):
        assert code is None or code in RULES, code
        assert not (value is not None and _is_reject(code)), (raw, value, code)
        if raw is None:
            assert value is None and code is None


@pytest.mark.parametrize("name", sorted(NORMALISERS))
def test_other_string_types_and_chunks(name: str) -> None:
    values = ["330106199001010016", " 张 三 ", "1990-01-01", "男", "01", None, "500万元"]
    expected = run(name, values)
    for arr in (
        pa.array(values, pa.large_string()),
        pa.array(values, pa.string_view()),
        pa.chunked_array([pa.array(values[:3]), pa.array(values[3:])]),
        pa.array(values).dictionary_encode(),
    ):
        out = NORMALISERS[name](arr, CTX)
        assert out.values.equals(expected.values)
        assert out.issues.equals(expected.issues)


# -- 1b. the fast paths give what the general path gives -------------------------------------
# Several normalisers skip work for values that are already clean (CJK-only names, plain
# text, 11-digit mobiles, ASCII identifiers) or run on distinct values only; on any text
# the result must equal running the general path on every value.


@FAST
@given(values=VALUES)
def test_fast_paths_equal_general_paths(values: list[str | None]) -> None:
    arr = pa.array(values, pa.string())
    names = NORMALISERS["person_name"](arr, CTX)
    general_names, name_codes = _clean_person_names(arr)
    # the hostile-value checks run on the cleaned names of either path
    checks = hostile_checks(general_names, MAX_LENGTH["person_name"], markup=True)
    checks += [(name_codes == 0, "NAME_EMPTY"), (name_codes == 1, "NAME_CHARS")]
    general_codes = first_issue(len(arr), [(m, _PERSON_CODES.index(c)) for m, c in checks])
    assert names.values.to_pylist() == [
        v if c < 0 else None for v, c in zip(general_names.to_pylist(), general_codes, strict=True)
    ]
    assert names.issues.equals(issues_array(general_codes, _PERSON_CODES))

    text = NORMALISERS["text"](arr, CTX)
    general_text = blank_to_null(_collapse_whitespace(nfkc(arr)))
    assert text.values.equals(pc.if_else(pc.is_valid(text.issues), None, general_text))

    phones = NORMALISERS["phone"](arr, CTX)
    general_phones, phone_codes = _normalise_phones(arr, CTX)
    assert phones.values.equals(general_phones)
    assert phones.issues.equals(issues_array(phone_codes, ["PHONE_INVALID"]))

    assert compact_identifier(arr).equals(blank_to_null(_settle(arr)))

    dates = NORMALISERS["date"](arr, CTX)
    general_dates = _parse_texts(arr, CTX)
    assert dates.values.equals(general_dates.values)
    assert dates.issues.equals(general_dates.issues)


# -- 2. idempotence -----------------------------------------------------------------------------

# Warnings about the value itself, which a second pass reports again.
VALUE_WARNINGS = {None, "ID_COUNTY_HISTORICAL", "DIVISION_UNKNOWN"}


def _as_text(values: pa.Array) -> list[str | None]:
    """Typed output as a department would send it back: dates ISO, capital as its decimal."""
    return pc.cast(values, pa.string()).to_pylist()


@pytest.mark.parametrize("name", sorted(NORMALISERS))
@FAST
@given(values=VALUES)
def test_normalising_twice_equals_once(name: str, values: list[str | None]) -> None:
    once = run(name, values)
    twice = run(name, _as_text(once.values))
    assert twice.values.to_pylist() == once.values.to_pylist()
    for value, code in zip(once.values.to_pylist(), twice.issues.to_pylist(), strict=True):
        if value is not None:
            assert code in VALUE_WARNINGS, (value, code)


# -- 3. check characters against python-stdnum --------------------------------------------------


def _stdnum_ric(number: str) -> str:
    """'valid' or the name of the first failure stdnum reports.

    stdnum 2.2 raises KeyError instead of InvalidComponent for an address code whose
    prefecture it knows but whose county it does not (330113 临平区, 330114 钱塘区).
    """
    try:
        ric.validate(number)
    except stdnum_errors.ValidationError as e:
        return type(e).__name__
    except KeyError:
        return "InvalidComponent"
    return "valid"


def _stdnum_place_known(number: str) -> bool:
    try:
        ric.get_birth_place(number)
    except (stdnum_errors.ValidationError, KeyError):
        return False
    return True


def _ids(values: list[str]) -> list[tuple[str | None, str | None]]:
    out = normalise_id_number(pa.array(values, pa.string()), CTX)
    return list(zip(out.values.to_pylist(), out.issues.to_pylist(), strict=True))


COUNTIES = [
    c
    for c, level in zip(
        division_table().column("code").to_pylist(),
        division_table().column("level").to_pylist(),
        strict=True,
    )
    if level == "county"
]
BIRTH = st.dates(min_value=datetime.date(1900, 1, 1), max_value=BUSINESS_DATE)


@st.composite
def valid_ids(draw: st.DrawFn) -> str:
    county = draw(st.sampled_from(COUNTIES))
    born = draw(BIRTH)
    first17 = f"{county}{born:%Y%m%d}{draw(st.integers(0, 999)):03d}"
    return first17 + id_check_char(first17)


def _substitute(s: str, i: int, alphabet: str, pick: int) -> str:
    others = [c for c in alphabet if c != s[i]]
    return s[:i] + others[pick % len(others)] + s[i + 1 :]


def _transpose(s: str, i: int) -> str:
    return s[:i] + s[i + 1] + s[i] + s[i + 2 :]


@settings(max_examples=60, deadline=None)
@given(first17=st.from_regex(r"[0-9]{17}", fullmatch=True))
def test_id_check_char_equals_stdnum(first17: str) -> None:
    assert id_check_char(first17) == ric.calc_check_digit(first17 + "0")


@settings(max_examples=50, deadline=None)
@given(number=valid_ids())
def test_valid_ids_agree_with_stdnum(number: str) -> None:
    (value, code), lower = _ids([number, number.lower()])
    assert value == number and code in VALUE_WARNINGS
    assert lower == (value, code)
    if _stdnum_place_known(number):  # both define validity the same way here
        assert _stdnum_ric(number) == "valid"
    else:  # stdnum's table lacks the county for that birth year: ours keeps the number
        assert _stdnum_ric(number) == "InvalidComponent"


@settings(max_examples=50, deadline=None)
@given(
    number=valid_ids(),
    i=st.integers(0, 17),
    pick=st.integers(0, 20),
    transpose=st.booleans(),
)
def test_corrupted_ids_agree_with_stdnum(number: str, i: int, pick: int, transpose: bool) -> None:
    if transpose:
        i = min(i, 16)
        assume(number[i] != number[i + 1])
        bad = _transpose(number, i)
    else:
        bad = _substitute(number, i, "0123456789X" if i == 17 else "0123456789", pick)
    value, code = _ids([bad])[0]
    verdict = _stdnum_ric(bad)
    # MOD 11-2 catches every single substitution and every adjacent transposition.
    assert verdict in {"InvalidChecksum", "InvalidFormat"}
    assert value is None
    assert code == {"InvalidChecksum": "ID_CHECK_DIGIT", "InvalidFormat": "ID_CHARS"}[verdict]


@settings(max_examples=60, deadline=None)
@given(body=st.from_regex(r"[0-9]{17}", fullmatch=True), last=st.sampled_from("0123456789X"))
def test_any_18_characters_check_digit_verdict_equals_stdnum(body: str, last: str) -> None:
    number = body + last
    value, code = _ids([number])[0]
    verdict = _stdnum_ric(number)
    assert (code == "ID_CHECK_DIGIT") == (verdict == "InvalidChecksum")
    if verdict == "valid":  # stdnum accepts: ours too unless a rule only ours has applies
        assert value == number or code in {"ID_PROVINCE", "ID_BIRTH_DATE"}
    if value is not None and _stdnum_place_known(number):
        assert verdict == "valid"


def test_birth_date_range_is_ours_not_stdnums() -> None:
    """stdnum accepts any existing birth date; ours rejects before 1900 and after the night."""
    for born in ("18991231", "20261121", "20991231"):
        first17 = f"110101{born}123"
        number = first17 + id_check_char(first17)
        assert _stdnum_ric(number) == "valid"
        assert _ids([number]) == [(None, "ID_BIRTH_DATE")]


def test_historical_county_ours_keeps_stdnum_rejects() -> None:
    """330113 (临平区, 2021) is not in stdnum's table; 110118 (密云区) only from 2015 there."""
    for county, born in (("330113", "19800101"), ("110118", "19800101")):
        first17 = f"{county}{born}123"
        number = first17 + id_check_char(first17)
        assert _stdnum_ric(number) == "InvalidComponent"
        assert _ids([number])[0][0] == number


# -- credit codes -------------------------------------------------------------------------------

PAIRS = sorted(a + t for a, types in AUTHORITY_TYPES.items() for t in types)
ORG_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # organisation codes inside a credit code


@st.composite
def valid_credit_codes(draw: st.DrawFn) -> str:
    pair = draw(st.sampled_from(PAIRS))
    division = draw(st.sampled_from(COUNTIES))
    org8 = draw(st.text(alphabet=ORG_CHARS, min_size=8, max_size=8))
    first17 = pair + division + org8 + org_code_check_char(org8)
    return first17 + credit_code_check_char(first17)


def _stdnum_uscc(code: str) -> str:
    try:
        uscc.validate(code)
    except stdnum_errors.ValidationError as e:
        return type(e).__name__
    return "valid"


def _credit(values: list[str]) -> list[tuple[str | None, str | None]]:
    out = normalise_credit_code(pa.array(values, pa.string()), CTX)
    return list(zip(out.values.to_pylist(), out.issues.to_pylist(), strict=True))


@settings(max_examples=60, deadline=None)
@given(first17=st.text(alphabet=CC_ALPHABET, min_size=17, max_size=17))
def test_credit_check_char_equals_stdnum(first17: str) -> None:
    assert credit_code_check_char(first17) == uscc.calc_check_digit(first17)


@settings(max_examples=50, deadline=None)
@given(code=valid_credit_codes())
def test_valid_credit_codes_agree_with_stdnum(code: str) -> None:
    assert _credit([code, code.lower()]) == [(code, None), (code, None)]
    if code[0].isdigit():
        assert _stdnum_uscc(code) == "valid"
    else:  # A, N, Y authorities: in the national table, but stdnum wants 8 leading digits
        assert _stdnum_uscc(code) == "InvalidFormat"


@settings(max_examples=50, deadline=None)
@given(
    code=valid_credit_codes(),
    i=st.integers(0, 17),
    pick=st.integers(0, 40),
    transpose=st.booleans(),
)
def test_corrupted_credit_codes_agree_with_stdnum(
    code: str, i: int, pick: int, transpose: bool
) -> None:
    if transpose:
        i = min(i, 16)
        assume(code[i] != code[i + 1])
        bad = _transpose(code, i)
    else:
        bad = _substitute(code, i, CC_ALPHABET, pick)
    value, issue = _credit([bad])[0]
    verdict = _stdnum_uscc(bad)
    if bad[:8].isdigit():  # stdnum's format holds: the check verdicts must coincide
        assert (issue == "CC_CHECK_CHAR") == (verdict == "InvalidChecksum")
        if value is not None:
            assert verdict == "valid"
    if i < 16 or not transpose:  # MOD 31: substitutions and transpositions inside 1-17
        assert value is None and issue == "CC_CHECK_CHAR"


@settings(max_examples=60, deadline=None)
@given(code=st.text(alphabet=CC_ALPHABET, min_size=18, max_size=18))
def test_any_18_characters_credit_verdict_equals_stdnum(code: str) -> None:
    value, issue = _credit([code])[0]
    verdict = _stdnum_uscc(code)
    if code[:8].isdigit():
        assert (issue == "CC_CHECK_CHAR") == (verdict == "InvalidChecksum")
    if value is not None and code[0].isdigit():
        assert verdict == "valid"

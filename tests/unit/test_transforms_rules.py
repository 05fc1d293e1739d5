"""Rule catalogue, the registry, and that every emitted issue code is documented."""

from __future__ import annotations

import datetime

import pyarrow as pa
import pytest

from transforms.registry import NORMALISERS, get_normaliser
from transforms.result import NormaliseContext, Normalised
from transforms.rules import FIELD_KINDS, RULES, rule, rules_markdown

CTX = NormaliseContext(business_date=datetime.date(2026, 11, 20))

EXPECTED_SEVERITY = {
    "ID_LENGTH": "reject",
    "ID_CHARS": "reject",
    "ID_CHECK_DIGIT": "reject",
    "ID_BIRTH_DATE": "reject",
    "ID_PROVINCE": "reject",
    "ID_LEGACY_15": "warn",
    "ID_COUNTY_HISTORICAL": "warn",
    "CC_LENGTH": "reject",
    "CC_CHARS": "reject",
    "CC_AUTHORITY_TYPE": "reject",
    "CC_DIVISION": "reject",
    "CC_ORG_CODE": "reject",
    "CC_CHECK_CHAR": "reject",
    "CC_REG_NUMBER_CHECK": "reject",
    "CC_NOT_REG_NUMBER": "reject",
    "CC_LEGACY_REG_NUMBER": "warn",
    "CC_LEGACY_ORG_CODE": "warn",
    "NAME_EMPTY": "reject",
    "NAME_CHARS": "reject",
    "SEX_UNKNOWN_VALUE": "warn",
    "SEX_ID_MISMATCH": "warn",
    "DATE_SENTINEL": "warn",
    "DATE_UNPARSEABLE": "reject",
    "DATE_IMPOSSIBLE": "reject",
    "DATE_IN_FUTURE": "reject",
    "PHONE_INVALID": "warn",
    "CAPITAL_CURRENCY": "warn",
    "CAPITAL_UNPARSEABLE": "warn",
    "ETHNICITY_UNKNOWN": "warn",
    "DIVISION_UNKNOWN": "warn",
    "ENCODING_INVALID": "reject",
    "TEXT_CONTROL_CHAR": "reject",
    "TEXT_BIDI_CHAR": "reject",
    "TEXT_TOO_LONG": "reject",
    "TEXT_MARKUP": "reject",
    "TEXT_NO_LETTER": "reject",
    "KEY_MISSING": "reject",
    "REQUIRED_MISSING": "reject",
    "DUPLICATE_KEY": "warn",
}

# Dirty samples exercising every issue each normaliser can emit.
DIRTY: dict[str, list[object]] = {
    "id_number": [
        "11010519491231002X", "110105491231002", "11010519491231002Y", "11010519491231003X",
        "1234", "440524188001010014", "990102199001011237", "330103199001011230", None, "",
    ],
    "credit_code": [
        "91350100M000100Y43", "91350100M000100Y44", "I1350100M000100Y43", "123",
        "22330100123456788L", "110108000000016", "110108000000017", "D2143569-X",
        "D2143569-1", "91990100123456788H", "91330100123456780P", None,
    ],
    "reg_number": ["110108000000016", " 110108000000016", "110108000000017", "91350100M000100Y43",
                   "123", None, ""],
    "person_name": ["张 三", "", "张三1", "张" * 51, "张\x00三", "张\u202e三", "<b></b>", None],
    "text": ["  a  b ", "", "a\x0bb", "a" * 201, "a\u2066b", None],
    "enterprise_name": ["某某（集团）", "<b>某</b>", "123", None],
    "sex": ["男", "x", None],
    "date": ["1990-01-01", "x", "1990-02-30", "2099-01-01", "0000-00-00", None],
    "phone": ["13812345678", "123", None],
    "capital": ["500万元", "100万美元", "abc", None],
    "ethnicity": ["汉族", "火星族", None],
    "division": ["330102", "330103", None],
}  # fmt: skip


def test_rule_catalogue_matches_the_contract() -> None:
    assert {code: r.severity for code, r in RULES.items()} == EXPECTED_SEVERITY
    for code, r in RULES.items():
        assert r.code == code
        assert r.field_kind in FIELD_KINDS
        assert r.zh and r.en and r.hint_zh
    assert RULES["REQUIRED_MISSING"].field_kind == "row"
    assert RULES["DUPLICATE_KEY"].field_kind == "row"
    assert RULES["SEX_ID_MISMATCH"].field_kind == "sex"


def test_rule_lookup() -> None:
    assert rule("ID_CHECK_DIGIT").severity == "reject"
    with pytest.raises(KeyError, match="ID_CHECK_DIGIT"):
        rule("ID_CHECK_DIGT")


def test_rules_markdown_lists_every_code() -> None:
    md = rules_markdown()
    assert md.startswith("# ")
    for code, r in RULES.items():
        assert f"`{code}`" in md
        assert r.zh in md
        assert r.hint_zh in md
    assert md.count("| 代码 Code |") == len({r.field_kind for r in RULES.values()})


def test_registry() -> None:
    assert set(NORMALISERS) == set(DIRTY)
    assert get_normaliser("id_number") is NORMALISERS["id_number"]
    with pytest.raises(KeyError, match="person_name"):
        get_normaliser("persn_name")


@pytest.mark.parametrize("name", sorted(DIRTY))
def test_every_issue_code_is_in_rules(name: str) -> None:
    raw = pa.array(DIRTY[name], pa.string())
    result = get_normaliser(name)(raw, CTX)
    assert isinstance(result, Normalised)
    assert result.issues.type == pa.string()
    assert len(result.values) == len(result.issues) == len(raw)
    assert all(len(extra) == len(raw) for extra in result.extras.values())
    emitted = {code for code in result.issues.to_pylist() if code is not None}
    assert emitted <= set(RULES)
    null_in = [v is None for v in DIRTY[name]]
    assert [result.issues[i].as_py() for i, n in enumerate(null_in) if n] == [None] * sum(null_in)


def test_dirty_samples_cover_every_normaliser_rule() -> None:
    emitted = set()
    for name, values in DIRTY.items():
        emitted |= set(get_normaliser(name)(pa.array(values, pa.string()), CTX).issues.to_pylist())
    pipeline_only = {
        "REQUIRED_MISSING",
        "DUPLICATE_KEY",
        "SEX_ID_MISMATCH",
        "KEY_MISSING",
        "ENCODING_INVALID",
    }
    assert emitted - {None} == set(RULES) - pipeline_only


@pytest.mark.parametrize("name", sorted(DIRTY))
@pytest.mark.parametrize(
    "raw",
    [
        pa.array([], pa.string()),
        pa.nulls(3),
        pa.nulls(2, pa.large_string()),
        pa.chunked_array([], pa.string()),
    ],
    ids=["empty", "null-type", "large-string-nulls", "empty-chunked"],
)
def test_empty_and_all_null_inputs(name: str, raw: pa.Array) -> None:
    result = get_normaliser(name)(raw, CTX)
    assert len(result.values) == len(result.issues) == len(raw)
    assert result.values.null_count == result.issues.null_count == len(raw)
    assert result.issues.type == pa.string()

"""Consistency findings (比对) from small hand-built Arrow tables: one test per finding."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pytest

from datacloud.consistency import (
    FINDINGS,
    MARRIAGE_SCHEMA,
    MENTION_SCHEMA,
    SCHEMA,
    SORT_BY,
    count_by_department,
    find_inconsistencies,
    id_body,
)
from datacloud.curation_ranges import KeyRange, bucket_of
from transforms.id_number import id_check_char

DS = date(2026, 11, 20)
AUTHORITY = {"name": ["gongan"], "sex": ["gongan"], "marital_status": ["mz"]}


def _id(first17: str) -> str:
    return first17 + id_check_char(first17)


A, B, C = _id("33010619800101001"), _id("33010619900202002"), _id("33010619751231003")
D, E = _id("33010619700303004"), _id("11010519850505005")


def mentions(*rows: tuple[str, str | None, str | None, str, str, str]) -> pa.Table:
    """(id_number, name, sex, department, kind, role) rows; gongan's register first."""
    register = [
        (A, "张三", "1", "gongan", "person", "person"),
        (B, "李四", "2", "gongan", "person", "person"),
        (C, "王五", "1", "gongan", "person", "person"),
        (D, "赵六", "2", "gongan", "person", "person"),
    ]
    cols = list(zip(*(register + list(rows)), strict=True))
    return pa.table([pa.array(c, pa.string()) for c in cols], schema=MENTION_SCHEMA)


def marriages(*rows: tuple[str, str, str, date | None]) -> pa.Table:
    """(registration_type, husband, wife, date) rows of mz."""
    cols = list(zip(*[(*r, "mz") for r in rows], strict=True)) if rows else [[]] * 5
    return pa.table(
        [pa.array(c, f.type) for c, f in zip(cols, MARRIAGE_SCHEMA, strict=True)],
        schema=MARRIAGE_SCHEMA,
    )


def found(table: pa.Table) -> set[tuple[str, str, str]]:
    return {(r["finding"], r["department"], r["id_number"]) for r in table.to_pylist()}


def run(m: pa.Table, mar: pa.Table | None = None, **quarantine: pa.Array) -> pa.Table:
    out = find_inconsistencies(
        m, mar if mar is not None else marriages(), AUTHORITY, DS, **quarantine
    )
    assert out.schema == SCHEMA
    return out


def test_name_differing_from_the_register_is_a_finding_for_the_other_department() -> None:
    out = run(
        mentions(
            (A, "张叁", "1", "gjj", "housing_fund_account", "account_holder"),
            (B, "李四", "2", "gjj", "housing_fund_account", "account_holder"),  # agrees
            (C, "王伍", None, "scjg", "enterprise", "legal_rep"),
            (C, "王伍", None, "scjg", "enterprise_role", "shareholder"),  # same person: one row
            (E, "钱七", "1", "gjj", "housing_fund_account", "account_holder"),  # not registered
            (A, None, "1", "bdc", "property_right", "owner"),  # no name written: nothing to compare
        )
    )
    names = out.filter(pa.compute.equal(out["finding"], "name_conflict"))
    assert found(names) == {("name_conflict", "gjj", A), ("name_conflict", "scjg", C)}
    scjg = next(r for r in names.to_pylist() if r["department"] == "scjg")
    assert scjg["record_kinds"] == "enterprise,enterprise_role"
    assert scjg["authoritative_department"] == "gongan" and scjg["field"] == "name"
    assert scjg["finding_zh"] == FINDINGS["name_conflict"].zh
    assert scjg["business_date"] == DS


def test_the_authority_is_not_compared_with_itself() -> None:
    m = mentions((A, "张叁", "2", "gongan", "person", "person"))  # a second register row
    assert run(m).num_rows == 0


def test_sex_differing_from_the_register() -> None:
    out = run(
        mentions(
            (A, "张三", "2", "bdc", "property_right", "owner"),
            (B, "李四", "2", "bdc", "property_right", "owner"),
            (D, "赵六", None, "gjj", "housing_fund_account", "account_holder"),
        )
    )
    assert found(out) == {("sex_conflict", "bdc", A)}


@pytest.mark.parametrize(
    ("kind", "role", "finding"),
    [
        ("property_right", "owner", "unregistered_owner"),
        ("enterprise", "legal_rep", "unregistered_legal_rep"),
        ("enterprise_role", "shareholder", "unregistered_shareholder"),
    ],
)
def test_persons_unknown_to_the_register(kind: str, role: str, finding: str) -> None:
    dept = "bdc" if kind == "property_right" else "scjg"
    out = run(
        mentions(
            (E, "钱七", None, dept, kind, role),
            (A, "张三", None, dept, kind, role),
            (E, "钱七", None, "gjj", "housing_fund_account", "account_holder"),  # not checked
        )
    )
    assert found(out) == {(finding, dept, E)}
    assert out["field"].to_pylist() == ["id_number"]


def test_a_person_whose_register_row_was_rejected_is_not_unknown() -> None:
    """Tonight's rejected register rows hold E with a mistyped check character, in full-width
    digits: the register's silence proves nothing."""
    typed = E[:17].translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    wrong = typed + ("1" if E[17] != "1" else "2")
    m = mentions((E, "钱七", None, "bdc", "property_right", "owner"))
    assert found(run(m)) == {("unregistered_owner", "bdc", E)}
    assert run(m, register_quarantine=id_body(pa.array([f" {wrong}"]))).num_rows == 0


def test_second_marriage_without_divorce() -> None:
    out = run(
        mentions(),
        marriages(
            ("结婚", A, B, date(2010, 5, 1)),
            ("结婚", A, D, date(2020, 6, 1)),  # A married again, B never divorced
            ("结婚", C, _id("33010619920101026"), date(2015, 1, 1)),
            ("离婚", C, _id("33010619920101026"), date(2018, 1, 1)),
            ("结婚", C, D, date(2021, 1, 1)),  # C divorced first: fine; D married to A
        ),
    )
    assert found(out) == {("marital_conflict", "mz", A), ("marital_conflict", "mz", D)}
    assert set(out["authoritative_department"].to_pylist()) == {"mz"}


def test_divorce_without_marriage_and_divorces_first_on_a_day() -> None:
    out = run(
        mentions(),
        marriages(
            ("离婚", A, B, date(2012, 1, 1)),
            ("结婚", C, D, date(2010, 1, 1)),
            ("结婚", C, E, date(2019, 3, 3)),  # same day as the divorce: the divorce goes first
            ("离婚", C, D, date(2019, 3, 3)),
        ),
    )
    assert found(out) == {
        ("divorce_without_marriage", "mz", A),
        ("divorce_without_marriage", "mz", B),
    }


def test_marriage_histories_that_cannot_be_judged() -> None:
    history = marriages(("结婚", A, B, date(2010, 5, 1)), ("结婚", A, D, date(2020, 6, 1)))
    assert found(run(mentions(), history)) == {("marital_conflict", "mz", A)}
    # a registration of A rejected tonight (e.g. the divorce): A's history is incomplete
    blocked = id_body(pa.array([A[:17] + "0" if A[17] != "0" else A[:17] + "1"]))
    assert run(mentions(), history, marriage_quarantine=blocked).num_rows == 0
    undated = marriages(("结婚", A, B, date(2010, 5, 1)), ("结婚", A, D, None))
    assert run(mentions(), undated).num_rows == 0


def test_id_body_undoes_typing_and_legacy_numbers() -> None:
    values = [
        A,
        A[:17] + "x",
        " " + A[:6] + "\u3000" + A[6:],
        A[:6] + A[8:17],  # the legacy 15-digit form
        "３３０１０６１９８００１０１００１Ｘ",
        "330106",
        None,
        "33010619800101A01X",
    ]
    assert id_body(pa.array(values, pa.string())).to_pylist() == [
        A[:17],
        A[:17],
        A[:17],
        A[:17],
        "33010619800101001",
        None,
        None,
        None,
    ]


def test_counts_per_department() -> None:
    out = run(
        mentions(
            (A, "张叁", "2", "gjj", "housing_fund_account", "account_holder"),
            (E, "钱七", None, "bdc", "property_right", "owner"),
            (B, "李肆", None, "bdc", "property_right", "owner"),
        )
    )
    assert count_by_department(out) == {
        "bdc": {"name_conflict": 1, "unregistered_owner": 1},
        "gjj": {"name_conflict": 1, "sex_conflict": 1},
    }
    assert count_by_department(SCHEMA.empty_table()) == {}


@pytest.mark.parametrize("count", [2, 3, 5])
def test_findings_bucket_by_bucket_equal_the_whole(count: int) -> None:
    """Each bucket of the ID number gets its persons' mentions and the registrations where
    the husband or the wife is one of them; its findings (``persons``) are its persons' only.
    Every kind of finding, quarantines and an undecidable history, couples split or not."""
    F, G = _id("33010619880808008"), _id("33010619660606006")
    m = mentions(
        (A, "张叁", "2", "gjj", "housing_fund_account", "account_holder"),
        (C, "王伍", None, "scjg", "enterprise", "legal_rep"),
        (E, "钱七", None, "bdc", "property_right", "owner"),
        (F, "孙八", None, "scjg", "enterprise_role", "shareholder"),  # quarantined: no finding
        (_id("44030519900909009"), "吴十", None, "scjg", "enterprise_role", "shareholder"),
        (G, "周九", "1", "rs", "person", "person"),
        (E, "钱七", None, "scjg", "enterprise", "legal_rep"),
    )
    mar = marriages(
        ("结婚", A, B, date(2010, 5, 1)),
        ("结婚", A, D, date(2020, 6, 1)),
        ("离婚", C, E, date(2012, 1, 1)),
        ("结婚", F, G, date(2001, 1, 1)),
        ("结婚", F, C, date(2003, 1, 1)),
        ("结婚", G, E, None),  # G and E: undecidable
    )
    quarantine = {
        "register_quarantine": id_body(pa.array([F])),
        "marriage_quarantine": id_body(pa.array([D])),
    }
    whole = run(m, mar, **quarantine)
    assert {f for f, _, _ in found(whole)} == set(FINDINGS)
    assert ("marital_conflict", "mz", F) in found(whole)  # F's spouses: G, then C
    h, w = (bucket_of(mar[c], count) for c in ("husband_id_number", "wife_id_number"))
    assert (h != w).any()  # a couple split across buckets
    parts = []
    for index in range(count):
        part = KeyRange(index, count)
        parts.append(
            find_inconsistencies(
                m.filter(part.holds(m["id_number"])),
                mar.filter(part.holds(mar["husband_id_number"], mar["wife_id_number"])),
                AUTHORITY,
                DS,
                persons=part.holds,
                **quarantine,
            )
        )
    split = pa.concat_tables(parts).sort_by([(k, "ascending") for k in SORT_BY])
    assert split.equals(whole)

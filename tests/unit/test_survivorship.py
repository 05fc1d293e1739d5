"""Survivorship per field (``transforms.survivorship.survive``) with the shipped enterprise rules.

Candidates are hand-built rows of two enterprise sources: scjg (the authority for name,
status and legal representative) and a second one, ``swj`` (a tax office), later in the
department order.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pyarrow as pa
import pytest

from datacloud.config import load_departments
from datacloud.curation_config import FIELD_COLUMNS, load_curation_config
from transforms.survivorship import survive

SOURCES = ["bdc", "gjj", "gongan", "mz", "scjg", "swj"]
RULES = load_curation_config().enterprise_rules(load_departments())
CC = "91330106MA2B1C3D4X"
OLD, NEW = date(2020, 1, 1), date(2025, 6, 1)
ROW = {
    "_key": CC,
    "reg_number": None,
    "org_code": None,
    "name": None,
    "enterprise_type": None,
    "status": None,
    "legal_rep_id_number": None,
    "legal_rep_name": None,
    "registered_capital": None,
    "established_date": None,
    "address": None,
}


def golden(*rows: dict[str, Any]) -> dict[str, Any]:
    """The golden record of CC from candidate rows (each: ``source``, ``as_of`` and fields)."""
    table = pa.Table.from_pylist([{**ROW, **r} for r in rows])
    keys = pa.array([CC], pa.string())
    out = survive(keys, "_key", table, RULES, SOURCES, FIELD_COLUMNS).to_pylist()
    assert len(out) == 1
    return out[0]


def rep(source: str, as_of: date, id_number: str | None, name: str | None) -> dict[str, Any]:
    return {
        "source": source,
        "as_of": as_of,
        "legal_rep_id_number": id_number,
        "legal_rep_name": name,
    }


def test_the_shipped_rules() -> None:
    assert RULES["name"] == RULES["status"] == RULES["legal_representative"] == ["scjg"]
    assert RULES["address"] == RULES["reg_number"] == RULES["org_code"] == []  # latest
    assert RULES["enterprise_type"] == RULES["registered_capital"] == ["scjg"]
    assert RULES["established_date"] == ["scjg"]


def test_the_authority_wins_where_it_has_a_value() -> None:
    g = golden(
        {"source": "scjg", "as_of": OLD, "name": "杭州甲有限公司", "status": "存续"},
        {"source": "swj", "as_of": NEW, "name": "杭州甲科技有限公司", "status": "注销"},
    )
    assert (g["name"], g["name_source"], g["name_as_of"]) == ("杭州甲有限公司", "scjg", OLD)
    assert (g["status"], g["status_source"], g["status_as_of"]) == ("存续", "scjg", OLD)


def test_without_an_authority_value_the_latest_non_null_wins() -> None:
    g = golden(
        {"source": "scjg", "as_of": NEW, "name": "杭州甲有限公司", "status": None},
        {"source": "swj", "as_of": OLD, "status": "吊销"},
        {"source": "gjj", "as_of": date(2023, 3, 1), "status": "在业"},
    )
    assert (g["status"], g["status_source"], g["status_as_of"]) == ("在业", "gjj", date(2023, 3, 1))
    assert g["name_source"] == "scjg"


def test_the_contact_address_is_the_latest_non_null_whoever_sends_it() -> None:
    g = golden(
        {"source": "scjg", "as_of": OLD, "address": "杭州市西湖区文三路1号"},
        {"source": "swj", "as_of": NEW, "address": "杭州市上城区解放路2号"},
        {"source": "gjj", "as_of": date(2026, 1, 1), "address": None},  # later, but no value
    )
    assert (g["address"], g["address_source"], g["address_as_of"]) == (
        "杭州市上城区解放路2号",
        "swj",
        NEW,
    )


def test_a_field_nobody_has_is_null_with_null_source_and_date() -> None:
    g = golden({"source": "scjg", "as_of": OLD, "name": "杭州甲有限公司"})
    assert (g["org_code"], g["org_code_source"], g["org_code_as_of"]) == (None, None, None)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (  # the authority's row has the ID number but no name: the name does not come
            # from another row (per column, it would be the other row's 李四)
            [
                rep("scjg", OLD, "A", None),
                rep("swj", NEW, "B", "李四"),
            ],
            ("A", None, "scjg", OLD),
        ),
        (  # the authority's row names somebody without an ID number: no value, so the
            # other row's representative (ID number and name together) wins
            [
                rep("scjg", NEW, None, "张三"),
                rep("swj", OLD, "B", "李四"),
            ],
            ("B", "李四", "swj", OLD),
        ),
    ],
)
def test_the_legal_representatives_id_number_and_name_come_from_one_row(
    rows: list[dict[str, Any]], expected: tuple[Any, ...]
) -> None:
    g = golden(*rows)
    got = (
        g["legal_rep_id_number"],
        g["legal_rep_name"],
        g["legal_representative_source"],
        g["legal_representative_as_of"],
    )
    assert got == expected


def test_every_golden_field_carries_its_source_and_date() -> None:
    g = golden({"source": "scjg", "as_of": OLD, "name": "杭州甲有限公司"})
    columns = list(g)
    assert columns[0] == "_key"
    for field in RULES:
        assert f"{field}_source" in columns and f"{field}_as_of" in columns
    assert "legal_representative" not in columns  # it yields the ID number and name columns
    assert {"legal_rep_id_number", "legal_rep_name"} <= set(columns)
    assert "source" not in columns and "as_of" not in columns  # no whole-record pair any more

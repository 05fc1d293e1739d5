"""The matters catalogue (dags/matters.yaml): strict reading, references checked, queries."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from datacloud.config import ConfigError
from datacloud.curated_tables import TABLES
from datacloud.matters import (
    MATTERS_ENV,
    catalogue_problems,
    load_matters,
    matters_path,
    read_matters,
)

DEPARTMENTS = ("bdc", "gjj", "gongan", "mz", "scjg")


def _write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "matters.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def _doc() -> dict:
    return yaml.safe_load(matters_path().read_text(encoding="utf-8"))


def test_the_shipped_catalogue_is_sound() -> None:
    cat = load_matters()
    assert catalogue_problems(cat, DEPARTMENTS) == []
    assert {"gjj_withdrawal", "property_registration", "enterprise_registration"} <= set(
        cat.matters
    )
    assert cat.matters["gjj_withdrawal"].name_zh == "住房公积金提取"
    assert cat.matters["marriage_registration"].name_zh == "婚姻登记"
    # the housing-fund withdrawal reads the property status and nothing else
    assert cat.matters["gjj_withdrawal"].items == ("property_status",)
    assert [i.id for i in cat.items_for("gjj_withdrawal", "property_status")] == ["property_status"]
    assert cat.items_for("gjj_withdrawal", "person") == []
    assert cat.items_for("no_such_matter", "person") == []


def test_matters_reading_a_field() -> None:
    cat = load_matters()
    assert [m.code for m in cat.matters_reading("person", "registered_address")] == [
        "property_registration"
    ]
    assert [m.code for m in cat.matters_reading("person", "name")] == [
        "property_registration",
        "marriage_registration",
    ]
    assert cat.matters_reading("person", "phone") == []
    assert cat.matters_reading("no_table", "name") == []


def test_every_item_names_columns_of_its_curated_table() -> None:
    for item in load_matters().items.values():
        assert set(item.fields) <= set(TABLES[item.table].published()), item.id


def test_env_names_another_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = _doc()
    doc["matters"] = doc["matters"][:1]
    monkeypatch.setenv(MATTERS_ENV, str(_write(tmp_path, doc)))
    assert list(load_matters().matters) == ["gjj_withdrawal"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["items"][0].update(table="no_table"), "unknown curated table 'no_table'"),
        (
            lambda d: d["items"][0].update(fields=["owner_id_number", "colour"]),
            "unknown field 'colour' of curated table 'property_right'",
        ),
        (
            lambda d: d["matters"][0].update(items=["property_status", "blood_type"]),
            "unknown data item 'blood_type'",
        ),
        (
            lambda d: d["items"][0].update(table="marriage", fields=["office"]),
            "the property_status lookup does not answer from table 'marriage'",
        ),
    ],
)
def test_a_broken_reference_is_named(tmp_path: Path, change, expected: str) -> None:
    doc = _doc()
    change(doc)
    path = _write(tmp_path, doc)
    with pytest.raises(ConfigError) as e:
        load_matters(path)
    assert str(path) in str(e.value) and expected in str(e.value)


def test_every_problem_is_one_line(tmp_path: Path) -> None:
    doc = _doc()
    doc["items"][0]["table"] = "no_table"
    doc["items"][1]["fields"] = ["colour"]
    doc["matters"][0]["departments"] = ["gjj", "nowhere"]
    problems = catalogue_problems(read_matters(_write(tmp_path, doc)), DEPARTMENTS)
    assert len(problems) == 3
    assert any("unknown department code 'nowhere'" in p for p in problems)
    # without the departments, the department is not checked
    assert len(catalogue_problems(read_matters(_write(tmp_path, doc)))) == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("items: []\nmatters: []\n", "field items"),
        ("items:\n  - id: a\n    id: b\n", "repeat"),
        ("- just a list\n", "expected a mapping"),
    ],
)
def test_malformed_files_are_named(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "matters.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        read_matters(path)
    assert str(path) in str(e.value) and expected in str(e.value)


def test_repeated_and_unknown_entries_are_refused(tmp_path: Path) -> None:
    doc = _doc()
    doc["matters"].append(dict(doc["matters"][0]))
    with pytest.raises(ConfigError, match="gjj_withdrawal declared more than once"):
        read_matters(_write(tmp_path, doc))
    doc = _doc()
    doc["items"][0]["colour"] = "red"
    with pytest.raises(ConfigError, match=r"items\[0\]\.colour: Extra inputs"):
        read_matters(_write(tmp_path, doc))


def test_a_case_number_holding_an_id_or_mobile_number_is_told_apart() -> None:
    from datacloud.matters import case_no_holds_personal_data
    from transforms.id_number import id_check_char

    valid = "11010519491231002" + id_check_char("11010519491231002")
    for held in (
        valid,
        valid.lower(),
        f"GJJ-{valid}",
        f"{valid}-2",
        "13812345678",
        "A-19912345678",
    ):
        assert case_no_holds_personal_data(held), held
    # case numbers: long digit runs that are no valid ID number, no mobile standing alone
    for case_no in ("GJJ-2026-0001", "BDC/2026/77", "330100202612050001", "2026120513812345678"):
        assert not case_no_holds_personal_data(case_no), case_no

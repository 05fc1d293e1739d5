"""Table kinds: the built-in ones, a new one added by configuration (its raw suite
``expectations/raw_<kind>.json``), and the error for a kind nobody configured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers import department_spec

from datacloud import canonical, quality_suites
from datacloud.config import ConfigError, load_department

BUILT_IN = {
    "person": ("id_number", "name"),
    "enterprise": ("credit_code", "name"),
    "enterprise_role": ("credit_code", "id_number", "role"),
    "property_right": ("certificate_no", "owner_id_number"),
    "housing_fund_account": ("account_no", "id_number"),
    "marriage": ("registration_id", "husband_id_number", "wife_id_number"),
    "enterprise_code_map": ("reg_number", "credit_code"),
}


def _department(tmp_path: Path, kind: str) -> Path:
    spec = department_spec(
        kind=kind,
        columns={
            "id_number": {"source": "sfzh", "normalise": "id_number", "required": True},
            "insured_since": {"source": "cbrq", "normalise": "date"},
        },
    )
    path = tmp_path / "rs.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True), "utf-8")
    return path


def test_the_built_in_kinds_and_their_columns_are_unchanged() -> None:
    assert canonical.REQUIRED_COLUMNS == BUILT_IN
    assert canonical.kinds() == BUILT_IN  # the shipped suites add no kind


def test_an_unknown_kind_names_file_field_the_kinds_and_how_to_add_one(tmp_path: Path) -> None:
    path = _department(tmp_path, "social_insurance")
    with pytest.raises(ConfigError) as e:
        load_department(path)
    text = str(e.value)
    assert str(path) in text and "field tables[0] (cbry).kind" in text
    assert "unknown kind 'social_insurance'" in text
    for kind in BUILT_IN:
        assert kind in text
    assert "expectations/raw_social_insurance.json" in text and "docs/configuration.md" in text


def test_a_kind_is_added_by_its_raw_suite(tmp_path: Path, social_insurance_suite: Path) -> None:
    assert canonical.kinds()["social_insurance"] == ("id_number",)
    dept = load_department(_department(tmp_path, "social_insurance"))
    (table,) = dept.tables
    assert table.kind == "social_insurance"
    assert table.business_key == ["id_number"]


def test_a_suite_without_its_required_columns_check_is_an_error(
    social_insurance_suite: Path,
) -> None:
    data = json.loads(
        (social_insurance_suite / "raw_social_insurance.json").read_text(encoding="utf-8")
    )
    data["expectations"] = [e for e in data["expectations"] if e["meta"]["check"] == "volume"]
    (social_insurance_suite / "raw_social_insurance.json").write_text(
        json.dumps(data), encoding="utf-8"
    )
    quality_suites._load.cache_clear()
    with pytest.raises(ValueError, match=r"raw_social_insurance\.json.*required_columns"):
        canonical.kinds()

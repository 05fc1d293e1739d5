"""dags/curation.yaml: per-field survivorship of persons and enterprises, and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from datacloud.config import ConfigError, Department, load_departments
from datacloud.curation_config import (
    ENTERPRISE_FIELDS,
    CurationConfig,
    load_curation_config,
)

DEPTS = load_departments()


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "curation.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_file_names_a_rule_for_every_enterprise_field() -> None:
    config = load_curation_config()
    assert set(config.survivorship.enterprise) == set(ENTERPRISE_FIELDS)
    rules = config.enterprise_rules(DEPTS)
    assert list(rules) == list(ENTERPRISE_FIELDS)
    assert rules["legal_representative"] == ["scjg"] and rules["address"] == []


def test_an_unknown_enterprise_field_names_file_and_field(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "survivorship:\n  enterprise:\n    nmae: {authority: [scjg]}\n")
    with pytest.raises(ConfigError) as e:
        load_curation_config(path)
    message = str(e.value)
    assert message.startswith(f"{path}: field survivorship.enterprise: ")
    assert "unknown golden enterprise fields ['nmae']" in message and "'name'" in message


def test_the_old_whole_record_rule_is_refused_with_what_to_write(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "survivorship:\n  enterprise: {authority: [scjg]}\n")
    with pytest.raises(
        ConfigError, match=r"survivorship\.enterprise: enterprises survive per field"
    ):
        load_curation_config(path)


def test_a_bad_rule_of_a_known_field_names_it(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "survivorship:\n  enterprise:\n    status: {authority: []}\n")
    with pytest.raises(ConfigError, match=r"field survivorship\.enterprise\.status"):
        load_curation_config(path)


def test_a_department_contradicting_an_enterprise_rule_is_an_error() -> None:
    config = CurationConfig.model_validate({"survivorship": {"enterprise": {"status": "latest"}}})
    with pytest.raises(ConfigError) as e:
        config.enterprise_rules(DEPTS)
    assert "field survivorship.enterprise.status: departments ['scjg']" in str(e.value)
    assert "'enterprise_status'" in str(e.value)
    with pytest.raises(ConfigError):
        config.fingerprint(DEPTS)  # the run refuses to start, it does not guess


def test_a_field_left_out_takes_the_departments_declaring_it() -> None:
    rules = CurationConfig().enterprise_rules(DEPTS)  # an empty curation.yaml
    assert rules["name"] == rules["status"] == rules["legal_representative"] == ["scjg"]
    assert rules["address"] == rules["reg_number"] == []  # nobody declares it: latest
    other = Department.model_validate(
        {**DEPTS[0].model_dump(), "authority": ["legal_representative"]}
    )
    both = CurationConfig().enterprise_rules([other, *DEPTS[1:]])
    assert both["legal_representative"] == [other.code, "scjg"]  # in file-name order


def test_a_changed_enterprise_rule_changes_the_fingerprint() -> None:
    shipped = load_curation_config()
    enterprise = {**shipped.survivorship.enterprise, "address": {"authority": ["scjg"]}}
    changed = CurationConfig.model_validate(
        {"survivorship": {"person": shipped.survivorship.person, "enterprise": enterprise}}
    )
    assert changed.fingerprint(DEPTS) != shipped.fingerprint(DEPTS)
    assert shipped.fingerprint(DEPTS) == load_curation_config().fingerprint(DEPTS)

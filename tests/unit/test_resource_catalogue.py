"""The resource catalogue (资源目录) without a night: Chinese names for every registry column,
the sharing config of dags/curation.yaml and its errors, the pure build from given facts, the
JSON Schema kept in datacloud/schemas and the page's self-containment.

No Delta table here: tests/component/test_catalogue_nights.py holds the catalogue against
real nights, tests/integration/test_catalogue_browser.py opens the page in Chromium.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import jsonschema
import pytest

from datacloud.business_day import SHANGHAI
from datacloud.config import ConfigError, load_departments
from datacloud.curated_tables import TABLES, Column, Field
from datacloud.curation_config import CurationConfig, load_curation_config
from datacloud.matters import load_matters
from datacloud.resource_catalogue import (
    COLUMN_ZH,
    CatalogueError,
    PublishFacts,
    build,
    column_names_zh,
    gate_facts,
    json_schema,
)
from datacloud.resource_catalogue_html import render

DEPTS = load_departments()
SCHEMA = Path(__file__).parents[2] / "datacloud" / "schemas" / "catalogue.schema.json"
EXE = str(Path(sys.executable).with_name("datacloud"))
NOW = datetime(2026, 11, 21, 5, 40, tzinfo=SHANGHAI)


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "curation.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("name", list(TABLES))
def test_every_published_column_has_a_chinese_name(name: str) -> None:
    table = TABLES[name]
    names = column_names_zh(table)
    assert list(names) == list(table.published())
    assert all(v and not v.isascii() for v in names.values()), names
    # nothing named that the registry no longer has (a renamed column is renamed here too)
    known = {*table.published(), *(f.name for f in table.fields)}
    assert set(COLUMN_ZH[name]) <= known, set(COLUMN_ZH[name]) - known


def test_a_registry_column_without_a_chinese_name_fails_loudly() -> None:
    relation = dataclasses.replace(
        TABLES["marriage"], columns=(*TABLES["marriage"].columns, Column("witness_name"))
    )
    with pytest.raises(CatalogueError, match=r"'marriage': no Chinese name for \['witness_name'\]"):
        column_names_zh(relation)
    golden = dataclasses.replace(
        TABLES["person"], fields=(*TABLES["person"].fields, Field("nickname"))
    )
    with pytest.raises(CatalogueError, match=r"'person': no Chinese name for \['nickname'\]"):
        build(
            DEPTS,
            load_curation_config(),
            None,
            {},
            {},
            business_date=None,
            generated_at=NOW,
            tables=[golden],
        )


def test_the_shipped_config_gives_every_table_a_sharing_type() -> None:
    config = load_curation_config()
    assert set(config.catalogue) == set(TABLES)
    assert config.sharing("consistency").sharing == "不予共享"


def test_an_unlisted_table_is_not_shared() -> None:
    config = CurationConfig.model_validate({"catalogue": {"person": {"sharing": "无条件共享"}}})
    assert config.sharing("person").sharing == "无条件共享"
    assert config.sharing("marriage").sharing == "不予共享"
    catalogue = build(DEPTS, config, None, {}, {}, business_date=None, generated_at=NOW)
    marriage = next(t for t in catalogue.tables if t.name == "marriage")
    assert (marriage.sharing, marriage.sharing_configured) == ("不予共享", False)


def test_a_sharing_type_for_an_unknown_table_names_file_and_field(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "catalogue:\n  persons: {sharing: 无条件共享}\n")
    with pytest.raises(ConfigError) as e:
        load_curation_config(path)
    message = str(e.value)
    assert message.startswith(f"{path}: field catalogue: ")
    assert "unknown curated tables ['persons']" in message and "'person'" in message


def test_an_unknown_sharing_type_or_cycle_is_refused(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "catalogue:\n  person: {sharing: 随便共享}\n")
    with pytest.raises(ConfigError, match=r"field catalogue\.person\.sharing"):
        load_curation_config(path)
    path = _yaml(tmp_path, "catalogue:\n  person: {sharing: 不予共享, cycle: 每小时}\n")
    with pytest.raises(ConfigError, match=r"field catalogue\.person\.cycle"):
        load_curation_config(path)


def test_validate_names_an_unknown_table_of_the_sharing_config(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "catalogue:\n  persons: {sharing: 无条件共享}\n")
    out = subprocess.run(
        [EXE, "validate"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DATACLOUD_CURATION_CONFIG": str(path)},
    )
    assert out.returncode == 2, out.stdout
    assert f"{path}: field catalogue: unknown curated tables ['persons']" in out.stderr
    assert "Traceback" not in out.stderr


def _facts() -> dict[str, PublishFacts | None]:
    return {
        "person": PublishFacts(
            7,
            NOW,
            "2026-11-20",
            298,
            {**dict.fromkeys(TABLES["person"].published(), "string"), "_row_hash": "long"},
        )
    }


def test_the_build_takes_facts_gates_matters_and_authority() -> None:
    gates = {
        "person": gate_facts(
            {"suite": "curated_person", "success": True, "evaluated": 4, "failed_expectations": []}
        ),
        "enterprise": gate_facts(
            {
                "suite": "curated_enterprise",
                "success": False,
                "evaluated": 5,
                "failed_expectations": [{"severity": "warning"}],
            }
        ),
        "marriage": gate_facts(
            {
                "suite": "curated_marriage",
                "success": False,
                "evaluated": 6,
                "failed_expectations": [{"severity": "warning"}, {"severity": "critical"}],
            }
        ),
    }
    catalogue = build(
        DEPTS,
        load_curation_config(),
        load_matters(),
        _facts(),
        gates,
        business_date="2026-11-20",
        generated_at=NOW,
    )
    tables = {t.name: t for t in catalogue.tables}
    person = tables["person"]
    assert (person.version, person.rows, person.business_date) == (7, 298, "2026-11-20")
    assert person.published_at == "2026-11-21T05:40:00+08:00"
    assert [t.quality_gate.status for t in catalogue.tables] == [
        "passed",
        "warning",
        "not_checked",
        "not_checked",
        "failed",
        "not_checked",
        "no_suite",
    ]
    assert tables["property_right"].published is False and tables["property_right"].rows is None
    fields = {f.name: f for f in person.fields}
    assert fields["name"].authority == ["gongan"] and "gongan" in fields["name"].sources
    assert fields["phone"].authority == [] and "最新" in fields["phone"].rule_zh
    assert fields["marital_status"].authority == ["mz"]
    assert fields["name_source"].name_zh == "姓名来源部门"
    # which matters may read a field: the matters catalogue's own answer
    matters = load_matters()
    for t in catalogue.tables:
        for f in t.fields:
            expected = sorted(m.code for m in matters.matters_reading(t.name, f.name))
            assert [m.code for m in f.matters] == expected, (t.name, f.name)
    assert any(f.matters for t in catalogue.tables for f in t.fields)
    enterprise = {f.name: f for f in tables["enterprise"].fields}
    assert enterprise["legal_representative_source"].name_zh == "法定代表人来源部门"
    assert tables["enterprise_role"].authority == ["scjg"]


def test_catalogue_json_follows_the_schema_kept_in_the_repository() -> None:
    kept = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert kept == json.loads(json.dumps(json_schema())), "regenerate the schema file"
    catalogue = build(
        DEPTS,
        load_curation_config(),
        load_matters(),
        _facts(),
        {},
        business_date=None,
        generated_at=NOW,
    )
    jsonschema.validate(json.loads(catalogue.model_dump_json()), kept)


def test_the_page_loads_nothing_from_outside() -> None:
    catalogue = build(
        DEPTS,
        load_curation_config(),
        load_matters(),
        _facts(),
        {},
        business_date=None,
        generated_at=NOW,
    )
    html = render(catalogue)
    assert html.startswith("<!DOCTYPE html>") and 'lang="zh-CN"' in html
    for needle in ("http://", "https://", "<script", '<link rel="stylesheet', "@import", "url("):
        assert needle not in html, needle
    assert "资源目录" in html and "尚未发布" in html

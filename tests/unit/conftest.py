"""Fixtures shared by the report suites (test_report, test_report_truth)."""

from __future__ import annotations

import json

import jsonschema
import pytest

from datacloud.config import Department, load_department
from datacloud.paths import DEPARTMENTS_DIR
from datacloud.report import SCHEMA_PATH


@pytest.fixture
def scjg() -> Department:
    """scjg with its two enterprise tables (its crosswalk table qydmdz left out)."""
    dept = load_department(DEPARTMENTS_DIR / "scjg.yaml")
    return dept.model_copy(update={"tables": [dept.table("qyjbxx"), dept.table("qygd")]})


@pytest.fixture(scope="module")
def schema() -> jsonschema.protocols.Validator:
    """The report's JSON schema (itself checked), with format checks."""
    data = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(data)
    return jsonschema.Draft202012Validator(
        data, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )

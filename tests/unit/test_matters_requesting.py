"""Requesting-only departments (税务, 人社): declared in dags/matters.yaml, not in
dags/departments/, accepted as a matter's department by the checks and by `datacloud validate`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from datacloud.matters import catalogue_problems, load_matters, matters_path, read_matters

PROVIDING = {p.stem for p in (matters_path().parent / "departments").glob("*.yaml")}


def _doc() -> dict[str, Any]:
    return yaml.safe_load(matters_path().read_text(encoding="utf-8"))


def _write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "matters.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def test_the_shipped_catalogue_declares_tax_and_hr_as_requesting_only() -> None:
    cat = load_matters()
    assert {"tax", "rs"} <= set(cat.requesting_departments)
    assert not ({"tax", "rs"} & PROVIDING)  # neither has a department YAML
    assert cat.department_names()["tax"] == "税务局"
    assert catalogue_problems(cat, PROVIDING) == []


def test_a_requesting_only_department_must_be_declared(tmp_path: Path) -> None:
    doc = _doc()
    doc["matters"][0]["departments"] = ["gjj", "rs"]
    assert catalogue_problems(read_matters(_write(tmp_path, doc)), PROVIDING) == []
    doc["requesting_departments"] = [d for d in doc["requesting_departments"] if d["code"] != "rs"]
    problems = catalogue_problems(read_matters(_write(tmp_path, doc)), PROVIDING)
    assert len(problems) == 1 and "unknown department code 'rs'" in problems[0]
    assert "requesting_departments" in problems[0]


def test_a_requesting_department_declared_twice_is_refused(tmp_path: Path) -> None:
    from datacloud.config import ConfigError

    doc = _doc()
    doc["requesting_departments"].append({"code": "tax", "name_zh": "税务"})
    try:
        read_matters(_write(tmp_path, doc))
    except ConfigError as e:
        assert "declared more than once" in str(e)
    else:
        raise AssertionError("a repeated requesting department was accepted")


def test_validate_accepts_a_matter_of_a_requesting_only_department(tmp_path: Path) -> None:
    """`datacloud validate` in a subprocess: tax handles a matter without a department YAML."""
    doc = _doc()
    doc["matters"][0]["departments"] = ["gjj", "tax", "rs"]
    path = _write(tmp_path, doc)
    env = {**os.environ, "DATACLOUD_MATTERS": str(path), "DATACLOUD_ROOT": str(tmp_path / "r")}
    cmd = [str(Path(sys.executable).parent / "datacloud"), "validate"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "ok matters: " in out.stdout
    doc.pop("requesting_departments")
    _write(tmp_path, doc)
    bad = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    assert "unknown department code 'tax'" in bad.stderr


def _keys_file(tmp_path: Path, department: str) -> Path:
    from datacloud.lookup.auth import hash_key

    path = tmp_path / "keys.yaml"
    entry = {
        "holder": "窗口 1",
        "role": "clerk",
        "department": department,
        "matters": ["gjj_withdrawal"],
        "sha256": hash_key("a-real-key-for-this-test-0123456789"),
    }
    path.write_text(yaml.safe_dump({"keys": [entry]}, allow_unicode=True), encoding="utf-8")
    return path


def test_a_key_of_an_undeclared_department_is_refused_and_a_requesting_one_accepted(
    tmp_path: Path,
) -> None:
    import pytest

    from datacloud.lookup.auth import ApiKeys, KeysFileError

    cat = load_matters()
    known = sorted(PROVIDING | set(cat.requesting_departments))
    ApiKeys.from_file(_keys_file(tmp_path, "tax"), list(cat.matters), known)
    with pytest.raises(KeysFileError, match=r"keys\[0\] \(窗口 1\): unknown department 'txa'"):
        ApiKeys.from_file(_keys_file(tmp_path, "txa"), list(cat.matters), known)


def test_a_requesting_only_department_onboarded_as_a_provider_stays_valid(tmp_path: Path) -> None:
    # `datacloud validate` after onboarding 人社 `rs` with a department YAML (the walk in
    # docs/configuration.md): the matters it handles must not break
    doc = _doc()
    doc["matters"][0]["departments"] = ["gjj", "rs"]
    assert catalogue_problems(read_matters(_write(tmp_path, doc)), PROVIDING | {"rs"}) == []

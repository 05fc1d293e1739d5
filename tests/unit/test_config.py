"""Department YAML: the shipped ones validate; bad ones fail naming file, field and expectation."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from datacloud.canonical import ADAPTER_NAMES, NORMALISER_NAMES
from datacloud.config import ConfigError, check_sql, load_department, load_departments
from datacloud.paths import DEPARTMENTS_DIR


def test_shipped_departments_validate_in_stable_order() -> None:
    depts = load_departments(DEPARTMENTS_DIR)
    assert [d.code for d in depts] == ["bdc", "gjj", "gongan", "mz", "scjg"]
    assert all(check_sql(d) == [] for d in depts)


def _write(tmp: Path, code: str, data: dict) -> Path:
    p = tmp / f"{code}.yaml"
    p.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return p


def _gongan() -> dict:
    return yaml.safe_load((DEPARTMENTS_DIR / "gongan.yaml").read_text(encoding="utf-8"))


def test_unknown_normaliser_names_file_and_field(tmp_path: Path) -> None:
    data = _gongan()
    data["tables"][0]["columns"]["sex"]["normalise"] = "gender_magic"
    p = _write(tmp_path, "gongan", data)
    with pytest.raises(ConfigError) as e:
        load_department(p)
    msg = str(e.value)
    assert str(p) in msg
    assert "tables[0] (czrk).columns.sex.normalise" in msg
    assert "gender_magic" in msg and "id_number" in msg  # names the bad value and the choices


def test_missing_required_canonical_column(tmp_path: Path) -> None:
    data = _gongan()
    del data["tables"][0]["columns"]["id_number"]
    p = _write(tmp_path, "gongan", data)
    with pytest.raises(ConfigError, match=r"tables\[0\] \(czrk\).*missing \['id_number'\]"):
        load_department(p)


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("tables", 0, "name"), "czrk; DROP TABLE czrk"),
        (("tables", 0, "columns", "name", "source"), 'xm" OR 1=1 --'),
        (("tables", 0, "primary_key"), ["rkbh`"]),
        (("connection_id",), "../etc/passwd"),
    ],
)
def test_injection_in_names_is_rejected_at_load(
    tmp_path: Path, where: tuple, value: object
) -> None:
    data = _gongan()
    node = data
    for k in where[:-1]:
        node = node[k]
    node[where[-1]] = value
    with pytest.raises(ConfigError, match="should match pattern"):
        load_department(_write(tmp_path, "gongan", data))


def test_code_must_match_file_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must equal the file name"):
        load_department(_write(tmp_path, "gongan2", _gongan()))


def test_unknown_key_and_bad_yaml(tmp_path: Path) -> None:
    data = _gongan()
    data["tables"][0]["moed"] = "full"
    with pytest.raises(ConfigError, match=r"tables\[0\] \(czrk\)\.moed: Extra inputs"):
        load_department(_write(tmp_path, "gongan", data))
    bad = tmp_path / "broken.yaml"
    bad.write_text("code: broken\ntables: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_department(bad)


def test_incremental_needs_cursor(tmp_path: Path) -> None:
    data = _gongan()
    data["tables"][0]["mode"] = "incremental"
    del data["tables"][0]["cursor"]
    with pytest.raises(ConfigError, match="needs a 'cursor'"):
        load_department(_write(tmp_path, "gongan", data))


def test_sixth_department_is_a_yaml_copy(tmp_path: Path) -> None:
    for p in DEPARTMENTS_DIR.glob("*.yaml"):
        shutil.copy(p, tmp_path)
    data = _gongan()
    data["code"] = "gongan_hz"
    data["connection_id"] = "dept_gongan_hz"
    _write(tmp_path, "gongan_hz", data)
    assert len(load_departments(tmp_path)) == 6


def test_normaliser_and_adapter_names_match_the_registries() -> None:
    from transforms.adapters import ADAPTERS
    from transforms.registry import NORMALISERS

    assert set(NORMALISERS) | {"keep"} == set(NORMALISER_NAMES)
    assert set(ADAPTERS) == set(ADAPTER_NAMES)


def test_unknown_adapter_names_file_and_field(tmp_path: Path) -> None:
    data = _gongan()
    data["tables"][0]["columns"]["name"]["adapters"] = ["decode_gbk", "from_big5"]
    with pytest.raises(
        ConfigError, match=r"columns\.name\.adapters: unknown adapter\(s\) \['from_big5'\]"
    ):
        load_department(_write(tmp_path, "gongan", data))

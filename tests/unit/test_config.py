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


# --- the bytes of a configuration file -----------------------------------------------------------


def _gongan_text() -> str:
    return (DEPARTMENTS_DIR / "gongan.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("encode", "message"),
    [
        (lambda t: t.encode("utf-16"), "is UTF-16 text; save it as UTF-8"),
        (lambda t: t.encode("utf-16-le"), "holds NUL bytes"),
        (lambda t: t.encode("utf-32"), "is UTF-32 text"),
        (lambda t: t.encode("gb18030"), "not UTF-8 text (byte 0x"),
        (lambda t: bytes(range(256)) * 4, "holds NUL bytes"),
        (lambda t: b"code: gongan\nname: \x07\n", "line 2: character #x0007 is not allowed"),
    ],
    ids=["utf16-bom", "utf16-no-bom", "utf32", "gb18030", "binary", "control-char"],
)
def test_a_yaml_that_is_not_utf8_text_is_one_config_error_naming_the_file(
    tmp_path: Path, encode, message: str
) -> None:
    p = tmp_path / "gongan.yaml"
    p.write_bytes(encode(_gongan_text()))
    with pytest.raises(ConfigError) as e:
        load_department(p)
    assert str(e.value).startswith(f"{p}: ") and message in str(e.value)
    assert "\n" not in str(e.value)


def test_a_utf8_byte_order_mark_is_fine(tmp_path: Path) -> None:
    p = tmp_path / "gongan.yaml"
    p.write_bytes(_gongan_text().encode("utf-8-sig"))
    assert load_department(p).code == "gongan"


@pytest.mark.parametrize(
    ("line", "repeated", "key"),
    [
        ("    mode: full\n", "    mode: full\n    mode: incremental\n", "mode"),
        ("name: 公安厅（户籍）\n", "name: 公安厅（户籍）\nname: 民政厅\n", "name"),
        (
            "connection_id: dept_gongan\n",
            "connection_id: a\nconnection_id: dept_gongan\n",
            "connection_id",
        ),
    ],
    ids=["table-mode", "name", "connection_id"],
)
def test_a_repeated_key_is_refused_not_silently_the_last(
    tmp_path: Path, line: str, repeated: str, key: str
) -> None:
    """PyYAML keeps the last of repeated keys without a word; the loader refuses them."""
    text = _gongan_text()
    assert line in text
    p = tmp_path / "gongan.yaml"
    p.write_text(text.replace(line, repeated, 1), encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_department(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}: not valid YAML: line ")
    assert f"repeated key {key!r} (first on line " in msg and "\n" not in msg


def test_merge_keys_may_still_override(tmp_path: Path) -> None:
    from datacloud.config import read_yaml

    p = tmp_path / "m.yaml"
    p.write_text("base: &b {a: 1, b: 2}\nx:\n  <<: *b\n  a: 3\n", encoding="utf-8")
    assert read_yaml(p)["x"] == {"a": 3, "b": 2}


def test_the_curation_yaml_refuses_repeated_keys_too(tmp_path: Path) -> None:
    from datacloud.curation_config import load_curation_config

    p = tmp_path / "curation.yaml"
    p.write_text("survivorship: {}\nsurvivorship: {}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"line 2, column 1: repeated key 'survivorship'"):
        load_curation_config(p)

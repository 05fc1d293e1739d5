"""Quality gates on hand-built Arrow tables: suites, profiles, thresholds, curated checks.

Great Expectations runs for real (a file context under a temporary storage root).
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from datacloud import quality_suites as suites
from datacloud import runstate
from datacloud.config import ConfigError, QualitySpec, load_department
from datacloud.paths import DEPARTMENTS_DIR, EXPECTATIONS_DIR, StorageRoot
from datacloud.quality import check_curated, prepare_raw_suite, volume_bounds
from datacloud.quality_profile import curated_profile, key_codes, raw_profile
from transforms.id_number import id_check_char

DS = date(2026, 11, 20)


def _id(first17: str) -> str:
    return first17 + id_check_char(first17)


A, B, C = _id("33010619800101001"), _id("33010619900202002"), _id("33010619751231003")
WRONG = A[:-1] + ("0" if A[-1] != "0" else "1")


def _gongan() -> dict:
    return yaml.safe_load((DEPARTMENTS_DIR / "gongan.yaml").read_text(encoding="utf-8"))


def _czrk():  # type: ignore[no-untyped-def]
    return load_department(DEPARTMENTS_DIR / "gongan.yaml").table("czrk")


@pytest.mark.parametrize("path", sorted(EXPECTATIONS_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_every_suite_loads_into_ge_whole(path: Path) -> None:
    import great_expectations as gx

    data = suites.load_suite(path.stem)
    suite = gx.ExpectationSuite(name=data["name"], expectations=data["expectations"])
    assert len(suite.expectations) == len(data["expectations"]) > 0
    assert len(set(suites.checks(data))) == len(data["expectations"])  # check names are unique


def test_raw_suites_cover_every_kind_and_its_required_columns() -> None:
    from datacloud.canonical import KINDS, REQUIRED_COLUMNS

    for kind in KINDS:
        data = suites.load_suite(suites.raw_suite_name(kind))
        checks = suites.checks(data)
        assert "volume" in checks and "required_columns" in checks
        for column in REQUIRED_COLUMNS[kind]:
            if column == "role":  # a constant in every shipped YAML
                continue
            assert {f"{column}.present", f"{column}.valid", f"{column}.valid_warn"} <= set(checks)


def test_raw_profile_holds_verdicts_not_values() -> None:
    raw = pa.table(
        {
            "rkbh": ["1", "2", "3", "4"],
            "gmsfhm": [A, WRONG, None, "  "],
            "xm": ["张三", "李四", "王五", None],
        }
    )
    issues = pa.table(
        {
            "source_pk": ["2", "3", "4", "4"],
            "field": ["id_number", "id_number", "id_number", "name"],
            "rule_code": ["ID_CHECK_DIGIT", "REQUIRED_MISSING", "REQUIRED_MISSING", "X"],
            "severity": ["reject", "reject", "reject", "reject"],
        }
    )
    pk = pa.array(["1", "2", "3", "4"])
    profile = raw_profile(raw, _czrk(), issues, pk, ["id_number", "name", "ethnicity_x"])
    assert profile.column_names == ["id_number", "name"]
    assert profile["id_number"].to_pylist() == ["valid", "invalid", None, None]
    assert profile["name"].to_pylist() == ["valid", "valid", "valid", None]
    assert A not in json.dumps(profile.to_pylist())


def test_key_codes_are_integers_with_nulls_kept_apart() -> None:
    t = pa.table({"a": ["x", "x", None, None, "y"], "b": ["1", "1", "1", None, None]})
    codes = key_codes(t, ["a", "b"]).to_pylist()
    assert codes[0] == codes[1] and codes[2] is not None and codes[3] is None
    assert len({codes[0], codes[2], codes[4]}) == 3


def test_volume_band_from_the_median() -> None:
    spec = QualitySpec()
    assert volume_bounds([], spec) is None
    assert volume_bounds([1000, 1100, 900, 5000], spec) == (525, 3150)


def test_prepare_raw_suite_skips_demotes_and_overrides(tmp_path: Path) -> None:
    table = _czrk()
    suite = suites.load_suite("raw_person")
    tonight, params, notes = prepare_raw_suite(suite, table, ["id_number", "name"], 50, None)
    checks = {e["meta"]["check"]: e for e in tonight["expectations"]}
    assert "volume" not in checks and any("no successful earlier night" in n for n in notes)
    assert "birth_date.valid_warn" not in checks  # birth_date not in the profile
    assert checks["id_number.valid"]["severity"] == "warning"  # 50 rows < 100
    assert params["id_number__min_valid"] == 0.9 and params["name__warn_valid"] == 0.995

    data = _gongan()
    data["tables"][0]["quality"] = {
        "min_rows_for_ratios": 10,
        "columns": {"id_number": {"min_valid": 0.7}},
        "severity": {"volume": "warning"},
    }
    spec = load_department(_write(data, tmp_path)).table("czrk")
    tonight, params, _ = prepare_raw_suite(
        suites.load_suite("raw_person"), spec, ["id_number", "name"], 50, (10, 90)
    )
    checks = {e["meta"]["check"]: e for e in tonight["expectations"]}
    assert checks["volume"]["severity"] == "warning"
    assert checks["id_number.valid"]["severity"] == "critical"
    assert params["id_number__min_valid"] == 0.7 and params["name__min_valid"] == 0.9
    assert (params["volume_min"], params["volume_max"]) == (10, 90)


def _write(data: dict, folder: Path) -> Path:
    path = folder / "gongan.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("quality", "field", "words"),
    [
        ({"severity": {"id_numbr.valid": "warning"}}, "tables[0] (czrk)", "unknown check(s)"),
        ({"min_valid": 0.99, "warn_valid": 0.9}, "quality", "must not exceed"),
        ({"columns": {"nope": {"min_valid": 0.5}}}, "tables[0] (czrk)", "quality.columns"),
        ({"volume": {"min_ratio": 2}}, "quality.volume.min_ratio", "less than or equal"),
        ({"min_present": 1.5}, "quality.min_present", "less than or equal"),
    ],
)
def test_bad_quality_settings_name_file_and_field(
    quality: dict, field: str, words: str, tmp_path: Path
) -> None:
    data = _gongan()
    data["tables"][0]["quality"] = quality
    path = _write(data, tmp_path)
    with pytest.raises(ConfigError) as e:
        load_department(path)
    assert str(path) in str(e.value) and field in str(e.value) and words in str(e.value)


def test_history_counts_only_published_nights_newest_first(storage_root: StorageRoot) -> None:
    for day, status, rows in [(10, "success", 100), (12, "failed", 5), (13, "success", 130)]:
        runstate.update(storage_root, "gongan", date(2026, 11, day), "czrk", status=status)
        runstate.update(storage_root, "gongan", date(2026, 11, day), "czrk", rows_in=rows)
    runstate.update(storage_root, "gongan", DS, "czrk", status="success", rows_in=7)
    found = runstate.history(storage_root, "gongan", "czrk", DS, 7)
    assert found == [(date(2026, 11, 13), 130), (date(2026, 11, 10), 100)]
    assert runstate.history(storage_root, "gongan", "czrk", DS, 1) == [(date(2026, 11, 13), 130)]
    assert runstate.history(storage_root, "mz", "hydj", DS, 7) == []


def _persons(ids: list[str | None], births: list[date | None]) -> pa.Table:
    return pa.table({"id_number": pa.array(ids, pa.string()), "birth_date": births})


def test_curated_person_gate_passes_a_clean_table(storage_root: StorageRoot) -> None:
    persons = _persons([A, B, C], [date(1980, 1, 1), date(1990, 2, 2), date(1975, 12, 31)])
    result = check_curated(storage_root, "person", persons, DS, {})
    assert result.passed and result.success, result.entry()
    gate = json.loads(
        (storage_root.quality() / "curated" / DS.isoformat() / "gate.json").read_text()
    )
    assert gate["suites"][0]["suite"] == "curated_person" and gate["suites"][0]["success"]
    assert (storage_root.root / gate["suites"][0]["data_docs"]).is_file()


def test_curated_person_gate_stops_duplicates_and_bad_check_characters(
    storage_root: StorageRoot,
) -> None:
    persons = _persons(
        [A, A, WRONG, None],
        [date(1980, 1, 1), date(1980, 1, 1), date(1980, 1, 1), None],
    )
    result = check_curated(storage_root, "person", persons, DS, {})
    assert not result.passed
    failed = {o.check for o in result.critical_failures}
    assert failed == {"key.present", "key.unique", "id_number.valid"}
    message = result.message()
    assert "curated table person" in message and "suite curated_person" in message
    assert "expect_column_values_to_be_unique (key.unique) on column key" in message
    assert A not in message and WRONG not in message


def test_birth_dates_contradicting_the_id_number_are_findings(storage_root: StorageRoot) -> None:
    persons = _persons([A, B], [date(1980, 1, 1), date(1991, 2, 2)])
    result = check_curated(storage_root, "person", persons, DS, {})
    assert result.passed and not result.success
    (finding,) = result.failed
    assert finding.check == "birth_date.matches_id_number" and finding.severity == "warning"
    assert "50.00% invalid (1 of 2 values)" in finding.observed


def test_links_that_do_not_resolve_are_findings(storage_root: StorageRoot) -> None:
    persons = _persons([A, B], [date(1980, 1, 1), date(1990, 2, 2)])
    rights = pa.table({"certificate_no": ["浙(2026)1", "浙(2026)2"], "owner_id_number": [A, C]})
    result = check_curated(storage_root, "property_right", rights, DS, {"person": persons})
    assert result.passed
    assert [o.check for o in result.failed] == ["owner_id_number.resolves"]

    alone = check_curated(storage_root, "property_right", rights, DS, {})
    assert alone.success and alone.notes == ["owner_id_number__resolves: skipped, not available"]
    gate = json.loads(
        (storage_root.quality() / "curated" / DS.isoformat() / "gate.json").read_text()
    )
    assert [s["table"] for s in gate["suites"]] == ["property_right"]  # replaced, not added


def test_curated_profile_of_every_suite_builds_from_a_one_row_table() -> None:
    for path in sorted(EXPECTATIONS_DIR.glob("curated_*.json")):
        meta = suites.load_suite(path.stem)["meta"]["datacloud"]
        columns = {*meta["key"], *meta["identifiers"], *meta["links"], "birth_date"}
        table = pa.table({c: pa.array([None], pa.string()) for c in sorted(columns)})
        table = table.set_column(
            table.column_names.index("birth_date"), "birth_date", pa.array([None], pa.date32())
        )
        related = {
            "person": pa.table({"id_number": [A]}),
            "enterprise": pa.table({"credit_code": ["x"]}),
        }
        profile, missing = curated_profile(table, meta, related, DS)
        assert missing == [] or missing == ["birth_date__matches_id_number"][: len(missing)]
        wanted = set(suites.columns(suites.load_suite(path.stem)))
        assert wanted <= set(profile.column_names), path.stem


def test_gate_json_keeps_every_table_and_forgets_a_rerun_one(storage_root: StorageRoot) -> None:
    from datacloud.quality import GateResult, forget, record
    from datacloud.quality_ge import ExpectationOutcome

    bad = ExpectationOutcome(
        "volume",
        "expect_table_row_count_to_be_between",
        None,
        "critical",
        False,
        f"10 rows; expected 500..3000 ({A})",
    )
    for table, outcomes in (("qyjbxx", [bad]), ("qygd", [])):
        record(storage_root, DS, GateResult("raw_x", "scjg", table, 10, outcomes, None))
    gate = storage_root.quality() / "scjg" / DS.isoformat() / "gate.json"
    entries = json.loads(gate.read_text())["suites"]
    assert [e["table"] for e in entries] == ["qygd", "qyjbxx"]
    assert entries[1]["severity"] == "critical" and not entries[1]["success"]
    assert A not in gate.read_text()  # observed values are masked
    forget(storage_root, "scjg", DS, "qyjbxx")
    assert [e["table"] for e in json.loads(gate.read_text())["suites"]] == ["qygd"]
    forget(storage_root, "scjg", DS, "qygd")
    assert not gate.exists()

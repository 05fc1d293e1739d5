"""The raw quality gate in a real department night: sample gongan database (SQLite, written by
the sample generator), ``nightly.extract`` → ``stage`` → ``report``, real Delta tables and a
real Great Expectations file context. Nothing is mocked.
"""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from datacloud import nightly, runstate
from datacloud.delta import open_table
from datacloud.paths import StorageRoot
from datacloud.quality import QualityGateError
from datacloud.sample import DirtRates, generate
from datacloud.sample.generate import SampleData
from datacloud.sample.writer import write_sqlite
from transforms.id_number import is_valid_id_number

PERSONS = 1500
DS = date(2026, 11, 20)
SEED = 11


def _czrk(dirt: list[str], seed: int = SEED) -> pa.Table:
    return generate(PERSONS, seed, business_date=DS, dirt=DirtRates.parse(dirt)).tables["gongan"][
        "czrk"
    ]


def _write(folder: Path, czrk: pa.Table) -> str:
    sample = SampleData(tables={"gongan": {"czrk": czrk}}, ground_truth=pa.table({}))
    return f"sqlite:///{write_sqlite(sample, folder)['gongan']}"


def _night(url: str, ds: date, run: str) -> dict:
    nightly.extract(StorageRoot.from_env(), nightly.department("gongan"), "czrk", ds, url)
    return nightly.stage(StorageRoot.from_env(), nightly.department("gongan"), "czrk", ds, run)


def _gate(root: StorageRoot, ds: date) -> dict:
    (suite,) = json.loads((root.quality() / "gongan" / ds.isoformat() / "gate.json").read_text())[
        "suites"
    ]
    return suite


def _failed_checks(suite: dict) -> set[str]:
    return {f["check"] for f in suite["failed_expectations"]}


@pytest.fixture
def good_night(storage_root: StorageRoot, tmp_path: Path) -> dict:
    """Three published nights of the default sample (1% wrong check characters)."""
    czrk = _czrk([])
    url = _write(tmp_path / "good", czrk)
    for i in range(3):
        _night(url, DS - timedelta(days=3 - i), f"night-{i}")
        nightly.report(
            StorageRoot.from_env(), nightly.department("gongan"), DS - timedelta(days=3 - i)
        )
    return {"root": storage_root, "czrk": czrk, "tmp": tmp_path}


def _full_ids(text: str) -> set[str]:
    return {
        m
        for m in re.findall(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])", text)
        if is_valid_id_number(m.upper())
    }


def test_one_percent_bad_ids_publish_with_a_warning(good_night: dict) -> None:
    root: StorageRoot = good_night["root"]
    ds = DS - timedelta(days=1)  # the last good night
    suite = _gate(root, ds)
    assert suite["suite"] == "raw_person" and suite["table"] == "czrk"
    assert suite["success"] is False and suite["severity"] == "warning"
    assert "id_number.valid_warn" in _failed_checks(suite)
    assert not any(f["severity"] == "critical" for f in suite["failed_expectations"])
    assert runstate.read(root, "gongan", ds, "czrk")["status"] == "success"
    assert (root.root / suite["data_docs"]).is_file()
    report = json.loads((root.report_dir("gongan", ds) / "report.json").read_text())
    assert report["status"] == "success"
    assert report["quality"]["passed"] is False and report["quality"]["critical_failed"] is False


def test_thirty_percent_bad_ids_fail_the_gate_and_publish_nothing(good_night: dict) -> None:
    root: StorageRoot = good_night["root"]
    staged = open_table(root.staged("gongan", "czrk"))
    assert staged is not None
    version, before = staged.version(), staged.to_pyarrow_table()

    url = _write(good_night["tmp"] / "bad", _czrk(["id_wrong_check=0.3"], seed=SEED + 1))
    with pytest.raises(QualityGateError) as e:
        _night(url, DS, "bad-night")
    msg = str(e.value)
    assert "department gongan, table czrk" in msg and "suite raw_person" in msg
    assert "expect_column_values_to_be_in_set (id_number.valid) on column id_number" in msg
    assert re.search(r"observed 3\d\.\d\d% invalid", msg), msg
    assert not _full_ids(msg)

    after = open_table(root.staged("gongan", "czrk"))
    assert after is not None and after.version() == version
    assert after.to_pyarrow_table().equals(before)
    state = runstate.read(root, "gongan", DS, "czrk")
    assert state["status"] == "failed" and state["failure_kind"] == "quality_gate"
    rejected = root.rejected("gongan", "czrk", DS) / "rows.parquet"
    assert rejected.is_file()  # the department still gets its rows back

    suite = _gate(root, DS)
    assert suite["severity"] == "critical" and "id_number.valid" in _failed_checks(suite)
    out = nightly.report(StorageRoot.from_env(), nightly.department("gongan"), DS)
    assert out["status"] == "failed"
    report = json.loads((root.report_dir("gongan", DS) / "report.json").read_text())
    assert report["tables"][0]["failure_kind_zh"] == "质量检查未通过"
    assert report["quality"]["critical_failed"] is True
    page = (root.report_dir("gongan", DS) / "index.html").read_text()
    assert "质量检查未通过" in page
    assert "身份证号码 合规率" in page and "不合规 3" in page  # plain Chinese for the officer
    feedback = (root.report_dir("gongan", DS) / "rejected.csv").read_text(encoding="utf-8-sig")
    # the gated night's rejected rows still go back to the department (about 30% of 1,500)
    assert feedback.count("ID_CHECK_DIGIT") > 0.25 * PERSONS


def test_a_tenth_of_the_usual_rows_is_caught(good_night: dict) -> None:
    root: StorageRoot = good_night["root"]
    czrk: pa.Table = good_night["czrk"]
    url = _write(good_night["tmp"] / "thin", czrk.slice(0, czrk.num_rows // 10))
    with pytest.raises(QualityGateError, match=r"expect_table_row_count_to_be_between \(volume\)"):
        _night(url, DS, "thin-night")
    suite = _gate(root, DS)
    critical = {f["check"] for f in suite["failed_expectations"] if f["severity"] == "critical"}
    assert critical == {"volume"}
    assert any("median of 3 earlier nights" in n for n in suite["notes"])
    assert runstate.read(root, "gongan", DS, "czrk")["failure_kind"] == "quality_gate"


def test_rerunning_a_published_night_changes_nothing(good_night: dict) -> None:
    root: StorageRoot = good_night["root"]
    ds = DS - timedelta(days=1)
    gate = (root.quality() / "gongan" / ds.isoformat() / "gate.json").read_text()
    docs = sorted(p.relative_to(root.root) for p in (root.quality() / "data_docs").rglob("*.html"))
    staged = open_table(root.staged("gongan", "czrk"))
    assert staged is not None
    version = staged.version()
    nightly.stage(StorageRoot.from_env(), nightly.department("gongan"), "czrk", ds, "rerun")
    assert (root.quality() / "gongan" / ds.isoformat() / "gate.json").read_text() == gate
    after = sorted(p.relative_to(root.root) for p in (root.quality() / "data_docs").rglob("*.html"))
    assert after == docs
    reopened = open_table(root.staged("gongan", "czrk"))
    assert reopened is not None and reopened.version() == version


def test_no_full_id_number_in_ge_stores_or_data_docs(good_night: dict) -> None:
    root: StorageRoot = good_night["root"]
    url = _write(good_night["tmp"] / "bad", _czrk(["id_wrong_check=0.3"], seed=SEED + 1))
    with pytest.raises(QualityGateError):
        _night(url, DS, "bad-night")
    # the detector finds the ID numbers that are in the department's data
    ids = good_night["czrk"]["gmsfhm"].to_pylist()
    assert _full_ids("\n".join(i or "" for i in ids[:50]))
    files = [p for p in root.quality().rglob("*") if p.is_file()]
    assert any(p.suffix == ".html" for p in files) and any("validations" in p.parts for p in files)
    for path in files:
        if path.suffix in {".json", ".html", ".yml", ".yaml", ".txt", ".md"}:
            assert not _full_ids(path.read_text("utf-8", errors="replace")), path

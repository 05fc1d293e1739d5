"""The nightly demo end to end through Airflow itself (``airflow dags test``), on small data.

Real parts only: SQLite department databases written by the sample generator, Airflow on a
SQLite metadata database, real Delta tables. Checks the curated tables against the
generator's ground truth, the reports' reconciliation, a rerun and a failing source.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from datacloud.delta import read_table

pytestmark = pytest.mark.e2e

DS = date(2026, 11, 20)
PERSONS = 600
DEPTS = ["bdc", "gjj", "gongan", "mz", "scjg"]


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("demo-root")
    env = dict(os.environ, DATACLOUD_ROOT=str(root), COLUMNS="200")
    exe = Path(sys.executable).with_name("datacloud")
    proc = subprocess.run(
        [str(exe), "demo", "--persons", str(PERSONS), "--date", DS.isoformat()],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    return {"root": root, "proc": proc, "env": env}


def test_demo_exits_zero_and_prints_the_summary(night: dict) -> None:
    proc = night["proc"]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for dept in DEPTS:
        assert dept in proc.stdout
    assert "curated tables" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def _airflow_env(root) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The demo's embedded Airflow environment (its metadata DB and sample connections)."""
    from datacloud import demo

    return demo.airflow_env(root, demo.departments(), root.samples())


def _curated(root: Path, name: str) -> pa.Table:
    """A curated table as platform users read it (deletion vectors applied)."""
    return read_table(root / "curated" / name)


def test_curated_tables_open_with_deltalake_and_polars(night: dict) -> None:
    root = night["root"]
    for name, key in [
        ("person", "id_number"),
        ("enterprise", "credit_code"),
        ("property_right", "owner_id_number"),
    ]:
        t = _curated(root, name)
        assert key in t.column_names and t.num_rows > 0
        df = pl.read_delta(str(root / "curated" / name))
        assert df.height == t.num_rows
        scanned = pa.RecordBatchReader.from_stream(DeltaTable(str(root / "curated" / name)).scan())
        assert scanned.read_all().num_rows == t.num_rows


def test_curated_identifiers_are_all_valid_and_unique(night: dict) -> None:
    from transforms.credit_code import is_valid_credit_code
    from transforms.id_number import is_valid_id_number

    persons = _curated(night["root"], "person")
    ids = persons["id_number"].to_pylist()
    assert len(ids) == len(set(ids))
    assert all(is_valid_id_number(i) for i in ids)
    codes = [c for c in _curated(night["root"], "enterprise")["credit_code"].to_pylist() if c]
    assert codes and all(is_valid_credit_code(c) for c in codes)
    owners = _curated(night["root"], "property_right")["owner_id_number"].to_pylist()
    assert all(is_valid_id_number(i) for i in owners)


def test_fixable_dirt_is_repaired_to_the_ground_truth(night: dict) -> None:
    gt = pq.read_table(night["root"] / "samples" / "ground_truth.parquet")
    fixable = {"id_lowercase_x", "id_fullwidth", "whitespace", "id_legacy_15"}
    rows = gt.filter(
        pc.and_(pc.equal(gt["dept"], "gongan"), pc.equal(gt["column"], "gmsfhm"))
    ).to_pylist()
    rows = [r for r in rows if r["dirt"] in fixable]
    assert rows, "the sample should contain fixable ID-number dirt in gongan"
    curated = set(_curated(night["root"], "person")["id_number"].to_pylist())
    assert all(r["clean"] in curated for r in rows)


def test_no_property_check_has_both_answers(night: dict) -> None:
    persons = set(_curated(night["root"], "person")["id_number"].to_pylist())
    owners = set(_curated(night["root"], "property_right")["owner_id_number"].to_pylist())
    assert persons & owners and persons - owners


def test_reports_reconcile_with_the_source_databases(night: dict) -> None:
    import sqlite3

    root = night["root"]
    for dept in DEPTS:
        report = json.loads(
            (root / "reports" / dept / DS.isoformat() / "report.json").read_text("utf-8")
        )
        assert report["status"] == "success"
        db = sqlite3.connect(root / "samples" / f"{dept}.db")
        for t in report["tables"]:
            assert t["rows_in"] == t["rows_accepted"] + t["rows_rejected"] + t["rows_deduplicated"]
            (count,) = db.execute(f"SELECT COUNT(*) FROM {t['table']}").fetchone()
            assert t["rows_in"] == count
        db.close()
        csv = (root / "reports" / dept / DS.isoformat() / "rejected.csv").read_bytes()
        assert csv.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM
    gongan = json.loads(
        (root / "reports" / "gongan" / DS.isoformat() / "report.json").read_text("utf-8")
    )
    assert gongan["tables"][0]["rows_rejected"] > 0  # the sample's wrong check digits are caught
    assert gongan["tables"][0]["rows_deduplicated"] > 0


def test_reports_after_curation_show_the_nights_findings_and_gates(night: dict) -> None:
    """The curation DAG rewrites tonight's reports: bdc's shows its owners unknown to the
    register (the sample's ``unregistered_owner`` conflicts), gongan's its quality gate."""
    root = night["root"]
    folder = root / "reports" / "bdc" / DS.isoformat()
    bdc = json.loads((folder / "report.json").read_text("utf-8"))
    assert bdc["findings"]["available"] and bdc["findings"]["business_date"] == DS.isoformat()
    found = {f["finding"]: f["count"] for f in bdc["findings"]["by_finding"]}
    assert found.get("unregistered_owner", 0) > 0
    assert "不动产权利人在户籍登记中查无此人" in (folder / "index.html").read_text("utf-8")
    gongan = json.loads(
        (root / "reports" / "gongan" / DS.isoformat() / "report.json").read_text("utf-8")
    )
    assert gongan["quality"]["available"] and gongan["quality"]["suites"]
    docs = gongan["quality"]["suites"][0]["data_docs"]
    assert docs and (root / docs).is_file()


def test_rerunning_the_night_changes_no_content(night: dict) -> None:
    from datacloud import demo
    from datacloud.paths import StorageRoot

    root = StorageRoot(night["root"])
    before = {
        n: DeltaTable(str(night["root"] / "curated" / n)).version()
        for n in ("person", "enterprise", "property_right")
    }
    staged_before = DeltaTable(str(night["root"] / "staged" / "gongan" / "czrk")).to_pyarrow_table()
    for dag_id in ("dept_gongan", "curation"):
        assert demo.run_dag(dag_id, DS, _airflow_env(root), root).ok
    after = {n: DeltaTable(str(night["root"] / "curated" / n)).version() for n in before}
    assert after == before
    staged_after = DeltaTable(str(night["root"] / "staged" / "gongan" / "czrk")).to_pyarrow_table()
    drop = ["_run_id", "_loaded_at"]
    assert (
        staged_after.drop_columns(drop)
        .sort_by("_source_pk")
        .equals(staged_before.drop_columns(drop).sort_by("_source_pk"))
    )


def test_an_unreachable_source_fails_its_department_only_and_is_reported(night: dict) -> None:
    from datacloud import demo
    from datacloud.paths import StorageRoot

    root = StorageRoot(night["root"])
    env = _airflow_env(root)
    env["AIRFLOW_CONN_DEPT_MZ"] = json.dumps(
        {"conn_type": "postgres", "host": "127.0.0.1", "port": 1, "schema": "nope"}
    )
    other = date(2026, 11, 21)
    outcome = demo.run_dag("dept_mz", other, env, root)
    assert not outcome.ok
    report = json.loads(
        (night["root"] / "reports" / "mz" / other.isoformat() / "report.json").read_text("utf-8")
    )
    assert report["status"] == "failed" and report["status_zh"] == "失败"
    (table,) = report["tables"]
    assert table["failed_stage"] == "extract"
    assert "department mz, table hydj" in table["error"]
    # the curated tables of the good night are still readable
    assert _curated(night["root"], "person").num_rows > 0


def _full_id_numbers(text: str) -> set[str]:
    """18-character ID numbers with a valid check character found in the text."""
    import re

    from transforms.id_number import is_valid_id_number

    return {
        m
        for m in re.findall(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])", text)
        if is_valid_id_number(m.upper())
    }


def test_no_full_id_number_in_logs_xcom_or_report_json(night: dict) -> None:
    import sqlite3

    root: Path = night["root"]
    # sanity: the detector finds the IDs that are in the source data
    gongan = sqlite3.connect(root / "samples" / "gongan.db")
    sample_ids = "\n".join(r[0] or "" for r in gongan.execute("SELECT gmsfhm FROM czrk LIMIT 50"))
    gongan.close()
    assert _full_id_numbers(sample_ids)

    logs = list((root / "airflow").rglob("*.log")) + list((root / "airflow").rglob("*.json"))
    assert logs
    for path in logs:
        assert not _full_id_numbers(path.read_text("utf-8", errors="replace")), path
    meta = sqlite3.connect(root / "airflow" / "airflow.db")
    xcoms = meta.execute("SELECT dag_id, task_id, CAST(value AS TEXT) FROM xcom").fetchall()
    meta.close()
    assert xcoms  # the tasks did push their paths and counts
    for dag_id, task_id, value in xcoms:
        assert not _full_id_numbers(value or ""), (dag_id, task_id)
    for report in (root / "reports").rglob("report.json"):
        assert not _full_id_numbers(report.read_text("utf-8")), report


def test_staged_asset_events_carry_the_business_date(night: dict) -> None:
    """Curation started by these events covers their business date, not the day before it ran
    (a past night or a backfill would otherwise be curated under today's date)."""
    import sqlite3

    from datacloud.paths import StorageRoot

    db = StorageRoot(night["root"]).airflow_home() / "airflow.db"
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT a.name, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
            "WHERE a.name LIKE 'staged.%'"
        ).fetchall()
    assert rows, "no staged asset event was recorded"
    for name, extra in rows:
        assert json.loads(extra or "{}").get("business_date") == DS.isoformat(), (name, extra)

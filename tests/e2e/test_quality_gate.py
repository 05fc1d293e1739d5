"""The raw quality gate through Airflow itself (``airflow dags test dept_gongan``).

A good night is published; the next night 30% of the ID numbers carry a wrong check
character: ``stage_czrk`` fails on the gate, the DAG run fails, the report says
质量检查未通过, and the staged table keeps the good night's version. Real parts only: the
sample generator's SQLite database, Airflow on SQLite metadata, Delta tables, GE.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

pytestmark = pytest.mark.e2e

DS = date(2026, 11, 20)
PERSONS = 800


def _sample(samples: Path, dirt: list[str], seed: int) -> None:
    from datacloud.sample import DirtRates, generate
    from datacloud.sample.generate import SampleData
    from datacloud.sample.writer import write_sqlite

    czrk = generate(PERSONS, seed, business_date=DS, dirt=DirtRates.parse(dirt)).tables["gongan"]
    write_sqlite(SampleData(tables={"gongan": czrk}, ground_truth=pa.table({})), samples)


def test_a_bad_night_fails_the_gate_in_airflow_and_keeps_the_staged_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deltalake import DeltaTable

    from datacloud import demo
    from datacloud.paths import StorageRoot

    root = StorageRoot(tmp_path / "root")
    monkeypatch.setenv("DATACLOUD_ROOT", str(root.root))
    gongan = [d for d in demo.departments() if d.code == "gongan"]
    env = demo.airflow_env(root, gongan, root.samples())
    env["DATACLOUD_ROOT"] = str(root.root)
    ok, _, log = demo.migrate(env, root)
    assert ok, log.read_text()[-2000:]

    good = DS - timedelta(days=1)
    _sample(root.samples(), [], seed=5)
    first = demo.run_dag("dept_gongan", good, env, root)
    assert first.ok, first.log.read_text()[-3000:]
    staged = root.staged("gongan", "czrk")
    version = DeltaTable(str(staged)).version()

    _sample(root.samples(), ["id_wrong_check=0.3"], seed=6)
    bad = demo.run_dag("dept_gongan", DS, env, root)
    assert not bad.ok
    text = bad.log.read_text(encoding="utf-8", errors="replace")
    assert "QualityGateError" in text and "suite raw_person" in text

    assert DeltaTable(str(staged)).version() == version  # nothing merged tonight
    report = json.loads((root.report_dir("gongan", DS) / "report.json").read_text("utf-8"))
    assert report["status"] == "failed"
    (table,) = report["tables"]
    assert table["failure_kind"] == "quality_gate" and table["failure_kind_zh"] == "质量检查未通过"
    assert report["quality"]["critical_failed"] is True
    html = (root.report_dir("gongan", DS) / "index.html").read_text("utf-8")
    assert "质量检查未通过" in html
    (suite,) = report["quality"]["suites"]
    assert suite["data_docs"] and (root.root / suite["data_docs"]).is_file()
    # the good night's report still says it passed, with its own gate results
    earlier = json.loads((root.report_dir("gongan", good) / "report.json").read_text("utf-8"))
    assert earlier["status"] == "success" and earlier["quality"]["critical_failed"] is False

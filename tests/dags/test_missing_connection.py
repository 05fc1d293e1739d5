"""A connection the platform lacks is the platform's failure, with its cause, in the report
(issue 22): before, the extract task failed before any step ran, no run state was written, and
the department's report said only 未运行 (the cause was in the Airflow log alone).

The DAG file's own ``connection`` helper (what the extract, plan and chunk tasks call) runs
against Airflow's real connection lookup with no ``AIRFLOW_CONN_*`` for the id; the report is
the real writer. No Airflow run is needed: the helper takes the business date as an argument.
"""

from __future__ import annotations

import importlib.util
import json
from datetime import date
from pathlib import Path
from types import ModuleType

import pytest

from datacloud import runstate
from datacloud.config import load_department
from datacloud.paths import DEPARTMENTS_DIR, StorageRoot
from datacloud.report import write_department_report

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "departments_dag.py"
DS = date(2026, 11, 20)
MISSING = "dept_mz_not_configured"


def _dag_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("departments_dag_under_test", DAG_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_missing_connection_is_recorded_and_reported_as_the_platforms(
    storage_root: StorageRoot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(f"AIRFLOW_CONN_{MISSING.upper()}", raising=False)
    dag = _dag_module()
    with pytest.raises(Exception, match="isn't defined"):
        dag.connection("mz", "hydj", MISSING, DS)
    state = runstate.read(storage_root, "mz", DS, "hydj")
    assert (state["status"], state["failure_kind"]) == ("failed", "error")
    assert MISSING in state["error"]

    write_department_report(storage_root, load_department(DEPARTMENTS_DIR / "mz.yaml"), DS)
    folder = storage_root.report_dir("mz", DS)
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    (table,) = report["tables"]
    assert (table["failure_kind"], table["fault"]) == ("error", "platform")  # not "not_run"
    assert MISSING in table["error"] and report["headline_zh"] == "失败（平台原因）"
    html = (folder / "index.html").read_text(encoding="utf-8")
    assert "平台原因，运维人员正在处理" in html and MISSING in html

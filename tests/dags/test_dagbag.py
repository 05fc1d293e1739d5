"""The DAG folder: zero import errors, the expected structure, nothing heavy while parsing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPT_DAGS = ["dept_bdc", "dept_gjj", "dept_gongan", "dept_mz", "dept_scjg"]


def parse(departments: Path | None = None, folder: Path = REPO / "dags") -> dict:
    """Parse a DAG folder in a fresh interpreter with database and connection access denied."""
    env = dict(os.environ)
    if departments is not None:
        env["DATACLOUD_DEPARTMENTS_DIR"] = str(departments)
    out = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("parse_guarded.py")), str(folder)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def parsed() -> dict:
    return parse()


def test_zero_import_errors(parsed: dict) -> None:
    assert parsed["import_errors"] == {}
    assert parsed["dag_ids"] == sorted([*DEPT_DAGS, "curation"])


def test_parsing_runs_no_query_and_no_connection_lookup(parsed: dict) -> None:
    assert parsed["queries"] == []
    assert parsed["lookups"] == []


def test_the_guard_catches_a_dag_file_that_opens_a_database(tmp_path: Path) -> None:
    (tmp_path / "greedy_dag.py").write_text(
        "from airflow.sdk import DAG\n"
        "import sqlalchemy\n"
        "sqlalchemy.create_engine('sqlite://').connect()\n"
        "with DAG(dag_id='greedy', schedule=None):\n    pass\n",
        "utf-8",
    )
    (tmp_path / "lookup_dag.py").write_text(
        "from airflow.sdk import DAG, Connection\n"
        "Connection.get('dept_gongan')\n"
        "with DAG(dag_id='lookup', schedule=None):\n    pass\n",
        "utf-8",
    )
    parsed = parse(folder=tmp_path)
    errors = " ".join(parsed["import_errors"].values())
    assert "create_engine while parsing DAGs" in errors
    assert "connection lookup while parsing DAGs" in errors
    assert parsed["dag_ids"] == []


def test_department_dag_structure() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    dag = bag.dags["dept_scjg"]
    assert dag.max_active_runs == 1
    assert str(dag.timetable.timezone) == "Asia/Shanghai"
    assert dag.timetable.expression == "0 2 * * *"
    assert {t.task_id for t in dag.tasks} == {
        "extract_qyjbxx",
        "stage_qyjbxx",
        "extract_qygd",
        "stage_qygd",
        "extract_qydmdz",
        "stage_qydmdz",
        "report",
        "watcher",
    }
    rep = dag.get_task("report")
    assert rep.trigger_rule == "all_done"
    assert rep.upstream_task_ids == {"stage_qyjbxx", "stage_qygd", "stage_qydmdz"}
    assert dag.get_task("stage_qygd").upstream_task_ids == {"extract_qygd"}
    watcher = dag.get_task("watcher")
    assert watcher.trigger_rule == "one_failed"
    assert watcher.upstream_task_ids == {
        "extract_qyjbxx",
        "stage_qyjbxx",
        "extract_qygd",
        "stage_qygd",
        "extract_qydmdz",
        "stage_qydmdz",
    }
    for t in dag.tasks:
        if t.task_id == "watcher":  # it only turns a failed table into a failed run
            continue
        assert t.retries >= 1 or os.environ.get("DATACLOUD_TASK_RETRIES") == "0"
        assert t.retry_exponential_backoff
        assert t.execution_timeout is not None
    outlets = dag.get_task("stage_qygd").outlets
    assert [a.uri for a in outlets] == ["datacloud://staged/scjg/qygd"]


def test_a_chunked_table_extracts_as_mapped_tasks() -> None:
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(REPO / "dags")).dags["dept_gongan"]
    assert {t.task_id for t in dag.tasks} == {
        "plan_czrk",
        "extract_czrk",
        "land_czrk",
        "stage_czrk",
        "report",
        "watcher",
    }
    extract = dag.get_task("extract_czrk")
    assert type(extract).__name__.endswith("MappedOperator")
    assert extract.upstream_task_ids == {"plan_czrk"}
    assert dag.get_task("land_czrk").upstream_task_ids == {"extract_czrk"}
    assert dag.get_task("stage_czrk").upstream_task_ids == {"land_czrk"}
    assert dag.get_task("watcher").upstream_task_ids == {
        "plan_czrk",
        "extract_czrk",
        "land_czrk",
        "stage_czrk",
    }


def test_a_sixth_department_is_a_yaml_copy(tmp_path: Path) -> None:
    for p in (REPO / "dags" / "departments").glob("*.yaml"):
        shutil.copy(p, tmp_path)
    data = yaml.safe_load((tmp_path / "gongan.yaml").read_text(encoding="utf-8"))
    data["code"] = "gongan_wz"
    data["connection_id"] = "dept_gongan_wz"
    (tmp_path / "gongan_wz.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    parsed = parse(tmp_path)
    assert parsed["import_errors"] == {}
    assert parsed["dag_ids"] == sorted([*DEPT_DAGS, "dept_gongan_wz", "curation"])


def test_a_bad_yaml_is_an_import_error_naming_file_and_field(tmp_path: Path) -> None:
    for p in (REPO / "dags" / "departments").glob("*.yaml"):
        shutil.copy(p, tmp_path)
    data = yaml.safe_load((tmp_path / "mz.yaml").read_text(encoding="utf-8"))
    data["tables"][0]["mode"] = "sometimes"
    (tmp_path / "mz.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    parsed = parse(tmp_path)
    (err,) = parsed["import_errors"].values()
    assert str(tmp_path / "mz.yaml") in err
    assert "tables[0] (hydj).mode" in err
    assert "'full' or 'incremental'" in err

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
from helpers import department_spec

REPO = Path(__file__).resolve().parents[2]


def _departments(folder: Path | None = None) -> list:
    from datacloud.config import load_departments

    return load_departments(folder)


# derived from the department YAMLs, so the tests hold for any set of departments
DEPT_DAGS = sorted(f"dept_{d.code}" for d in _departments())


def expected_tasks(dept) -> tuple[set[str], set[str], dict[str, set[str]]]:  # type: ignore[no-untyped-def]
    """What the factory builds for one department YAML: every task id, the tasks the report
    waits for (the stage tasks), and each task's upstream task ids."""
    tasks, stages, upstream = {"report", "watcher"}, set(), {}
    for t in dept.tables:
        stage = f"stage_{t.name}"
        if t.chunks > 1:
            plan, extract, land = f"plan_{t.name}", f"extract_{t.name}", f"land_{t.name}"
            tasks |= {plan, extract, land, stage}
            upstream |= {plan: set(), extract: {plan}, land: {extract}, stage: {land}}
        else:
            extract = f"extract_{t.name}"
            tasks |= {extract, stage}
            upstream |= {extract: set(), stage: {extract}}
        stages.add(stage)
    upstream["report"] = stages
    upstream["watcher"] = tasks - {"report", "watcher"}
    return tasks, stages, upstream


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
    """Every department's DAG, as its YAML describes it."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    for dept in _departments():
        dag = bag.dags[f"dept_{dept.code}"]
        tasks, _, upstream = expected_tasks(dept)
        assert dag.max_active_runs == 1
        assert str(dag.timetable.timezone) == dept.timezone == "Asia/Shanghai"
        assert dag.timetable.expression == dept.schedule
        assert {t.task_id for t in dag.tasks} == tasks
        for task_id, ups in upstream.items():
            assert dag.get_task(task_id).upstream_task_ids == ups, (dept.code, task_id)
        assert dag.get_task("report").trigger_rule == "all_done"
        assert dag.get_task("watcher").trigger_rule == "one_failed"
        for t in dag.tasks:
            if t.task_id == "watcher":  # it only turns a failed table into a failed run
                continue
            assert t.retries >= 1 or os.environ.get("DATACLOUD_TASK_RETRIES") == "0"
            assert t.retry_exponential_backoff
            assert t.execution_timeout is not None
        for table in dept.tables:
            outlets = dag.get_task(f"stage_{table.name}").outlets
            assert [a.uri for a in outlets] == [f"datacloud://staged/{dept.code}/{table.name}"]


def test_a_chunked_table_extracts_as_mapped_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table with ``chunks`` > 1: plan, mapped extract, land, stage (a YAML copy with
    chunks set, so the test does not depend on which shipped table is chunked)."""
    from airflow.dag_processing.dagbag import DagBag

    folder = tmp_path / "departments"
    shutil.copytree(REPO / "dags" / "departments", folder)
    first = sorted(folder.glob("*.yaml"))[0]
    data = yaml.safe_load(first.read_text(encoding="utf-8"))
    data["tables"][0]["chunks"] = 3
    if len(data["tables"][0]["primary_key"]) > 1:
        data["tables"][0]["chunk_key"] = data["tables"][0]["primary_key"][0]
    first.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    monkeypatch.setenv("DATACLOUD_DEPARTMENTS_DIR", str(folder))
    dept = _departments(folder)[0]
    table = dept.tables[0].name
    dag = DagBag(dag_folder=str(REPO / "dags")).dags[f"dept_{dept.code}"]
    assert type(dag.get_task(f"extract_{table}")).__name__.endswith("MappedOperator")
    tasks, _, upstream = expected_tasks(dept)
    assert {t.task_id for t in dag.tasks} == tasks
    assert {t.task_id: t.upstream_task_ids for t in dag.tasks} == upstream
    assert upstream[f"extract_{table}"] == {f"plan_{table}"}


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


def test_the_tests_hold_for_a_department_added_by_yaml(tmp_path: Path) -> None:
    """The expectations above come from the YAMLs: with a sixth department (a new YAML, as
    docs/configuration.md's guide adds one) the factory builds a DAG for every YAML."""
    for p in (REPO / "dags" / "departments").glob("*.yaml"):
        shutil.copy(p, tmp_path)
    new = department_spec()
    (tmp_path / "rs.yaml").write_text(yaml.safe_dump(new, allow_unicode=True), "utf-8")
    depts = _departments(tmp_path)
    assert "rs" in {d.code for d in depts}
    parsed = parse(tmp_path)
    assert parsed["import_errors"] == {}
    assert parsed["dag_ids"] == sorted([*(f"dept_{d.code}" for d in depts), "curation"])
    (rs,) = [d for d in depts if d.code == "rs"]
    assert expected_tasks(rs)[0] == {"extract_cbry", "stage_cbry", "report", "watcher"}


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

"""The compose stack, for real (``make stack-test``): built and run on this machine, one night
triggered through the Airflow REST API, checked from outside the containers, torn down.

Real parts only: the Docker engine, docker-compose.yml with deploy/compose.local.yaml (images
built here from Debian's packages and requirements.lock: no registry is reachable), Airflow 3
with CeleryExecutor (two workers on Redis), PostgreSQL metadata, moto's S3 server as the object
store, the seeded sample department servers, the lookup API. deploy/stack-test.sh builds the
images (cached) and sets ``DATACLOUD_STACK_TEST=1``; without it these tests are skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from compose_stack import DEPARTMENTS, DS, ComposeStack, StackError, new_workdir, wait_for

pytestmark = pytest.mark.skipif(
    os.environ.get("DATACLOUD_STACK_TEST") != "1",
    reason="builds and starts the whole compose stack; run by `make stack-test`",
)

NIGHT_TIMEOUT = 1800  # seconds for the five departments; curation has its own bound


@dataclass
class Night:
    stack: ComposeStack
    runs: dict[str, list[dict[str, Any]]]  # dag_id -> every run (all terminal)
    task_instances: dict[str, list[dict[str, Any]]]  # dag_id -> TIs of every run
    restarted_while: list[str]  # dept runs still running when the scheduler was restarted
    scheduler_restarts: int


def _restart_scheduler_mid_night(stack: ComposeStack, run_id: str) -> list[str]:
    """Restart the scheduler container while department runs are running; wait until healthy."""

    def running() -> list[str] | None:
        states = {d: stack.run_state(f"dept_{d}", run_id) for d in DEPARTMENTS}
        busy = [d for d, s in states.items() if s == "running"]
        # mid-night: something already ran on a worker, something is still to do
        done_some = any(
            ti["state"] == "success"
            for d in busy[:1]
            for ti in stack.task_instances(f"dept_{d}", run_id)
        )
        return busy if busy and done_some else None

    busy = wait_for("a department run to be mid-way", running, 900, every=2.0)
    stack.compose("restart", "--timeout", "30", "airflow-scheduler", timeout=180)

    def healthy() -> bool:
        (c,) = stack.containers("airflow-scheduler")
        return bool(c["State"].get("Health", {}).get("Status") == "healthy")

    wait_for("the restarted scheduler to be healthy", healthy, 300, every=5.0)
    return busy


@pytest.fixture(scope="module")
def night() -> Iterator[Night]:
    stack = ComposeStack(new_workdir())
    try:
        stack.up()
        dept_dags = [f"dept_{d}" for d in DEPARTMENTS]
        run_id = ""
        for dag_id in dept_dags:
            run_id = stack.trigger(dag_id)
        busy = _restart_scheduler_mid_night(stack, run_id)
        restarts = stack.containers("airflow-scheduler")[0]["RestartCount"]
        runs = {d: stack.wait_runs_finished(d, NIGHT_TIMEOUT) for d in dept_dags}
        stack.trigger("curation")
        runs["curation"] = stack.wait_runs_finished("curation", 900)
        tis = {
            dag_id: [ti for r in rs for ti in stack.task_instances(dag_id, r["dag_run_id"])]
            for dag_id, rs in runs.items()
        }
        yield Night(stack, runs, tis, busy, restarts)
    except BaseException:
        print(stack.diagnosis())
        raise
    finally:
        try:
            stack.down()
        finally:
            shutil.rmtree(stack.workdir, ignore_errors=True)


def test_every_run_and_task_succeeded_on_a_celery_worker(night: Night) -> None:
    workers = {c["Config"]["Hostname"] for c in night.stack.containers("airflow-worker")}
    assert len(workers) == 2, workers
    for dag_id, runs in night.runs.items():
        assert {r["state"] for r in runs} == {"success"}, (dag_id, runs)
    for dag_id, tis in night.task_instances.items():
        assert tis, dag_id
        bad = [
            (ti["task_id"], ti["map_index"], ti["state"])
            for ti in tis
            if ti["state"] not in {"success", "skipped"}
        ]
        assert not bad, (dag_id, bad)
        ran = [ti for ti in tis if ti["state"] == "success"]
        assert ran and {ti["hostname"] for ti in ran} <= workers, (
            dag_id,
            sorted({ti["hostname"] for ti in ran}),
            workers,
        )
    # the work spread over both worker containers
    assert {
        ti["hostname"]
        for tis in night.task_instances.values()
        for ti in tis
        if ti["state"] == "success"
    } == workers


def test_a_scheduler_restart_mid_night_lost_nothing(night: Night) -> None:
    assert night.restarted_while, "the scheduler was not restarted while a run was running"
    # every department run that was running then finished successfully, once
    for dept in night.restarted_while:
        runs = night.runs[f"dept_{dept}"]
        assert [r["state"] for r in runs if r["dag_run_id"] == f"stack__{DS}"] == ["success"]


def test_curated_tables_are_in_the_object_store_and_open_with_polars_and_deltalake(
    night: Night,
) -> None:
    import polars as pl
    import pyarrow as pa
    from deltalake import DeltaTable

    opts = night.stack.storage_options()
    for name in ("person", "enterprise", "property_right"):
        uri = night.stack.table_uri(name)
        table = DeltaTable(uri, storage_options=opts)
        frame = pl.read_delta(uri, storage_options=opts)
        assert table.version() >= 0 and frame.height > 0, name
        # scan(): deltalake's own engine applies the deletion vectors the tables carry
        # (docs/curation.md, "Reading the curated tables"); to_pyarrow_table() refuses them
        assert frame.height == pa.table(table.scan()).num_rows, name
    persons = pl.read_delta(night.stack.table_uri("person"), storage_options=opts)
    assert persons["id_number"].n_unique() == persons.height


def test_department_reports_reconcile_with_the_sources(night: Night, tmp_path: Path) -> None:
    for dept in DEPARTMENTS:
        path = night.stack.copy_out(
            "airflow-scheduler",
            f"/opt/datacloud/state/reports/{dept}/{DS}/report.json",
            tmp_path / f"{dept}.json",
        )
        report = json.loads(path.read_text("utf-8"))
        assert report["status"] == "success", (dept, report["status"])
        assert report["tables"], dept
        for t in report["tables"]:
            assert t["rows_in"] == t["rows_accepted"] + t["rows_rejected"] + t["rows_deduplicated"]
            assert t["rows_in"] == night.stack.source_count(dept, t["table"]) > 0, (
                dept,
                t["table"],
            )


def test_a_property_status_lookup_through_the_api_container_answers_correctly(
    night: Night,
) -> None:
    import polars as pl

    opts = night.stack.storage_options()
    rights = pl.read_delta(night.stack.table_uri("property_right"), storage_options=opts)
    persons = pl.read_delta(night.stack.table_uri("person"), storage_options=opts)
    current = rights.filter(
        (pl.col("status") == "现势") & pl.col("owner_id_number").is_in(persons["id_number"])
    )
    assert current.height > 0
    owner = current["owner_id_number"][0]
    expected = current.filter(pl.col("owner_id_number") == owner).height
    body = {
        "id_number": owner,
        "matter": "gjj_withdrawal",  # 住房公积金提取: the property status only
        "case_no": "STACK-2026-0001",
        "purpose": "stack-test 公积金提取审核",
    }

    def answered() -> Any:
        r = night.stack.lookup("/v1/lookup/property-status", body)
        return r.json() if r.status_code == 200 and r.json().get("owns_property") else None

    # the API polls the curated versions every few seconds: bounded wait for the night's
    answer = wait_for("the lookup API to serve the curated tables", answered, 120)
    assert answer["owns_property"] is True
    assert answer["property_count"] == expected
    # the business date of a curation run that published: ours (DS), or the latest night's:
    # unpaused, the DAGs also run their latest scheduled interval (catchup=False), the
    # departments' 02:00 night and curation's 05:30 cutoff, both for the night before today
    assert answer["as_of"] in curation_dates(night), (answer["as_of"], curation_dates(night))
    assert owner not in json.dumps(answer, ensure_ascii=False)  # clerk: masked
    assert answer["id_number"] == owner[:6] + "********" + owner[-4:]


def curation_dates(night: Night) -> set[str]:
    from datetime import datetime

    from datacloud.business_day import business_date

    dates = set()
    for run in night.runs["curation"]:
        end = datetime.fromisoformat(run["data_interval_end"].replace("Z", "+00:00"))
        dates.add(business_date(end, run.get("conf")).isoformat())
    assert DS in dates
    return dates


def test_no_full_id_number_in_any_container_or_task_log(night: Night, tmp_path: Path) -> None:
    """Every service's output and every Airflow task log (the airflow-logs volume)."""
    from transforms.id_number import is_valid_id_number

    pattern = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])")
    texts = {"compose logs": night.stack.compose("logs", "--no-color", timeout=300)}
    logs = night.stack.copy_out("airflow-scheduler", "/opt/airflow/logs", tmp_path / "logs")
    task_logs = [p for p in logs.rglob("*") if p.is_file()]
    assert any("task_id=extract_" in str(p) for p in task_logs)
    texts.update({str(p): p.read_text("utf-8", errors="replace") for p in task_logs})
    for where, text in texts.items():
        found = [m for m in pattern.findall(text) if is_valid_id_number(m.upper())]
        assert not found, f"{where}: {len(found)} full ID numbers"


def test_teardown_leaves_no_container_network_or_volume(night: Night) -> None:
    """Runs last: down -v --remove-orphans, then nothing of the project is left."""
    stack = night.stack
    assert stack.leftovers()["containers"], "the stack was not up before the teardown"
    stack.down()
    left = wait_for_gone(stack)
    assert not left, left


def wait_for_gone(stack: ComposeStack) -> dict[str, list[str]]:
    with contextlib.suppress(StackError):
        wait_for("the project's leftovers to go", lambda: not stack.leftovers() or None, 60)
    return stack.leftovers()

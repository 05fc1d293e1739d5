"""One night under a real Airflow: api-server, scheduler, dag-processor, PostgreSQL metadata.

Real parts only: Airflow 3 processes on loopback driven through the REST API, the local
PostgreSQL (metadata database and gongan's sample) and MariaDB (scjg's sample), real Delta
tables; the Celery variant adds two ``airflow celery worker`` processes on the local Redis.
Slow (about 1.5 min per executor), so it runs under ``make e2e`` (``DATACLOUD_E2E_STACK=1``),
which ``.ci/run`` calls after ``make test``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import stack

from datacloud.delta import read_table

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.environ.get("DATACLOUD_E2E_STACK") != "1",
        reason="starts a whole Airflow stack; run by `make e2e` (DATACLOUD_E2E_STACK=1)",
    ),
]

DS = stack.DS.isoformat()


@pytest.fixture(scope="module", params=["local", "celery"])
def night(request: pytest.FixtureRequest) -> Iterator[stack.Night]:
    with stack.night(request.param, persons=500) as done:
        yield done


def _root(night: stack.Night) -> Path:
    return night.stack.root


def test_every_task_instance_succeeded_and_czrk_ran_as_four_mapped_chunks(
    night: stack.Night,
) -> None:
    for dag_id, tis in night.task_instances.items():
        states = {(ti["task_id"], ti["map_index"]): ti["state"] for ti in tis}
        assert set(states.values()) <= {"success", "skipped"}, (dag_id, states)
    chunks = [ti for ti in night.task_instances["dept_gongan"] if ti["task_id"] == "extract_czrk"]
    assert sorted(ti["map_index"] for ti in chunks) == [0, 1, 2, 3]
    # watcher only runs when a table failed
    (watcher,) = [ti for ti in night.task_instances["dept_gongan"] if ti["task_id"] == "watcher"]
    assert watcher["state"] == "skipped"


def test_curated_tables_have_rows_and_unique_keys(night: stack.Night) -> None:
    from transforms.id_number import is_valid_id_number

    persons = read_table(_root(night) / "curated" / "person")
    ids = persons["id_number"].to_pylist()
    assert persons.num_rows > 0 and len(ids) == len(set(ids))
    assert all(is_valid_id_number(i) for i in ids)
    enterprises = read_table(_root(night) / "curated" / "enterprise")
    codes = [c for c in enterprises["credit_code"].to_pylist() if c]
    assert codes and len(codes) == len(set(codes))


def test_reports_reconcile_with_the_department_databases(night: stack.Night) -> None:
    for dept in stack.DEPARTMENTS:
        folder = _root(night) / "reports" / dept / DS
        report = json.loads((folder / "report.json").read_text("utf-8"))
        assert report["status"] == "success", report
        for t in report["tables"]:
            assert t["rows_in"] == t["rows_accepted"] + t["rows_rejected"] + t["rows_deduplicated"]
            assert t["rows_in"] == stack.source_count(dept, t["table"]) > 0
        assert "<html" in (folder / "index.html").read_text("utf-8").lower()
    assert (_root(night) / "reports" / "index.html").is_file()


def test_no_full_id_number_in_task_or_process_logs(night: stack.Night) -> None:
    from transforms.id_number import is_valid_id_number

    logs = list((night.stack.home / "logs").rglob("*.log"))
    assert any("task_id=extract_czrk" in str(p) for p in logs)
    # the processes' own output too (LocalExecutor tasks also log to the scheduler's stdout)
    logs += [p for p in (night.stack.run_dir / "logs").glob("*.log") if "sample" not in p.name]
    for path in logs:
        text = path.read_text("utf-8", errors="replace")
        found = [
            m
            for m in re.findall(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])", text)
            if is_valid_id_number(m.upper())
        ]
        assert not found, path


def test_celery_spreads_the_mapped_chunks_over_both_workers(night: stack.Night) -> None:
    if night.stack.executor != "celery":
        pytest.skip("LocalExecutor: one machine, one hostname")
    chunks = [ti for ti in night.task_instances["dept_gongan"] if ti["task_id"] == "extract_czrk"]
    assert {ti["hostname"] for ti in chunks} == {"e2e-worker-1", "e2e-worker-2"}, [
        (ti["map_index"], ti["hostname"]) for ti in chunks
    ]


def _compose_healthcheck(service: str) -> str:
    import shlex

    import yaml

    compose = yaml.safe_load((stack.REPO / "docker-compose.yml").read_text("utf-8"))
    kind, *argv = compose["services"][service]["healthcheck"]["test"]
    return argv[0] if kind == "CMD-SHELL" else shlex.join(argv)


def test_the_compose_healthchecks_answer_on_this_stack(night: stack.Night) -> None:
    """docker-compose.yml's healthcheck commands, run against the same processes on loopback.

    Only the addresses change: compose's localhost ports become this stack's free ports and a
    worker's node name its e2e name. The triggerer is not part of this stack.
    """
    import socket

    s = night.stack
    services = ["airflow-api-server", "airflow-scheduler", "airflow-dag-processor"]
    if s.executor == "celery":
        services.append("airflow-worker")
    for service in services:
        command = (
            _compose_healthcheck(service)
            .replace("localhost:8080", f"127.0.0.1:{s.api_port}")
            .replace("localhost:8974", f"127.0.0.1:{s.scheduler_health_port}")
            .replace('"celery@$${HOSTNAME}"', f"e2e-worker-1@{socket.gethostname()}")
        )
        assert "$$" not in command, command
        done = s.shell(command)
        assert done.returncode == 0, (service, command, done.stdout[-2000:], done.stderr[-2000:])


def test_a_failing_run_is_reported_with_its_task_log(night: stack.Night) -> None:
    """The driver's diagnosis: mz has no connection in this stack, so its extraction fails."""
    if night.stack.executor != "local":
        pytest.skip("the failure path is the same for both executors; checked once")
    run_id = night.stack.trigger("dept_mz")
    with pytest.raises(stack.StackError) as failed:
        night.stack.wait_run("dept_mz", run_id)
    message = str(failed.value)
    assert "dept_mz run e2e__2026-11-20 ended failed" in message
    assert "extract_hydj=failed" in message
    assert "task_id=extract_hydj" in message  # the failed task's own log follows
    assert "dept_mz" in message and "dept_mz" in night.stack.api("GET", "/dags/dept_mz")["dag_id"]

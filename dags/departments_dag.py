"""One Airflow DAG per department YAML in ``dags/departments/`` (airflow DAG factory).

Each DAG, per source table: ``extract_<table>`` lands the raw partition, ``stage_<table>``
normalises it, sets rejected rows aside under rejected/ and merges the rest into the staged Delta table
(emitting the table's Asset event). ``report`` writes the department's load report last,
also when an earlier task failed, and ``watcher`` fails the run when any table failed.
Nothing here touches a database at parse time; the heavy libraries are imported inside the
tasks, and XCom carries only paths and counts. Each task reads the environment once (the
storage root) and hands it, with the department, to its step in ``datacloud.nightly``.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, CronTriggerTimetable, TriggerRule, task

from datacloud.assets import staged_asset
from datacloud.business_day import business_date
from datacloud.config import Department, load_departments

START = datetime(2026, 1, 1)


def _business_date() -> Any:
    from airflow.sdk import get_current_context

    ctx = get_current_context()
    return business_date(ctx["data_interval_end"], ctx["dag_run"].conf)


def _edge(code: str) -> tuple[Any, Any]:
    """The task edge: the storage root from the environment (read once) and the department."""
    from datacloud.nightly import department
    from datacloud.paths import StorageRoot

    return StorageRoot.from_env(), department(code)


def connection(code: str, table: str, connection_id: str, ds: Any) -> Any:
    """The department's source URL from its Airflow connection. A connection the platform
    lacks (or cannot use) is the platform's failure: recorded in the table's run state (kind
    ``error``, the cause masked, no secret) before the task fails, so the department's report
    says so and shows why instead of "not run"."""
    from datacloud.connections import airflow_connection_url

    try:
        return airflow_connection_url(connection_id)
    except Exception as e:
        from datacloud import failures, runstate
        from datacloud.paths import StorageRoot

        first = (str(e).splitlines() or [""])[0]
        shown = "" if "://" in first or "@" in first else f": {first[:200]}"
        runstate.update(
            StorageRoot.from_env(),
            code,
            ds,
            table,
            status="failed",
            stage="extract",
            error=f"platform connection {connection_id!r} unusable: {type(e).__name__}{shown}",
            failure_kind=failures.ERROR,
        )
        raise


@task
def extract(code: str, table: str, connection_id: str) -> dict[str, Any]:
    """Land one source table as raw Parquet for the business date."""
    from datacloud.nightly import extract as run

    ds = _business_date()
    return run(*_edge(code), table, ds, connection(code, table, connection_id, ds))


@task
def plan(code: str, table: str, connection_id: str) -> list[dict[str, Any]]:
    """Cut a large table into key ranges; each becomes one mapped extract task."""
    from datacloud.nightly import plan as run

    ds = _business_date()
    return run(*_edge(code), table, ds, connection(code, table, connection_id, ds))


@task
def extract_chunk(
    code: str, table: str, connection_id: str, chunk: dict[str, Any]
) -> dict[str, Any]:
    """Extract one key range (a mapped task instance)."""
    from airflow.sdk import get_current_context

    from datacloud.nightly import extract_chunk as run

    run_id = get_current_context()["run_id"]
    ds = _business_date()
    return run(*_edge(code), table, ds, connection(code, table, connection_id, ds), chunk, run_id)


@task
def land(code: str, table: str, chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """Land all chunks of the night as the raw partition, all or nothing."""
    from airflow.sdk import get_current_context

    from datacloud.nightly import land as run

    run_id = get_current_context()["run_id"]
    return run(*_edge(code), table, _business_date(), run_id, len(list(chunks)))


@task
def stage(code: str, table: str, extracted: dict[str, Any]) -> dict[str, Any]:
    """Normalise, set rejects aside in rejected/ and merge into staged/<dept>/<table>."""
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowFailException

    from datacloud.nightly import stage as run
    from datacloud.quality import QualityGateError

    ctx = get_current_context()
    ds = _business_date()
    try:
        out = run(*_edge(code), table, ds, ctx["run_id"])
    except QualityGateError as e:  # the same data gives the same verdict: no retries
        raise AirflowFailException(str(e)) from e
    # curation (triggered by these events) covers the business date they carry
    ctx["outlet_events"][staged_asset(code, table)].extra = {"business_date": ds.isoformat()}
    return out


@task(trigger_rule=TriggerRule.ALL_DONE)
def report(code: str) -> dict[str, Any]:
    """Write reports/<dept>/<date>/ whatever happened earlier in the night."""
    from datacloud.nightly import report as run

    return run(*_edge(code), _business_date())


@task(trigger_rule=TriggerRule.ONE_FAILED, retries=0)
def watcher(code: str) -> None:
    """Fail the DAG run when any table failed (the report task succeeds either way)."""
    from airflow.sdk.exceptions import AirflowFailException

    raise AirflowFailException(f"department {code}: a table failed tonight; see its report")


def _retries(dept: Department) -> int:
    # DATACLOUD_TASK_RETRIES overrides the YAML (the embedded demo and tests run without retries)
    return int(os.environ.get("DATACLOUD_TASK_RETRIES", dept.retries))


def build_dag(dept: Department) -> DAG:
    """The nightly DAG of one department."""
    with DAG(
        dag_id=f"dept_{dept.code}",
        description=f"{dept.name}: nightly extraction, normalisation and staging",
        schedule=CronTriggerTimetable(
            dept.schedule, timezone=dept.timezone, interval=timedelta(days=1)
        ),
        start_date=START,
        catchup=False,
        max_active_runs=1,
        tags=["datacloud", "department", dept.code],
        doc_md=__doc__,
        default_args={
            "owner": dept.owner,
            "retries": _retries(dept),
            "retry_delay": timedelta(minutes=dept.retry_delay_minutes),
            "retry_exponential_backoff": 2.0,
            "max_retry_delay": timedelta(hours=1),
            "execution_timeout": timedelta(minutes=dept.execution_timeout_minutes),
        },
    ) as dag:
        staged, work = [], []
        for table in dept.tables:
            if table.chunks > 1:
                ranges = plan.override(task_id=f"plan_{table.name}")(
                    dept.code, table.name, dept.connection_id
                )
                parts = (
                    extract_chunk.override(task_id=f"extract_{table.name}")
                    .partial(code=dept.code, table=table.name, connection_id=dept.connection_id)
                    .expand(chunk=ranges)
                )
                landed = land.override(task_id=f"land_{table.name}")(dept.code, table.name, parts)
                work += [ranges, parts]
            else:
                landed = extract.override(task_id=f"extract_{table.name}")(
                    dept.code, table.name, dept.connection_id
                )
            staged.append(
                stage.override(
                    task_id=f"stage_{table.name}", outlets=[staged_asset(dept.code, table.name)]
                )(dept.code, table.name, landed)
            )
            work += [landed, staged[-1]]
        staged >> report.override(task_id="report")(dept.code)
        work >> watcher.override(task_id="watcher")(dept.code)
    return dag


for _dept in load_departments():
    globals()[f"dept_{_dept.code}"] = build_dag(_dept)

"""``datacloud run``: one department's night (and curation) through Airflow, with the
department's configured connection (registered on the app by ``datacloud.cli``).

Exit codes: 0 the night (and curation) succeeded; 1 a DAG run failed (the summary is printed
first); 2 usage or configuration (a bad option, no YAML for the department, a missing query);
3 the department's connection is not configured (``AIRFLOW_CONN_<ID>``). Airflow, pyarrow and
deltalake are imported when the command runs, not when ``datacloud --help`` starts.
"""

from __future__ import annotations

import os
from datetime import date
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from datacloud.canonical import CURATED_TABLES
from datacloud.cli_common import (
    EXIT_NEGATIVE,
    EXIT_UNAVAILABLE,
    UserError,
    console,
    dept_code,
    parse_date,
    progress,
)
from datacloud.paths import StorageRoot

if TYPE_CHECKING:
    from datacloud.config import Department
    from datacloud.run import TaskEvent


def load_department(code: str) -> Department:
    """The department of ``--dept``; a UserError when there is no YAML for it."""
    from datacloud.config import ConfigError
    from datacloud.nightly import department

    try:
        return department(code)
    except ConfigError as e:
        if "cannot read" in str(e):
            raise UserError(f"--dept: no department {code!r} (no YAML for it)") from None
        raise


def curated_summary(root: StorageRoot) -> Table:
    """The curated tables: live rows, version and path (or 'not published')."""
    from datacloud.delta import live_rows, open_table

    cur = Table(title="curated tables (Delta Lake)")
    cur.add_column("table")
    cur.add_column("rows", justify="right")
    cur.add_column("version", justify="right")
    cur.add_column("path")
    for name in CURATED_TABLES:
        dt = open_table(root.curated(name))
        if dt is None:
            cur.add_row(name, "-", "-", "not published")
            continue
        cur.add_row(name, f"{live_rows(dt):,}", str(dt.version()), str(root.curated(name)))
    return cur


def _count(value: Any) -> str:
    return "" if value is None else f"{int(value):,}"


def department_summary(summary: dict[str, Any] | None, code: str, ds: date) -> Table:
    """The night's figures per table and in total, from the department's report.json."""
    table = Table(title=f"department {code}, night of {ds.isoformat()}")
    for col in ("table", "status", "rows in", "accepted", "rejected", "deduplicated", "unmapped"):
        table.add_column(
            col, justify="right" if col not in {"table", "status", "unmapped"} else "left"
        )
    if summary is None:
        table.add_row(code, "no report", "", "", "", "", "")
        return table
    for t in summary["tables"]:
        table.add_row(
            f"{code}.{t['table']}",
            t["status"] if not t.get("failure_kind") else f"{t['status']} ({t['failure_kind']})",
            *(_count(t[k]) for k in ("rows_in", "rows_accepted", "rows_rejected")),
            _count(t["rows_deduplicated"]),
            ", ".join(t.get("unmapped_columns") or []),
        )
    tot = summary["totals"]
    table.add_row(
        "total",
        f"{summary['status']} {summary['status_zh']}",
        *(_count(tot[k]) for k in ("rows_in", "rows_accepted", "rows_rejected")),
        _count(tot["rows_deduplicated"]),
        "",
    )
    return table


def run_night(
    business_date: Annotated[str, typer.Option("--date", help="business date YYYY-MM-DD")],
    dept: Annotated[
        str | None, typer.Option(help="department code, e.g. gongan (its YAML's connection)")
    ] = None,
    curate: Annotated[
        bool, typer.Option("--curate", help="run the curation DAG after the department")
    ] = False,
    curate_only: Annotated[
        bool, typer.Option("--curate-only", help="run only the curation DAG (no --dept)")
    ] = False,
    retries: Annotated[
        int | None,
        typer.Option(
            help="task retries instead of the YAML's (DATACLOUD_TASK_RETRIES; 0: fail at once)"
        ),
    ] = None,
) -> None:
    """Run one department's night through Airflow (airflow dags test) with its configured
    connection (AIRFLOW_CONN_<ID>), on the embedded Airflow under the storage root; --curate
    runs curation after it. Prints each task as it ends and the night's summary."""
    from datacloud import run as runner
    from datacloud.source_check import ConnectionMissing

    ds = parse_date(business_date)
    if curate_only and (dept is not None or curate):
        raise UserError("--curate-only runs curation alone: give it without --dept and --curate")
    if not curate_only and dept is None:
        raise UserError("--dept: give the department to run (or --curate-only for curation)")
    if retries is not None and not 0 <= retries <= 10:
        raise UserError(f"--retries: expected 0-10, got {retries}")
    root = StorageRoot.from_env()
    d = None
    if dept is not None:
        d = load_department(dept_code(dept))
        try:
            runner.check_ready(d, os.environ)
        except ConnectionMissing as e:
            raise UserError(str(e), EXIT_UNAVAILABLE) from None
        except ValueError as e:
            raise UserError(str(e)) from None
    dags = ([f"dept_{d.code}"] if d is not None else []) + (
        [runner.CURATION_DAG] if curate or curate_only else []
    )
    failed: list[str] = []
    with progress() as p:
        t = p.add_task(f"airflow db migrate ({root.airflow_home()})", total=None)
        env, migrated, log = runner.prepare(root)
        p.update(t, total=1, completed=1)
        if not migrated:
            raise UserError(f"airflow db migrate failed; see {log}", EXIT_NEGATIVE)
        if retries is not None:
            env["DATACLOUD_TASK_RETRIES"] = str(retries)
        for dag_id in dags:
            t = p.add_task(f"airflow dags test {dag_id} (business date {ds})", total=None)

            def show(event: TaskEvent, dag_id: str = dag_id) -> None:
                if event.state is not None:
                    p.console.print(f"  {dag_id}: {event.label} {event.state}")

            outcome = runner.run_dag(root, dag_id, ds, env, show)
            mark = "ok" if outcome.ok else "FAILED"
            p.update(t, description=f"{dag_id} {mark}", total=1, completed=1)
            if not outcome.ok:
                failed.append(f"{dag_id} (log: {outcome.log})")
    if d is not None:
        summary = runner.department_summary(root, d, ds)
        console.print(department_summary(summary, d.code, ds))
        if summary is not None:
            console.print(f"report:   {summary['report']}")
            console.print(f"overview: {summary['overview']}")
    if curate or curate_only:
        console.print(curated_summary(root))
    console.print(f"airflow:  {root.airflow_home()} (logs: {runner.log_dir(root)})")
    if failed:
        raise UserError("the night failed: " + "; ".join(failed), EXIT_NEGATIVE)

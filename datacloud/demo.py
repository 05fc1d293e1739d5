"""The embedded nightly demo: sample departments, every department DAG, then curation.

Runs each DAG through Airflow itself (``airflow dags test``) on a SQLite metadata database
under ``<root>/airflow``: no scheduler, no server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from datacloud.business_day import ZONE, night_of
from datacloud.config import Department, load_departments
from datacloud.paths import DAGS_DIR, StorageRoot
from datacloud.sample.generate import DEPARTMENTS as SAMPLE_DEPARTMENTS


@dataclass(frozen=True)
class DagOutcome:
    dag_id: str
    ok: bool
    seconds: float
    log: Path


def logical_date_for(ds: date) -> datetime:
    """The scheduled run that loads business date ``ds``: 02:00 Shanghai the next day."""
    return night_of(ds)


def connection_env(dept: Department, db_file: Path) -> tuple[str, str]:
    var = f"AIRFLOW_CONN_{dept.connection_id.upper()}"
    return var, json.dumps({"conn_type": "sqlite", "host": str(db_file.resolve())})


def embedded_env(root: StorageRoot) -> dict[str, str]:
    """The project's embedded Airflow settings on top of the process environment: a SQLite
    metadata database, logs and home under ``<state root>/airflow`` (never ``~/airflow``), our
    DAG folder, the Shanghai zone and the storage roots. Connections, the departments folder
    and ``DATACLOUD_TASK_RETRIES`` come from the environment as they are; ``make demo`` and
    ``datacloud run`` share these settings."""
    home = root.airflow_home()
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__DEFAULT_TIMEZONE": ZONE,
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "DATACLOUD_ROOT": str(root.data_root),
            "DATACLOUD_STATE_ROOT": str(root.root),
            "NO_COLOR": "1",
        }
    )
    return env


def airflow_env(root: StorageRoot, depts: list[Department], samples: Path) -> dict[str, str]:
    """The demo's environment: the embedded settings, no task retries, and every department's
    connection replaced by its sample SQLite file."""
    env = embedded_env(root)
    env["DATACLOUD_TASK_RETRIES"] = "0"
    for dept in depts:
        var, value = connection_env(dept, samples / f"{dept.code}.db")
        env[var] = value
    return env


def _airflow(
    args: list[str], env: dict[str, str], log: Path, on_line: Callable[[str], None] | None = None
) -> tuple[bool, float]:
    """Run the ``airflow`` command into ``log``; ``on_line`` sees each line as it is written."""
    started = datetime.now()
    log.parent.mkdir(parents=True, exist_ok=True)
    exe = Path(sys.executable).with_name("airflow")
    with (
        log.open("w", encoding="utf-8") as fh,
        subprocess.Popen(
            [str(exe), *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
        ) as proc,
    ):
        assert proc.stdout is not None
        for line in proc.stdout:  # ends when airflow closes its output (it exits)
            fh.write(line)
            if on_line is not None:
                on_line(line)
    return proc.returncode == 0, (datetime.now() - started).total_seconds()


def _logs(root: StorageRoot, logs: Path | None) -> Path:
    return logs if logs is not None else root.airflow_home() / "demo-logs"


def migrate(
    env: dict[str, str], root: StorageRoot, logs: Path | None = None
) -> tuple[bool, float, Path]:
    log = _logs(root, logs) / "db-migrate.log"
    ok, secs = _airflow(["db", "migrate"], env, log)
    return ok, secs, log


def run_succeeded(log: Path) -> bool:
    """True when Airflow logged the DAG run as finished in state success."""
    text = log.read_text(encoding="utf-8", errors="replace")
    return any("DagRun Finished" in line and "state=success" in line for line in text.splitlines())


def run_dag(
    dag_id: str,
    ds: date,
    env: dict[str, str],
    root: StorageRoot,
    logs: Path | None = None,
    name: str | None = None,
    on_line: Callable[[str], None] | None = None,
) -> DagOutcome:
    """``airflow dags test`` of ``dag_id`` for business date ``ds``; its log is
    ``<logs>/<name or dag_id>.log`` (default ``<state root>/airflow/demo-logs``)."""
    log = _logs(root, logs) / f"{name or dag_id}.log"
    args = ["dags", "test", dag_id, logical_date_for(ds).isoformat()]
    ok, secs = _airflow(args, env, log, on_line)
    return DagOutcome(dag_id, ok and run_succeeded(log), secs, log)


def departments() -> list[Department]:
    """The departments the demo runs: those the sample generator has a database for (a
    department added by YAML is run with ``datacloud run``, against its own connection)."""
    return [d for d in load_departments() if d.code in SAMPLE_DEPARTMENTS]

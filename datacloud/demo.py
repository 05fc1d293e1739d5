"""The embedded nightly demo: sample departments, every department DAG, then curation.

Runs each DAG through Airflow itself (``airflow dags test``) on a SQLite metadata database
under ``<root>/airflow``: no scheduler, no server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from datacloud.business_day import night_of
from datacloud.config import Department, load_departments
from datacloud.paths import DAGS_DIR, StorageRoot


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


def airflow_env(root: StorageRoot, depts: list[Department], samples: Path) -> dict[str, str]:
    """Environment for an embedded Airflow: SQLite metadata, our DAGs, sample connections."""
    home = root.airflow_home()
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__DEFAULT_TIMEZONE": "Asia/Shanghai",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "DATACLOUD_ROOT": str(root.data_root),
            "DATACLOUD_STATE_ROOT": str(root.root),
            "DATACLOUD_TASK_RETRIES": "0",
            "NO_COLOR": "1",
        }
    )
    for dept in depts:
        var, value = connection_env(dept, samples / f"{dept.code}.db")
        env[var] = value
    return env


def _airflow(args: list[str], env: dict[str, str], log: Path) -> tuple[bool, float]:
    started = datetime.now()
    log.parent.mkdir(parents=True, exist_ok=True)
    exe = Path(sys.executable).with_name("airflow")
    with log.open("w", encoding="utf-8") as fh:
        proc = subprocess.run(
            [str(exe), *args], env=env, stdout=fh, stderr=subprocess.STDOUT, check=False
        )
    return proc.returncode == 0, (datetime.now() - started).total_seconds()


def migrate(env: dict[str, str], root: StorageRoot) -> tuple[bool, float, Path]:
    log = root.airflow_home() / "demo-logs" / "db-migrate.log"
    ok, secs = _airflow(["db", "migrate"], env, log)
    return ok, secs, log


def run_succeeded(log: Path) -> bool:
    """True when Airflow logged the DAG run as finished in state success."""
    text = log.read_text(encoding="utf-8", errors="replace")
    return any("DagRun Finished" in line and "state=success" in line for line in text.splitlines())


def run_dag(dag_id: str, ds: date, env: dict[str, str], root: StorageRoot) -> DagOutcome:
    log = root.airflow_home() / "demo-logs" / f"{dag_id}.log"
    ok, secs = _airflow(["dags", "test", dag_id, logical_date_for(ds).isoformat()], env, log)
    return DagOutcome(dag_id, ok and run_succeeded(log), secs, log)


def departments() -> list[Department]:
    return load_departments()

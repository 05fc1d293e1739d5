"""One department night (and curation) outside the demo, through Airflow itself.

``datacloud run --dept <code> --date <D>`` runs the department's DAG ``dept_<code>`` with
``airflow dags test`` (the DAG, its tasks and its retries as production runs them) against the
department's configured connection (``AIRFLOW_CONN_<CONNECTION_ID>`` from the environment, as
in production), on the project's embedded Airflow settings (``datacloud.demo.embedded_env``:
a SQLite metadata database under ``<state root>/airflow``, never ``~/airflow``). The sample
databases are not touched. ``--curate`` runs the ``curation`` DAG afterwards; ``--curate-only``
only that. docs/operations.md, "Run one department".
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from datacloud import demo
from datacloud.config import Department, check_sql
from datacloud.paths import StorageRoot
from datacloud.source_check import require_connection

CURATION_DAG = "curation"
# what ``airflow dags test`` logs per task instance (airflow.sdk.definitions.dag._run_task)
_STARTING = re.compile(r"\[DAG TEST\] starting task_id=(\S+) map_index=(-?\d+)")
_ENDED = re.compile(r"\[DAG TEST\] end task task_id=(\S+) map_index=(-?\d+)")
_STATE = re.compile(r"new_state=(\w+)")


@dataclass(frozen=True)
class TaskEvent:
    """A task instance started (``state`` None) or ended (its final state, as Airflow logged it)."""

    task_id: str
    map_index: int
    state: str | None = None

    @property
    def label(self) -> str:
        return self.task_id if self.map_index < 0 else f"{self.task_id}[{self.map_index}]"


@dataclass
class TaskWatcher:
    """Turns the lines of ``airflow dags test`` into task events for a progress display."""

    on_event: Callable[[TaskEvent], None]
    _state: str | None = field(default=None, repr=False)

    def __call__(self, line: str) -> None:
        if m := _STARTING.search(line):
            self._state = None
            self.on_event(TaskEvent(m.group(1), int(m.group(2))))
        elif m := _ENDED.search(line):
            self.on_event(TaskEvent(m.group(1), int(m.group(2)), self._state or "ended"))
            self._state = None
        elif m := _STATE.search(line):
            self._state = m.group(1)


def check_ready(dept: Department, environ: Mapping[str, str]) -> None:
    """Refuse a night that cannot start: a missing extraction query (ValueError, a
    configuration error) or a connection the environment does not hold
    (``source_check.ConnectionMissing``)."""
    problems = check_sql(dept)
    if problems:
        raise ValueError("\n".join(problems))
    require_connection(dept, environ)


def log_dir(root: StorageRoot) -> Path:
    return root.airflow_home() / "run-logs"


def prepare(root: StorageRoot) -> tuple[dict[str, str], bool, Path]:
    """The embedded Airflow environment (the environment's own connections, no sample ones)
    and its metadata database migrated: (env, migrated, log)."""
    env = demo.embedded_env(root)
    ok, _, log = demo.migrate(env, root, logs=log_dir(root))
    return env, ok, log


def run_dag(
    root: StorageRoot,
    dag_id: str,
    ds: date,
    env: dict[str, str],
    on_event: Callable[[TaskEvent], None] | None = None,
) -> demo.DagOutcome:
    """One DAG run for business date ``ds`` through ``airflow dags test``; its log is
    ``<state root>/airflow/run-logs/<dag>-<date>.log``."""
    watcher = TaskWatcher(on_event) if on_event is not None else None
    return demo.run_dag(
        dag_id,
        ds,
        env,
        root,
        logs=log_dir(root),
        name=f"{dag_id}-{ds.isoformat()}",
        on_line=watcher,
    )


def department_summary(root: StorageRoot, dept: Department, ds: date) -> dict[str, Any] | None:
    """The night's figures from the department's report.json (None when no report was written)."""
    path = root.report_dir(dept.code, ds) / "report.json"
    if not path.is_file():
        return None
    report: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return {
        "status": report["status"],
        "status_zh": report["status_zh"],
        "totals": report["totals"],
        "tables": [
            {
                k: t.get(k)
                for k in (
                    "table",
                    "status",
                    "rows_in",
                    "rows_accepted",
                    "rows_rejected",
                    "rows_deduplicated",
                    "failure_kind",
                    "unmapped_columns",
                )
            }
            for t in report["tables"]
        ],
        "report": str(path.parent / "index.html"),
        "overview": str(root.root / "reports" / "index.html"),
    }

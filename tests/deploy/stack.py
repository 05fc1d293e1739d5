"""A real Airflow stack on loopback, and one night driven through its REST API (``make e2e``).

Starts ``airflow api-server``, ``scheduler`` and ``dag-processor`` (and, for the Celery
variant, two ``airflow celery worker`` processes on the local Redis) as subprocesses, each in
its own process group with its log in the run folder. Airflow's metadata database is a fresh
PostgreSQL database; the sample departments are seeded by ``datacloud sample`` into the local
PostgreSQL (gongan) and MariaDB (scjg). The night: unpause and trigger ``dept_gongan`` and
``dept_scjg`` with a ``business_date`` in the run conf, wait for success, then trigger
``curation`` the same way. Everything is stopped and every database dropped at the end, also on
failure.

    .venv/bin/python tests/deploy/stack.py --executor local
    .venv/bin/python tests/deploy/stack.py --executor celery
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PG = "postgresql+psycopg2://postgres@127.0.0.1:5432"
MARIADB = "mysql+pymysql://root@127.0.0.1:3306"
PREFIX = "e2e_"
METADATA_DB = f"{PREFIX}airflow"
REDIS_DB = 13  # the e2e run's own Redis database, flushed before and after
DS = date(2026, 11, 20)
LOGICAL_DATE = "2026-11-21T02:00:00+08:00"  # the scheduled run that loads DS
DEPARTMENTS = {"gongan": PG, "scjg": MARIADB}  # where each triggered department's sample lives
SAMPLE_DEPTS = ["bdc", "gjj", "gongan", "mz", "scjg"]  # `datacloud sample` writes all five
TERMINAL = {"success", "failed"}


class StackError(RuntimeError):
    """The stack or a DAG run did not do what the night needs; the message says which."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------------- databases


def _sql_admin(url: str, statements: list[str]) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for stmt in statements:
                conn.execute(text(stmt))
    finally:
        engine.dispose()


def create_metadata_db() -> str:
    _sql_admin(
        f"{PG}/postgres",
        [f"DROP DATABASE IF EXISTS {METADATA_DB} WITH (FORCE)", f"CREATE DATABASE {METADATA_DB}"],
    )
    return f"{PG}/{METADATA_DB}"


def drop_databases() -> None:
    """Drop the metadata database and every sample database this run may have created."""
    names = [f"{PREFIX}{d}" for d in SAMPLE_DEPTS]
    _sql_admin(
        f"{PG}/postgres",
        [f"DROP DATABASE IF EXISTS {n} WITH (FORCE)" for n in [METADATA_DB, *names]],
    )
    _sql_admin(f"{MARIADB}/", [f"DROP DATABASE IF EXISTS {n}" for n in names])


def flush_redis() -> None:
    import redis

    redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB).flushdb()


def seed_samples(persons: int, run_dir: Path) -> None:
    """``datacloud sample`` into PostgreSQL and MariaDB, as the compose seeding service does."""
    for server in sorted(set(DEPARTMENTS.values())):
        _run(
            [
                str(BIN / "datacloud"),
                "sample",
                "--persons",
                str(persons),
                "--date",
                DS.isoformat(),
                "--out",
                str(run_dir / "samples"),
                "--url",
                f"{server}/{PREFIX}{{dept}}",
            ],
            dict(os.environ, COLUMNS="200"),
            run_dir / "logs" / f"sample-{server.split('+')[0]}.log",
        )


def source_count(dept: str, table: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(f"{DEPARTMENTS[dept]}/{PREFIX}{dept}")
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


def connection_env() -> dict[str, str]:
    """``AIRFLOW_CONN_DEPT_<CODE>`` for the triggered departments (URI form)."""
    uris = {
        PG: "postgres://postgres@127.0.0.1:5432/",
        MARIADB: "mysql://root@127.0.0.1:3306/",
    }
    return {
        f"AIRFLOW_CONN_DEPT_{d.upper()}": f"{uris[s]}{PREFIX}{d}" for d, s in DEPARTMENTS.items()
    }


# ---------------------------------------------------------------------------------- processes


def _run(args: list[str], env: dict[str, str], log: Path, timeout: float = 600) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w", encoding="utf-8") as fh:
        proc = subprocess.run(
            args, env=env, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout, check=False
        )
    if proc.returncode != 0:
        raise StackError(f"{' '.join(args[:3])} exited {proc.returncode}:\n{tail(log)}")


def tail(path: Path, lines: int = 60) -> str:
    if not path.exists():
        return f"({path} does not exist)"
    text = path.read_text("utf-8", errors="replace").splitlines()
    return f"--- {path} (last {lines} lines)\n" + "\n".join(text[-lines:])


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM the process group, SIGKILL what is left after ``grace`` seconds."""
        if self.popen.poll() is not None:
            return
        pgid = self.popen.pid  # started with start_new_session: its own group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(grace)
        # whatever is left, also children that outlived their leader (task supervisors)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        self.popen.wait(10)


@dataclass
class Stack:
    """An Airflow deployment on loopback: its folder, environment, processes and API client."""

    executor: str
    run_dir: Path
    workers: int = 0
    api_port: int = field(default_factory=free_port)
    scheduler_health_port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    processes: list[Process] = field(default_factory=list)
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(64))
    _token: str | None = None

    @property
    def home(self) -> Path:
        return self.run_dir / "airflow"

    @property
    def root(self) -> Path:
        return self.run_dir / "root"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def python_path(self) -> list[str]:
        """deploy/ for ``worker_hostname``."""
        return [str(REPO / "deploy")]

    def env(self, **extra: str) -> dict[str, str]:
        """Every process's environment: the same configuration, as a deployment would have."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "DATACLOUD_"))}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": (
                    "CeleryExecutor" if self.executor == "celery" else "LocalExecutor"
                ),
                "AIRFLOW__CORE__DEFAULT_TIMEZONE": "Asia/Shanghai",
                "AIRFLOW__CORE__PARALLELISM": "8",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(
                    self.home / "passwords.json"
                ),
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "worker_hostname.hostname",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"{PG}/{METADATA_DB}",
                # asyncpg is not in requirements.lock: no async engine (the endpoints used here
                # do not need it; the official image, used by compose, ships asyncpg)
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": "",
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API_AUTH__JWT_SECRET": self.jwt_secret,
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "true",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(
                    self.scheduler_health_port
                ),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
                "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
                "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{PG}/{METADATA_DB}",
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
                "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
                "DATACLOUD_ROOT": str(self.root),
                "DATACLOUD_TASK_RETRIES": "0",
                "PYTHONPATH": os.pathsep.join(self.python_path()),
                "NO_COLOR": "1",
                **connection_env(),
            }
        )
        env.update(extra)
        return env

    def shell(self, command: str) -> subprocess.CompletedProcess[str]:
        """A shell command with this stack's environment and the venv's commands on PATH."""
        env = self.env(PATH=os.pathsep.join([str(BIN), os.environ.get("PATH", "")]))
        return subprocess.run(
            ["bash", "-c", command], env=env, capture_output=True, text=True, timeout=120
        )

    def airflow(self, *args: str, log: str) -> None:
        _run([str(BIN / "airflow"), *args], self.env(), self.run_dir / "logs" / f"{log}.log")

    def start(self, name: str, args: list[str], **extra: str) -> Process:
        log = self.run_dir / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as fh:
            popen = subprocess.Popen(
                [str(BIN / "airflow"), *args],
                env=self.env(**extra),
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.run_dir,
            )
        proc = Process(name, popen, log)
        self.processes.append(proc)
        return proc

    def up(self) -> None:
        """Migrate the metadata database and start every process; wait until all are healthy."""
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "passwords.json").write_text(json.dumps({"admin": self.password}))
        self.airflow("db", "migrate", log="db-migrate")
        self.start(
            "api-server", ["api-server", "--host", "127.0.0.1", "--port", str(self.api_port)]
        )
        self.start("scheduler", ["scheduler"])
        self.start("dag-processor", ["dag-processor"])
        for n in range(1, self.workers + 1):
            self.start(
                f"worker-{n}",
                [
                    "celery",
                    "worker",
                    "--celery-hostname",
                    f"e2e-worker-{n}@%h",
                    "--skip-serve-logs",
                ],
                DATACLOUD_WORKER_HOSTNAME=f"e2e-worker-{n}",
            )
        self.wait_healthy()

    def down(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()

    def leftovers(self) -> list[str]:
        """Processes of this stack still alive (none after ``down``)."""
        left = []
        for proc in self.processes:
            try:
                os.killpg(proc.popen.pid, 0)
            except ProcessLookupError:
                continue
            left.append(proc.name)
        return left

    def check_alive(self) -> None:
        for proc in self.processes:
            if proc.popen.poll() is not None:
                raise StackError(
                    f"{proc.name} exited with {proc.popen.returncode}\n{tail(proc.log)}"
                )

    # ----------------------------------------------------------------------------- REST API

    def token(self) -> str:
        if self._token is None:
            r = httpx.post(
                f"{self.base_url}/auth/token",
                json={"username": "admin", "password": self.password},
                timeout=30,
            )
            r.raise_for_status()
            self._token = str(r.json()["access_token"])
        return self._token

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        r = httpx.request(
            method,
            f"{self.base_url}/api/v2{path}",
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=30,
            **kwargs,
        )
        if r.status_code >= 400:
            raise StackError(f"{method} {path}: HTTP {r.status_code} {r.text[:500]}")
        return r.json() if r.content else None

    def wait(self, what: str, ready: Any, timeout: float, every: float = 2.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                value = ready()
            except (httpx.HTTPError, StackError):
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise StackError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(every)

    def wait_healthy(self, timeout: float = 240) -> None:
        def healthy() -> bool:
            r = httpx.get(f"{self.base_url}/api/v2/monitor/health", timeout=10)
            body = r.json()
            parts = ["metadatabase", "scheduler", "dag_processor"]
            return r.status_code == 200 and all(
                body.get(p, {}).get("status") == "healthy" for p in parts
            )

        self.wait("api-server, scheduler and dag-processor to report healthy", healthy, timeout)
        if self.workers:
            self.wait(
                f"{self.workers} celery workers to be ready",
                lambda: all(
                    "ready." in p.log.read_text("utf-8", errors="replace")
                    for p in self.processes
                    if p.name.startswith("worker-")
                ),
                timeout,
            )

    def wait_dag(self, dag_id: str, timeout: float = 240) -> None:
        self.wait(f"{dag_id} to be parsed", lambda: self.api("GET", f"/dags/{dag_id}"), timeout)

    def trigger(self, dag_id: str) -> str:
        """Unpause ``dag_id`` and trigger the night of ``DS``; returns the run id."""
        self.wait_dag(dag_id)
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        run_id = f"e2e__{DS.isoformat()}"
        self.api(
            "POST",
            f"/dags/{dag_id}/dagRuns",
            json={
                "dag_run_id": run_id,
                "logical_date": LOGICAL_DATE,
                "conf": {"business_date": DS.isoformat()},
            },
        )
        return run_id

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        body = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100")
        return list(body["task_instances"])

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 600) -> None:
        """Wait for the run to finish; on failure, raise with the failed tasks' logs."""
        state = self.wait(
            f"{dag_id} run {run_id} to finish",
            lambda: (
                s
                if (s := self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]) in TERMINAL
                else None
            ),
            timeout,
            every=3.0,
        )
        if state != "success":
            failed = [ti for ti in self.task_instances(dag_id, run_id) if ti["state"] != "success"]
            logs = [
                tail(p, 80)
                for p in sorted(
                    (self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}").rglob("*.log")
                )
                if any(f"task_id={ti['task_id']}" in str(p) for ti in failed)
            ]
            states = ", ".join(f"{ti['task_id']}={ti['state']}" for ti in failed)
            raise StackError(f"{dag_id} run {run_id} ended {state}: {states}\n" + "\n".join(logs))


# ---------------------------------------------------------------------------------- the night


@dataclass
class Night:
    """What a finished night left behind, for the checks."""

    stack: Stack
    task_instances: dict[str, list[dict[str, Any]]]
    seconds: float


def run_night(stack: Stack, persons: int) -> Night:
    started = time.monotonic()
    seed_samples(persons, stack.run_dir)
    stack.up()
    tis: dict[str, list[dict[str, Any]]] = {}
    # one DAG at a time: gongan's four chunks then meet idle workers (the spread is asserted)
    for dag_id in [*(f"dept_{d}" for d in DEPARTMENTS), "curation"]:
        run_id = stack.trigger(dag_id)
        stack.wait_run(dag_id, run_id)
        tis[dag_id] = stack.task_instances(dag_id, run_id)
    return Night(stack, tis, time.monotonic() - started)


@contextmanager
def night(executor: str, persons: int = 500, keep: bool = False) -> Iterator[Night]:
    """Bring a stack up, run one night, yield it for checks; always tear everything down.

    On failure the logs of every process are printed. ``keep`` leaves the run folder in place.
    """
    run_dir = Path(tempfile.mkdtemp(prefix=f"datacloud-e2e-{executor}-"))
    stack = Stack(executor, run_dir, workers=2 if executor == "celery" else 0)
    try:
        drop_databases()
        create_metadata_db()
        if executor == "celery":
            flush_redis()
        try:
            done = run_night(stack, persons)
        except BaseException:
            for proc in stack.processes:
                print(tail(proc.log, 40), file=sys.stderr)
            raise
        yield done
    finally:
        stack.down()
        drop_databases()
        if executor == "celery":
            flush_redis()
        if not keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    left = stack.leftovers()  # reached only when nothing failed before
    if left:
        raise StackError(f"still running after the shutdown: {', '.join(left)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executor", choices=["local", "celery"], default="local")
    parser.add_argument("--persons", type=int, default=500)
    parser.add_argument("--keep", action="store_true", help="keep the run folder")
    args = parser.parse_args()
    with night(args.executor, args.persons, args.keep) as done:
        for dag_id, tis in done.task_instances.items():
            hosts = sorted({ti["hostname"] for ti in tis if ti.get("hostname")})
            took = [ti["duration"] for ti in tis if ti.get("duration") is not None]
            print(
                f"{dag_id}: {len(tis)} task instances on {', '.join(hosts)}; "
                f"task durations {min(took):.1f}-{max(took):.1f} s"
            )
        chunks = [
            f"{ti['map_index']}@{ti['hostname']}"
            for ti in done.task_instances["dept_gongan"]
            if ti["task_id"] == "extract_czrk"
        ]
        print(f"extract_czrk chunks: {', '.join(sorted(chunks))}")
        for name in ("person", "enterprise"):
            from datacloud.delta import read_table

            rows = read_table(done.stack.root / "curated" / name).num_rows
            print(f"curated/{name}: {rows} rows")
        print(f"night finished in {done.seconds:.0f} s; run folder {done.stack.run_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

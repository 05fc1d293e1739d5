"""The compose stack for real: docker-compose.yml + deploy/compose.local.yaml on this machine.

Used by ``tests/stack/test_stack_compose.py`` (``make stack-test``, which builds the images
first with ``deploy/stack-test.sh``). One stack per run under a unique compose project name,
its own env file (random secrets, free 127.0.0.1 ports), brought up with ``up -d --wait``
(bounded), a night triggered through the Airflow REST API, and ``down -v --remove-orphans`` at
the end, after which no container, network or volume of the project may be left.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

REPO = Path(__file__).resolve().parents[2]
DS = "2026-11-20"
LOGICAL_DATE = "2026-11-21T02:00:00+08:00"  # the scheduled run that loads DS
DEPARTMENTS = {  # where each department's sample lives (deploy/seed-samples.sh)
    "gongan": "postgres",
    "bdc": "postgres",
    "gjj": "postgres",
    "scjg": "mariadb",
    "mz": "mariadb",
}
TERMINAL = {"success", "failed"}
T = TypeVar("T")


class StackError(RuntimeError):
    """The stack did not do what the night needs; the message says which."""


def compose_binary() -> str:
    """``DATACLOUD_COMPOSE`` (set by deploy/stack-test.sh), else ``docker-compose`` on PATH."""
    return os.environ.get("DATACLOUD_COMPOSE") or "docker-compose"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, ready: Callable[[], T | None], timeout: float, every: float = 3.0) -> T:
    """Poll ``ready`` until it returns a true value; at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = ready()
        except (httpx.HTTPError, StackError, subprocess.SubprocessError, OSError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise StackError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


@dataclass
class ComposeStack:
    workdir: Path
    project: str = field(default_factory=lambda: f"dcstack-{os.getpid()}-{secrets.token_hex(3)}")
    persons: int = 2000
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    api_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    ports: dict[str, int] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    _token: str | None = None

    # ------------------------------------------------------------------------ configuration

    def write_env(self) -> Path:
        """The run's .env: every variable of .env.example, secrets random, ports free."""
        self.ports = {
            "AIRFLOW_API_PORT": free_port(),
            "LOOKUP_API_PORT": free_port(),
            "LOCAL_S3_PORT": free_port(),
            "LOCAL_DEPT_PG_PORT": free_port(),
            "LOCAL_DEPT_MARIADB_PORT": free_port(),
        }
        keys = self.workdir / "lookup-keys.yaml"
        digest = __import__("hashlib").sha256(self.api_key.encode()).hexdigest()
        keys.write_text(
            "keys:\n  - holder: stack-test\n    role: clerk\n    department: gjj\n"
            f"    matters: [gjj_withdrawal]\n    sha256: {digest}\n",
            "utf-8",
        )
        token = secrets.token_urlsafe
        self.env = {
            "AIRFLOW_DB_USER": "airflow",
            "AIRFLOW_DB_PASSWORD": token(18),
            "AIRFLOW_DB_NAME": "airflow",
            "AIRFLOW_ADMIN_PASSWORD": self.admin_password,
            "AIRFLOW_FERNET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            "AIRFLOW_JWT_SECRET": token(64),
            "AIRFLOW_API_SECRET_KEY": token(32),
            "AIRFLOW_BASE_URL": f"http://127.0.0.1:{self.ports['AIRFLOW_API_PORT']}",
            "AIRFLOW_WORKERS": "2",
            "AIRFLOW_WORKER_CONCURRENCY": "2",  # 2 cores, shared: keep it low
            "REDIS_PASSWORD": token(18),
            "MINIO_ROOT_USER": "minio-admin",
            "MINIO_ROOT_PASSWORD": token(18),
            "DATACLOUD_BUCKET": "datacloud",
            "DATACLOUD_S3_ACCESS_KEY": "datacloud",
            "DATACLOUD_S3_SECRET_KEY": token(18),
            "DATACLOUD_S3_REGION": "us-east-1",
            "DEPT_PG_USER": "datacloud",
            "DEPT_PG_PASSWORD": token(18),
            "DEPT_MARIADB_PASSWORD": token(18),
            "SAMPLE_PERSONS": str(self.persons),
            "SAMPLE_DATE": DS,
            "LOOKUP_API_KEYS_FILE": str(keys),
            "DATACLOUD_AUDIT_KEY": token(32),
            "DATACLOUD_IMAGE": os.environ.get("DATACLOUD_IMAGE", "datacloud-local/datacloud:dev"),
            **{k: str(v) for k, v in self.ports.items()},
        }
        path = self.workdir / "stack.env"
        path.write_text("".join(f"{k}={v}\n" for k, v in self.env.items()), "utf-8")
        return path

    # ------------------------------------------------------------------------ compose

    def compose_args(self) -> list[str]:
        return [
            compose_binary(),
            "--project-directory",
            str(REPO),
            "-f",
            str(REPO / "docker-compose.yml"),
            "-f",
            str(REPO / "deploy" / "compose.local.yaml"),
            "--env-file",
            str(self.workdir / "stack.env"),
            "-p",
            self.project,
        ]

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        done = subprocess.run(
            [*self.compose_args(), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
        )
        if check and done.returncode != 0:
            raise StackError(
                f"docker compose {' '.join(args)} exited {done.returncode}:\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done.stdout

    def up(self) -> None:
        """Everything up; ``--wait`` returns when every service is healthy or completed."""
        self.write_env()
        self.compose("up", "-d", "--no-build", "--wait", "--wait-timeout", "900", timeout=960)

    def diagnosis(self) -> str:
        """``ps`` and the last log lines of every service, for a failure message."""
        out = [self.compose("ps", "-a", check=False)]
        out.append(self.compose("logs", "--no-color", "--tail", "25", check=False, timeout=120))
        return "\n".join(out)

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", "--timeout", "30", timeout=300)

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, networks and volumes of this project still on the engine."""
        label = f"label=com.docker.compose.project={self.project}"
        name = f"name={self.project}"
        found = {
            "containers": _docker("ps", "-a", "-q", "--filter", label),
            "networks": _docker("network", "ls", "-q", "--filter", label)
            + _docker("network", "ls", "-q", "--filter", name),
            "volumes": _docker("volume", "ls", "-q", "--filter", label)
            + _docker("volume", "ls", "-q", "--filter", name),
        }
        return {k: sorted(set(v)) for k, v in found.items() if v}

    def containers(self, service: str) -> list[dict[str, Any]]:
        """``docker inspect`` of the service's containers."""
        ids = _docker(
            "ps",
            "-a",
            "-q",
            "--filter",
            f"label=com.docker.compose.project={self.project}",
            "--filter",
            f"label=com.docker.compose.service={service}",
        )
        if not ids:
            return []
        raw = subprocess.run(
            ["docker", "inspect", *ids], capture_output=True, text=True, timeout=60, check=True
        ).stdout
        return list(json.loads(raw))

    def copy_out(self, service: str, path: str, dest: Path) -> Path:
        self.compose("cp", f"{service}:{path}", str(dest), timeout=120)
        return dest

    # ------------------------------------------------------------------------ REST API

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['AIRFLOW_API_PORT']}"

    def token(self) -> str:
        if self._token is None:
            r = httpx.post(
                f"{self.api_url}/auth/token",
                json={"username": "admin", "password": self.admin_password},
                timeout=30,
            )
            r.raise_for_status()
            self._token = str(r.json()["access_token"])
        return self._token

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        r = httpx.request(
            method,
            f"{self.api_url}/api/v2{path}",
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=30,
            **kwargs,
        )
        if r.status_code >= 400:
            raise StackError(f"{method} {path}: HTTP {r.status_code} {r.text[:500]}")
        return r.json() if r.content else None

    def trigger(self, dag_id: str) -> str:
        """Wait for the DAG to be parsed, unpause it, trigger the night of ``DS``."""
        wait_for(f"{dag_id} to be parsed", lambda: self.api("GET", f"/dags/{dag_id}"), 300)
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        run_id = f"stack__{DS}"
        self.api(
            "POST",
            f"/dags/{dag_id}/dagRuns",
            json={
                "dag_run_id": run_id,
                "logical_date": LOGICAL_DATE,
                "conf": {"business_date": DS},
            },
        )
        return run_id

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return list(self.api("GET", f"/dags/{dag_id}/dagRuns?limit=100")["dag_runs"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        body = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=200")
        return list(body["task_instances"])

    def wait_runs_finished(self, dag_id: str, timeout: float) -> list[dict[str, Any]]:
        """Every run of the DAG in a terminal state (asset-triggered ones included)."""

        def finished() -> list[dict[str, Any]] | None:
            runs = self.runs(dag_id)
            return runs if runs and all(r["state"] in TERMINAL for r in runs) else None

        return wait_for(f"every {dag_id} run to finish", finished, timeout, every=5.0)

    # ------------------------------------------------------------------------ data plane

    def storage_options(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.env["DATACLOUD_S3_ACCESS_KEY"],
            "AWS_SECRET_ACCESS_KEY": self.env["DATACLOUD_S3_SECRET_KEY"],
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.ports['LOCAL_S3_PORT']}",
            "AWS_REGION": self.env["DATACLOUD_S3_REGION"],
            "AWS_ALLOW_HTTP": "true",
        }

    def table_uri(self, name: str) -> str:
        return f"s3://{self.env['DATACLOUD_BUCKET']}/curated/{name}"

    def source_count(self, dept: str, table: str) -> int:
        """``COUNT(*)`` at the department's sample server, through its published port."""
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import URL

        if DEPARTMENTS[dept] == "postgres":
            url = URL.create(
                "postgresql+psycopg2",
                username=self.env["DEPT_PG_USER"],
                password=self.env["DEPT_PG_PASSWORD"],
                host="127.0.0.1",
                port=self.ports["LOCAL_DEPT_PG_PORT"],
                database=f"dc_{dept}",
            )
        else:
            url = URL.create(
                "mysql+pymysql",
                username="root",
                password=self.env["DEPT_MARIADB_PASSWORD"],
                host="127.0.0.1",
                port=self.ports["LOCAL_DEPT_MARIADB_PORT"],
                database=f"dc_{dept}",
            )
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                return int(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())
        finally:
            engine.dispose()

    def lookup(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(
            f"http://127.0.0.1:{self.ports['LOOKUP_API_PORT']}{path}",
            json=body,
            headers={"X-API-Key": self.api_key},
            timeout=30,
        )


def _docker(*args: str) -> list[str]:
    out = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    return [line for line in out.split() if line]


def new_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="datacloud-stack-"))

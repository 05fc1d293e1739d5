"""docker-compose.yml checked for structure and consistency (no Docker engine needed).

Every service's command, script, build file and mounted path exists in the repository; every
long-running service has a healthcheck and every dependency a condition that can be met;
every ``${VAR}`` is in .env.example and documented in docs/operations.md; every Airflow
setting given as ``AIRFLOW__SECTION__KEY`` is a real Airflow option; every department has
its connection; ``.env`` is git-ignored.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
OPERATIONS = REPO / "docs" / "operations.md"
IMAGE_ROOT = "/opt/datacloud/"  # where deploy/Dockerfile puts the repository
VAR = re.compile(r"(?<!\$)\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text("utf-8"))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _env_example() -> dict[str, str]:
    pairs = [
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text("utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    return {k.strip(): v.strip() for k, v in pairs}


def _interpolate(text: str) -> str:
    env = _env_example()
    return VAR.sub(lambda m: env.get(m.group(1), m.group(3) or ""), text)


def _one_shot(svc: dict[str, Any]) -> bool:
    return svc.get("restart") == "no"


def _argv(value: Any) -> list[str]:
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def test_the_stack_has_every_service_the_issue_asks_for(services: dict) -> None:
    expected = {
        "postgres",
        "redis",
        "minio",
        "minio-init",
        "dept-postgres",
        "dept-mariadb",
        "seed-samples",
        "airflow-init",
        "airflow-api-server",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
        "lookup-api",
    }
    assert expected <= set(services), expected - set(services)
    assert services["airflow-worker"]["deploy"]["replicas"]
    commands = {n: _argv(s.get("command")) for n, s in services.items()}
    assert commands["airflow-api-server"] == ["api-server"]
    assert commands["airflow-scheduler"] == ["scheduler"]
    assert commands["airflow-dag-processor"] == ["dag-processor"]
    assert commands["airflow-triggerer"] == ["triggerer"]
    assert commands["airflow-worker"] == ["celery", "worker"]
    assert commands["lookup-api"][:3] == ["python", "-m", "datacloud.lookup.api"]


def test_every_long_running_service_has_a_healthcheck(services: dict) -> None:
    for name, svc in services.items():
        if _one_shot(svc):
            continue
        check = svc.get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name}: no healthcheck"


def test_every_dependency_has_a_condition_that_can_be_met(services: dict) -> None:
    for name, svc in services.items():
        deps = svc.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on without conditions"
        for dep, how in deps.items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            condition = how.get("condition")
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}'s health"
            else:
                assert condition == "service_completed_successfully", (name, dep, condition)
                assert _one_shot(services[dep]), f"{name} waits for {dep} to exit"


def test_airflow_services_wait_for_migrations_storage_and_broker(services: dict) -> None:
    for name in ("airflow-scheduler", "airflow-worker", "airflow-triggerer", "airflow-api-server"):
        deps = services[name]["depends_on"]
        assert {"postgres", "redis", "airflow-init", "minio-init"} <= set(deps), name


def test_build_context_and_dockerfile_copies_exist(services: dict) -> None:
    builds = {
        (s["build"]["context"], s["build"]["dockerfile"]) for s in services.values() if "build" in s
    }
    assert builds == {(".", "deploy/Dockerfile")}
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text("utf-8")
    assert "FROM ${AIRFLOW_IMAGE}" in dockerfile
    assert "ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11" in dockerfile
    copies = re.findall(r"^COPY (?:--\S+ )*(.+) \S+$", dockerfile, flags=re.M)
    assert copies
    for line in copies:
        for source in line.split():
            assert (REPO / source).exists(), f"deploy/Dockerfile copies missing {source}"


def test_mounted_repository_paths_exist(services: dict) -> None:
    mounted = 0
    for name, svc in services.items():
        for volume in svc.get("volumes", []):
            source = _interpolate(volume).split(":")[0]
            if source.startswith("."):
                mounted += 1
                assert (REPO / source).exists(), f"{name} mounts missing {source}"
    assert mounted >= 4


def _container_files(svc: dict[str, Any]) -> dict[str, Path]:
    """Container path -> repository path, for the image copy and the service's bind mounts."""
    files = {}
    for volume in svc.get("volumes", []):
        source, target = _interpolate(volume).split(":")[:2]
        if source.startswith("."):
            files[target] = REPO / source
    return files


def test_every_command_script_and_module_exists(services: dict) -> None:
    checked = 0
    for name, svc in services.items():
        mounts = _container_files(svc)
        for arg in _argv(svc.get("entrypoint")) + _argv(svc.get("command")):
            if arg.startswith(IMAGE_ROOT):
                path = REPO / arg.removeprefix(IMAGE_ROOT)
            elif arg in mounts:
                path = mounts[arg]
            else:
                continue
            checked += 1
            assert path.is_file(), f"{name} runs {arg}, which is not in the repository"
            shell = "sh" if path.read_text("utf-8").startswith("#!/bin/sh") else "bash"
            proc = subprocess.run([shell, "-n", str(path)], capture_output=True, text=True)
            assert proc.returncode == 0, f"{path}: {proc.stderr}"
        argv = _argv(svc.get("command"))
        if argv[:2] == ["python", "-m"]:
            module = REPO / (argv[2].replace(".", "/") + ".py")
            assert module.is_file(), (
                f"{name} runs python -m {argv[2]}, which is not in the repository"
            )
            checked += 1
    assert checked >= 4


def test_scripts_get_the_variables_they_require(services: dict) -> None:
    for name, svc in services.items():
        for arg in _argv(svc.get("entrypoint")) + _argv(svc.get("command")):
            script = _container_files(svc).get(arg) or (
                REPO / arg.removeprefix(IMAGE_ROOT) if arg.startswith(IMAGE_ROOT) else None
            )
            if script is None or not script.is_file():
                continue
            required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", script.read_text("utf-8")))
            required |= set(re.findall(r'"\$([A-Z][A-Z0-9_]+)"', script.read_text("utf-8")))
            given = set(svc.get("environment", {}))
            assert required <= given, f"{name}: {script.name} needs {required - given}"


def _compose_vars() -> set[str]:
    return {m.group(1) for m in VAR.finditer(COMPOSE.read_text("utf-8"))}


def test_every_variable_is_in_env_example_and_documented() -> None:
    used = _compose_vars()
    example = _env_example()
    assert used - set(example) == set(), "in docker-compose.yml but not in .env.example"
    assert set(example) - used == set(), "in .env.example but not used by docker-compose.yml"
    docs = OPERATIONS.read_text("utf-8")
    undocumented = {v for v in used if f"`{v}`" not in docs}
    assert not undocumented, f"not described in docs/operations.md: {sorted(undocumented)}"


def test_env_file_is_git_ignored_and_the_example_is_not() -> None:
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO, check=False)
    assert ignored.returncode == 0
    example = subprocess.run(["git", "check-ignore", "-q", ".env.example"], cwd=REPO, check=False)
    assert example.returncode == 1


def test_secrets_come_from_env_not_literals(compose: dict, services: dict) -> None:
    secretish = re.compile(r"PASSWORD|SECRET|FERNET|_KEY$")
    for name, svc in services.items():
        for key, value in (svc.get("environment") or {}).items():
            if secretish.search(key) and key != "AWS_ACCESS_KEY_ID":
                assert "${" in str(value) or str(value).startswith("/"), f"{name}.{key} literal"


def test_airflow_settings_are_real_options(services: dict) -> None:
    from airflow.configuration import conf

    conf.load_providers_configuration()  # the [celery] options come from the provider
    known = conf.configuration_description
    env = services["airflow-scheduler"]["environment"]
    settings = [k for k in env if k.startswith("AIRFLOW__")]
    assert len(settings) > 10
    for key in settings:
        _, section, option = key.lower().split("__", 2)
        assert option in known.get(section, {}).get("options", {}), key
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    # the data plane in the MinIO bucket, the control plane on a volume every service shares
    root, state = env["DATACLOUD_ROOT"], env["DATACLOUD_STATE_ROOT"]
    assert root.startswith("s3://")
    assert "://" not in state
    for name in ("airflow-scheduler", "airflow-worker", "airflow-dag-processor", "lookup-api"):
        assert services[name]["environment"]["DATACLOUD_ROOT"] == root
        assert services[name]["environment"]["DATACLOUD_STATE_ROOT"] == state
        assert any(str(v).endswith(f":{state}") for v in services[name]["volumes"]), name
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_REGION"} <= set(
        env
    )
    assert env["AWS_CONDITIONAL_PUT"] == "etag"


def test_every_department_has_its_connection(services: dict) -> None:
    from datacloud.config import load_departments

    env = services["airflow-worker"]["environment"]
    for dept in load_departments():
        assert f"AIRFLOW_CONN_{dept.connection_id.upper()}" in env, dept.code


def test_worker_hostname_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket
    import sys

    monkeypatch.syspath_prepend(str(REPO / "deploy"))
    sys.modules.pop("worker_hostname", None)
    import worker_hostname

    monkeypatch.setenv("DATACLOUD_WORKER_HOSTNAME", "e2e-worker-9")
    assert worker_hostname.hostname() == "e2e-worker-9"
    monkeypatch.delenv("DATACLOUD_WORKER_HOSTNAME")
    assert worker_hostname.hostname() == socket.getfqdn()

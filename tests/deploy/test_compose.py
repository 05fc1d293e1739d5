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
LOCAL = REPO / "deploy" / "compose.local.yaml"  # the override without a registry
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
    text = COMPOSE.read_text("utf-8") + LOCAL.read_text("utf-8")
    return {m.group(1) for m in VAR.finditer(text)}


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


class _ComposeLoader(yaml.SafeLoader):
    """YAML with compose's merge tags (``!override``, ``!reset``) kept as plain values."""


_ComposeLoader.add_constructor(
    "!override",
    lambda loader, node: (
        loader.construct_sequence(node)
        if isinstance(node, yaml.SequenceNode)
        else loader.construct_mapping(node)
        if isinstance(node, yaml.MappingNode)
        else loader.construct_scalar(node)
    ),
)
_ComposeLoader.add_constructor("!reset", lambda loader, node: None)


def _dockerfile_runs(path: Path) -> list[str]:
    """The RUN instructions of a Dockerfile, continuation lines joined."""
    text = path.read_text("utf-8").replace("\\\n", " ")
    return [line for line in text.splitlines() if line.startswith("RUN ")]


def test_named_volumes_of_the_datacloud_image_are_folders_the_image_gives_airflow(
    compose: dict, services: dict
) -> None:
    """A new named volume takes the owner of the folder it is mounted on; a folder the image
    lacks is created root's, and the airflow user (uid 50000) could write neither the state
    nor the passwords file (what broke on the first real run)."""
    image = compose["x-datacloud-image"]["image"]
    runs = _dockerfile_runs(REPO / "deploy" / "Dockerfile")
    given = [r for r in runs if "mkdir -p" in r and "chown airflow:root" in r]
    targets = set()
    for svc in services.values():
        if svc.get("image") != image:
            continue
        for volume in svc.get("volumes", []):
            source, target = _interpolate(volume).split(":")[:2]
            if not source.startswith((".", "/")):
                targets.add(target)
    assert {"/opt/datacloud/state", "/opt/airflow/secrets", "/opt/airflow/logs"} <= targets
    for target in targets:
        assert any(target in r.split("chown", 1)[1] for r in given), (
            f"deploy/Dockerfile does not create {target} owned by airflow"
        )


def test_the_local_override_replaces_every_registry_image_and_binds_loopback(
    services: dict,
) -> None:
    local = yaml.load(LOCAL.read_text("utf-8"), Loader=_ComposeLoader)["services"]
    built = {s["image"] for s in local.values() if s.get("build") and "image" in s}
    for name, svc in services.items():
        if "build" in svc:  # the datacloud image: built FROM the local Airflow base
            continue
        assert name in local, f"{name} keeps the registry image {svc['image']}"
        assert local[name]["image"].startswith("datacloud-local/"), name
        assert local[name]["image"] in built, f"nothing builds {local[name]['image']}"
    (init,) = [n for n, s in local.items() if s.get("build", {}) and "args" in s["build"]]
    assert local[init]["build"]["args"]["AIRFLOW_IMAGE"] == local["airflow-base"]["image"]
    host_ports = set()
    for name, svc in local.items():
        for port in svc.get("ports", []):
            port = _interpolate(port)
            host_ip, host_port, _ = port.rsplit(":", 2)
            assert host_ip == "127.0.0.1", (name, port)
            host_ports.add(int(host_port))
    # the host's own PostgreSQL, MariaDB, Redis and RabbitMQ keep their ports
    assert host_ports and not host_ports & {5432, 3306, 6379, 5672}, host_ports
    for path in LOCAL.parent.glob("local/*.Dockerfile"):
        for line in re.findall(r"^COPY (?:--\S+ )*(.+) \S+$", path.read_text("utf-8"), re.M):
            for source in line.split():
                assert (REPO / source).exists(), f"{path.name} copies missing {source}"


@pytest.mark.parametrize(
    ("command", "runs"),
    [
        (["celery", "worker"], "airflow celery worker"),
        (["api-server"], "airflow api-server"),
        (["scheduler"], "airflow scheduler"),
        (["airflow", "db", "migrate"], "airflow db migrate"),
        (["python", "-c", "print('python ran')"], "python ran"),
        (["bash", "-c", "echo bash ran"], "bash ran"),
    ],
)
def test_the_local_airflow_entrypoint_runs_subcommands_as_the_official_image(
    tmp_path: Path, command: list[str], runs: str
) -> None:
    """["celery", "worker"] is `airflow celery worker`: Celery's own CLI would start a worker
    of no app on amqp://localhost (what broke on the first real run)."""
    fake = tmp_path / "airflow"
    fake.write_text('#!/bin/sh\necho "airflow $*"\n', "utf-8")
    fake.chmod(0o755)
    import os

    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", str(REPO / "deploy" / "local" / "airflow-entrypoint.sh"), *command],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == runs

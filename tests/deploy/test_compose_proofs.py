"""The lookup API's proof keyring and matters catalogue in docker-compose.yml: the keyring is a
compose secret from a git- and docker-ignored file (never in the image), the matters catalogue
the API reads is the file the curation night's resource catalogue reads."""

from __future__ import annotations

import fnmatch
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text("utf-8"))


def test_the_keyring_is_a_secret_file_outside_the_image_and_git() -> None:
    compose = _compose()
    api = compose["services"]["lookup-api"]
    env = api["environment"]
    target = env["DATACLOUD_PROOF_KEYS"]
    (mount,) = api["secrets"]
    assert target == f"/run/secrets/{mount['target']}"
    source = compose["secrets"][mount["source"]]["file"]
    host = (REPO / source).resolve()
    assert host.parent == REPO / "deploy" / "secrets"
    rel = host.relative_to(REPO).as_posix()
    ignored = subprocess.run(["git", "check-ignore", "-q", rel], cwd=REPO, check=False)
    assert ignored.returncode == 0, f"{rel} could be committed"
    patterns = [
        line.strip()
        for line in (REPO / "deploy" / "Dockerfile.dockerignore").read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert any(fnmatch.fnmatch(rel, p) for p in patterns), f"{rel} would be in the image"
    assert 1 <= int(env["DATACLOUD_PROOF_DAYS"]) <= 3650
    # no other service sees the private keys
    for name, svc in compose["services"].items():
        if name != "lookup-api":
            assert "secrets" not in svc and "DATACLOUD_PROOF_KEYS" not in (
                svc.get("environment") or {}
            ), name


def test_the_api_and_the_nights_read_the_same_matters_catalogue() -> None:
    services = _compose()["services"]
    api, worker = services["lookup-api"], services["airflow-worker"]
    path = api["environment"]["DATACLOUD_MATTERS"]
    assert worker["environment"]["DATACLOUD_MATTERS"] == path
    for svc in (api, worker):
        mounts = [v for v in svc["volumes"] if isinstance(v, str)]
        assert any(
            v.split(":")[1] == str(Path(path).parent) and (REPO / v.split(":")[0]).is_dir()
            for v in mounts
        ), mounts
    assert (REPO / "dags" / Path(path).name).is_file()

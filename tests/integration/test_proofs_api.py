"""Proofs and the data tracker end to end: the real app built from the environment
(``api.build``: keys file, audit key, matters catalogue, the proof keyring) over curated Delta
tables from a real sample night, driven through TestClient; the keyring made, rotated and
withdrawn by the real ``datacloud proof`` console script in a subprocess, and proofs checked by
``datacloud proof verify`` in a subprocess, offline, against the JWKS the server published.
Nothing is mocked. schemathesis drives the new endpoints and finds no 5xx.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import yaml
from fastapi.testclient import TestClient
from helpers import built_night_root, full_id_numbers
from hypothesis import HealthCheck, given, settings

from datacloud.delta import read_table
from datacloud.lookup import proofs
from datacloud.lookup.api import build, create_app
from datacloud.lookup.auth import hash_key
from datacloud.paths import StorageRoot

EXE = str(Path(sys.executable).with_name("datacloud"))
DS = date(2026, 11, 20)
AUDIT_KEY = "proofs-test-audit-key-0123456789"
GJJ, BDC, AUDITOR = "test-gjj-clerk-key-0001", "test-bdc-clerk-key-0001", "test-auditor-0001"
CITIZEN_A, CITIZEN_B = "test-citizen-a-key-0001", "test-citizen-b-key-0001"


def _hmac(number: str) -> str:
    return hmac.new(AUDIT_KEY.encode(), number.encode(), hashlib.sha256).hexdigest()


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorageRoot]:
    with built_night_root(tmp_path_factory, "proofs", 300, DS, "proofs-test") as r:
        yield r


@pytest.fixture(scope="module")
def owners(root: StorageRoot) -> list[str]:
    """Two persons the household register knows who own a current property right."""
    persons = {p["id_number"] for p in read_table(root.curated("person")).to_pylist()}
    rights = read_table(root.curated("property_right")).to_pylist()
    found = sorted({r["owner_id_number"] for r in rights if r["status"] == "现势"} & persons)
    assert len(found) >= 2
    return found[:2]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATACLOUD_")}
    return {**env, "COLUMNS": "200", **extra}


def datacloud(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [EXE, *args], capture_output=True, text=True, timeout=300, env=env, check=False
    )
    assert "Traceback" not in out.stdout + out.stderr, out.stderr
    return out


@pytest.fixture(scope="module")
def setup(
    root: StorageRoot, owners: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("proof-keys")
    ring = folder / "secret" / "proof-keys.json"
    env = _env(
        DATACLOUD_PROOF_KEYS=str(ring),
        DATACLOUD_AUDIT_KEY=AUDIT_KEY,
        DATACLOUD_ROOT=str(root.root),
    )
    made = datacloud("proof", "keys", "new", env=env)
    assert made.returncode == 0, made.stderr
    keys_file = folder / "keys.yaml"
    keys_file.write_text(
        yaml.safe_dump(
            {
                "keys": [
                    {"holder": "公积金中心 城东窗口 张三", "role": "clerk", "department": "gjj",
                     "matters": ["gjj_withdrawal"], "sha256": hash_key(GJJ)},
                    {"holder": "不动产登记中心 李四", "role": "clerk", "department": "bdc",
                     "matters": ["property_registration"], "sha256": hash_key(BDC)},
                    {"holder": "审计员 王五", "role": "auditor", "matters": ["gjj_withdrawal"],
                     "sha256": hash_key(AUDITOR)},
                    {"holder": "市民门户 A", "role": "citizen", "subject_hmac": _hmac(owners[0]),
                     "sha256": hash_key(CITIZEN_A)},
                    {"holder": "市民门户 B", "role": "citizen", "subject_hmac": _hmac(owners[1]),
                     "sha256": hash_key(CITIZEN_B)},
                ]
            },
            allow_unicode=True,
        )
    )  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATACLOUD_AUDIT_KEY", AUDIT_KEY)
        mp.setenv(proofs.KEYS_ENV, str(ring))
        service, keys, _ = build(root, keys_file)
        app = create_app(service, keys)
        yield {"client": TestClient(app), "env": env, "ring": ring, "folder": folder, "app": app}


def _lookup(client: TestClient, key: str, number: str, matter: str, case_no: str) -> Any:
    body = {"id_number": number, "matter": matter, "case_no": case_no, "proof": True}
    return client.post("/v1/lookup/property-status", json=body, headers={"X-API-Key": key})


def _audit_lines(root: StorageRoot) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for f in sorted(root.audit().glob("lookups-*.jsonl"))
        for line in f.read_text(encoding="utf-8").splitlines()
    ]


def test_a_property_status_proof_verifies_offline_and_survives_rotation(setup, owners) -> None:
    client, env, folder = setup["client"], setup["env"], setup["folder"]
    published = client.get("/v1/proofs/keys")  # no X-API-Key: public
    assert published.status_code == 200, published.text
    jwks = folder / "jwks-1.json"
    jwks.write_text(published.text)
    assert '"d"' not in published.text and len(published.json()["keys"]) == 1

    r = _lookup(client, GJJ, owners[0], "gjj_withdrawal", "GJJ-2026-000123")
    assert r.status_code == 200, r.text
    answer = r.json()
    proof = answer["proof"]
    head, payload, _ = proof.split(".")
    claims = json.loads(proofs.b64d(payload))
    # the proof signs the answer as returned to this clerk: the matter's items, masked
    assert claims["answer"] == {k: v for k, v in answer.items() if k not in ("proof", "audit_id")}
    assert (claims["matter"], claims["case_no"]) == ("gjj_withdrawal", "GJJ-2026-000123")
    assert claims["audit_id"] == answer["audit_id"] and claims["sources"]
    assert not full_id_numbers(proofs.b64d(payload).decode()), "a clerk's proof names no one"
    saved = folder / "answer.json"
    saved.write_text(r.text)

    ok = datacloud("proof", "verify", str(saved), "--jwks", str(jwks), env=_env())
    assert ok.returncode == 0, ok.stdout + ok.stderr
    verdict = client.post("/v1/proofs/verify", json={"proof": proof}, headers={"X-API-Key": BDC})
    assert verdict.status_code == 200 and verdict.json()["status"] == "valid"
    assert verdict.json()["claims"]["case_no"] == "GJJ-2026-000123"

    i = len(head) + 10  # a byte of the claims
    changed = proof[:i] + ("A" if proof[i] != "A" else "B") + proof[i + 1 :]
    (folder / "changed.jws").write_text(changed)
    bad = datacloud("proof", "verify", str(folder / "changed.jws"), "--jwks", str(jwks), env=_env())
    assert bad.returncode == 1, bad.stdout
    api_bad = client.post("/v1/proofs/verify", json={"proof": changed}, headers={"X-API-Key": GJJ})
    assert api_bad.json()["status"] == "invalid" and api_bad.json()["claims"] is None

    old_kid = json.loads(proofs.b64d(head))["kid"]
    assert datacloud("proof", "keys", "rotate", env=env).returncode == 0
    after = client.get("/v1/proofs/keys").json()
    assert [k["status"] for k in after["keys"]] == ["retired", "current"]
    new_proof = _lookup(client, GJJ, owners[0], "gjj_withdrawal", "GJJ-2026-000124").json()["proof"]
    assert json.loads(proofs.b64d(new_proof.split(".")[0]))["kid"] != old_kid  # no restart
    for token in (proof, new_proof):
        res = client.post("/v1/proofs/verify", json={"proof": token}, headers={"X-API-Key": GJJ})
        assert res.json()["status"] == "valid", res.json()

    assert datacloud("proof", "keys", "withdraw", old_kid, env=env).returncode == 0
    gone = client.post("/v1/proofs/verify", json={"proof": proof}, headers={"X-API-Key": GJJ})
    assert (gone.json()["status"], gone.json()["reason"]) == ("invalid", "unknown_key")
    jwks_2 = folder / "jwks-2.json"
    jwks_2.write_text(client.get("/v1/proofs/keys").text)
    assert (
        datacloud("proof", "verify", str(saved), "--jwks", str(jwks_2), env=_env()).returncode == 1
    )
    # a verifier still holding the JWKS published before the withdrawal
    assert datacloud("proof", "verify", str(saved), "--jwks", str(jwks), env=_env()).returncode == 0


def test_the_tracker_lists_exactly_that_persons_lookups(setup, owners, root) -> None:
    client, env = setup["client"], setup["env"]
    a, b = owners
    for key, number, matter, case_no in (
        (GJJ, a, "gjj_withdrawal", "GJJ-T-1"),
        (GJJ, b, "gjj_withdrawal", "GJJ-T-2"),
        (BDC, a, "property_registration", "BDC/T/3"),
        (GJJ, a, "property_registration", "GJJ-T-4"),  # not granted: 403, still a lookup of a
    ):
        _lookup(client, key, number, matter, case_no)
    mine = client.post("/v1/tracker", json={"id_number": a}, headers={"X-API-Key": CITIZEN_A})
    assert mine.status_code == 200, mine.text
    entries = mine.json()["entries"]
    cases = {e["case_no"] for e in entries}
    assert {"GJJ-T-1", "BDC/T/3", "GJJ-T-4"} <= cases and "GJJ-T-2" not in cases
    trail = [
        (r["at"], r["case_no"])
        for r in _audit_lines(root)
        if r.get("key_hmac") == _hmac(a) and r.get("endpoint") != "tracker"
    ]
    listed = [(e["at"], e["case_no"]) for e in entries if e["endpoint"] != "tracker"]
    assert sorted(listed) == sorted(trail)  # exactly the trail's lookups of a, each once
    refused = next(e for e in entries if e["case_no"] == "GJJ-T-4")
    assert refused["outcome"] == "matter_not_granted" and refused["department"] == "gjj"
    assert "张三" not in mine.text and "李四" not in mine.text and a not in mine.text

    other = client.post("/v1/tracker", json={"id_number": b}, headers={"X-API-Key": CITIZEN_A})
    assert other.status_code == 403 and other.json()["error"]["rule"] == "FORBIDDEN"
    last = _audit_lines(root)[-1]
    assert (last["endpoint"], last["outcome"], last["key_hmac"]) == (
        "tracker",
        "forbidden",
        _hmac(b),
    )
    clerk = client.post("/v1/tracker", json={"id_number": a}, headers={"X-API-Key": GJJ})
    assert clerk.status_code == 403
    audited = client.post("/v1/tracker", json={"id_number": b}, headers={"X-API-Key": AUDITOR})
    assert {e["case_no"] for e in audited.json()["entries"]} >= {"GJJ-T-2"}

    cli = datacloud("tracker", a, "--json", env=env)
    assert cli.returncode == 0, cli.stderr
    assert {e["case_no"] for e in json.loads(cli.stdout)["entries"]} >= {"GJJ-T-1", "BDC/T/3"}


@pytest.mark.parametrize("mode", ["positive", "negative"])
@pytest.mark.parametrize("key", [AUDITOR, CITIZEN_A, GJJ], ids=["auditor", "citizen", "clerk"])
def test_schemathesis_finds_no_server_error_on_the_new_endpoints(setup, mode, key) -> None:
    from schemathesis.generation import GenerationMode
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    schema = schemathesis.openapi.from_asgi("/openapi.json", setup["app"]).include(
        path_regex=r"^/v1/(proofs|tracker)"
    )
    strategy = schema.as_strategy(GenerationMode(mode))
    calls: list[int] = []

    @settings(
        max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        response = case.call(headers={"X-API-Key": key})
        calls.append(response.status_code)
        # positive_data_acceptance excluded: a schema-valid string is rarely a valid ID number
        case.validate_response(response, excluded_checks=[positive_data_acceptance])

    run()
    assert calls and all(code < 500 for code in calls)


def test_a_cli_lookup_with_proof_verifies_and_needs_the_keyring(setup, owners) -> None:
    env, folder = setup["env"], setup["folder"]
    args = ["lookup", "property-status", owners[1], "--matter", "gjj_withdrawal"]
    out = datacloud(*args, "--case-no", "CLI-2026-1", "--proof", "--json", env=env)
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    claims = json.loads(proofs.b64d(body["proof"].split(".")[1]))
    assert claims["case_no"] == "CLI-2026-1" and claims["audit_id"] == body["audit_id"]
    assert not full_id_numbers(json.dumps(claims, ensure_ascii=False))  # the clerk's view
    (folder / "cli-answer.json").write_text(out.stdout)
    checked = datacloud("proof", "verify", str(folder / "cli-answer.json"), env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    no_ring = {k: v for k, v in env.items() if k != proofs.KEYS_ENV}
    refused = datacloud(*args, "--case-no", "CLI-2026-2", "--proof", env=no_ring)
    assert refused.returncode == 3 and proofs.KEYS_ENV in refused.stderr

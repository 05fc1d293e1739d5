"""``datacloud proof`` and its exit codes as a shell sees them: the console script in a real
subprocess, a real keyring (0600) and real SM2 proofs in a temporary folder. Nothing mocked;
an expired proof is signed with a clock passed to the signer (the verifier reads the real one).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from datacloud.lookup import proofs
from datacloud.lookup.proofs import Keyring, KeyringSigner

EXE = str(Path(sys.executable).with_name("datacloud"))
CLAIMS = {
    "answer": {"id_number": "110101********0012", "owns_property": False},
    "matter": "gjj_withdrawal",
    "case_no": "GJJ-2026-000123",
    "audit_id": "0123456789abcdef0123456789abcdef",
}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATACLOUD_")}
    env["COLUMNS"] = "200"
    return {**env, **extra}


def run(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [EXE, "proof", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
        env=env or _env(),
        check=False,
    )
    assert "Traceback" not in out.stdout + out.stderr, out.stderr
    return out


def test_keys_new_rotate_publish_withdraw_and_verify_exit_codes(tmp_path: Path) -> None:
    ring_path = tmp_path / "secret" / "proof-keys.json"
    env = _env(DATACLOUD_PROOF_KEYS=str(ring_path))
    made = run("keys", "new", env=env)
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(os.stat(ring_path).st_mode) == 0o600
    again = run("keys", "new", env=env)
    assert again.returncode == 2 and "exists" in again.stderr

    ring = Keyring.load(ring_path)
    old_kid = ring.current().kid
    proof = tmp_path / "proof.jws"
    proof.write_text(ring.signer().sign(CLAIMS) + "\n")
    answer = tmp_path / "answer.json"  # a lookup answer saved as it came, proof inside
    answer.write_text(json.dumps({"owns_property": False, "proof": proof.read_text().strip()}))

    jwks = tmp_path / "jwks.json"
    published = run("keys", "publish", "--out", str(jwks), env=env)
    assert published.returncode == 0, published.stderr
    assert '"d"' not in jwks.read_text() and old_kid in jwks.read_text()

    ok = run("verify", str(proof), "--jwks", str(jwks))  # offline: the JWKS alone
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("VALID") and "有效" in ok.stdout and "GJJ-2026-000123" in ok.stdout
    assert run("verify", str(answer), "--jwks", str(jwks)).returncode == 0
    assert run("verify", "-", "--jwks", str(jwks), stdin=proof.read_text()).returncode == 0
    as_json = json.loads(run("verify", str(proof), "--json", env=env).stdout)  # keyring's set
    assert as_json["status"] == "valid" and as_json["kid"] == old_kid

    text = proof.read_text().strip()
    i = len(text) // 2
    changed = tmp_path / "changed.jws"
    changed.write_text(text[:i] + ("A" if text[i] != "A" else "B") + text[i + 1 :])
    bad = run("verify", str(changed), "--jwks", str(jwks))
    assert bad.returncode == 1 and bad.stdout.startswith("INVALID"), bad.stdout
    assert "GmSSL" not in bad.stderr and "sm2_sign.c" not in bad.stderr

    rotated = run("keys", "rotate", env=env)
    assert rotated.returncode == 0 and "retired" in rotated.stdout
    listed = run("keys", "list", env=env).stdout
    assert f"{old_kid}  retired" in listed and "current" in listed
    assert run("verify", str(proof), env=env).returncode == 0  # still published

    assert run("keys", "withdraw", Keyring.load(ring_path).current().kid, env=env).returncode == 2
    withdrawn = run("keys", "withdraw", old_kid, env=env)
    assert withdrawn.returncode == 0, withdrawn.stderr
    gone = run("verify", str(proof), "--json", env=env)
    assert gone.returncode == 1 and json.loads(gone.stdout)["reason"] == "unknown_key"
    assert run("verify", str(proof), "--jwks", str(jwks)).returncode == 0  # the old JWKS file

    os.chmod(ring_path, 0o644)
    refused = run("keys", "list", env=env)
    assert refused.returncode == 2 and "chmod 600" in refused.stderr


def test_an_expired_proof_exits_6_and_usage_errors_exit_2(tmp_path: Path) -> None:
    ring = Keyring.create(tmp_path / "k.json")
    signer = KeyringSigner(ring.current(), days=1, now=lambda: 1_700_000_000.0)  # 2023
    expired = tmp_path / "expired.jws"
    expired.write_text(signer.sign(CLAIMS))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(ring.jwks()))
    out = run("verify", str(expired), "--jwks", str(jwks))
    assert out.returncode == 6, out.stdout + out.stderr
    assert out.stdout.startswith("EXPIRED") and "已过期" in out.stdout

    assert run("verify", str(tmp_path / "missing.jws"), "--jwks", str(jwks)).returncode == 2
    no_keys = run("verify", str(expired))
    assert no_keys.returncode == 2 and proofs.JWKS_ENV in no_keys.stderr
    (tmp_path / "bad.json").write_text("[]")
    assert run("verify", str(expired), "--jwks", str(tmp_path / "bad.json")).returncode == 2
    assert run("keys", "rotate").returncode == 2  # no keyring named
    garbage = tmp_path / "garbage.txt"
    garbage.write_text("not a proof")
    assert run("verify", str(garbage), "--jwks", str(jwks)).returncode == 1


@pytest.mark.parametrize("args", [["--help"], ["verify", "--help"], ["keys", "--help"]])
def test_help_exits_0(args: list[str]) -> None:
    assert run(*args).returncode == 0


def test_lookup_serve_refuses_an_unusable_keyring_with_exit_2(tmp_path: Path) -> None:
    ring = Keyring.create(tmp_path / "ring.json")
    os.chmod(ring.path, 0o644)
    keys = tmp_path / "keys.yaml"
    keys.write_text(
        "keys:\n  - holder: 审计员\n    role: auditor\n    sha256: " + "ab" * 32 + "\n",
        encoding="utf-8",
    )
    env = _env(
        DATACLOUD_ROOT=str(tmp_path / "root"),
        DATACLOUD_AUDIT_KEY="proof-cli-test-audit-key-0123",
        DATACLOUD_PROOF_KEYS=str(ring.path),
    )
    out = subprocess.run(
        [EXE, "lookup", "serve", "--keys", str(keys), "--port", "9"],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    assert out.returncode == 2 and "chmod 600" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr

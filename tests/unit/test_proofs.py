"""Proofs (电子证明): SM2-signed compact JWS, the keyring and its rotation, verification.

Real SM2 (gmssl_pyx over GmSSL), real keyring files in a temporary folder, and OpenSSL's own
SM2 (the ``openssl`` command) as an independent implementation that must agree with ours.
Nothing is mocked; the clock is passed in (``now``), never read and asserted.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from datacloud.lookup import proofs
from datacloud.lookup.proofs import Keyring, KeyringError, KeyringSigner, LiveKeyring, verify

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
DAY = 86400
CLAIMS: dict[str, Any] = {
    "answer": {
        "id_number": "110101********0012",
        "owns_property": False,
        "property_count": 0,
        "person_known": True,
    },
    "matter": "gjj_withdrawal",
    "case_no": "GJJ-2026-000123",
    "as_of": {"property_right": {"version": 3, "as_of": "2026-11-20"}},
    "sources": ["bdc", "gongan"],
    "audit_id": "0123456789abcdef0123456789abcdef",
    "iat": 1_780_000_000,
}
NOW = 1_780_000_100.0  # a little after CLAIMS' iat


@pytest.fixture
def ring(tmp_path: Path) -> Keyring:
    return Keyring.create(tmp_path / "keys" / "proof-keys.json")


def _token(ring: Keyring, claims: dict[str, Any] | None = None, days: int = 90) -> str:
    return ring.signer(days).sign(dict(claims or CLAIMS))


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    h, p, s = token.split(".")
    return json.loads(proofs.b64d(h)), json.loads(proofs.b64d(p)), proofs.b64d(s)


# --- signing and verifying ---------------------------------------------------------------------------


def test_a_proof_verifies_against_the_published_keys_and_carries_the_claims(ring) -> None:
    token = _token(ring)
    header, body, signature = _parts(token)
    assert header == {"alg": "SM2", "kid": ring.current().kid, "typ": "datacloud-proof+jws"}
    assert len(signature) == 64  # r || s, as JWS writes EC signatures
    assert body["exp"] == CLAIMS["iat"] + 90 * DAY and body["iss"] == "datacloud"
    assert {k: body[k] for k in CLAIMS} == CLAIMS  # exactly what the service handed over

    verdict = verify(token, ring.jwks(), now=NOW)
    assert (verdict.status, verdict.reason, verdict.kid) == ("valid", "ok", ring.current().kid)
    assert verdict.key_status == "current" and verdict.claims == body
    assert "有效" in verdict.message_zh and verdict.message.startswith("valid")


def test_the_validity_is_configurable_and_an_iso_iat_is_converted(ring, monkeypatch) -> None:
    monkeypatch.setenv(proofs.DAYS_ENV, "30")
    signer = ring.signer()
    _, body, _ = _parts(signer.sign({**CLAIMS, "iat": "2026-12-05T10:00:00+00:00"}))
    assert body["iat"] == 1_796_464_800 and body["exp"] == body["iat"] + 30 * DAY
    monkeypatch.setenv(proofs.DAYS_ENV, "0")
    with pytest.raises(KeyringError, match=proofs.DAYS_ENV):
        ring.signer()


def test_every_changed_character_makes_the_proof_invalid(ring) -> None:
    """Each character of the proof replaced by its neighbour in the base64url alphabet (which
    changes only the lowest bit: the last character of a part carries unused bits there, so a
    lenient decoder would read the same bytes) and by a far one: never valid."""
    token = _token(ring)
    jwks = ring.jwks()
    assert verify(token, jwks, now=NOW).status == "valid"
    seen: set[str] = set()
    for i, ch in enumerate(token):
        if ch == ".":
            changes = ["A", ""]
        else:
            n = ALPHABET.index(ch)
            changes = [ALPHABET[n ^ 1], ALPHABET[(n + 32) % 64]]
        for new in changes:
            changed = token[:i] + new + token[i + 1 :]
            verdict = verify(changed, jwks, now=NOW)
            assert verdict.status == "invalid", (i, ch, new, verdict)
            seen.add(verdict.reason)
    assert {"bad_signature", "malformed"} <= seen


def test_a_changed_byte_in_the_answer_is_a_bad_signature(ring) -> None:
    token = _token(ring)
    head, payload, sig = token.split(".")
    text = proofs.b64d(payload).replace(b'"owns_property":false', b'"owns_property":true ')
    assert text != proofs.b64d(payload)
    forged = f"{head}.{proofs.b64e(text)}.{sig}"
    verdict = verify(forged, ring.jwks(), now=NOW)
    assert (verdict.status, verdict.reason) == ("invalid", "bad_signature")
    assert verdict.claims is None  # nothing of a forged proof is handed back as certified
    assert "签名验证失败" in verdict.message_zh


def test_a_wrong_key_is_invalid(ring, tmp_path) -> None:
    other = Keyring.create(tmp_path / "other.json")
    by_other = _token(other)
    verdict = verify(by_other, ring.jwks(), now=NOW)
    assert (verdict.status, verdict.reason) == ("invalid", "unknown_key")
    # the same, claiming the platform's key id: the signature does not match that key
    impostor = KeyringSigner(
        proofs.SigningKey(ring.current().kid, other.current().public, other.current().private)
    )
    verdict = verify(impostor.sign(CLAIMS), ring.jwks(), now=NOW)
    assert (verdict.status, verdict.reason) == ("invalid", "bad_signature")


def test_an_expired_proof_is_expired_not_valid(ring) -> None:
    token = _token(ring, days=1)
    exp = CLAIMS["iat"] + DAY
    assert verify(token, ring.jwks(), now=exp - 1).status == "valid"
    verdict = verify(token, ring.jwks(), now=exp)
    assert (verdict.status, verdict.reason) == ("expired", "expired")
    assert verdict.claims is not None and verdict.claims["case_no"] == CLAIMS["case_no"]
    assert "已过期" in verdict.message_zh and verdict.expires_at == "2026-05-29T20:26:40+00:00"


def test_rotation_keeps_old_proofs_valid_until_the_key_is_withdrawn(ring) -> None:
    old_kid = ring.current().kid
    old_proof = _token(ring)
    published_before = ring.jwks()
    new_kid = ring.rotate()
    assert new_kid != old_kid and ring.current().kid == new_kid
    new_proof = _token(ring)
    assert _parts(new_proof)[0]["kid"] == new_kid

    after_rotation = Keyring.load(ring.path).jwks()  # what the file says, read again
    assert [k["kid"] for k in after_rotation["keys"]] == [old_kid, new_kid]
    old = verify(old_proof, after_rotation, now=NOW)
    assert (old.status, old.key_status) == ("valid", "retired")
    assert verify(new_proof, after_rotation, now=NOW).key_status == "current"

    Keyring.load(ring.path).withdraw(old_kid)
    withdrawn = Keyring.load(ring.path)
    assert [k["kid"] for k in withdrawn.jwks()["keys"]] == [new_kid]
    gone = verify(old_proof, withdrawn.jwks(), now=NOW)
    assert (gone.status, gone.reason) == ("invalid", "unknown_key")
    assert "未知密钥或已撤销" in gone.message_zh
    assert verify(new_proof, withdrawn.jwks(), now=NOW).status == "valid"
    # a verifier still holding the JWKS published while the old key was: still valid there
    assert verify(old_proof, published_before, now=NOW).status == "valid"
    assert [e["status"] for e in withdrawn.entries()] == ["withdrawn", "current"]
    assert '"d"' not in json.dumps(withdrawn.jwks())
    saved = json.loads(ring.path.read_text())
    assert next(k for k in saved["keys"] if k["kid"] == old_kid)["d"] is None


def test_malformed_proofs_are_invalid_with_a_reason(ring) -> None:
    jwks = ring.jwks()
    token = _token(ring)
    head, payload, sig = token.split(".")
    none_alg = proofs.b64e(b'{"alg":"none","kid":"x"}')
    cases = {
        "": "malformed",
        "a.b": "malformed",
        "a.b.c": "malformed",
        f"{head}.{payload}.{sig}.x": "malformed",
        f"{head}.{payload}.": "malformed",
        f"{none_alg}.{payload}.": "unsupported_alg",
        f"{proofs.b64e(b'[1]')}.{payload}.{sig}": "malformed",
        f"{head}.{payload}.{proofs.b64e(b'x' * 63)}": "malformed",
        f"{head}.{payload}.{proofs.b64e(bytes(64))}": "bad_signature",  # r = s = 0
    }
    for text, reason in cases.items():
        verdict = verify(text, jwks, now=NOW)
        assert (verdict.status, verdict.reason) == ("invalid", reason), text
        assert verdict.message and verdict.message_zh
    deep = proofs.b64e(b"[" * 100_000 + b"]" * 100_000)  # read before any signature check
    assert verify(f"{deep}.{payload}.{sig}", jwks).reason == "malformed"
    assert verify(None, jwks).reason == "malformed"
    assert verify(token + "\n", jwks, now=NOW).status == "valid"  # a file's last newline
    assert verify(token, {"keys": "nope"}, now=NOW).reason == "unknown_key"


# --- the keyring file ----------------------------------------------------------------------------------


def test_the_keyring_is_0600_refused_when_open_and_never_shows_private_keys(ring) -> None:
    assert stat.S_IMODE(os.stat(ring.path).st_mode) == 0o600
    ring.rotate()
    assert stat.S_IMODE(os.stat(ring.path).st_mode) == 0o600
    private = proofs.b64e(ring.current().private)
    assert private not in json.dumps(ring.jwks()) and private not in repr(ring.current())
    os.chmod(ring.path, 0o644)
    with pytest.raises(KeyringError, match="chmod 600"):
        Keyring.load(ring.path)
    os.chmod(ring.path, 0o600)
    with pytest.raises(KeyringError, match="exists"):
        Keyring.create(ring.path)
    with pytest.raises(KeyringError, match="rotate first"):
        Keyring.load(ring.path).withdraw(ring.current().kid)


def test_a_tampered_keyring_is_refused(ring) -> None:
    doc = json.loads(ring.path.read_text())
    other = Keyring.create(ring.path.with_name("other.json"))
    doc["keys"][0]["d"] = proofs.b64e(other.current().private)  # private half of another key
    ring.path.write_text(json.dumps(doc))
    with pytest.raises(KeyringError, match="do not match"):
        Keyring.load(ring.path)
    ring.path.write_text("{not json")
    with pytest.raises(KeyringError, match="not a readable keyring"):
        Keyring.load(ring.path)
    with pytest.raises(KeyringError, match="does not exist"):
        Keyring.load(ring.path.with_name("missing.json"))


def test_the_server_keyring_follows_a_rotation_on_disk(ring) -> None:
    live = LiveKeyring(ring.path, days=90)
    first = live.sign(CLAIMS)
    kid = Keyring.load(ring.path).rotate()  # the CLI, in another process, rotates
    second = live.sign(CLAIMS)
    assert _parts(second)[0]["kid"] == kid != _parts(first)[0]["kid"]
    assert all(verify(t, live.jwks(), now=NOW).status == "valid" for t in (first, second))


# --- an independent SM2: OpenSSL's -----------------------------------------------------------------------

SPKI_PREFIX = bytes.fromhex(
    "3059301306072a8648ce3d020106082a811ccf5501822d034200"
)  # id-ecPublicKey, SM2


def _openssl(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=False)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command is not installed")
def test_openssl_verifies_our_proofs_and_we_verify_openssl_signatures(ring, tmp_path) -> None:
    sm2 = ("-digest", "sm3", "-pkeyopt", "distid:1234567812345678")
    # ours, checked by OpenSSL
    token = _token(ring)
    head, payload, sig = token.split(".")
    raw = proofs.b64d(sig)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    spki = SPKI_PREFIX + b"\x04" + ring.current().public
    pem = tmp_path / "pub.pem"
    pem.write_text(
        "-----BEGIN PUBLIC KEY-----\n"
        + base64.encodebytes(spki).decode()
        + "-----END PUBLIC KEY-----\n"
    )
    (tmp_path / "sig.der").write_bytes(der)
    for message, expected in ((f"{head}.{payload}", 0), (f"{head}.{payload}x", 1)):
        (tmp_path / "msg").write_bytes(message.encode())
        out = _openssl(
            "pkeyutl", "-verify", "-pubin", "-inkey", str(pem), "-rawin",
            "-in", str(tmp_path / "msg"), "-sigfile", str(tmp_path / "sig.der"), *sm2,
        )  # fmt: skip
        assert out.returncode == expected, out.stderr
    # OpenSSL's key and signature, checked by us
    key = tmp_path / "key.pem"
    assert _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:SM2",
                    "-out", str(key)).returncode == 0  # fmt: skip
    public_der = _openssl("pkey", "-in", str(key), "-pubout", "-outform", "DER").stdout
    assert public_der.startswith(SPKI_PREFIX + b"\x04")
    public = public_der[len(SPKI_PREFIX) + 1 :]
    kid = proofs.thumbprint(public)
    header = proofs.b64e(json.dumps({"alg": "SM2", "kid": kid}).encode())
    body = proofs.b64e(json.dumps({"answer": {"x": 1}, "exp": 2_000_000_000}).encode())
    (tmp_path / "msg").write_bytes(f"{header}.{body}".encode())
    signed = _openssl(
        "pkeyutl", "-sign", "-inkey", str(key), "-rawin", "-in", str(tmp_path / "msg"), *sm2
    )
    assert signed.returncode == 0, signed.stderr
    r, s = decode_dss_signature(signed.stdout)
    theirs = f"{header}.{body}.{proofs.b64e(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
    jwks = {
        "keys": [
            {"kty": "EC", "crv": "SM2", "kid": kid, "x": proofs.b64e(public[:32]),
             "y": proofs.b64e(public[32:])}
        ]
    }  # fmt: skip
    assert verify(theirs, jwks, now=time.time()).status == "valid"

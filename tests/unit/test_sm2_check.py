"""SM2 verification without GmSSL's stderr trace: ``sm2_check`` agrees with GmSSL on real
signatures (valid and altered), and verifying bad proofs prints nothing on file descriptor 2 in
a real subprocess (as a threaded server would: no fd 2 redirection around the call)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import gmssl_pyx
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from datacloud.lookup import sm2_check
from datacloud.lookup.proofs import SIGNER_ID


def test_the_python_check_agrees_with_gmssl() -> None:
    for i in range(12):
        public, private = gmssl_pyx.sm2_key_generate()
        message = os.urandom(40 + i)
        der = gmssl_pyx.sm2_sign(private, public, message, signer_id=SIGNER_ID)
        r, s = decode_dss_signature(der)
        assert sm2_check.verify(public, message, r, s, SIGNER_ID)
        assert sm2_check.verify(b"\x04" + public, message, r, s, SIGNER_ID)
        for bad_r, bad_s, msg, sid in (
            (r, s, message + b"x", SIGNER_ID),
            (r, (s + 1) % sm2_check.N, message, SIGNER_ID),
            ((r + 1) % sm2_check.N, s, message, SIGNER_ID),
            (r, s, message, b"8765432187654321"),
        ):
            assert not sm2_check.verify(public, msg, bad_r, bad_s, sid)
    other, _ = gmssl_pyx.sm2_key_generate()
    assert not sm2_check.verify(other, message, r, s, SIGNER_ID)
    assert not sm2_check.verify(public[:63], message, r, s, SIGNER_ID)
    off_curve = public[:32] + bytes(32)
    assert not sm2_check.verify(off_curve, message, r, s, SIGNER_ID)
    assert not sm2_check.verify(public, message, 0, s, SIGNER_ID)
    assert not sm2_check.verify(public, message, r, sm2_check.N, SIGNER_ID)
    assert not sm2_check.verify(public, message, r, sm2_check.N - r, SIGNER_ID)  # t = 0


def test_verifying_bad_proofs_prints_nothing_on_stderr(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import base64
        from pathlib import Path
        from datacloud.lookup.proofs import Keyring, verify
        ring = Keyring.create(Path({str(tmp_path / "k" / "proof-keys.json")!r}))
        token = ring.signer(90).sign({{"answer": {{"owns_property": False}}, "matter": "m"}})
        jwks = ring.jwks()
        assert verify(token, jwks).status == "valid"
        head, claims, sig = token.split(".")
        raw = bytearray(base64.urlsafe_b64decode(sig + "=="))
        raw[10] ^= 1
        bad_sig = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
        other = claims[:-2] + ("A" if claims[-2] != "A" else "B") + claims[-1]
        for bad in (f"{{head}}.{{claims}}.{{bad_sig}}", f"{{head}}.{{other}}.{{sig}}"):
            v = verify(bad, jwks)
            assert v.status == "invalid" and v.reason == "bad_signature", v
        print("checked")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0 and out.stdout.strip() == "checked", out.stderr
    assert out.stderr == ""

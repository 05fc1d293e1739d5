"""Proof signing and verifying (SM2 via gmssl-pyx, ``datacloud.lookup.proofs``) against
Ed25519 from ``cryptography`` on the same bytes: what choosing SM2 costs (docs/decisions.md).

``rows`` proofs of a clerk's property-status answer are signed with a fresh keyring, then each
verified against its JWKS (base64url decoding, the header and claims parsed, the signature
checked); the anchor signs and verifies the same ``header.claims`` bytes with Ed25519 (the
raw primitive, so the ratio is an upper bound of what SM2 adds). Best of three rounds each.
The targets record what was accepted: a proof is signed only when a lookup asks for one.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.harness import best_of, timed_ratio, write_result
from datacloud.lookup import proofs

CLAIMS = {
    "answer": {
        "id_number": "110101********0012",
        "owns_property": False,
        "property_count": 0,
        "person_known": True,
        "as_of": "2026-11-20",
        "sources": ["bdc"],
    },
    "matter": "gjj_withdrawal",
    "case_no": "GJJ-2026-000123",
    "as_of": {"property_right": {"version": 3, "as_of": "2026-11-20"}},
    "sources": ["bdc"],
    "audit_id": "0123456789abcdef0123456789abcdef",
    "iat": 1_796_464_800,
}


def run(rows: int = 500) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        ring = proofs.Keyring.create(Path(tmp) / "keys.json")
        signer, jwks = ring.signer(90), ring.jwks()
        tokens: list[str] = []
        sign_s = best_of(
            lambda: tokens.__setitem__(slice(None), [signer.sign(CLAIMS) for _ in range(rows)])
        )
        verify_s = best_of(lambda: [proofs.verify(t, jwks, now=1_796_464_900) for t in tokens])
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    message = tokens[0].rsplit(".", 1)[0].encode("ascii")
    signatures = [key.sign(message) for _ in range(rows)]
    ed_sign_s = best_of(lambda: [key.sign(message) for _ in range(rows)])
    ed_verify_s = best_of(lambda: [public.verify(s, message) for s in signatures])
    metrics = [
        timed_ratio("sign", sign_s, "Ed25519 sign (cryptography)", ed_sign_s, "<= 200"),
        timed_ratio("verify", verify_s, "Ed25519 verify (cryptography)", ed_verify_s, "<= 20"),
    ]
    return write_result(
        "proofs",
        rows,
        metrics,
        per_proof_ms={
            "sign": round(sign_s / rows * 1e3, 3),
            "verify": round(verify_s / rows * 1e3, 3),
        },
        proof_chars=len(tokens[0]),
    )

"""The proofs' HTTP routes: ``POST /v1/proofs/verify`` (is this proof valid, invalid or
expired, and why) and ``GET /v1/proofs/keys`` (the published public keys as a JWKS, no key
needed: a verifier anywhere checks proofs offline against it). docs/proofs.md
"""

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from datacloud.lookup import proofs
from datacloud.lookup.auth import ALLOWED, ROLES, Principal
from datacloud.lookup.service import Forbidden

VERIFY = "proof_verify"  # ALLOWED's name for the verify endpoint


class VerifyQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    proof: str = Field(
        max_length=proofs.MAX_TOKEN_CHARS,
        description="the proof: a compact JWS as a lookup answered it (the answer's `proof`)",
    )


class ProofVerdict(BaseModel):
    status: Literal["valid", "invalid", "expired"]
    reason: Literal[
        "ok", "expired", "malformed", "unsupported_alg", "unknown_key", "bad_signature"
    ] = Field(description="why: ok, expired, or what makes it invalid")
    message: str
    message_zh: str
    kid: str | None = Field(None, description="the key that signed it (when the header names one)")
    key_status: str | None = Field(None, description="current or retired (a published key)")
    expires_at: str | None = Field(
        None, description="valid until (UTC), when signed by a known key"
    )
    claims: dict[str, Any] | None = Field(
        None, description="what the proof certifies (valid or expired proofs only)"
    )


class Jwk(BaseModel):
    model_config = ConfigDict(extra="allow")
    kty: str
    crv: str
    x: str
    y: str
    kid: str
    alg: str
    use: str


class Jwks(BaseModel):
    keys: list[Jwk]


def proof_router(
    jwks: Callable[[], dict[str, Any]],
    who: Callable[..., Principal],
    errors: dict[int | str, dict[str, Any]] | None = None,
) -> APIRouter:
    """The routes over ``jwks`` (the published keys, read per request: a rotation shows at
    once); ``who`` is the app's principal dependency, ``errors`` its documented error bodies."""
    # no ``from __future__ import annotations`` in this module: FastAPI reads the annotation
    # of the route's parameter, and as a string it could not name the local ``who``
    Who = Annotated[Principal, Depends(who)]
    router = APIRouter(tags=["proofs"])
    allowed = ALLOWED.get(VERIFY, frozenset(ROLES))

    @router.post(
        "/v1/proofs/verify",
        response_model=ProofVerdict,
        responses={k: v for k, v in (errors or {}).items() if k in (400, 401, 403, 413, 422, 429)},
    )
    def verify_proof(q: VerifyQuery, principal: Who) -> dict[str, Any]:
        """Checks a proof against the published keys: ``valid``, ``invalid`` (malformed, a
        changed byte, another key, a withdrawn key) or ``expired``, with the reason in English
        and Chinese. Always 200 when the check ran; the verdict is in the body."""
        if principal.role not in allowed:
            raise Forbidden(f"role {principal.role} may not verify proofs")
        return proofs.verify(q.proof, jwks()).as_dict()

    @router.get("/v1/proofs/keys", response_model=Jwks)
    def published_keys() -> dict[str, Any]:
        """The platform's published proof keys (JWKS: ``kty`` EC, ``crv`` SM2): the current
        key and the retired ones whose proofs still verify. No key needed."""
        return jwks()

    return router

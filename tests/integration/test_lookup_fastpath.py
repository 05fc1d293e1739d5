"""The lean path of the lookup routes (datacloud.lookup.fastpath) answers exactly as the FastAPI
routes do: the same status and body for answers (auditor and masked clerk, person, enterprise,
property status, a proof, as_of), for the service's refusals (not found, person unknown,
malformed key, matter not granted, no curated data) and for bodies the lean checks hand to
the route (schema errors). Real parts: a sample night's curated Delta tables served from the
paged files, a real file audit trail; two apps over the same service, one with ``lean=False``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import date
from typing import Any

import lookup_matters
import pytest
from fastapi.testclient import TestClient
from helpers import built_night_root
from lookup_matters import ALL

from datacloud.delta import read_table
from datacloud.lookup.api import create_app
from datacloud.lookup.audit import AuditLog, FileSink
from datacloud.lookup.auth import ApiKeyEntry, ApiKeys, hash_key
from datacloud.lookup.fastpath import parse
from datacloud.lookup.limits import LookupLimits, RoleLimits
from datacloud.lookup.service import LookupService
from datacloud.lookup.store import CuratedStore
from datacloud.paths import StorageRoot
from datacloud.problem_disputes import DisputeIndex

DS = date(2026, 11, 20)
MATTERS = lookup_matters.catalogue()
CLERK_KEY, AUDITOR_KEY, NARROW_KEY = "fp-clerk-key-0001", "fp-auditor-key-0001", "fp-narrow-01"
KEYS = ApiKeys(
    [
        ApiKeyEntry(
            holder="城东窗口3号",
            role="clerk",
            department="gjj",
            matters=(ALL,),
            sha256=hash_key(CLERK_KEY),
        ),
        ApiKeyEntry(holder="审计员A", role="auditor", matters=(ALL,), sha256=hash_key(AUDITOR_KEY)),
        ApiKeyEntry(
            holder="窗口B",
            role="clerk",
            department="gjj",
            matters=("gjj_withdrawal",),
            sha256=hash_key(NARROW_KEY),
        ),
    ],
    # the comparison sends every request twice: limits it stays under
    LookupLimits(
        roles={
            role: RoleLimits(rate="100000/minute", quota="1000000/day")
            for role in ("clerk", "auditor")
        }
    ),
)
HEADERS = {
    "clerk": {"X-API-Key": CLERK_KEY},
    "auditor": {"X-API-Key": AUDITOR_KEY},
    "narrow": {"X-API-Key": NARROW_KEY},
}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorageRoot]:
    with built_night_root(tmp_path_factory, "fastpath", 300, DS, "fastpath-test") as r:
        yield r


@pytest.fixture(scope="module")
def clients(root: StorageRoot) -> tuple[TestClient, TestClient]:
    service = LookupService(
        CuratedStore(root),
        AuditLog([FileSink(root.root / "audit")], b"fastpath-audit-key-0123"),
        catalogue=MATTERS,
        signer=lookup_matters.FakeSigner(),
        disputes=DisputeIndex(root).disputes_for,
    )
    return TestClient(create_app(service, KEYS)), TestClient(create_app(service, KEYS, lean=False))


def _same(lean: Any, route: Any) -> dict[str, Any]:
    """Status, content type and body equal but for what differs per request (the audit id;
    a proof signs the audit id and the issue time)."""
    assert lean.status_code == route.status_code, (lean.text, route.text)
    assert lean.headers["content-type"] == route.headers["content-type"]
    a, b = lean.json(), route.json()
    if "audit_id" in a and "proof" not in a:  # the same bytes, but for the audit id
        ours = lean.content.replace(a["audit_id"].encode(), b["audit_id"].encode())
        assert ours == route.content
    for body in (a, b):
        body.pop("audit_id", None)
        proof = body.pop("proof", None)
        if proof is not None:
            payload = proof.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            claims.pop("audit_id"), claims.pop("iat")
            body["proof_claims"] = claims
    assert a == b
    return a


def _bodies(root: StorageRoot) -> list[tuple[str, str, dict[str, Any]]]:
    person = read_table(root.curated("person")).to_pylist()
    ent = read_table(root.curated("enterprise")).to_pylist()[0]
    owners = [r["owner_id_number"] for r in read_table(root.curated("property_right")).to_pylist()]
    ids = [p["id_number"] for p in person[:3]] + owners[:2]
    base = {"purpose": "公积金提取审核", **lookup_matters.body()}
    out: list[tuple[str, str, dict[str, Any]]] = []
    for who in ("clerk", "auditor"):
        for number in ids:
            out.append((who, "person", {**base, "id_number": number}))
            out.append((who, "property-status", {**base, "id_number": number.lower()}))
        out.append((who, "enterprise", {**base, "code": ent["credit_code"]}))
        out.append((who, "enterprise", {**base, "code": "91330100MA2B3C4D5X"}))  # malformed
        out.append((who, "person", {**base, "id_number": "110101199001011234"}))  # check digit
        out.append((who, "person", {**lookup_matters.body(), "id_number": ids[0]}))  # no purpose
        out.append((who, "person", {**base, "id_number": ids[0], "as_of": "2026-11-20"}))
        out.append((who, "person", {**base, "id_number": ids[0], "as_of": "2001-01-01"}))
        out.append((who, "person", {**base, "id_number": ids[1], "proof": True}))
        out.append((who, "property-status", {**base, "id_number": "11010119900307663X"}))
    out.append(("narrow", "person", {**base, "id_number": ids[0]}))  # matter not granted
    # handed to the route: its pydantic validation answers (422 REQUEST_SCHEMA)
    for bad in (
        {"extra": 1},
        {"purpose": "   "},
        {"purpose": ""},
        {"proof": "yes"},
        {"proof": None},
        {"as_of": "2026-2-1"},
        {"as_of": "2026-02-30"},
        {"matter": "Not-A-Code"},
        {"case_no": "has space"},
        {"id_number": 110101199001011234},
        {"id_number": "1" * 65},
    ):
        out.append(("clerk", "person", {**base, "id_number": ids[0], **bad}))
    out.append(("clerk", "person", {"id_number": ids[0]}))  # no matter, no case number
    return out


def test_lean_answers_are_the_routes_answers(root, clients) -> None:
    lean, route = clients
    seen: set[int] = set()
    for who, path, body in _bodies(root):
        a = lean.post(f"/v1/lookup/{path}", json=body, headers=HEADERS[who])
        b = route.post(f"/v1/lookup/{path}", json=body, headers=HEADERS[who])
        _same(a, b)
        seen.add(a.status_code)
    assert {200, 403, 404, 422} <= seen


def test_bodies_that_are_not_plain_json_objects_go_to_the_route(root, clients) -> None:
    lean, route = clients
    number = read_table(root.curated("person")).to_pylist()[0]["id_number"]
    body = json.dumps({**lookup_matters.body(), "id_number": number}).encode()
    for content, ctype in (
        (b"not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (body, "text/plain"),
    ):
        headers = {**HEADERS["clerk"], "Content-Type": ctype}
        a = lean.post("/v1/lookup/person", content=content, headers=headers)
        b = route.post("/v1/lookup/person", content=content, headers=headers)
        _same(a, b)


def test_parse_accepts_only_what_the_model_takes_as_it_stands() -> None:
    good = {"id_number": "x", "matter": "gjj_withdrawal", "case_no": "A-1/2"}
    q = parse(json.dumps(good).encode(), "id_number")
    assert q is not None and (q.key, q.purpose, q.as_of, q.proof) == ("x", "", None, False)
    q = parse(json.dumps({**good, "as_of": "2026-11-20", "proof": True}).encode(), "id_number")
    assert q is not None and q.as_of == date(2026, 11, 20) and q.proof
    for bad in (
        {"code": "x"},
        {"purpose": "\x1c"},
        {"purpose": "x" * 201},
        {"matter": "gjj_withdrawal\n"},
        {"proof": 1},
        {"as_of": "20261120"},
    ):
        assert parse(json.dumps({**good, **bad}).encode(), "id_number") is None, bad
    assert parse(json.dumps(good).encode(), "code") is None

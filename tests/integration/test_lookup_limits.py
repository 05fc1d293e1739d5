"""The lookup API under attack, on a real uvicorn server on 127.0.0.1 over curated tables built
by the real pipeline: enumerating a masked ID number's birth date, guessing keys, large bodies;
plus healthz when the audit trail cannot be written and the offline docs page.

Nothing is mocked: real sockets, real Delta tables, a real audit trail on disk.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from helpers import built_night_root, free_port

from datacloud.delta import read_table
from datacloud.lookup.api import create_app
from datacloud.lookup.audit import AuditLog, FileSink
from datacloud.lookup.auth import ApiKeyEntry, ApiKeys, hash_key
from datacloud.lookup.limits import Lockout, LookupLimits
from datacloud.lookup.service import LookupService
from datacloud.lookup.store import CuratedStore
from datacloud.paths import StorageRoot
from transforms.id_number import id_check_char

DS = date(2026, 11, 20)
CLERK_KEY, AUDITOR_KEY = "limits-clerk-key-0001", "limits-auditor-key-0001"
AUDIT_KEY = b"limits-audit-key-0123456789"
ENTRIES = [
    ApiKeyEntry(
        holder="城西窗口1号",
        role="clerk",
        department="bdc",
        matters=("property_registration",),
        sha256=hash_key(CLERK_KEY),
    ),
    ApiKeyEntry(
        holder="审计员B",
        role="auditor",
        matters=("property_registration", "gjj_withdrawal"),
        sha256=hash_key(AUDITOR_KEY),
    ),
]
# every lookup names its matter and case number: 不动产登记 reads a person's name and address
M = {"matter": "property_registration", "case_no": "BDC-2026-0007"}
CLERK, AUDITOR = {"X-API-Key": CLERK_KEY}, {"X-API-Key": AUDITOR_KEY}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorageRoot]:
    with built_night_root(tmp_path_factory, "limits", 120, DS, "limits-test") as r:
        yield r


@pytest.fixture(scope="module")
def persons(root: StorageRoot) -> list[str]:
    return [str(x) for x in read_table(root.curated("person"))["id_number"].to_pylist()]


@contextlib.contextmanager
def _serving(app: FastAPI) -> Iterator[tuple[str, int]]:
    """``app`` under uvicorn in a thread on 127.0.0.1; yields (base URL, port)."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(400):  # bounded wait for the start (the snapshot loads first)
            if server.started:
                break
            time.sleep(0.05)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}", port
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def _service(root: StorageRoot, audit_dir: Path) -> tuple[LookupService, CuratedStore]:
    store = CuratedStore(root, poll_seconds=60)
    return LookupService(store, AuditLog([FileSink(audit_dir)], AUDIT_KEY)), store


def _trail(audit_dir: Path) -> tuple[str, list[dict[str, Any]]]:
    text = "".join(p.read_text(encoding="utf-8") for p in sorted(audit_dir.glob("*.jsonl")))
    return text, [json.loads(line) for line in text.splitlines() if line.strip()]


# --- 1. enumeration of a masked number's birth date --------------------------------------------


def _candidates(true: str, before: int, after: int) -> list[str]:
    """Guesses an attacker makes for the masked ``true`` (first 6 and last 4 shown): birth dates
    around the true one, keeping only those whose check character is the one shown."""
    born = date(int(true[6:10]), int(true[10:12]), int(true[12:14]))

    def guess(d: date) -> str | None:
        first17 = f"{true[:6]}{d:%Y%m%d}{true[14:17]}"
        return first17 + true[17] if id_check_char(first17) == true[17] else None

    earlier: list[str] = []
    d = born - timedelta(days=1)
    for _ in range(20000):  # bounded walk back in time
        if len(earlier) == before:
            break
        g = guess(d)
        if g:
            earlier.append(g)
        d -= timedelta(days=1)
    later: list[str] = []
    d = born + timedelta(days=1)
    for _ in range(20000):
        if len(later) == after or d > DS:
            break
        g = guess(d)
        if g:
            later.append(g)
        d += timedelta(days=1)
    return [*reversed(earlier), true, *later]


def test_enumerating_a_masked_numbers_birth_date_is_stopped_and_alerted(
    root, persons, tmp_path, caplog
) -> None:
    """A clerk holding a masked number tries 366 birth dates (each with the shown check
    character): with the default limits (clerk 30/minute) the true number is never reached,
    every answer after the 30th is 429 with Retry-After, and the not-found burst (20 within a
    minute) leaves an alert in the audit trail and the log, without any number in either."""
    caplog.set_level(logging.WARNING, logger="datacloud.lookup.api")
    known = set(persons)
    true = next(p for p in sorted(persons) if int(p[6:10]) < 2015)
    guesses = [g for g in _candidates(true, 320, 80) if g == true or g not in known][:366]
    position = guesses.index(true)
    assert len(guesses) == 366 and position >= 300
    keys = ApiKeys(ENTRIES)  # the defaults, as a keys file without a limits section gives
    assert keys.limits.roles["clerk"].rate == "30/minute"
    service, store = _service(root, tmp_path / "audit")
    statuses: list[int] = []
    refused: list[httpx.Response] = []
    with _serving(create_app(service, keys, store)) as (base, _), httpx.Client() as http:
        for number in guesses:  # bounded: 366 requests
            r = http.post(
                f"{base}/v1/lookup/person",
                json={"id_number": number, "purpose": "核实身份", **M},
                headers=CLERK,
            )
            statuses.append(r.status_code)
            if r.status_code == 429:
                refused.append(r)
    assert 200 not in statuses, "a guess was answered: the number was recovered"
    first_refusal = statuses.index(429)
    assert statuses[:first_refusal] == [404] * 30
    assert set(statuses[first_refusal:]) == {429}
    assert statuses[position] == 429
    error = refused[0].json()["error"]
    assert error["rule"] == "RATE_LIMITED" and error["message_zh"]
    assert 1 <= int(refused[0].headers["Retry-After"]) <= 60
    assert error["retry_after"] == int(refused[0].headers["Retry-After"])

    text, records = _trail(tmp_path / "audit")
    alerts = [r for r in records if r.get("kind") == "alert_not_found_burst"]
    assert len(alerts) == 1 and alerts[0]["role"] == "clerk"
    assert alerts[0]["detail"]["not_found"] == 20
    assert [r["kind"] for r in records].count("rate_limited") == 1  # once per key and minute
    lookups = [r for r in records if r.get("kind", "lookup") == "lookup"]
    assert len(lookups) == 30 and {r["outcome"] for r in lookups} == {"not_found"}
    assert "ALERT" in caplog.text
    for number in guesses:  # no guessed number, not even its hidden middle, anywhere
        assert number not in text and number[6:14] + number[14:] not in text
        assert number not in caplog.text


# --- 2. failed keys: 401 audited, then a lockout ------------------------------------------------


def test_failed_keys_are_audited_and_lock_the_address_out(root, tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="datacloud.lookup.api")
    limits = LookupLimits(lockout=Lockout(failures=10, window_seconds=300, lockout_seconds=900))
    service, store = _service(root, tmp_path / "audit")
    wrong = [f"dck_guessed-key-{k:02d}-AAAAAAAAAAAAAAAAAAAAAAAAA" for k in range(9)]
    app = create_app(service, ApiKeys(ENTRIES), store, limits)
    with _serving(app) as (base, _), httpx.Client() as http:
        body = {"id_number": "1", "purpose": "x", **M}
        no_key = http.post(f"{base}/v1/lookup/person", json=body)
        assert no_key.status_code == 401 and no_key.json()["error"]["message_zh"]
        for key in wrong[:8]:
            r = http.post(f"{base}/v1/lookup/person", json=body, headers={"X-API-Key": key})
            assert r.status_code == 401 and r.json()["error"]["rule"] == "UNAUTHORISED"
        # the 10th failure in 5 minutes: still a 401, and the address is locked out
        assert (
            http.post(f"{base}/v1/audit/search", json=body, headers={"X-API-Key": wrong[8]})
        ).status_code == 401
        locked = http.post(f"{base}/v1/lookup/person", json=body, headers=CLERK)
        assert locked.status_code == 429 and locked.json()["error"]["rule"] == "LOCKED_OUT"
        assert 1 <= int(locked.headers["Retry-After"]) <= 900
        assert locked.json()["error"]["message_zh"]
        assert http.get(f"{base}/healthz").status_code == 200  # open paths stay open
    text, records = _trail(tmp_path / "audit")
    refused = [r for r in records if r.get("kind") == "unauthorised"]
    assert len(refused) == 10
    assert {r["detail"]["client"] for r in refused} == {"127.0.0.1"}
    assert [r["detail"]["reason"] for r in refused] == ["missing"] + ["unknown"] * 9
    assert refused[1]["detail"]["key"] == "dck_…(44 chars)"
    assert [r["kind"] for r in records].count("lockout") == 1
    for key in wrong:  # never the whole key, nor more than its first 4 characters
        assert key not in text and key[:5] not in text.replace("dck_…", "")
        assert key not in caplog.text
    assert caplog.text.count("401 ") >= 10 and "locked out" in caplog.text


# --- 3. bodies: the key before the body, and a cap ---------------------------------------------


def _raw(port: int, head: str, body: bytes, timeout: float = 10.0) -> tuple[str, socket.socket]:
    """Send ``head`` and ``body`` on a fresh socket; the status line of the answer and the open
    socket. A server that waits for more body never answers: the recv times out."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(head.encode("latin-1") + body)
    try:
        answer = sock.recv(65536).decode("latin-1")
    except TimeoutError:
        answer = "(no answer)"
    return answer, sock


def _head(port: int, path: str, extra: str) -> str:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\n{extra}\r\n"
    )


def test_an_unauthenticated_huge_body_is_refused_before_it_is_read(root, tmp_path) -> None:
    """400 MB announced, 4 KB sent: the 401 comes at once, and the server then stops taking
    the body (the connection is closed: sending on fails long before 400 MB)."""
    service, store = _service(root, tmp_path / "audit")
    with _serving(create_app(service, ApiKeys(ENTRIES), store)) as (_, port):
        head = _head(port, "/v1/lookup/person", f"Content-Length: {400 * 2**20}\r\n")
        answer, sock = _raw(port, head, b"{" + b" " * 4096)
        with sock:
            assert answer.startswith("HTTP/1.1 401"), answer[:200]
            assert '"UNAUTHORISED"' in answer
            sent = 0
            with contextlib.suppress(OSError):  # reset or broken pipe: the server hung up
                sock.settimeout(5)
                for _ in range(1024):  # bounded: at most 64 MB of the 400
                    sent += sock.send(b" " * 65536)
            assert sent < 64 * 2**20, "the server went on reading an unauthenticated body"
        chunked = _head(port, "/v1/lookup/person", "Transfer-Encoding: chunked\r\n")
        answer, sock = _raw(port, chunked, b"1000\r\n" + b" " * 4096 + b"\r\n")
        with sock:
            assert answer.startswith("HTTP/1.1 401"), answer[:200]


def test_an_authenticated_oversize_body_is_413(root, tmp_path) -> None:
    service, store = _service(root, tmp_path / "audit")
    with _serving(create_app(service, ApiKeys(ENTRIES), store)) as (base, port):
        big = json.dumps({"id_number": "1", "purpose": "x", "pad": "p" * 20000, **M}).encode()
        answer, sock = _raw(
            port,
            _head(
                port,
                "/v1/lookup/person",
                f"X-API-Key: {CLERK_KEY}\r\nContent-Length: {len(big)}\r\n",
            ),
            big,
        )
        with sock:
            assert answer.startswith("HTTP/1.1 413") and '"BODY_TOO_LARGE"' in answer, answer[:300]
            assert "请求体" in answer.encode("latin-1").decode("utf-8")
        chunks = b"".join(b"1000\r\n" + b" " * 4096 + b"\r\n" for _ in range(5)) + b"0\r\n\r\n"
        answer, sock = _raw(
            port,
            _head(
                port,
                "/v1/lookup/person",
                f"X-API-Key: {CLERK_KEY}\r\nTransfer-Encoding: chunked\r\n",
            ),
            chunks,
        )
        with sock:
            assert answer.startswith("HTTP/1.1 413"), answer[:300]
        # under the cap the body reaches the app as before
        ok = httpx.post(
            f"{base}/v1/lookup/person",
            json={"id_number": "1", "purpose": "x" * 201, **M},
            headers=CLERK,
        )
        assert ok.status_code == 422 and ok.json()["error"]["field"] == "purpose"


# --- 4. healthz and the audit trail -------------------------------------------------------------


def test_healthz_is_503_degraded_when_the_audit_trail_cannot_be_written(root, tmp_path) -> None:
    audit_dir = tmp_path / "audit"
    service, store = _service(root, audit_dir)
    with _serving(create_app(service, ApiKeys(ENTRIES), store)) as (base, _):
        ok = httpx.get(f"{base}/healthz")
        assert ok.status_code == 200 and ok.json()["status"] == "ok"
        assert ok.json()["curated_versions"]["person"] is not None
        audit_dir.parent.mkdir(parents=True, exist_ok=True)
        audit_dir.write_text("a file where the audit folder should be", encoding="utf-8")
        bad = httpx.get(f"{base}/healthz")
        assert bad.status_code == 503
        assert bad.json()["status"] == "degraded" and "audit" in bad.json()["reason"]
        assert bad.json()["curated_versions"] == ok.json()["curated_versions"]
        audit_dir.unlink()
        assert httpx.get(f"{base}/healthz").status_code == 200


# --- 5. the docs page works offline --------------------------------------------------------------


def test_the_docs_page_loads_nothing_from_elsewhere(root, tmp_path) -> None:
    service, store = _service(root, tmp_path / "audit")
    with _serving(create_app(service, ApiKeys(ENTRIES), store)) as (base, _):
        r = httpx.get(f"{base}/docs")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        html = r.text
        foreign = [u for u in re.findall(r"""(?i)(?:https?:)?//[^\s"'<>)]+""", html)]
        assert foreign == [], foreign
        assert not re.search(r"(?i)<script|<link|@import|url\(", html)
        assert "default-src 'none'" in r.headers["content-security-policy"]
        for path in ("/v1/lookup/person", "/v1/lookup/enterprise", "/v1/lookup/property-status"):
            assert path in html
        for schema in ("PersonQuery", "PersonAnswer", "ErrorBody", "retry_after"):
            assert schema in html
        assert "<purpose>" not in html and "&lt;purpose&gt;" in html  # escaped examples
        assert "&lt;matter&gt;" in html and "&lt;case_no&gt;" in html  # every lookup names them
        assert httpx.get(f"{base}/redoc", headers=AUDITOR).status_code == 404
        assert httpx.get(f"{base}/openapi.json").status_code == 200


# --- 6. several workers share the counters through Redis --------------------------------------


def test_two_workers_share_limits_through_redis() -> None:
    """Two limiters on one Redis (as two uvicorn workers would be) count one key and one address
    together. Redis on 127.0.0.1:6379 as `make e2e` uses it (database 11 here, keys named
    with a fresh id and deleted afterwards)."""
    import uuid

    import redis

    from datacloud.lookup.limits import LookupLimiter, RoleLimits

    uri = "redis://127.0.0.1:6379/11"
    client = redis.Redis.from_url(uri, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379 (DEVELOPERS.md: `.ci/run` starts it)")
    run = uuid.uuid4().hex
    config = LookupLimits(
        storage_uri=uri,
        roles={"clerk": RoleLimits(rate="4/minute", quota="100/day")},
        lockout=Lockout(failures=2, window_seconds=60, lockout_seconds=60),
    )
    one, two = LookupLimiter(config), LookupLimiter(config)
    try:
        admitted = [w.admit(f"key-{run}", "clerk") is None for w in (one, two, one, two)]
        assert admitted == [True] * 4
        refusal = two.admit(f"key-{run}", "clerk") or one.admit(f"key-{run}", "clerk")
        assert refusal is not None and refusal.rule == "RATE_LIMITED"
        assert one.failed_key(f"10.1.{run}") is False and two.failed_key(f"10.1.{run}") is True
        locked = one.locked_out(f"10.1.{run}")
        assert locked is not None and locked.rule == "LOCKED_OUT"
    finally:
        for key in client.scan_iter(match=f"*{run}*", count=100):  # bounded by the keys
            client.delete(key)
        client.close()

"""The lean path answers on the event loop with its audit record queued for the group commit
(``AuditLog.deferred``): no answer, and no refusal, leaves before the flush that holds its
record returned, concurrent requests share flushes, and the trail stays one chain.

Real parts: a sample night's curated tables served from the paged files, the app driven over
ASGI by httpx, a real file audit trail on disk. ``os.fdatasync`` is wrapped to take 2 ms (as
a real disk does; tmpfs-like speed would form no group) and to note, after each real flush,
how many bytes of the file are durable."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import lookup_matters
import pytest
from helpers import built_night_root
from lookup_matters import ALL

from datacloud.delta import read_table
from datacloud.lookup.api import create_app
from datacloud.lookup.audit import AuditLog, FileSink
from datacloud.lookup.audit_chain import verify
from datacloud.lookup.auth import ApiKeyEntry, ApiKeys, hash_key
from datacloud.lookup.limits import LookupLimits, RoleLimits
from datacloud.lookup.service import LookupService
from datacloud.lookup.store import CuratedStore
from datacloud.paths import StorageRoot
from transforms.id_number import id_check_char

DS = date(2026, 11, 20)
KEY = "inline-auditor-key-01"
KEYS = ApiKeys(
    [ApiKeyEntry(holder="审计员", role="auditor", matters=(ALL,), sha256=hash_key(KEY))],
    LookupLimits(roles={"auditor": RoleLimits(rate="100000/minute", quota="1000000/day")}),
)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorageRoot]:
    with built_night_root(tmp_path_factory, "inline-audit", 300, DS, "inline-audit-test") as r:
        yield r


class _DurableFlush:
    """fdatasync that takes 2 ms and then notes the durable size of the file it flushed."""

    def __init__(self) -> None:
        self.real = os.fdatasync
        self.calls = 0
        self.durable: dict[int, int] = {}  # inode -> bytes known on disk

    def __call__(self, fd: int) -> None:
        self.calls += 1
        size = os.fstat(fd).st_size
        time.sleep(0.002)
        self.real(fd)
        st = os.fstat(fd)
        self.durable[st.st_ino] = max(self.durable.get(st.st_ino, 0), size)


def _durable_records(folder: Path, flush: _DurableFlush) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in sorted(folder.glob("lookups-*.jsonl")):
        durable = flush.durable.get(path.stat().st_ino, 0)
        out += [json.loads(line) for line in path.read_bytes()[:durable].splitlines()]
    return out


def test_no_answer_or_refusal_leaves_before_its_record_is_flushed(
    root: StorageRoot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flush = _DurableFlush()
    monkeypatch.setattr(os, "fdatasync", flush)
    folder = tmp_path / "audit"
    audit = AuditLog([FileSink(folder)], b"inline-audit-key-0123")
    assert audit.can_defer()  # the lean path runs the lookup on the event loop
    service = LookupService(CuratedStore(root), audit, catalogue=lookup_matters.catalogue())
    app = create_app(service, KEYS)
    persons = [r["id_number"] for r in read_table(root.curated("person")).to_pylist()[:30]]
    nobody = "11010119900307663" + id_check_char("11010119900307663")  # valid, unknown: 404
    assert nobody not in persons
    numbers = [n for p in persons for n in (p, nobody)]
    checked: list[tuple[int, bool]] = []

    async def one(client: httpx.AsyncClient, number: str) -> None:
        body = {"purpose": "公积金提取审核", **lookup_matters.body(), "id_number": number}
        r = await client.post("/v1/lookup/person", json=body, headers={"X-API-Key": KEY})
        durable = _durable_records(folder, flush)  # at the moment the response arrived
        if r.status_code == 200:
            checked.append((200, r.json()["audit_id"] in {d["id"] for d in durable}))
        else:
            assert r.status_code == 404, r.text
            refused = sum(d.get("outcome") == "not_found" for d in durable)
            checked.append((404, refused >= sum(s == 404 for s, _ in checked) + 1))

    async def run() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            await asyncio.gather(*(one(client, n) for n in numbers))

    asyncio.run(run())
    assert len(checked) == len(numbers)
    assert {s for s, _ in checked} == {200, 404}
    assert all(ok for _, ok in checked), [c for c in checked if not c[1]][:5]
    verdict = verify(folder)
    assert verdict.broken is None  # one chain (lookups and the not-found alert's event)
    assert sum(1 for _ in FileSink(folder).records()) == len(numbers)
    assert flush.calls < len(numbers) // 2, flush.calls  # concurrent requests shared flushes


class _Source:
    """The curated store seen through a wrapper that notes the thread each lookup ran on;
    ``answers_inline`` as given (the paged files: True; a database view has none)."""

    def __init__(self, store: CuratedStore, inline: bool) -> None:
        self.store = store
        self.threads: set[str] = set()
        if inline:
            self.answers_inline = True

    def current(self) -> Any:
        self.threads.add(threading.current_thread().name)
        return self.store.current()

    def as_of(self, ds: str) -> Any:
        self.threads.add(threading.current_thread().name)
        return self.store.as_of(ds)


def test_only_a_source_of_local_files_is_read_on_the_event_loop(
    root: StorageRoot, tmp_path: Path
) -> None:
    number = read_table(root.curated("person"))["id_number"][0].as_py()
    body = {"purpose": "公积金提取审核", **lookup_matters.body(), "id_number": number}
    for inline in (True, False):
        source = _Source(CuratedStore(root), inline)
        audit = AuditLog([FileSink(tmp_path / f"audit-{inline}")], b"inline-audit-key-0123")
        service = LookupService(source, audit, catalogue=lookup_matters.catalogue())

        async def run(app: Any) -> int:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                r = await client.post("/v1/lookup/person", json=body, headers={"X-API-Key": KEY})
                return r.status_code

        assert asyncio.run(run(create_app(service, KEYS))) == 200
        on_loop = source.threads == {threading.main_thread().name}
        assert on_loop is inline, source.threads  # a database view never blocks the loop

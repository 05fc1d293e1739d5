"""Group commit of the audit trail: many writers' records share one fdatasync, each writer
returns only once its record is durable, the chain stays one ordered sequence, and a failed
flush fails every record of its group (and none is left half in the file).

The disk is real; ``os.fdatasync`` is wrapped to count the flushes and to take 2 ms, as a real
disk does (tmpfs would flush in no time and no group would form)."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from datacloud.lookup.audit import AuditLog, AuditUnavailable, FileSink
from datacloud.lookup.audit_chain import verify
from datacloud.lookup.auth import Principal

WHO = Principal("窗口1", "clerk", "api")
THREADS, EACH = 16, 20


class _SlowFlush:
    def __init__(self, seconds: float = 0.002) -> None:
        self.calls = 0
        self.seconds = seconds
        self.fail_next = 0
        self.real = os.fdatasync

    def __call__(self, fd: int) -> None:
        self.calls += 1
        if self.fail_next:
            self.fail_next -= 1
            raise OSError(errno.EIO, "injected flush failure")
        time.sleep(self.seconds)
        self.real(fd)


def _slow_trail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[_SlowFlush, Path, AuditLog]:
    """A trail in ``tmp_path/audit`` whose every fdatasync takes 2 ms and is counted."""
    flush = _SlowFlush()
    monkeypatch.setattr(os, "fdatasync", flush)
    folder = tmp_path / "audit"
    return flush, folder, AuditLog([FileSink(folder)], b"k" * 16)


def _hammer(log: AuditLog, threads: int = THREADS, each: int = EACH) -> list[Any]:
    results: list[Any] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def work(t: int) -> None:
        start.wait(timeout=30)
        for i in range(each):
            try:
                rec = log.record(WHO, "person", f"purpose {t}-{i}", f"{t:02d}{i:04d}", "found")
                out: Any = rec["id"]
            except AuditUnavailable as e:
                out = e
            with lock:
                results.append(out)

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join(timeout=120)
    assert not any(th.is_alive() for th in pool)
    return results


def _lines(folder: Path) -> list[str]:
    return [
        line for f in sorted(folder.glob("lookups-*.jsonl")) for line in f.read_text().splitlines()
    ]


def test_concurrent_records_share_flushes_and_keep_one_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flush, folder, log = _slow_trail(tmp_path, monkeypatch)
    ids = _hammer(log)
    assert len(ids) == THREADS * EACH and all(isinstance(i, str) for i in ids)
    lines = _lines(folder)
    assert len(lines) == THREADS * EACH  # every record once
    assert {i for i in ids} == {__import__("json").loads(line)["id"] for line in lines}
    verdict = verify(folder)
    assert verdict.broken is None and verdict.records == THREADS * EACH
    # one flush per record before group commit; now groups of records share one
    assert flush.calls <= THREADS * EACH // 2, flush.calls


@pytest.mark.parametrize("writers", ["threads", "event loop"])
def test_a_failed_flush_fails_its_whole_group_and_leaves_no_part_of_it(
    writers: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writer threads waiting (``record``) or lookups on an event loop (``deferred``)."""
    flush, folder, log = _slow_trail(tmp_path, monkeypatch)
    log.record(WHO, "person", "first", "1", "found")
    flush.fail_next = 1
    if writers == "threads":
        results = _hammer(log, threads=8, each=5)
    else:
        results = asyncio.run(_deferred_lookups(log, 30, "loop"))
    failed = [r for r in results if isinstance(r, AuditUnavailable)]
    answered = [r for r in results if isinstance(r, str)]
    assert failed, "the injected failure reached no writer"
    lines = _lines(folder)
    assert len(lines) == 1 + len(answered)  # no record of the failed group stayed
    assert verify(folder).broken is None


def test_two_processes_group_committing_keep_one_chain(tmp_path: Path) -> None:
    """Two real processes, each with writer threads, on one folder: the flock around each
    group keeps one ordered chain across them."""
    import subprocess
    import sys

    folder = tmp_path / "audit"
    code = (
        "import sys, threading\n"
        "from pathlib import Path\n"
        "from datacloud.lookup.audit import AuditLog, FileSink\n"
        "from datacloud.lookup.auth import Principal\n"
        "log = AuditLog([FileSink(Path(sys.argv[1]))], b'k' * 16)\n"
        "who = Principal('w', 'clerk', 'api')\n"
        "def work(t):\n"
        "    for i in range(25):\n"
        "        log.record(who, 'person', 'p', f'{t}-{i}', 'found')\n"
        "ts = [threading.Thread(target=work, args=(t,)) for t in range(8)]\n"
        "[t.start() for t in ts]\n"
        "[t.join(60) for t in ts]\n"
    )
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(folder)], cwd=repo, env=env)
        for _ in range(2)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    verdict = verify(folder)
    assert verdict.broken is None and verdict.records == 2 * 8 * 25


# --- records written from an event loop (AuditLog.deferred, FileSink.submit) --------------------


async def _deferred_lookups(log: AuditLog, n: int, tag: str) -> list[Any]:
    """``n`` concurrent lookups on one event loop, each writing its record deferred and
    waiting for its flush, as the lookup API's lean path does; the record id or the error."""

    async def one(i: int) -> Any:
        with log.deferred() as written:
            rec = log.record(WHO, "person", f"{tag} {i}", f"{tag}{i:04d}", "found")
        try:
            await written.flushed()
        except AuditUnavailable as e:
            return e
        return rec["id"]

    return list(await asyncio.gather(*(one(i) for i in range(n))))


def test_records_deferred_on_an_event_loop_share_flushes_with_threads_and_keep_one_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flush, folder, log = _slow_trail(tmp_path, monkeypatch)
    threaded: list[Any] = []
    writers = threading.Thread(target=lambda: threaded.extend(_hammer(log, threads=4, each=20)))
    writers.start()  # threads writing synchronously at the same time as the loop
    deferred = asyncio.run(_deferred_lookups(log, 200, "loop"))
    writers.join(timeout=120)
    assert not writers.is_alive()
    ids = [*deferred, *threaded]
    assert len(ids) == 280 and all(isinstance(i, str) for i in ids), ids[:3]
    lines = _lines(folder)
    assert sorted(json.loads(line)["id"] for line in lines) == sorted(ids)  # each once
    verdict = verify(folder)
    assert verdict.broken is None and verdict.records == 280
    assert flush.calls <= 280 // 4, flush.calls  # the loop's records flushed in groups


def test_deferring_needs_sinks_that_can_queue() -> None:
    class Plain:
        def write(self, record: dict[str, Any]) -> None:
            pass

    log = AuditLog([Plain()], b"k" * 16)
    assert not log.can_defer()

    async def attempt() -> None:
        with log.deferred():
            pass

    with pytest.raises(TypeError):
        asyncio.run(attempt())

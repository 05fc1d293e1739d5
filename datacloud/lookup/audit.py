"""The append-only audit trail of lookups: who, when, why, whom (as a keyed hash), outcome.

Every lookup writes one JSON line before its answer is returned; the write is flushed to disk
(``fdatasync``) and a failure raises ``AuditUnavailable``, so a lookup that cannot be audited is
not answered. The looked-up number is stored as HMAC-SHA256 under ``DATACLOUD_AUDIT_KEY``: an
auditor holding a number can find its lookups (``search``), nobody can read numbers off the
trail. Files: ``<root>/audit/lookups-<UTC date>.jsonl``, appended to only, hash-chained
(``audit_chain``); ``event`` writes non-lookup records (``kind``) the same way. docs/lookup.md#audit
"""

from __future__ import annotations

import asyncio
import contextvars
import fcntl
import hashlib
import hmac
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from datacloud.lookup.audit_chain import (
    GENESIS,
    TORN_MARK,
    fsync_dir,
    line_hash,
    line_of,
    names,
    opened_for_writing,
    parse,
    seal,
    system_event,
    tail,
    trail_files,
    write_all,
)
from datacloud.lookup.auth import Principal
from datacloud.masking import mask_text

log = logging.getLogger(__name__)
AUDIT_KEY_ENV = "DATACLOUD_AUDIT_KEY"
DEV_ENV = "DATACLOUD_LOOKUP_DEV"
DEV_KEY = b"datacloud-dev-mode-audit-key-not-secret"
MIN_KEY_BYTES = 16
PURPOSE_CHARS = 200


LOCK_NAME = ".lock"
LOCK_TIMEOUT_S = 10.0
GROUP_WAIT_S = 60.0  # a writer waiting for its group's flush gives up (fails) after this


class _Ticket:
    """One writer's record in the group-commit queue: a thread waiting on ``wake``
    (``FileSink.write``), or an event loop's ``future`` (``FileSink.submit``)."""

    __slots__ = ("done", "error", "future", "lead", "record", "wake")

    def __init__(self, record: dict[str, Any], future: asyncio.Future[None] | None = None) -> None:
        self.record = record
        self.future = future
        self.wake = threading.Event() if future is None else None
        self.lead = False
        self.done = False
        self.error: BaseException | None = None


def _settle(tickets: list[_Ticket]) -> None:
    """On the tickets' event loop: each future gets its flush's outcome."""
    for ticket in tickets:
        future = ticket.future
        if future is None or future.done():
            continue
        if ticket.error is not None:
            future.set_exception(ticket.error)
        else:
            future.set_result(None)


class _Flusher:
    """The thread that leads a group commit when the writers waiting are event loops'
    (``FileSink.submit``): it is kicked once per leadership handed to it."""

    def __init__(self, lead: Callable[[], None]) -> None:
        self._lead = lead
        self._kick = threading.Event()
        self.thread = threading.Thread(target=self._run, name="audit-flush", daemon=True)
        self.thread.start()

    def kick(self) -> None:
        self._kick.set()

    def _run(self) -> None:
        while True:  # a daemon thread: ends with the process
            self._kick.wait()
            self._kick.clear()
            self._lead()


class _RecordIds:
    """Random record ids in the form of ``uuid.uuid4().hex`` (version 4, RFC 4122 variant),
    taken from one ``os.urandom`` read per 256 ids: a read per record (one ``getrandom``
    system call) cost ~11 µs here, more than the rest of the record. A forked child (a
    uvicorn worker) starts with an empty buffer, so no two processes share ids."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buf = b""
        self._at = 0
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._buf, self._at = b"", 0

    def __call__(self) -> str:
        with self._lock:
            if self._at >= len(self._buf):
                self._buf, self._at = os.urandom(16 * 256), 0
            raw = bytearray(self._buf[self._at : self._at + 16])
            self._at += 16
        raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
        raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC 4122 variant
        return raw.hex()


record_id = _RecordIds()


class AuditUnavailable(RuntimeError):
    """The audit record could not be written: the lookup must not be answered."""


class AuditKeyMissing(RuntimeError):
    """No audit key in the environment and not in dev mode."""


def audit_key_from_env() -> tuple[bytes, bool]:
    """(key, dev): ``DATACLOUD_AUDIT_KEY``, or the fixed dev key when ``DATACLOUD_LOOKUP_DEV=1``."""
    key = os.environ.get(AUDIT_KEY_ENV, "")
    if key:
        if len(key.encode("utf-8")) < MIN_KEY_BYTES:
            raise AuditKeyMissing(f"{AUDIT_KEY_ENV} must have at least {MIN_KEY_BYTES} bytes")
        if key.startswith("change-"):  # the placeholder of .env.example
            raise AuditKeyMissing(
                f"{AUDIT_KEY_ENV} is still the example's placeholder; set a secret"
            )
        return key.encode("utf-8"), False
    if os.environ.get(DEV_ENV) == "1":
        log.warning("lookup: dev mode, audit hashes use a fixed public key (%s=1)", DEV_ENV)
        return DEV_KEY, True
    raise AuditKeyMissing(
        f"set {AUDIT_KEY_ENV} (a secret of at least {MIN_KEY_BYTES} bytes) to serve lookups, "
        f"or {DEV_ENV}=1 for a local dev mode with a fixed, public key"
    )


class AuditSink(Protocol):
    def write(self, record: dict[str, Any]) -> None: ...


_KIND = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MIN_FREE_BYTES = 1 << 20  # check_writable: less free space than this is "disk full"


def _masked(value: Any) -> Any:
    """An event's detail with ID and mobile numbers in any string masked (mask_text)."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {str(k): _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return value


class FileSink:
    """JSON lines, one file per UTC day, hash-chained, appended and fsynced under a lock.

    Writers of one process commit in groups (``write``): one leader writes the records that
    queued during the previous flush and flushes them once. Every group, under a thread lock and
    an exclusive ``flock`` of ``<folder>/.lock`` (one chain across processes): reopen the day's
    file when the path no longer names the open file (moved, deleted, rotated); read its tail
    for ``prev`` (repairing a torn tail); append; ``fdatasync``; check the path still names the
    file written, else write the records again at the path.
    """

    def __init__(self, folder: Path, min_free_bytes: int = MIN_FREE_BYTES) -> None:
        self.folder = folder
        self.min_free_bytes = min_free_bytes
        self.skipped = 0  # lines ``records`` passed over because they are not records
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._lock_fd: int | None = None
        self._fd: int | None = None
        self._day: str | None = None
        self._known: tuple[int, int, int, str] | None = None  # dev, ino, size, hash after a write
        self._last: tuple[str, str] | None = None  # day and hash of this process's last record
        self._queue_lock = threading.Lock()
        self._pending: list[_Ticket] = []  # records waiting for the next group commit
        self._leading = False  # a writer is writing a group now
        self._flusher: _Flusher | None = None  # leads the groups of submitted records

    def path(self, day: str) -> Path:
        return self.folder / f"lookups-{day}.jsonl"

    def write(self, record: dict[str, Any]) -> None:
        """Seals ``record`` into the chain (adds alg, prev, hash) and appends it durably.

        Group commit: the records of writers that arrive while a flush is running wait in a
        queue; the next leader (the first of them) writes them all and flushes once, then wakes
        each writer. A writer returns only after the flush that holds its record, and raises
        when that flush failed.
        """
        if self._pid != os.getpid():  # forked: the parent's queue and descriptors are not ours
            self._reset_after_fork()
        ticket = _Ticket(record)
        with self._queue_lock:
            self._pending.append(ticket)
            if not self._leading:
                self._leading = ticket.lead = True
        assert ticket.wake is not None
        if not ticket.lead and not ticket.wake.wait(GROUP_WAIT_S):
            raise OSError(f"no audit flush within {GROUP_WAIT_S} s")
        if not ticket.done:  # the leader of the next group (first, or handed over)
            self._lead()
        if ticket.error is not None:
            raise ticket.error

    def submit(
        self, record: dict[str, Any], loop: asyncio.AbstractEventLoop
    ) -> asyncio.Future[None]:
        """``write`` for a writer on an event loop: queues ``record`` for the next group commit
        and returns at once; the future is done (on ``loop``) once the flush that holds the
        record returned, with that flush's error when it failed. The groups of submitted
        records are led by the sink's flusher thread, so the loop never waits for a disk."""
        if self._pid != os.getpid():
            self._reset_after_fork()
        future: asyncio.Future[None] = loop.create_future()
        ticket = _Ticket(record, future)
        with self._queue_lock:
            self._pending.append(ticket)
            kick = not self._leading
            self._leading = True
        if kick:
            self._flush_thread().kick()
        return future

    def _flush_thread(self) -> _Flusher:
        if self._flusher is None:
            self._flusher = _Flusher(self._lead)
        return self._flusher

    def _reset_after_fork(self) -> None:
        self.close()
        self._pid, self._known, self._last = os.getpid(), None, None
        self._lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._pending = []
        self._leading = False
        self._flusher = None  # the parent's thread did not come along

    def _lead(self) -> None:
        """Write and flush every record waiting now, wake their writers, hand over."""
        with self._queue_lock:
            group, self._pending = self._pending, []
        kick = False
        try:
            if group:
                self._commit(group)
        except BaseException as e:  # every writer of the group gets it
            for ticket in group:
                if ticket.error is None and not ticket.done:
                    ticket.error = e
        finally:
            loops: dict[asyncio.AbstractEventLoop, list[_Ticket]] = {}
            with self._queue_lock:
                for ticket in group:
                    ticket.done = True
                    if ticket.wake is not None:
                        ticket.wake.set()
                    elif ticket.future is not None:
                        loops.setdefault(ticket.future.get_loop(), []).append(ticket)
                if not self._pending:
                    self._leading = False
                elif self._pending[0].wake is not None:  # a thread waits: it leads next
                    self._pending[0].lead = True
                    self._pending[0].wake.set()
                else:  # an event loop's record: the flusher leads next
                    kick = True
            for loop, tickets in loops.items():  # one wake-up per loop and group
                with suppress(RuntimeError):  # a closed loop: nobody waits for these
                    loop.call_soon_threadsafe(_settle, tickets)
            if kick:
                self._flush_thread().kick()

    def _commit(self, group: list[_Ticket]) -> None:
        with self._lock:
            if not self.folder.is_dir():
                self.folder.mkdir(parents=True, exist_ok=True)
                fsync_dir(self.folder.parent)
            lock_fd = self._flock()
            try:
                start = 0
                while start < len(group):  # records of one UTC day flush together
                    day = str(group[start].record["at"])[:10]
                    end = start + 1
                    while end < len(group) and str(group[end].record["at"])[:10] == day:
                        end += 1
                    run = group[start:end]
                    try:
                        self._append([t.record for t in run], day)
                    except Exception as e:
                        for ticket in group[start:]:
                            ticket.error = e
                        return
                    for ticket in run:
                        ticket.done = True
                    start = end
            finally:
                fcntl.flock(lock_fd, fcntl.LOCK_UN)

    def _flock(self) -> int:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        pause = 0.001
        for _ in range(3):  # the lock file replaced under us: lock the one at the path
            if self._lock_fd is None:
                flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
                self._lock_fd = os.open(self.folder / LOCK_NAME, flags, 0o640)
            while True:  # bounded by the deadline
                try:
                    fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        msg = f"the audit lock is held for over {LOCK_TIMEOUT_S} s"
                        raise OSError(msg) from None
                    time.sleep(pause)
                    pause = min(pause * 2, 0.005)
            if names(self.folder / LOCK_NAME, self._lock_fd):
                return self._lock_fd
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None
        raise OSError("the audit lock file keeps being replaced")

    def _append(self, records: list[dict[str, Any]], day: str) -> None:
        for _ in range(3):  # the file moved away while written: again into the one at the path
            fd, day = self._day_file(day)
            prev, notes = self._head(fd, day)
            self._put(fd, [*notes, *records], prev, day)  # repairs, reopenings chained first
            if names(self.path(day), fd):
                return
            log.error("lookup audit: %s was moved away during a write", self.path(day).name)
        raise OSError("the audit file keeps being moved away")

    def _day_file(self, day: str) -> tuple[int, str]:
        """The open file of ``day``, or of the next day when another writer already began it."""
        if self._day is not None and self._day > day:
            day = self._day
        following = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
        if os.path.lexists(self.path(following)):  # a record from just before midnight
            day = following
        path = self.path(day)
        if self._fd is not None and self._day == day and names(path, self._fd):
            return self._fd, day
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        flags = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o640)
            fsync_dir(self.folder)  # the new name is durable before a record is acknowledged
        except FileExistsError:
            fd = os.open(path, flags)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(f"{path.name} is not a regular file")
        self._fd, self._day = fd, day
        return fd, day

    def _head(self, fd: int, day: str) -> tuple[str, list[dict[str, Any]]]:
        """The hash the next record links to, and system records to write before it."""
        st = os.fstat(fd)
        if self._known is not None and self._known[:3] == (st.st_dev, st.st_ino, st.st_size):
            return self._known[3], []
        notes: list[dict[str, Any]] = []
        last, complete = tail(fd, st.st_size)
        if complete != st.st_size:
            note = self._repair(fd, self.path(day), complete, st.st_size, in_place=True)
            notes.extend([note] if note else [])
        if last is not None:
            return line_hash(last), notes
        if self._last is not None and self._last[0] == day:  # our records of today are gone
            log.error("lookup audit: %s was moved or deleted; a new file begins", f"{day}.jsonl")
            detail = {"file": self.path(day).name, "reason": "moved or deleted while in use"}
            notes.append(system_event("trail_reopened", detail))
            return self._last[1], notes
        for _, earlier in reversed([f for f in trail_files(self.folder) if f[0] < day]):
            try:
                efd = os.open(earlier, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW)
            except PermissionError:  # archived read-only: its torn tail stays (verify warns)
                efd = os.open(earlier, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            try:
                size = os.fstat(efd).st_size
                last, complete = tail(efd, size)
                if complete != size and opened_for_writing(efd):
                    note = self._repair(efd, earlier, complete, size, in_place=False)
                    notes.extend([note] if note else [])
            finally:
                os.close(efd)
            if last is not None:
                return line_hash(last), notes
        return GENESIS, notes

    def _repair(
        self, fd: int, path: Path, complete: int, size: int, in_place: bool
    ) -> dict[str, Any] | None:
        """Copies a torn tail (a write cut short) to ``<file>.torn-<ts>``, truncates it off (or
        in an append-only file, ends it in place when ``in_place``; else it stays: None)."""
        torn = os.pread(fd, size - complete, complete)
        side = path.with_name(f"{path.name}.torn-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}")
        side_fd = os.open(side, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
        try:
            write_all(side_fd, torn)
            os.fsync(side_fd)
        finally:
            os.close(side_fd)
        fsync_dir(self.folder)
        try:
            os.ftruncate(fd, complete)
            how = "truncated"
        except PermissionError:  # an append-only file (chattr +a): end the line, unparseable
            if not in_place:  # a past day's file: its trail_repaired could not follow it
                log.warning("lookup audit: %s keeps an incomplete last line", path.name)
                return None
            write_all(fd, TORN_MARK)
            how = "terminated"
        os.fsync(fd)
        log.warning(
            "lookup audit: %s ended in an incomplete line (%d bytes); copied to %s, %s",
            path.name,
            len(torn),
            side.name,
            how,
        )
        detail = {"file": path.name, "torn_bytes": len(torn), "side_file": side.name, "how": how}
        return system_event("trail_repaired", detail)

    def _put(self, fd: int, records: list[dict[str, Any]], prev: str, day: str) -> str:
        """Seal ``records`` in order after ``prev``, append them in one write, one flush."""
        st = os.fstat(fd)
        lines = []
        for record in records:
            seal(record, prev)
            lines.append(line_of(record))
            prev = str(record["hash"])
        data = b"".join(lines)
        try:
            write_all(fd, data)
            os.fdatasync(fd)  # the data and the size it needs to be read back
        except OSError:
            try:  # take back the part written (disk full); else the next write repairs it
                os.ftruncate(fd, st.st_size)
                os.fdatasync(fd)
            except OSError:
                log.error("lookup audit: a cut-short line stays in %s until the next write", day)
            self._known = None
            raise
        self._known = (st.st_dev, st.st_ino, st.st_size + len(data), prev)
        self._last = (day, prev)
        return prev

    def close(self) -> None:
        for fd in (self._fd, self._lock_fd):
            if fd is not None:
                os.close(fd)
        self._fd = self._lock_fd = None

    def check_writable(self) -> str | None:
        """None when a record can be written now, else why not (nothing is written)."""
        folder = self.folder
        probe = folder
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if probe != folder:
            if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
                return f"the audit folder {folder} is missing and cannot be created"
        elif not folder.is_dir():
            return f"the audit folder {folder} is not a directory"
        elif not os.access(folder, os.W_OK | os.X_OK):
            return f"the audit folder {folder} is not writable"
        st = os.statvfs(probe)
        if st.f_bavail * st.f_frsize < self.min_free_bytes:
            return f"the disk of {folder} is full ({st.f_bavail * st.f_frsize} bytes free)"
        today = self.path(datetime.now(UTC).date().isoformat())
        if today.exists() or today.is_symlink():
            if not today.is_file():
                return f"the audit file {today.name} is not a regular file"
            if not os.access(today, os.W_OK):
                return f"the audit file {today.name} is not writable"
        elif st.f_favail == 0:
            return f"no free inodes on the disk of {folder}"
        return None

    def records(self, kinds: Collection[str] | None = ("lookup",)) -> Iterator[dict[str, Any]]:
        """Records of ``kinds`` (None: all), oldest file first. A line that is not a record (a
        torn or glued line) is skipped, counted in ``skipped`` and logged, never raised."""
        for _, path in trail_files(self.folder):
            with path.open("rb") as fh:
                for n, raw in enumerate(fh, start=1):  # bounded by the file
                    if not raw.strip():
                        continue
                    rec = parse(raw) if raw.endswith(b"\n") else None
                    if rec is None:
                        self.skipped += 1
                        log.warning(
                            "lookup audit: %s line %d is not a record; skipped", path.name, n
                        )
                    elif kinds is None or rec.get("kind", "lookup") in kinds:
                        yield rec


class Deferred:
    """The records written while ``AuditLog.deferred`` is open on an event loop: queued for
    their sinks' group commit, not yet known durable. ``flushed`` waits for them."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiting: list[tuple[str, asyncio.Future[None]]] = []  # (sink's name, future)

    async def flushed(self) -> None:
        """Returns once every record is durable in every sink; ``AuditUnavailable`` when a
        flush failed or none came within ``GROUP_WAIT_S``: the lookup must not be answered."""
        waiting, self.waiting = self.waiting, []
        for sink, future in waiting:  # one flush holds most of them: few real waits
            try:
                if not future.done():  # a timer, not a task as wait_for makes
                    async with asyncio.timeout(GROUP_WAIT_S):
                        await future
                future.result()  # its error, if the flush failed
            except Exception as e:
                log.error("lookup audit: %s: %s", sink, type(e).__name__)
                for _, other in waiting:  # their outcome is the same news: not logged again
                    other.add_done_callback(_retrieved)
                raise AuditUnavailable(
                    "the audit record could not be written; the lookup was not answered"
                ) from e


def _retrieved(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


_DEFERRED: contextvars.ContextVar[Deferred | None] = contextvars.ContextVar(
    "datacloud_audit_deferred", default=None
)


class AuditLog:
    """Writes each lookup's record to every sink; any failure is ``AuditUnavailable``."""

    def __init__(self, sinks: list[AuditSink], key: bytes, dev: bool = False) -> None:
        if not sinks:
            raise ValueError("the audit log needs at least one sink")
        self.sinks = sinks
        self._key = key
        self.dev = dev

    def can_defer(self) -> bool:
        """Every sink can take a record without blocking (``submit``): ``deferred`` works."""
        return all(callable(getattr(sink, "submit", None)) for sink in self.sinks)

    @contextmanager
    def deferred(self) -> Iterator[Deferred]:
        """On an event loop, around synchronous code that writes records (a lookup): each record
        is queued for its sinks' group commit (``FileSink.submit``) instead of waited for, so the
        loop does not block on a disk. The caller must ``await deferred.flushed()`` before it
        answers; the records are written in order, before any answer, as ``record`` does."""
        if not self.can_defer():
            raise TypeError("every audit sink must have submit() to defer its records")
        pending = Deferred(asyncio.get_running_loop())
        token = _DEFERRED.set(pending)
        try:
            yield pending
        finally:
            _DEFERRED.reset(token)

    def key_hash(self, number: str) -> str:
        return hmac.new(self._key, number.encode("utf-8"), hashlib.sha256).hexdigest()

    def record(
        self,
        principal: Principal,
        endpoint: str,
        purpose: str,
        number: str,
        outcome: str,
        as_of: str | None = None,
        *,
        matter: str | None = None,
        case_no: str | None = None,
    ) -> dict[str, Any]:
        """A lookup's record; ``matter`` and ``case_no`` (办件编号) name the matter it served,
        ``department`` (the principal's) the requesting department."""
        record: dict[str, Any] = {
            "id": record_id(),
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "who": principal.holder,
            "role": principal.role,
            "channel": principal.channel,
            "endpoint": endpoint,
            "purpose": mask_text(purpose.strip())[:PURPOSE_CHARS],
            "key_hmac": self.key_hash(number),
            "as_of": as_of,
            "outcome": outcome,
            "matter": matter,
            "case_no": case_no,
            "department": principal.department,
            "kind": "lookup",
        }
        return self._write(record)

    def event(
        self, kind: str, principal: Principal | None, detail: dict[str, Any]
    ) -> dict[str, Any]:
        """A non-lookup record (``kind``, e.g. ``key_refused``) on the same trail, same path.

        Strings in ``detail`` are masked (``mask_text``); ``AuditUnavailable`` when unwritable.
        """
        if kind == "lookup" or not _KIND.match(kind):
            raise ValueError(f"event kind must match {_KIND.pattern} and not be 'lookup'")
        record: dict[str, Any] = {
            "id": record_id(),
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "kind": kind,
            "who": principal.holder if principal else None,
            "role": principal.role if principal else None,
            "channel": principal.channel if principal else None,
            "detail": _masked(detail),
        }
        return self._write(record)

    def check_writable(self) -> str | None:
        """None when every sink can take a record now, else the first reason (writes nothing)."""
        for sink in self.sinks:
            check = getattr(sink, "check_writable", None)
            reason = check() if check is not None else None
            if reason:
                return f"{type(sink).__name__}: {reason}"
        return None

    def _write(self, record: dict[str, Any]) -> dict[str, Any]:
        if self.dev:
            record["dev"] = True
        pending = _DEFERRED.get()
        if pending is not None:  # queued now, awaited by the caller before it answers
            for n, sink in enumerate(self.sinks):
                own = record if n == 0 else dict(record)  # each sink seals its own copy
                future = sink.submit(own, pending.loop)  # type: ignore[attr-defined]
                pending.waiting.append((type(sink).__name__, future))
            return record
        for sink in self.sinks:
            try:
                sink.write(record)
            except Exception as e:
                log.error("lookup audit: %s: %s", type(sink).__name__, type(e).__name__)
                raise AuditUnavailable(
                    "the audit record could not be written; the lookup was not answered"
                ) from e
        return record

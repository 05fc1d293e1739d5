"""The append-only audit trail of lookups: who, when, why, whom (as a keyed hash), outcome.

Every lookup writes one JSON line before its answer is returned; the write is flushed to disk
(``fdatasync``) and a failure raises ``AuditUnavailable``, so a lookup that cannot be audited is
not answered. The looked-up number is stored as HMAC-SHA256 under ``DATACLOUD_AUDIT_KEY``: an
auditor holding a number can find its lookups (``search``), nobody can read numbers off the
trail. Files: ``<root>/audit/lookups-<UTC date>.jsonl``, opened with ``O_APPEND`` only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from datacloud.lookup.auth import Principal
from datacloud.masking import mask_text

log = logging.getLogger(__name__)
AUDIT_KEY_ENV = "DATACLOUD_AUDIT_KEY"
DEV_ENV = "DATACLOUD_LOOKUP_DEV"
DEV_KEY = b"datacloud-dev-mode-audit-key-not-secret"
MIN_KEY_BYTES = 16
PURPOSE_CHARS = 200


# characters str.splitlines() breaks on that JSON leaves unescaped: one record, one line
_LINE_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


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
    """JSON lines, one file per UTC day, appended and fsynced under a lock."""

    def __init__(self, folder: Path, min_free_bytes: int = MIN_FREE_BYTES) -> None:
        self.folder = folder
        self.min_free_bytes = min_free_bytes
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._day: str | None = None

    def path(self, day: str) -> Path:
        return self.folder / f"lookups-{day}.jsonl"

    def write(self, record: dict[str, Any]) -> None:
        text = json.dumps(record, ensure_ascii=False, sort_keys=True)
        line = (text.translate(_LINE_BREAKS) + "\n").encode("utf-8")
        day = str(record["at"])[:10]
        with self._lock:
            if self._fd is None or self._day != day:
                self.close()
                self.folder.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path(day), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
                self._day = day
            written = os.write(self._fd, line)
            if written != len(line):
                raise OSError(f"short write to the audit file ({written} of {len(line)} bytes)")
            os.fdatasync(self._fd)  # the data and the size it needs to be read back

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

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

    def records(self) -> Iterator[dict[str, Any]]:
        for path in sorted(self.folder.glob("lookups-*.jsonl")):
            with path.open(encoding="utf-8") as fh:
                for line in fh:
                    if line.strip():
                        yield json.loads(line)


class AuditLog:
    """Writes each lookup's record to every sink; any failure is ``AuditUnavailable``."""

    def __init__(self, sinks: list[AuditSink], key: bytes, dev: bool = False) -> None:
        if not sinks:
            raise ValueError("the audit log needs at least one sink")
        self.sinks = sinks
        self._key = key
        self.dev = dev

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
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "id": uuid.uuid4().hex,
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "who": principal.holder,
            "role": principal.role,
            "channel": principal.channel,
            "endpoint": endpoint,
            "purpose": mask_text(purpose.strip())[:PURPOSE_CHARS],
            "key_hmac": self.key_hash(number),
            "as_of": as_of,
            "outcome": outcome,
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
            "id": uuid.uuid4().hex,
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
        for sink in self.sinks:
            try:
                sink.write(record)
            except Exception as e:
                log.error("lookup audit: %s: %s", type(sink).__name__, type(e).__name__)
                raise AuditUnavailable(
                    "the audit record could not be written; the lookup was not answered"
                ) from e
        return record

"""Contested facts for lookups: a person's open or disputed cross-department findings.

A lookup answer that rests on a fact a department has disputed (有异议), or that an open
cross-department finding (比对, ``kind`` ``finding``) questions, says so: ``disputed: true``
and ``disputes: [{field, since, status, table}]`` (docs/problems.md, "Responding"), so a service
window does not refuse a citizen on a contested fact without knowing.

``DisputeIndex`` holds, per person (``person_key``, the ID number), the open and reopened
findings of the problem table (``datacloud.problem_store``); it is built once per version of
the table and rebuilt when the tracking night publishes a new one (the version is looked at
no more often than every ``check_seconds``), so a lookup costs a dictionary look-up, not a
scan of the table. ``disputes_for(root, person_key)`` answers from one index per storage root.

Nothing here is shown unmasked: a dispute carries the field, the date, the status, the table
and the department, never the ID number.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable

from datacloud import problem_store
from datacloud.delta import has_deletion_vectors, open_table, read_loaded
from datacloud.paths import StorageRoot

CHECK_SECONDS = 5.0


@dataclass(frozen=True)
class Dispute:
    """One contested fact about a person: ``status`` ``disputed`` (a department's 有异议,
    ``since`` the day it was made) or ``open`` (an open finding, ``since`` first seen or
    reopened)."""

    field: str
    since: date
    problem_id: str
    table: str
    dept: str
    status: str  # disputed | open

    def shown(self) -> dict[str, Any]:
        """As a lookup answer carries it: field, since (ISO date), status, table."""
        return {
            "field": self.field,
            "since": self.since.isoformat(),
            "status": self.status,
            "table": self.table,
        }

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["since"] = self.since.isoformat()
        return out


def _key(person_key: str) -> str:
    return person_key.strip().upper()


def build(problems: pa.Table) -> dict[str, list[Dispute]]:
    """Per person, the open and reopened findings (disputed ones first, then by field)."""
    rows = problems.filter(
        pc.and_(
            pc.equal(problems["kind"], "finding"),
            pc.and_(
                pc.is_in(problems["status"], pa.array(list(problem_store.OPEN))),
                pc.is_valid(problems["person_key"]),
            ),
        )
    ).select([c for c in _COLUMNS if c not in ("kind", "status")])  # what a Dispute needs
    out: dict[str, list[Dispute]] = {}
    for r in rows.to_pylist():  # open findings: bounded by the problem table
        disputed = r["disputed_since"] is not None
        since = r["disputed_since"] if disputed else (r["reopened_on"] or r["first_seen"])
        for field in str(r["field"] or "").split(",") or [""]:
            out.setdefault(_key(r["person_key"]), []).append(
                Dispute(
                    field=field.strip(),
                    since=since,
                    problem_id=r["problem_id"],
                    table=r["table"],
                    dept=r["dept"],
                    status="disputed" if disputed else "open",
                )
            )
    for found in out.values():
        found.sort(key=lambda d: (d.status != "disputed", d.field, d.since, d.problem_id))
    return out


_COLUMNS = [
    "kind",
    "status",
    "person_key",
    "field",
    "problem_id",
    "table",
    "dept",
    "first_seen",
    "reopened_on",
    "disputed_since",
]


def _read(dt: DeltaTable | None) -> pa.Table:
    """The columns the index needs, at the loaded version. The table is replaced whole each
    night (no deletion vectors): its Parquet files are read single-threaded by pyarrow, so a
    short-lived process (the lookup CLI) leaves no reader thread behind at exit; a table with
    deletion vectors is read through ``datacloud.delta``."""
    if dt is None:
        return problem_store.empty().select(_COLUMNS)
    if has_deletion_vectors(dt):
        return read_loaded(dt, _COLUMNS)
    files = dt.file_uris()
    if not files:
        return problem_store.empty().select(_COLUMNS)
    schema = problem_store.SCHEMA
    return pq.read_table(
        files,
        columns=_COLUMNS,
        use_threads=False,
        schema=pa.schema([schema.field(c) for c in _COLUMNS]),
    )


class DisputeIndex:
    """The disputes of every person, rebuilt when the problem table's version changes."""

    def __init__(self, root: StorageRoot, check_seconds: float = CHECK_SECONDS) -> None:
        self.root = root
        self.check_seconds = check_seconds
        self._lock = threading.Lock()
        self._version: int | None = None
        self._index: dict[str, list[Dispute]] = {}
        self._checked = float("-inf")
        self.builds = 0  # how many times the index was built (for tests and the health page)

    @property
    def version(self) -> int | None:
        """The problem table version the index was built from (None: no table yet)."""
        return self._version

    def refresh(self, force: bool = False) -> None:
        """Rebuild when the problem table has a new version (looked at every
        ``check_seconds`` unless ``force``)."""
        now = time.monotonic()
        if not force and now - self._checked < self.check_seconds:
            return
        with self._lock:
            if not force and now - self._checked < self.check_seconds:
                return
            dt = open_table(self.root.problems_table())
            current = None if dt is None else dt.version()
            if current != self._version or self.builds == 0:
                self._index = build(_read(dt))
                self._version = current
                self.builds += 1
            self._checked = now

    def disputes_for(self, person_key: str | None) -> list[Dispute]:
        if not person_key:
            return []
        self.refresh()
        return list(self._index.get(_key(person_key), ()))


_INDEXES: dict[StorageRoot, DisputeIndex] = {}
_INDEXES_LOCK = threading.Lock()


def index_for(root: StorageRoot) -> DisputeIndex:
    """The process's index of one storage root."""
    with _INDEXES_LOCK:
        found = _INDEXES.get(root)
        if found is None:
            found = _INDEXES[root] = DisputeIndex(root)
        return found


def disputes_for(root: StorageRoot, person_key: str) -> list[Dispute]:
    """The open and disputed cross-department findings about ``person_key`` (the contract's
    name), from the root's index."""
    return index_for(root).disputes_for(person_key)


def flag(answer_disputes: list[Dispute]) -> dict[str, Any]:
    """What a lookup answer carries: ``disputed`` and ``disputes`` (masked: no ID number)."""
    return {"disputed": bool(answer_disputes), "disputes": [d.shown() for d in answer_disputes]}

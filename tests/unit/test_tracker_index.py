"""The tracker's index of closed day files (datacloud.lookup.tracker_index) over a real trail:
several day files written by the real ``AuditLog`` (each day's file moved to its date after it
was written: the writer names files by today's UTC date), a torn line in a closed day. The
tracker through the index equals the full scan of every record (``FileSink.records``) for every
person; the sidecars hold no ID number; a closed day that changes is indexed again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from datacloud.lookup.audit import AuditLog, FileSink
from datacloud.lookup.auth import Principal
from datacloud.lookup.tracker import Tracker, entries_for
from datacloud.lookup.tracker_index import INDEX_DIR, index_path
from datacloud.matters import load_matters
from transforms.id_number import id_check_char

KEY = b"tracker-index-test-key-0123456"
PEOPLE = [b + id_check_char(b) for b in (f"11010119800101{i:03d}" for i in range(1, 13))]
CLERK = Principal(
    "公积金中心 城东窗口 张三", "clerk", "api", "k-gjj", department="gjj",
    matters=frozenset({"gjj_withdrawal"}),
)  # fmt: skip
AUDITOR = Principal("审计员 王五", "auditor", "api", "k-aud")
DAYS = ["2026-01-05", "2026-02-10", "2026-03-15", "2026-04-20"]


def _trail(folder: Path) -> AuditLog:
    """Four closed days and today's file; person i is looked up on days where i % (d+1) == 0."""
    for d, day in enumerate(DAYS):
        audit = AuditLog([FileSink(folder)], KEY)
        for n in range(60):
            who = PEOPLE[n % len(PEOPLE)]
            if PEOPLE.index(who) % (d + 1) == 0:
                outcome = "found" if n % 7 else "not_found"
                audit.record(CLERK, "property_status", "办件", who, outcome,
                             matter="gjj_withdrawal", case_no=f"GJJ-{d}-{n}")  # fmt: skip
        for sink in audit.sinks:
            if isinstance(sink, FileSink):
                sink.close()
        (today,) = [p for p in folder.glob("lookups-*.jsonl") if p.name[8:18] not in DAYS]
        today.rename(folder / f"lookups-{day}.jsonl")
    audit = AuditLog([FileSink(folder)], KEY)
    audit.record(CLERK, "property_status", "办件", PEOPLE[0], "found",
                 matter="gjj_withdrawal", case_no="GJJ-today")  # fmt: skip
    return audit


def _full_scan(folder: Path, audit: AuditLog, number: str) -> list[dict[str, object]]:
    return entries_for(FileSink(folder).records(), audit.key_hash(number), load_matters())


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "audit"


def test_the_index_answers_as_the_full_scan_for_every_person(folder: Path) -> None:
    audit = _trail(folder)
    torn = folder / f"lookups-{DAYS[2]}.jsonl"
    with torn.open("ab") as fh:  # a torn last line holding a person's HMAC: never an entry
        fh.write(b'{"key_hmac": "' + audit.key_hash(PEOPLE[0]).encode() + b'", "endpoint": "x')
    tracker = Tracker(audit, load_matters())
    for number in PEOPLE:
        found = tracker.track(AUDITOR, number)
        expected = _full_scan(folder, audit, number)
        assert found.entries == expected and found.total == len(expected) > 0
    # every closed day has its sidecar, the newest (still appended) file has none
    for day in DAYS:
        assert index_path(folder / f"lookups-{day}.jsonl").is_file()
    newest = sorted(folder.glob("lookups-*.jsonl"))[-1]
    assert newest.name not in {f"lookups-{d}.jsonl" for d in DAYS}
    assert not index_path(newest).exists()
    # no ID number (nor its 17-digit body, nor any 15+ digit run) in any sidecar
    for side in (folder / INDEX_DIR).iterdir():
        data = side.read_bytes()
        assert not any(p.encode() in data or p[:17].encode() in data for p in PEOPLE)


def test_a_closed_day_that_changed_is_indexed_again(folder: Path) -> None:
    audit = _trail(folder)
    tracker = Tracker(audit, load_matters())
    target = PEOPLE[5]  # looked up on the first day only (5 % 2, 5 % 3, 5 % 4 are not 0)
    before = tracker.track(AUDITOR, target).total
    day = folder / f"lookups-{DAYS[3]}.jsonl"
    stamp = index_path(day).stat().st_mtime_ns
    # a record of that person appended to a closed day (as a late writer would)
    extra = AuditLog([FileSink(folder)], KEY)
    extra.record(CLERK, "property_status", "办件", target, "found",
                 matter="gjj_withdrawal", case_no="GJJ-late")  # fmt: skip
    (newest,) = [p for p in folder.glob("lookups-*.jsonl") if p.name[8:18] not in DAYS]
    lines = newest.read_bytes().splitlines(keepends=True)
    with day.open("ab") as fh:
        fh.write(lines[-1])
    newest.write_bytes(b"".join(lines[:-1]))
    os.utime(day, ns=(stamp + 10**9, stamp + 10**9))
    after = tracker.track(AUDITOR, target)
    # + the late record + the first tracker view (the second is in the newest file too)
    assert after.total == before + 2 and after.entries == _full_scan(folder, audit, target)
    assert "GJJ-late" in {e["case_no"] for e in after.entries}
    assert index_path(day).stat().st_mtime_ns != stamp


def test_a_sidecar_that_cannot_be_written_still_answers(folder: Path) -> None:
    """The index folder's name taken by a file (the sidecars cannot be written; a read-only
    mode would not stop root, which this suite may run as): built in memory, same answer."""
    audit = _trail(folder)
    (folder / INDEX_DIR).write_bytes(b"")
    found = Tracker(audit, load_matters()).track(AUDITOR, PEOPLE[0])
    assert found.entries == _full_scan(folder, audit, PEOPLE[0]) and found.total > 0
    assert (folder / INDEX_DIR).read_bytes() == b""


def test_a_corrupt_sidecar_is_built_again(folder: Path) -> None:
    audit = _trail(folder)
    tracker = Tracker(audit, load_matters())
    expected = tracker.track(AUDITOR, PEOPLE[0]).total
    side = index_path(folder / f"lookups-{DAYS[0]}.jsonl")
    side.write_bytes(side.read_bytes()[:-5])  # truncated
    assert tracker.track(AUDITOR, PEOPLE[0]).total == expected + 1  # + the first tracker view
    assert (side.stat().st_size - 40) % 16 == 0

"""The lookup audit trail as auditors read it: the file at the path holds every acknowledged
record (moved, deleted, rotated files), a torn line never glues the next record or breaks the
search, the hash chain (SM3 or SHA-256) runs across restarts and days, and event records stay
out of the lookup search.

Real files in tmp_path throughout. Two tests replace a write primitive to make a race or a
full disk happen at a chosen moment (a rename inside the write; half a line, then ENOSPC): that
timing cannot be produced otherwise in a unit test. The real full disk (tmpfs) and the
multi-process chain are in tests/integration/test_audit_cli.py.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from datacloud.lookup import audit as audit_mod
from datacloud.lookup.audit import AuditLog, AuditUnavailable, FileSink
from datacloud.lookup.audit_chain import (
    GENESIS,
    canonical,
    check_anchor,
    day_anchor,
    digest,
    verify,
)
from datacloud.lookup.auth import Principal
from datacloud.lookup.service import LookupService
from transforms.id_number import id_check_char

A = "33010619800101001" + id_check_char("33010619800101001")
B = "33010619900202002" + id_check_char("33010619900202002")
CLERK = Principal("窗口1", "clerk", "api")
AUDITOR = Principal("审计1", "auditor", "api")
KEY = b"k" * 16


def _log(folder: Path) -> tuple[FileSink, AuditLog]:
    sink = FileSink(folder)
    return sink, AuditLog([sink], KEY)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_bytes().split(b"\n") if x]


def _today_file(folder: Path) -> Path:
    (path,) = sorted(folder.glob("lookups-*.jsonl"))
    return path


def _rec(at: str, n: int) -> dict[str, Any]:
    return {"id": f"r{n}", "at": at, "kind": "lookup", "who": "w", "key_hmac": f"h{n}"}


class _NoSource:
    """search_audit reads the trail only; no curated data is needed."""


def _search(log: AuditLog, number: str | None) -> list[dict[str, Any]]:
    svc = LookupService(_NoSource(), log)  # type: ignore[arg-type]
    return svc.search_audit(AUDITOR, "复核", number, 1000)


# --- 1. the file auditors read holds every record ------------------------------------------------


@pytest.mark.parametrize("how", ["moved", "deleted", "rotated"])
def test_a_record_after_the_file_is_moved_deleted_or_rotated_is_in_the_file_at_the_path(
    tmp_path: Path, how: str
) -> None:
    folder = tmp_path / "audit"
    sink, log = _log(folder)
    first = log.record(CLERK, "person", "核对", A, "found")
    path = _today_file(folder)
    if how == "moved":
        path.rename(path.with_name(path.name + ".moved"))
    elif how == "deleted":
        path.unlink()
    else:  # logrotate's default: rename, then create an empty file at the path
        path.rename(path.with_name(path.name + ".1"))
        path.touch()
    second = log.record(CLERK, "person", "核对", B, "found")
    third = log.record(CLERK, "person", "核对", A, "not_found")
    sink.close()
    ids = [r["id"] for r in _lines(path)]
    assert second["id"] in ids and third["id"] in ids and first["id"] not in ids
    # the reopening is on the trail itself, chained to the record that is gone from this file
    head = _lines(path)[0]
    assert head["kind"] == "trail_reopened" and head["prev"] == first["hash"]
    broken = verify(folder).broken
    assert broken is not None and (broken.file, broken.line) == (path.name, 1)


def test_a_file_truncated_in_place_copytruncate_is_reported_and_written_on(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    sink, log = _log(folder)
    log.record(CLERK, "person", "核对", A, "found")
    path = _today_file(folder)
    shutil.copy(path, tmp_path / "copy.jsonl")
    os.truncate(path, 0)
    after = log.record(CLERK, "person", "核对", A, "found")
    sink.close()
    assert [r["kind"] for r in _lines(path)] == ["trail_reopened", "lookup"]
    assert _lines(path)[1]["id"] == after["id"]


def test_a_file_moved_during_the_write_gets_the_record_again_at_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rename happens inside the write (a race no test can time otherwise)."""
    folder = tmp_path / "audit"
    sink, log = _log(folder)
    log.record(CLERK, "person", "核对", A, "found")
    path = _today_file(folder)
    real = audit_mod.write_all
    moved = []

    def write_then_rotate(fd: int, data: bytes) -> None:
        real(fd, data)
        if not moved:
            moved.append(path.rename(path.with_name(path.name + ".1")))

    monkeypatch.setattr(audit_mod, "write_all", write_then_rotate)
    rec = log.record(CLERK, "person", "核对", B, "found")
    sink.close()
    assert rec["id"] in [r["id"] for r in _lines(path)]


def test_a_new_day_file_is_made_durable_by_an_fsync_of_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[Path] = []
    real = audit_mod.fsync_dir
    monkeypatch.setattr(audit_mod, "fsync_dir", lambda p: (synced.append(p), real(p)))
    folder = tmp_path / "audit"
    sink, log = _log(folder)
    log.record(CLERK, "person", "核对", A, "found")
    log.record(CLERK, "person", "核对", A, "found")
    sink.close()
    assert synced == [tmp_path, folder]  # the new folder in its parent, the new file in it


# --- 2. torn lines --------------------------------------------------------------------------------


def test_a_torn_tail_is_moved_aside_and_the_next_record_starts_on_its_own_line(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "audit"
    sink, log = _log(folder)
    log.record(CLERK, "person", "核对", A, "found")
    path = _today_file(folder)
    torn = path.read_bytes()[:-40]  # a process killed mid-write left part of a line
    with path.open("ab") as fh:
        fh.write(torn[: len(torn) // 2])
    sink.close()
    sink, log = _log(folder)  # a restart
    rec = log.record(CLERK, "person", "再核对", A, "found")
    sink.close()
    lines = _lines(path)  # every line parses
    assert [r["kind"] for r in lines] == ["lookup", "trail_repaired", "lookup"]
    assert lines[2]["id"] == rec["id"]
    (side,) = folder.glob(path.name + ".torn-*")
    assert side.read_bytes() == torn[: len(torn) // 2]
    assert lines[1]["detail"]["side_file"] == side.name
    v = verify(folder)
    assert v.broken is None and v.records == 3
    assert len(_search(log, A)) == 3  # the two lookups and the search itself


def test_half_a_line_then_disk_full_leaves_no_torn_line_and_search_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """os.write writes half the audit line, then the disk is full (ENOSPC)."""
    folder = tmp_path / "audit"
    sink, log = _log(folder)
    log.record(CLERK, "person", "核对", A, "found")
    real_write = os.write
    full = [True]

    def half_then_enospc(fd: int, data: bytes) -> int:
        if full[0] and os.readlink(f"/proc/self/fd/{fd}").endswith(".jsonl"):
            full[0] = False
            real_write(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", half_then_enospc)
    with pytest.raises(AuditUnavailable):
        log.record(CLERK, "person", "核对", B, "found")
    monkeypatch.setattr(os, "write", real_write)
    after = log.record(CLERK, "person", "核对", A, "found")
    found = _search(log, A)
    sink.close()
    assert [r["id"] for r in _lines(_today_file(folder))][-2] == after["id"]
    assert after["id"] in [r["id"] for r in found]
    assert verify(folder).broken is None


def test_search_skips_a_garbled_line_counts_it_and_never_raises(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    sink, log = _log(folder)
    log.record(CLERK, "person", "核对", A, "found")
    path = _today_file(folder)
    with path.open("ab") as fh:  # what the old sink left after a full disk: a glued line
        fh.write(b'{"id": "half-a-rec{"id": "next", "at": "2026-11-20"}\n')
    log.record(CLERK, "person", "核对", A, "found")
    found = _search(log, A)
    sink.close()
    assert len(found) == 3 and sink.skipped >= 1
    broken = verify(folder).broken
    assert broken is not None and broken.line == 2 and "not a JSON record" in broken.reason


# --- 3. the chain --------------------------------------------------------------------------------


def test_each_record_links_to_the_one_before_across_a_restart(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    sink, log = _log(folder)
    a = log.record(CLERK, "person", "核对", A, "found")
    b = log.event("key_refused", None, {"why": "unknown key"})
    sink.close()
    sink, log = _log(folder)  # a new process continues the chain from the file's tail
    c = log.record(CLERK, "person", "核对", B, "found")
    sink.close()
    alg = "sm3" if "sm3" in hashlib.algorithms_available else "sha256"
    assert (a["alg"], a["prev"]) == (alg, GENESIS)
    assert b["prev"] == a["hash"] and c["prev"] == b["hash"]
    for rec in _lines(_today_file(folder)):
        assert rec["hash"] == digest(alg, canonical(rec))
    assert verify(folder).records == 3 and verify(folder).broken is None


def test_the_first_record_of_a_day_links_to_the_last_of_the_day_before(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    sink = FileSink(folder)
    day1 = [_rec("2026-11-20T23:59:58.000+00:00", n) for n in range(2)]
    day2 = [_rec("2026-11-21T00:00:01.000+00:00", n) for n in range(2, 4)]
    for rec in day1 + day2:
        sink.write(rec)
    late = _rec("2026-11-20T23:59:59.999+00:00", 9)  # another worker, just before midnight
    sink.write(late)
    sink.close()
    assert day2[0]["prev"] == day1[-1]["hash"] and late["prev"] == day2[-1]["hash"]
    assert [r["id"] for r in _lines(sink.path("2026-11-21"))] == ["r2", "r3", "r9"]
    assert verify(folder).broken is None and verify(folder).files == 2
    assert verify(folder, "2026-11-21").broken is None


def test_lines_from_before_the_chain_are_linked_by_their_bytes(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    folder.mkdir()
    old = b'{"at": "2026-11-20T01:00:00.000+00:00", "id": "old", "key_hmac": "x"}\n'
    (folder / "lookups-2026-11-20.jsonl").write_bytes(old)
    sink = FileSink(folder)
    rec = _rec("2026-11-20T02:00:00.000+00:00", 1)
    sink.write(rec)
    sink.close()
    assert rec["prev"] == digest(rec["alg"], old.rstrip(b"\n"))
    v = verify(folder)
    assert (v.broken, v.unchained, v.records) == (None, 1, 2)


def test_the_day_anchor_catches_the_last_record_removed(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    sink = FileSink(folder)
    for n in range(3):
        sink.write(_rec("2026-11-20T10:00:00.000+00:00", n))
    sink.close()
    anchor = day_anchor(folder, "2026-11-20")
    assert (anchor["records"], anchor["broken"]) == (3, None)
    assert anchor["last_hash"] == _lines(sink.path("2026-11-20"))[-1]["hash"]
    assert day_anchor(folder, "2026-11-21")["last_hash"] == anchor["last_hash"]  # no file yet
    assert check_anchor(folder, anchor) is None
    path = sink.path("2026-11-20")
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:-1]))
    assert verify(folder).broken is None  # the chain alone cannot see a missing last line
    assert "fewer records" in str(check_anchor(folder, anchor))


# --- 4. events and search ------------------------------------------------------------------------


def test_search_lists_lookups_only_and_events_are_masked(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    sink, log = _log(folder)
    log.record(CLERK, "person", "核对", A, "found")
    ev = log.event("key_refused", CLERK, {"note": f"typed {A} into the key header"})
    everything = _search(log, None)
    sink.close()
    assert ev["kind"] == "key_refused" and A not in json.dumps(ev, ensure_ascii=False)
    assert {r["kind"] for r in everything} == {"lookup"} and len(everything) == 2
    assert A not in _today_file(folder).read_text(encoding="utf-8")
    with pytest.raises(ValueError):
        log.event("lookup", None, {})


def test_check_writable_names_the_reason_and_writes_nothing(tmp_path: Path) -> None:
    assert AuditLog([FileSink(tmp_path / "new" / "audit")], KEY).check_writable() is None
    assert not (tmp_path / "new").exists()
    (tmp_path / "file").write_text("x")
    not_dir = AuditLog([FileSink(tmp_path / "file")], KEY).check_writable()
    assert not_dir and "not a directory" in not_dir
    under_file = AuditLog([FileSink(tmp_path / "file" / "audit")], KEY).check_writable()
    assert under_file and "cannot be created" in under_file
    full = AuditLog([FileSink(tmp_path, min_free_bytes=1 << 62)], KEY).check_writable()
    assert full and "full" in full
    sink = FileSink(tmp_path / "audit")
    sink.path(audit_mod.datetime.now(audit_mod.UTC).date().isoformat()).mkdir(parents=True)
    wrong = AuditLog([sink], KEY).check_writable()
    assert wrong and "not a regular file" in wrong


def test_a_torn_tail_left_at_the_end_of_a_day_is_repaired_when_the_next_day_begins(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "audit"
    sink = FileSink(folder)
    first = _rec("2026-11-20T23:00:00.000+00:00", 1)
    sink.write(first)
    sink.close()
    with sink.path("2026-11-20").open("ab") as fh:  # killed mid-write before midnight
        fh.write(b'{"id": "r2", "at": "2026-11-20T23:59')
    sink = FileSink(folder)  # the next day, a new process
    second = _rec("2026-11-21T00:00:01.000+00:00", 3)
    sink.write(second)
    sink.close()
    assert sink.path("2026-11-20").read_bytes().endswith(b"\n")
    (side,) = folder.glob("lookups-2026-11-20.jsonl.torn-*")
    assert side.read_bytes() == b'{"id": "r2", "at": "2026-11-20T23:59'
    day2 = _lines(sink.path("2026-11-21"))
    assert [r["kind"] for r in day2] == ["trail_repaired", "lookup"]
    assert day2[0]["prev"] == first["hash"]
    v = verify(folder)
    assert v.broken is None and v.records == 3

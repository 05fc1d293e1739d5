"""``datacloud audit verify`` through a real subprocess (exit codes 0 intact, 1 broken, 2 usage),
the chain kept as one sequence by several writer processes at once, and a real full disk (a
64 KiB tmpfs, mounted when this runs as root; skipped otherwise). Nothing is mocked.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from datacloud.lookup.audit import AuditLog, AuditUnavailable, FileSink
from datacloud.lookup.audit_chain import day_anchor, verify
from datacloud.lookup.auth import Principal
from datacloud.lookup.service import LookupService
from transforms.id_number import id_check_char

DATACLOUD = str(Path(sys.executable).parent / "datacloud")
A = "33010619800101001" + id_check_char("33010619800101001")
CLERK = Principal("窗口1", "clerk", "api")
AUDITOR = Principal("审计1", "auditor", "api")
KEY = b"k" * 16
D1, D2 = "2026-11-20", "2026-11-21"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DATACLOUD, "audit", "verify", *args], capture_output=True, text=True, timeout=120
    )


def _trail(folder: Path) -> Path:
    """Three records on D1, five on D2; returns D2's file."""
    sink = FileSink(folder)
    for n in range(8):
        day = D1 if n < 3 else D2
        sink.write({"id": f"rec{n}", "at": f"{day}T10:00:0{n}.000+00:00", "kind": "lookup"})
    sink.close()
    return sink.path(D2)


def _edit(lines: list[bytes]) -> list[bytes]:
    rec = json.loads(lines[2])
    rec["kind"] = "lookup_edited"
    return [
        *lines[:2],
        (json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n").encode(),
        *lines[3:],
    ]


TAMPER = {
    # (change to D2's lines, the record id reported at line 3, words of the reason)
    "edit a field": (_edit, "rec5", "altered"),
    "delete a line": (lambda ls: ls[:2] + ls[3:], "rec6", "link"),
    "insert a line": (lambda ls: [*ls[:2], ls[0], *ls[2:]], "rec3", "link"),
    "reorder two lines": (lambda ls: [*ls[:2], ls[3], ls[2], *ls[4:]], "rec6", "link"),
}


def test_an_intact_trail_exits_0(tmp_path: Path) -> None:
    _trail(tmp_path)
    out = _cli("--folder", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "intact" in out.stdout and "8 records in 2 files" in out.stdout
    assert _cli("--folder", str(tmp_path), "--day", D2).returncode == 0


@pytest.mark.parametrize("how", list(TAMPER))
def test_tampering_is_reported_at_its_line_and_exits_1(tmp_path: Path, how: str) -> None:
    path = _trail(tmp_path)
    change, record_id, words = TAMPER[how]
    path.write_bytes(b"".join(change(path.read_bytes().splitlines(keepends=True))))
    for args in (["--folder", str(tmp_path)], ["--folder", str(tmp_path), "--day", D2]):
        out = _cli(*args, "--json")
        assert out.returncode == 1, (out.stdout, out.stderr)
        where = json.loads(out.stdout)["where"]
        assert (where["file"], where["line"], where["record_id"]) == (path.name, 3, record_id)
        assert words in where["reason"]
    text = _cli("--folder", str(tmp_path))
    assert (
        text.returncode == 1 and f"BROKEN: {path.name} line 3 (record {record_id})" in text.stdout
    )
    # the day before is untouched
    assert _cli("--folder", str(tmp_path), "--day", D1).returncode == 0


def test_a_day_file_that_no_longer_follows_the_day_before_exits_1(tmp_path: Path) -> None:
    _trail(tmp_path)
    day1 = FileSink(tmp_path).path(D1)
    day1.write_bytes(b"".join(day1.read_bytes().splitlines(keepends=True)[:-1]))
    out = _cli("--folder", str(tmp_path), "--day", D2, "--json")
    assert out.returncode == 1
    assert json.loads(out.stdout)["where"]["line"] == 1


def test_anchors_catch_the_last_record_removed(tmp_path: Path) -> None:
    path = _trail(tmp_path)
    anchors = tmp_path.parent / f"{tmp_path.name}-anchors.json"
    anchors.write_text(json.dumps([day_anchor(tmp_path, D1), day_anchor(tmp_path, D2)]))
    assert _cli("--folder", str(tmp_path), "--anchor", str(anchors)).returncode == 0
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:-1]))
    out = _cli("--folder", str(tmp_path), "--anchor", str(anchors))
    assert out.returncode == 1 and "ANCHOR MISMATCH" in out.stdout, out.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--day", "2026-13-01"], "error: --day"),
        (["--folder", "/nonexistent/audit"], "error: --folder"),
        (["--anchor", "/nonexistent/anchors.json"], "error: --anchor"),
        (["--no-such-option"], "No such option"),
    ],
    ids=["bad date", "missing folder", "missing anchor file", "unknown option"],
)
def test_bad_usage_exits_2(tmp_path: Path, args: list[str], says: str) -> None:
    _trail(tmp_path)
    out = _cli("--folder", str(tmp_path), *args)
    assert out.returncode == 2 and says in out.stderr, (out.stdout, out.stderr)


# --- several writer processes: one chain ---------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from datacloud.lookup.audit import AuditLog, FileSink
    from datacloud.lookup.auth import Principal
    folder, go, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    for _ in range(2000):  # wait for the start signal, at most ~20 s
        if go.exists():
            break
        time.sleep(0.01)
    log = AuditLog([FileSink(folder)], b"k" * 16)
    who = Principal(f"worker{sys.argv[4]}", "clerk", "api")
    for i in range(n):
        log.record(who, "person", "核对", "330106198001010016", "found")
    """
)


def test_several_writer_processes_keep_one_chain(tmp_path: Path) -> None:
    folder, go = tmp_path / "audit", tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(folder), str(go), "30", str(w)])
        for w in range(4)
    ]
    go.touch()
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    v = verify(folder)
    assert v.broken is None and v.records == 120
    lines = [
        json.loads(x)
        for f in folder.glob("lookups-*.jsonl")
        for x in f.read_bytes().split(b"\n")
        if x
    ]
    assert len({r["id"] for r in lines}) == 120
    assert len({r["prev"] for r in lines}) == 120  # no two records link to the same one


# --- a real full disk ----------------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path):
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], check=False
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mnt
    finally:  # lazily when a failed test left a file open on it
        if subprocess.run(["umount", str(mnt)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], check=True)


def test_a_full_disk_refuses_lookups_then_the_trail_goes_on_clean(tiny_disk: Path) -> None:
    folder = tiny_disk / "audit"
    sink = FileSink(folder, min_free_bytes=0)
    log = AuditLog([sink], KEY)
    svc = LookupService(object(), log)  # type: ignore[arg-type]  # search reads the trail only
    log.record(CLERK, "person", "核对", A, "found")
    filler = tiny_disk / "filler"
    with filler.open("wb") as fh:  # fill the disk but for a few records' room
        st = os.statvfs(tiny_disk)
        fh.write(b"\0" * max(0, st.f_bavail * st.f_frsize - 1200))
    assert "full" in str(FileSink(folder, min_free_bytes=8192).check_writable())
    refused = 0
    for _ in range(50):  # a purpose long enough that a line does not fit the last blocks
        try:
            log.record(CLERK, "person", "核对" * 90, A, "found")
        except AuditUnavailable as e:
            assert isinstance(e.__cause__, OSError) and e.__cause__.errno == errno.ENOSPC
            refused += 1
            break
    assert refused == 1
    text = sink.path(_day(folder)).read_bytes()
    assert text.endswith(b"\n")  # no torn line left behind
    filler.unlink()
    after = log.record(CLERK, "person", "核对", A, "found")
    found = svc.search_audit(AUDITOR, "复核", A, 1000)
    sink.close()
    assert after["id"] in [r["id"] for r in found]
    assert verify(folder).broken is None
    assert all(json.loads(x) for x in sink.path(_day(folder)).read_bytes().split(b"\n") if x)


def _day(folder: Path) -> str:
    (path,) = folder.glob("lookups-*.jsonl")
    return path.name[len("lookups-") : -len(".jsonl")]


# --- an append-only file (chattr +a): the torn line cannot be cut off ----------------------------


@pytest.fixture
def append_only(tmp_path: Path):
    """Day files made append-only with chattr +a (needs root and ext4/xfs; skipped otherwise)."""
    made: list[Path] = []

    def make(path: Path) -> None:
        if subprocess.run(["chattr", "+a", str(path)], check=False).returncode != 0:
            pytest.skip("chattr +a is not available here")
        made.append(path)

    yield make
    for path in made:
        subprocess.run(["chattr", "-a", str(path)], check=True)


def test_a_torn_line_in_an_append_only_file_is_ended_and_marked(
    tmp_path: Path, append_only: Any
) -> None:
    folder = tmp_path / "audit"
    sink = FileSink(folder)
    log = AuditLog([sink], KEY)
    log.record(CLERK, "person", "核对", A, "found")
    (path,) = folder.glob("lookups-*.jsonl")
    with path.open("ab") as fh:  # a process killed mid-write
        fh.write(b'{"alg": "sm3", "as_of": null, "at": "20')
    append_only(path)
    after = log.record(CLERK, "person", "核对", A, "found")
    svc = LookupService(object(), log)  # type: ignore[arg-type]  # search reads the trail only
    found = svc.search_audit(AUDITOR, "复核", A, 1000)
    sink.close()
    lines = path.read_bytes().splitlines()
    assert lines[1] == b'{"alg": "sm3", "as_of": null, "at": "20 <torn>'
    assert [json.loads(x)["kind"] for x in lines[2:]] == ["trail_repaired", "lookup", "lookup"]
    assert after["id"] in [r["id"] for r in found]
    v = verify(folder)
    assert v.broken is None and v.records == 4 and "incomplete" not in str(v.warnings)
    assert "terminated" in " ".join(v.warnings)
    # the same line without its repair record is a break at its line
    path_copy = tmp_path / "copy"
    path_copy.mkdir()
    kept = [lines[0], lines[1], *lines[3:]]
    (path_copy / path.name).write_bytes(b"".join(x + b"\n" for x in kept))
    broken = verify(path_copy).broken
    assert broken is not None and broken.line == 2


def test_a_torn_tail_of_a_past_append_only_day_stays_and_is_a_warning(
    tmp_path: Path, append_only: Any
) -> None:
    folder = tmp_path / "audit"
    sink = FileSink(folder)
    sink.write({"id": "r1", "at": f"{D1}T23:00:00.000+00:00", "kind": "lookup"})
    sink.close()
    with sink.path(D1).open("ab") as fh:
        fh.write(b'{"id": "r2", "at": "20')
    append_only(sink.path(D1))
    sink = FileSink(folder)
    sink.write({"id": "r3", "at": f"{D2}T00:00:01.000+00:00", "kind": "lookup"})
    sink.close()
    out = _cli("--folder", str(folder))
    assert out.returncode == 0, out.stdout
    assert "warning: " in out.stdout and "incomplete last line" in out.stdout

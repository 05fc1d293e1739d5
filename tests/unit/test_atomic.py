"""datacloud.atomic: the one write-aside-then-replace, used by every local state file."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from datacloud import atomic

WRITES = 150  # per process; bounded


def _writer(path: str, tag: str, errors: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    text = json.dumps({"writer": tag, "pad": tag * 5000})
    try:
        for _ in range(WRITES):
            atomic.replace_text(Path(path), text)
    except Exception as e:  # reported to the test, which fails on it
        errors.put(f"{type(e).__name__}: {e}")


def test_parallel_writers_of_one_file_never_collide(tmp_path: Path) -> None:
    """Two processes replace the same file over and over: every replace succeeds (each writer
    has its own temporary file) and the file always holds one writer's whole text."""
    path = tmp_path / "state.json"
    ctx = multiprocessing.get_context("fork")
    errors = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(path), t, errors)) for t in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert all(p.exitcode == 0 for p in procs)
    assert errors.empty(), errors.get()
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["pad"] == doc["writer"] * 5000
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left


def test_a_failed_write_leaves_the_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    atomic.replace_text(path, "old")

    def broken(tmp: Path) -> None:
        tmp.write_text("half", encoding="utf-8")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic.replace_with(path, broken)
    assert path.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_locked_read_modify_write_loses_no_update(tmp_path: Path) -> None:
    """``lock`` serialises read-modify-write: parallel increments all count."""
    path = tmp_path / "count.json"
    atomic.replace_json(path, {"n": 0})
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_increment, args=(str(path),)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert json.loads(path.read_text(encoding="utf-8")) == {"n": 3 * 50}


def _increment(path: str) -> None:
    p = Path(path)
    for _ in range(50):
        with atomic.locked(p):
            n = json.loads(p.read_text(encoding="utf-8"))["n"]
            atomic.replace_json(p, {"n": n + 1})

"""The run state file: updates from parallel processes lose no field; error texts are masked."""

from __future__ import annotations

import json
import multiprocessing
from datetime import date
from pathlib import Path

from datacloud import runstate
from datacloud.paths import StorageRoot

DS = date(2026, 11, 20)
ID = "330102199001011234"
WORKERS, ROUNDS = 4, 40


def _hammer(root: str, worker: int, start: object) -> None:
    start.wait(30)  # type: ignore[attr-defined]
    for i in range(ROUNDS):
        runstate.update(StorageRoot(Path(root)), "gongan", DS, "czrk", **{f"w{worker}": i})


def test_parallel_updates_of_different_fields_lose_none(tmp_path: Path) -> None:
    """Several processes (like the mapped chunk tasks of one table) each update their own
    field many times: every field ends at its last value, and no temporary file is left."""
    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    procs = [ctx.Process(target=_hammer, args=(str(tmp_path), w, start)) for w in range(WORKERS)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * WORKERS
    state = runstate.read(StorageRoot(tmp_path), "gongan", DS, "czrk")
    assert {k: state.get(k) for k in (f"w{w}" for w in range(WORKERS))} == {
        f"w{w}": ROUNDS - 1 for w in range(WORKERS)
    }
    folder = StorageRoot(tmp_path).run_state("gongan", DS)
    assert sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp")) == []


def test_error_fields_are_stored_masked(tmp_path: Path) -> None:
    root = StorageRoot(tmp_path)
    error = f"duplicate key value\nDETAIL:  Key (sfzh)=({ID}) already exists; phone 13812345678"
    state = runstate.update(root, "gongan", DS, "czrk", status="failed", error=error)
    text = (root.run_state("gongan", DS) / "czrk.json").read_text(encoding="utf-8")
    assert ID not in text and "13812345678" not in text
    assert "330102********1234" in text and "138****5678" in text
    assert ID not in json.dumps(state)
    runstate.reset(root, "gongan", DS, "czrk")
    assert runstate.read(root, "gongan", DS, "czrk")["status"] == "not_run"

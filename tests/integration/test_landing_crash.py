"""``kill -9`` of a raw landing at every file-system step: after the kill the partition is
yesterday's or tonight's, complete (or absent when there was none), the next access rolls a
crashed swap forward or back, the next write of any partition of the table deletes the dead
copies, and the retry lands tonight's rows with a marker that matches its files.

The write runs in a child Python process that replaces ``os.rename``, ``os.replace``,
``os.link``, ``os.unlink`` and ``os.rmdir`` with wrappers SIGKILLing the process at their N-th
call (no hook in production code); N runs from 1 until a run completes, bounded.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from datacloud.landing import (
    IncompletePartition,
    chunk_folder,
    land_chunks,
    read_partition,
    replace_partition,
    write_chunk,
)

MAX_STEPS = 80
SCHEMA = pa.schema([("id", pa.int64()), ("sfzh", pa.string())])
OLD = pa.table({"id": [1, 2, 3], "sfzh": ["a", "b", "c"]}, schema=SCHEMA)
NEW = pa.table({"id": list(range(10, 22)), "sfzh": [f"n{i}" for i in range(12)]}, schema=SCHEMA)
RUN = "manual__2026-11-21T02:00"

CHILD = """
import os, signal, sys
from pathlib import Path
import pyarrow as pa
from datacloud.landing import chunk_folder, land_chunks, replace_partition

mode, partition, kill_at = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
calls = 0

def hooked(real):
    def call(*args, **kwargs):
        global calls
        calls += 1
        if calls == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    return call

for name in ("rename", "replace", "link", "unlink", "rmdir"):
    setattr(os, name, hooked(getattr(os, name)))
schema = pa.schema([("id", pa.int64()), ("sfzh", pa.string())])
new = pa.table({"id": list(range(10, 22)), "sfzh": [f"n{i}" for i in range(12)]}, schema=schema)
if mode == "replace":
    with replace_partition(partition) as w:
        w.rows_per_file = 4
        for batch in new.to_batches(max_chunksize=4):
            w.write(batch)
else:
    land_chunks(partition, chunk_folder(partition, sys.argv[4]), 3, schema)
"""


def _write(partition: Path, rows: pa.Table) -> None:
    with replace_partition(partition) as w:
        w.rows_per_file = 4
        for batch in rows.to_batches(max_chunksize=4):
            w.write(batch)


def _base(folder: Path, previous: bool, chunked: bool) -> Path:
    """A table folder: yesterday's partition (``previous``) and (``chunked``) tonight's three
    chunks of four rows, two files each."""
    partition = folder / "raw" / "gongan" / "czrk" / "ds=2026-11-20"
    partition.parent.mkdir(parents=True)
    if previous:
        _write(partition, OLD)
    chunks = chunk_folder(partition, RUN)
    for i in range(3 if chunked else 0):
        with write_chunk(chunks, i) as w:
            w.rows_per_file = 2
            w.write(NEW.slice(4 * i, 4))
    return partition


def _sorted(t: pa.Table) -> pa.Table:
    return t.sort_by("id")


def _seen(partition: Path) -> str:
    try:
        got = _sorted(read_partition(partition))
    except IncompletePartition:
        return "absent" if not partition.exists() else "broken"
    if got.equals(_sorted(OLD)):
        return "old"
    if got.equals(_sorted(NEW)):
        return "new"
    return "mixed"


def _hidden(table: Path) -> list[str]:
    return sorted(p.name for p in table.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize(
    ("mode", "after", "previous"),
    [
        ("replace", "read", True),
        ("replace", "write", True),
        ("land", "read", True),
        ("land", "write", True),
        ("land", "read", False),
    ],
)
def test_kill_at_every_step_then_next_access_and_retry(
    mode: str, after: str, previous: bool, tmp_path: Path
) -> None:
    base = _base(tmp_path / "base", previous, chunked=mode == "land")
    rel = base.relative_to(tmp_path / "base")
    killed, outcomes = 0, set()
    for step in range(1, MAX_STEPS + 1):
        root = tmp_path / f"run{step}"
        shutil.copytree(tmp_path / "base", root)
        partition = root / rel
        argv = [sys.executable, "-c", CHILD, mode, str(partition), str(step), RUN]
        code = subprocess.run(argv, timeout=120, capture_output=True).returncode
        if code == 0:
            break  # the step count passed the write's last step: every step was killed once
        assert code == -signal.SIGKILL, f"step {step}: exit {code}"
        killed += 1
        table = partition.parent
        if after == "write":  # the next write of another partition of the table tidies it
            _write(table / "ds=2026-11-19", OLD)
            leftovers = [n for n in _hidden(table) if ".tmp-" in n or ".old-" in n]
            assert leftovers == [], f"step {step}: dead copies kept: {leftovers}"
        seen = _seen(partition)
        allowed = {"old", "new"} if previous else {"absent", "new"}
        assert seen in allowed, f"step {step}: the partition is {seen}"
        outcomes.add(seen)
        # the retry (Airflow's next try) lands tonight's rows whole
        if mode == "replace":
            _write(partition, NEW)
        else:
            assert land_chunks(partition, chunk_folder(partition, RUN), 3, SCHEMA) == 12
        assert _seen(partition) == "new", f"step {step}: after the retry"
        assert _hidden(table) == [], f"step {step}: leftovers after the retry"
        shutil.rmtree(root)
    else:
        pytest.fail(f"the write did not finish within {MAX_STEPS} steps")
    assert killed >= 3
    assert "new" in outcomes and outcomes & {"old", "absent"}

"""``kill -9`` of a curation publish at several points: readers see the old or the new
version of every curated table, and the next run succeeds with the new content.

The publish runs in a subprocess (real Delta tables on a tmp path). Named points make the
process SIGKILL itself (``DATACLOUD_CURATE_CRASH_AT``: before a table's commit, right after
it, before the state file); random delays kill it from outside while delta-rs writes.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_curate import (
    D1,
    D2,
    A,
    B,
    content,
    fund,
    marriage,
    night_one,
    person,
    run,
    stage,
)

from datacloud import curate
from datacloud.paths import StorageRoot

SCRIPT = """
import sys
from datetime import date
from datacloud import curate
from datacloud.config import load_departments
from datacloud.paths import StorageRoot
curate.curate_all(StorageRoot(__import__("pathlib").Path(sys.argv[1])), load_departments(),
                  date.fromisoformat(sys.argv[2]), "crash-run")
"""


def _second_night(root: StorageRoot) -> None:
    """Changes touching person, housing_fund_account and marriage; C deleted."""
    stage(
        root,
        "gongan",
        "czrk",
        [
            person("RK1", A, "张三", "2026-01-01 08:00", phone="13800000001"),
            person("RK2", B, "李四", "2026-11-19 08:00", address="杭州市上城区"),
        ],
        D2,
    )
    stage(root, "gjj", "grzh", [fund("G1", A, "张叁", "2026-11-19 08:00", "13700000000")], D2)
    stage(root, "mz", "hydj", [marriage("M2", "结婚", A, B, date(2012, 1, 1))], D2)


@pytest.fixture(scope="module")
def before_and_after(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[str, pa.Table], dict[str, pa.Table]]:
    base = tmp_path_factory.mktemp("crash-base")
    root = StorageRoot(base / "root")
    night_one(root)
    run(root, D1)
    old = content(root)
    _second_night(root)
    done = tmp_path_factory.mktemp("crash-done") / "root"
    shutil.copytree(root.root, done)
    run(StorageRoot(done), D2)
    new = content(StorageRoot(done))
    assert any(not new[n].equals(old[n]) for n in new)
    return root.root, old, new


def _publish(root: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(root), D2.isoformat()],
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _check_readers_then_rerun(root: Path, old: dict, new: dict) -> None:
    r = StorageRoot(root)
    seen = content(r)
    for name in curate.LAYOUT:
        assert seen[name].equals(old[name]) or seen[name].equals(new[name]), name
    run(r, D2)  # the next run succeeds and lands on the new content
    after = content(r)
    for name in curate.LAYOUT:
        assert after[name].equals(new[name]), name


POINTS = ["before:person", "after:person", "after:marriage", "state"]


@pytest.mark.parametrize("point", POINTS)
def test_kill_at_a_named_point(point: str, before_and_after, tmp_path: Path) -> None:
    base, old, new = before_and_after
    root = tmp_path / "root"
    shutil.copytree(base, root)
    proc = _publish(root, {"DATACLOUD_CURATE_CRASH_AT": point})
    assert proc.wait(timeout=300) == -signal.SIGKILL
    _check_readers_then_rerun(root, old, new)


def test_kill_at_random_moments(before_and_after, tmp_path: Path) -> None:
    base, old, new = before_and_after
    probe = tmp_path / "probe"
    shutil.copytree(base, probe)
    t0 = time.perf_counter()
    assert _publish(probe).wait(timeout=300) == 0
    whole = time.perf_counter() - t0  # only to spread the kills over the run, never asserted
    rng = random.Random(20261120)
    killed = 0
    for attempt in range(6):
        root = tmp_path / f"root{attempt}"
        shutil.copytree(base, root)
        proc = _publish(root)
        time.sleep(rng.uniform(0.5, 1.0) * whole)  # the late half: the publishes
        proc.send_signal(signal.SIGKILL)
        killed += proc.wait(timeout=300) == -signal.SIGKILL
        _check_readers_then_rerun(root, old, new)
    assert killed > 0  # at least one attempt was killed mid-run, not after it finished

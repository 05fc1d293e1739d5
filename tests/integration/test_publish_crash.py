"""``kill -9`` of a curation publish at several points: readers see the old or the new
version of every curated table, and the next run succeeds with the new content.

The publish runs in a subprocess (real Delta tables on a tmp path). At named points the
child SIGKILLs itself: the test's script wraps ``delta.publish`` (before a table's commit, right
after it) or ``curation_night.write_state`` (before the state file) with a function that
``os.kill``s its own process; production code has no crash hook. Random delays kill it from
outside while delta-rs writes.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "component"))
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
import os, signal, sys
from datetime import date
from pathlib import Path
from datacloud import curation_night, delta
from datacloud.config import load_departments
from datacloud.paths import StorageRoot

point = sys.argv[3] if len(sys.argv) > 3 else ""
when, _, table = point.partition(":")

def die():
    os.kill(os.getpid(), signal.SIGKILL)

publish = delta.publish
def killing_publish(path, *args, **kwargs):
    mine = Path(str(path)).name == table
    if when == "before" and mine:
        die()
    out = publish(path, *args, **kwargs)
    if when == "after" and mine:
        die()
    return out

write_state = curation_night.write_state
def killing_write_state(*args, **kwargs):
    if point == "state":
        die()
    return write_state(*args, **kwargs)

delta.publish = killing_publish
curation_night.write_state = killing_write_state
curation_night.curate_all(StorageRoot(Path(sys.argv[1])), load_departments(),
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


def _publish(root: Path, point: str = "") -> subprocess.Popen[bytes]:
    """The curation night in a child process; ``point`` names where it kills itself."""
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(root), D2.isoformat(), point],
        env=dict(os.environ),
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
    proc = _publish(root, point)
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


DV_SCRIPT = """
import sys
import pyarrow as pa
from datacloud import delta
t = pa.ipc.open_file(sys.argv[2]).read_all()
gone = pa.array(sys.argv[3].split(","))
print("go", flush=True)
spec = delta.PublishSpec("id_number", ("id_number",), row_group_rows=1000)
delta.publish(sys.argv[1], t, gone, spec, delta.CommitInfo("dv-run", "2026-11-21"))
"""


def _people(ids: range | list[int], tag: str) -> pa.Table:
    return pa.table(
        {
            "id_number": [f"{i:017d}X" for i in ids],
            "name": [f"{tag}{i % 7}" for i in ids],
            "n": pa.array([i % 11 for i in ids], pa.int64()),
        }
    )


def test_kill_a_deletion_vector_publish_at_random_moments(tmp_path: Path) -> None:
    """A curated table of 20,000 rows; a night replaces 1% and deletes 2 by deletion vectors
    (the new file is written, then the log entry linked into place). SIGKILL from outside at
    random moments of the publish: readers see yesterday's content or the night's, never a
    mix, and rerunning the publish lands on the night's content."""
    from datacloud import delta

    base = tmp_path / "base"
    delta.publish(
        base,
        _people(range(0, 40_000, 2), "a"),
        None,
        delta.PublishSpec("id_number", ("id_number",), row_group_rows=1000),
        delta.CommitInfo("r0", "2026-11-20"),
    )
    night = _people(range(0, 40_000, 200), "b")  # 200 keys replaced
    gone = [f"{i:017d}X" for i in (2, 4)]
    rows_file = tmp_path / "night.arrow"
    with pa.OSFile(str(rows_file), "wb") as sink, pa.ipc.new_file(sink, night.schema) as w:
        w.write_table(night)
    ref = tmp_path / "ref"
    shutil.copytree(base, ref)
    old = delta.read_table(base).sort_by("id_number")
    delta.publish(
        ref,
        night,
        pa.array(gone),
        delta.PublishSpec("id_number", ("id_number",), row_group_rows=1000),
        delta.CommitInfo("dv-run", "2026-11-21"),
    )
    new = delta.read_table(ref).sort_by("id_number")
    assert old.num_rows - new.num_rows == 2 and not old.equals(new)
    assert delta.load(ref).history(1)[0]["datacloud.publish"] == "deletion_vectors"

    def run(root: Path) -> subprocess.Popen[str]:
        argv = [sys.executable, "-c", DV_SCRIPT, str(root), str(rows_file), ",".join(gone)]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)

    probe = tmp_path / "probe"
    shutil.copytree(base, probe)
    proc = run(probe)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "go"
    t0 = time.perf_counter()
    assert proc.wait(timeout=120) == 0
    whole = time.perf_counter() - t0  # spreads the kills over the publish, never asserted
    rng = random.Random(20261121)
    outcomes = set()
    for attempt in range(12):
        root = tmp_path / f"dv{attempt}"
        shutil.copytree(base, root)
        proc = run(root)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "go"
        time.sleep(rng.uniform(0.0, 1.2) * whole)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=120)
        seen = delta.read_table(root).sort_by("id_number")
        assert seen.equals(old) or seen.equals(new), f"attempt {attempt}: a mix of nights"
        outcomes.add("new" if seen.equals(new) else "old")
        delta.publish(
            root,
            night,
            pa.array(gone),
            delta.PublishSpec("id_number", ("id_number",), row_group_rows=1000),
            delta.CommitInfo("dv-run", "2026-11-21"),
        )
        assert delta.read_table(root).sort_by("id_number").equals(new)
    assert "old" in outcomes  # some kill landed before the commit


RANGES_SCRIPT = """
import os, signal, sys
from datetime import date
from pathlib import Path
from datacloud import curation_night
from datacloud.config import load_departments
from datacloud.delta import log

root, ds = Path(sys.argv[1]), date.fromisoformat(sys.argv[2])
entry = log.write_entry

def dies_before_person_commit(path, version, actions):
    if Path(str(path)).name == "person" and any("add" in a for a in actions):
        os.kill(os.getpid(), signal.SIGKILL)  # the night's data files written, no entry
    return entry(path, version, actions)

log.write_entry = dies_before_person_commit
storage, depts = curation_night.StorageRoot(root), load_departments()
plan = curation_night.plan_night(storage, depts, "ranges-crash", full=True, count=2)
for part in curation_night.range_tasks(plan):
    curation_night.build_range(storage, depts, part, part["index"])
curation_night.publish_ranges(storage, depts, ds, "ranges-crash", plan, rows_per_file=1)
"""


def test_a_streamed_publish_killed_before_its_commit_leaves_the_last_version(
    before_and_after, tmp_path: Path
) -> None:
    """A full build over key ranges, its person table written a row per data file: SIGKILL
    after those files are written, before the log entry naming them. Readers see the last
    version, the files are referenced by no version, and the next night lands on the new
    content."""
    from datacloud import delta

    base, old, new = before_and_after
    root = tmp_path / "root"
    shutil.copytree(base, root)
    person = StorageRoot(root).curated("person")
    version = delta.load(person).version()
    logged = set(delta.load(person).file_uris())
    proc = subprocess.run(
        [sys.executable, "-c", RANGES_SCRIPT, str(root), D2.isoformat()],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    dt = delta.load(person)
    assert dt.version() == version and set(dt.file_uris()) == logged
    seen = content(StorageRoot(root))
    for name in curate.LAYOUT:
        assert seen[name].equals(old[name]), name
    on_disk = {p.name for p in Path(str(person)).glob("*.parquet")}
    orphans = on_disk - {u.rsplit("/", 1)[-1] for u in logged}
    assert len(orphans) == new["person"].num_rows > 1  # the night's files, a row each
    _check_readers_then_rerun(root, old, new)

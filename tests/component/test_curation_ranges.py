"""The full golden build spread over key ranges (curation_night.plan_night, build_range,
publish_ranges) gives the same curated tables as the one-task build, and a range task killed
mid-write reruns to the same result.

Real Delta tables throughout: the 3,000-person sample night (``sample_night``: SQLite
department databases, extracted and staged by ``nightly``), and test_curate's hand-built
crosswalk night (legacy 注册号 mapped into a credit code's golden record, a shareholder written
with its 注册号, a fund account whose employer is a 注册号). The kill is a real SIGKILL of a
real range process, in the middle of writing one of its parts.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_curate import CC, DEPTS, REG2, REG3, A, C, D, crosswalk_night_one, shareholder, stage

from datacloud import curate, curation_night, curation_ranges, delta
from datacloud.curation_ranges import KeyRange, RangesIncomplete
from datacloud.delta import streamed
from datacloud.paths import StorageRoot

REPO = Path(__file__).resolve().parents[2]
TABLES = [*curate.LAYOUT, "consistency"]


def copy_staged(src: StorageRoot, dst: Path) -> StorageRoot:
    """A fresh storage root holding the same staged tables (nothing curated yet)."""
    root = StorageRoot(dst)
    shutil.copytree(src.data_root / "staged", root.data_root / "staged")  # type: ignore[operator]
    return root


def read_back(root: StorageRoot) -> dict[str, pa.Table]:
    """Every curated table as deltalake reads it, every row and column, sorted by its key."""
    out = {}
    for name in TABLES:
        t = delta.read_table(root.curated(name))
        keys = [curate.LAYOUT[name][0]] if name in curate.LAYOUT else t.column_names
        out[name] = t.sort_by([(k, "ascending") for k in keys])
    return out


def mapped(
    root: StorageRoot, depts: list[Any], ds: date, count: int, **publish: Any
) -> dict[str, Any]:
    plan = curation_night.plan_night(root, depts, "mapped-run")
    assert plan["mode"] == "full" and plan["reason"] == "the first night"
    plan = {**plan, "count": count, "ranges": list(range(count))}  # as full_build.ranges would
    plan["scratch"] = str(
        curation_ranges.scratch_dir(
            root, "mapped-run", plan["versions"], plan["fingerprint"], count
        )
    )
    built = [curation_night.build_range(root, depts, plan, i) for i in plan["ranges"]]
    out = curation_night.publish_ranges(root, depts, ds, "mapped-run", plan, **publish)
    assert not Path(plan["scratch"]).exists()  # the scratch folder goes after the publish
    return {"plan": plan, "built": built, "published": out}


@pytest.fixture(scope="module")
def sample_single(sample_night: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The one-task build of the sample night, read back."""
    root = copy_staged(sample_night["root"], tmp_path_factory.mktemp("single"))
    out = curation_night.curate_all(root, sample_night["depts"], sample_night["ds"], "single")
    return {"root": root, "published": out, "tables": read_back(root)}


@pytest.mark.parametrize("count", [1, 3, 7])
def test_the_mapped_build_equals_the_one_task_build_on_the_sample_night(
    sample_night: dict, sample_single: dict, tmp_path: Path, count: int
) -> None:
    root = copy_staged(sample_night["root"], tmp_path / "mapped")
    run = mapped(root, sample_night["depts"], sample_night["ds"], count)
    single = sample_single["tables"]
    assert single["person"].num_rows > 2000 and single["enterprise_role"].num_rows > 100
    got = read_back(root)
    for name in TABLES:
        assert got[name].schema == single[name].schema, name
        assert got[name].equals(single[name]), name
    # every range built its share: no key in two ranges, and more than one range has rows
    for name in curate.LAYOUT:
        rows = [b["rows"][name] for b in run["built"]]
        assert sum(rows) == single[name].num_rows, name
    if count > 1:
        assert sum(1 for b in run["built"] if b["rows"]["person"]) > 1
    # one Delta version per table, as the one-task build; the state file as it writes it
    for name in curate.LAYOUT:
        assert (
            delta.load(root.curated(name)).version()
            == delta.load(sample_single["root"].curated(name)).version()
        ), name
    state = curation_night.read_state(root)
    assert state == {**curation_night.read_state(sample_single["root"]), "ds": state["ds"]}
    # the next night is an incremental one: nothing changed, nothing to publish
    again = curation_night.plan_night(root, sample_night["depts"], "next")
    assert again["mode"] == "incremental" and again["ranges"] == []


def gate_entries(root: StorageRoot, ds: date) -> dict[str, Any]:
    """The curated gate's entry of every table (gate.json), without its data docs' path."""
    doc = json.loads((root.quality() / "curated" / ds.isoformat() / "gate.json").read_text())
    out = {}
    for e in doc["suites"]:
        out[e["table"]] = {k: v for k, v in e.items() if k != "data_docs"}
    return out


def gated_run(night: Any) -> str | None:
    """Run a night through the curated gate: the gate's message, or None when it passed."""
    try:
        night()
    except curation_night.QualityGateError as e:
        return str(e)
    return None


def test_a_streamed_publish_in_many_files_equals_the_one_task_build_and_keeps_its_layout(
    sample_night: dict, tmp_path: Path
) -> None:
    """The sample night published a few hundred rows per data file (several files per table):
    the same rows, columns, types and row hashes as the one-task build, the gate's verdict
    unchanged though it reads only the columns its suite profiles, files sorted and no two row
    groups overlapping in the first sort column (maintain has nothing to recluster), the
    same versions and figures."""
    depts, ds = sample_night["depts"], sample_night["ds"]
    single = copy_staged(sample_night["root"], tmp_path / "single")
    gate = curation_night.quality_gate(single, ds)
    single_gated = gated_run(lambda: curation_night.curate_all(single, depts, ds, "s", check=gate))
    want = read_back(single)
    root = copy_staged(sample_night["root"], tmp_path / "mapped")
    plan = curation_night.plan_night(root, depts, "many", count=3)
    for part in curation_night.range_tasks(plan):
        curation_night.build_range(root, depts, part, part["index"])
    gate = curation_night.quality_gate(root, ds)
    out: dict[str, Any] = {}

    def publish() -> None:
        out.update(
            curation_night.publish_ranges(
                root, depts, ds, "many", plan, check=gate, rows_per_file=400
            )
        )

    assert gated_run(publish) == single_gated
    assert gate_entries(root, ds) == gate_entries(single, ds)
    got = read_back(root)
    for name in TABLES:
        assert got[name].schema == want[name].schema, name
        assert got[name].equals(want[name]), name
    for name, (_, sort_by) in curate.LAYOUT.items():
        dt = delta.load(root.curated(name))
        assert dt.version() == delta.load(single.curated(name)).version(), name
        assert delta.overlapping_row_groups(dt, sort_by[0]) == 0, name
        rows = want[name].num_rows
        assert len(dt.file_uris()) >= min(rows // 400, 32), name
        if name in out:
            figures = {k: out[name][k] for k in ("rows_built", "inserted", "updated", "deleted")}
            assert figures == {"rows_built": rows, "inserted": rows, "updated": 0, "deleted": 0}
            assert out[name]["reclustered_files"] == 0, name
        for uri in dt.file_uris():  # each file sorted by the layout
            t = pq.read_table(uri.removeprefix("file://"), columns=sort_by)
            assert t.equals(t.sort_by([(c, "ascending") for c in sort_by])), name
    assert len(delta.load(root.curated("person")).file_uris()) > 3


def crosswalk_night(root: StorageRoot) -> None:
    """test_curate's crosswalk night, and a role table naming CC's legal representative A
    itself (older than the registrar's record): that role row and the golden record's meet
    in one survivorship group, keyed by A and CC."""
    crosswalk_night_one(root)
    named = {**shareholder("S3", CC, None, A), "role": "legal_representative", "name": "张叁"}
    holders = [shareholder("S1", None, REG2, D), shareholder("S2", None, REG3, C), named]
    stage(root, "scjg", "qygd", holders, date(2026, 11, 18))


def test_the_crosswalk_night_mapped_equals_one_task(tmp_path: Path) -> None:
    """Legacy rows mapped to a credit code, roles written with a 注册号, an employer written as
    a 注册号, a legal representative named by the role table too: the groups they join land in
    one range, whatever the range count."""
    single = StorageRoot(tmp_path / "single")
    crosswalk_night(single)
    curation_night.curate_all(single, DEPTS, date(2026, 11, 18), "single")
    want = read_back(single)
    roles = want["enterprise_role"].to_pylist()
    assert [r["name"] for r in roles if r["credit_code"] == CC and r["id_number"] == A] == ["张三"]
    for count in (2, 3, 5):
        root = copy_staged(single, tmp_path / f"mapped-{count}")
        mapped(root, DEPTS, date(2026, 11, 18), count)
        got = read_back(root)
        for name in TABLES:
            assert got[name].equals(want[name]), (count, name)


def test_buckets_are_stable_and_spread() -> None:
    keys = pa.array([f"33010619800101{i:04d}" for i in range(20_000)] + ["", None])
    b = curation_ranges.bucket_of(keys, 7)
    # pinned values: a key's bucket never depends on the process, the host or a library version
    pinned = ["330106198001010011", "91330106MA2B1C3D4E", "REG:330106000012345", "", None, "张三"]
    assert curation_ranges.bucket_of(pa.array(pinned), 1000).tolist() == [535, 189, 780, 0, 0, 286]
    assert b[-1] == b[-2]  # null is the empty text
    counts = np.bincount(b[:-2], minlength=7)
    assert counts.min() > 20_000 / 7 * 0.9 and counts.max() < 20_000 / 7 * 1.1
    sliced = curation_ranges.bucket_of(keys.slice(5, 10), 7)  # an offset array: same buckets
    assert sliced.tolist() == b[5:15].tolist()
    script = "import pyarrow as pa; from datacloud.curation_ranges import bucket_of; " + (
        "print(bucket_of(pa.array(['330106198001010011', 'REG:330106000012345', 'x']), 64).tolist())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    other = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert other.returncode == 0, other.stderr
    here = curation_ranges.bucket_of(
        pa.array(["330106198001010011", "REG:330106000012345", "x"]), 64
    ).tolist()
    assert json.loads(other.stdout) == here


def test_a_streamed_rebuild_reports_and_commits_as_the_one_task_full_build(
    tmp_path: Path,
) -> None:
    """A second full build over a changed night (roles gone): the same figures (inserted,
    updated, deleted), versions, commit information and rows as the one-task full build;
    a third one changing nothing commits nothing, as the one-task build."""
    single = StorageRoot(tmp_path / "single")
    crosswalk_night(single)
    curation_night.curate_all(single, DEPTS, date(2026, 11, 18), "single")
    root = copy_staged(single, tmp_path / "mapped")
    mapped(root, DEPTS, date(2026, 11, 18), 2, rows_per_file=2)
    for r in (single, root):
        stage(r, "scjg", "qygd", [shareholder("S1", None, REG2, D)], date(2026, 11, 19))
    ds = date(2026, 11, 19)
    one = curation_night.curate_all(single, DEPTS, ds, "again", full=True)

    def full_build(run_id: str) -> dict[str, Any]:
        plan = curation_night.plan_night(root, DEPTS, run_id, full=True, count=3)
        for part in curation_night.range_tasks(plan):
            curation_night.build_range(root, DEPTS, part, part["index"])
        return curation_night.publish_ranges(root, DEPTS, ds, run_id, plan, rows_per_file=2)

    out = full_build("again")
    assert one["enterprise_role"]["deleted"] > 0
    figures = ("rows_built", "inserted", "updated", "deleted", "version", "full")
    for name in curate.LAYOUT:
        assert {k: out[name][k] for k in figures} == {k: one[name][k] for k in figures}, name
        mine, theirs = (delta.load(r.curated(name)).history(1)[0] for r in (root, single))
        for k in ("operation", "datacloud.rows_inserted", "datacloud.rows_deleted"):
            assert mine.get(k) == theirs.get(k), (name, k)
        assert mine.get("datacloud.staged") == theirs.get("datacloud.staged")
        consumed = delta.consumed_versions(root.curated(name))
        assert consumed == delta.consumed_versions(single.curated(name)), name
        dt = delta.load(root.curated(name))
        assert delta.overlapping_row_groups(dt, curate.LAYOUT[name][1][0]) == 0, name
    got, want = read_back(root), read_back(single)
    for name in TABLES:
        assert got[name].equals(want[name]), name
    before = {n: delta.load(root.curated(n)).version() for n in curate.LAYOUT}
    rerun = full_build("rerun")
    for name in curate.LAYOUT:
        assert delta.load(root.curated(name)).version() == before[name], name
        assert rerun[name]["inserted"] == rerun[name]["updated"] == rerun[name]["deleted"] == 0


KILL_MID_WRITE = """
import os, signal, sys, json
import pyarrow.parquet as pq
from pathlib import Path
from datacloud import curation_night
from datacloud.config import load_departments
from datacloud.paths import StorageRoot

root, plan, index = StorageRoot(Path(sys.argv[1])), json.loads(sys.argv[2]), int(sys.argv[3])
real = pq.write_table
calls = []

def half_then_die(table, where, **kw):
    calls.append(where)
    real(table, where, **kw)
    if len(calls) == 3:  # the third part: half of its file on disk, then SIGKILL
        size = os.path.getsize(where)
        with open(where, "r+b") as f:
            f.truncate(size // 2)
        os.kill(os.getpid(), signal.SIGKILL)

pq.write_table = half_then_die
curation_night.build_range(root, load_departments(), plan, index)
"""


def test_a_range_killed_mid_write_reruns_to_the_same_result(tmp_path: Path) -> None:
    single = StorageRoot(tmp_path / "single")
    crosswalk_night(single)
    curation_night.curate_all(single, DEPTS, date(2026, 11, 18), "single")
    want = read_back(single)

    root = copy_staged(single, tmp_path / "mapped")
    plan = curation_night.plan_night(root, DEPTS, "killed-run")
    count = 3
    plan = {**plan, "count": count, "ranges": list(range(count))}
    scratch = curation_ranges.scratch_dir(
        root, "killed-run", plan["versions"], plan["fingerprint"], count
    )
    plan["scratch"] = str(scratch)
    curation_night.build_range(root, DEPTS, plan, 0)
    curation_night.build_range(root, DEPTS, plan, 2)
    env = {**os.environ, "DATACLOUD_ROOT": str(root.root)}
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(KILL_MID_WRITE),
            str(root.root),
            json.dumps(plan),
            "1",
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    # what the kill left: two whole parts of range 1, half a hidden temporary file, no marker
    left = sorted(p.name for p in scratch.rglob("*") if p.is_file() and "-00001-" in p.name)
    assert len(left) == 3 and sum(n.startswith(".") and n.endswith(".tmp") for n in left) == 1
    assert not curation_ranges.marker_path(scratch, KeyRange(1, count)).exists()
    # the publish refuses to take anything of the run before range 1 is built again
    with pytest.raises(RangesIncomplete, match=r"ranges \[1\] of 3 not built"):
        curation_night.publish_ranges(root, DEPTS, date(2026, 11, 18), "killed-run", plan)
    assert delta.open_table(root.curated("person")) is None
    assert curation_night.read_state(root) is None
    # the retry: the same range again, in-process; then the publish
    curation_night.build_range(root, DEPTS, plan, 1)
    curation_night.publish_ranges(root, DEPTS, date(2026, 11, 18), "killed-run", plan)
    got = read_back(root)
    for name in TABLES:
        assert got[name].equals(want[name]), name


def test_a_part_unlike_its_marker_is_refused(tmp_path: Path) -> None:
    single = StorageRoot(tmp_path / "single")
    crosswalk_night_one(single)
    plan = curation_night.plan_night(single, DEPTS, "run", config=None)
    plan = {**plan, "count": 2, "ranges": [0, 1]}
    scratch = curation_ranges.scratch_dir(single, "run", plan["versions"], plan["fingerprint"], 2)
    plan["scratch"] = str(scratch)
    for i in (0, 1):
        curation_night.build_range(single, DEPTS, plan, i)
    person = curation_ranges.part_path(scratch, "person", KeyRange(0, 2))
    rows = pq.read_metadata(person).num_rows
    curation_ranges.write_parquet(person, pa.table({"id_number": pa.array(["x"] * (rows + 1))}))
    with pytest.raises(RangesIncomplete, match="not the part its marker names"):
        curation_night.publish_ranges(single, DEPTS, date(2026, 11, 18), "run", plan)


def test_the_plan_decides_full_or_incremental_as_the_one_task_night(tmp_path: Path) -> None:
    """First night, nothing changed, a survivorship change, conf full, a staged change: the
    plan's mode and reason; the range count comes from full_build (or the caller)."""
    from datacloud.curation_config import CurationConfig, load_curation_config

    root = StorageRoot(tmp_path / "root")
    crosswalk_night(root)
    first = curation_night.plan_night(root, DEPTS, "n1")
    assert (first["mode"], first["reason"], first["ranges"]) == ("full", "the first night", [0])
    assert first["staged_rows"] > 0 and Path(first["scratch"]).parent == (
        curation_ranges.scratch_root(root)
    )
    mapped(root, DEPTS, date(2026, 11, 18), 2)
    assert curation_night.plan_night(root, DEPTS, "n2")["mode"] == "incremental"
    asked = curation_night.plan_night(root, DEPTS, "n2", full=True, count=5)
    assert (asked["reason"], asked["ranges"]) == ("a full build asked for", [0, 1, 2, 3, 4])
    shipped = load_curation_config()
    person = {**shipped.survivorship.person}
    person["phone"] = CurationConfig.model_validate(
        {"survivorship": {"person": {"phone": {"authority": ["gongan"]}}}}
    ).survivorship.person["phone"]
    changed = CurationConfig.model_validate(
        {"survivorship": {"person": person, "enterprise": shipped.survivorship.enterprise}}
    )
    plan = curation_night.plan_night(root, DEPTS, "n3", config=changed)
    assert (plan["mode"], plan["reason"]) == ("full", "the survivorship rules changed")
    with pytest.raises(RuntimeError, match="survivorship rules changed after the plan"):
        curation_night.build_range(root, DEPTS, curation_night.range_tasks(plan)[0], 0)
    stage(root, "scjg", "qygd", [shareholder("S1", None, REG2, D)], date(2026, 11, 19))
    assert curation_night.plan_night(root, DEPTS, "n4")["mode"] == "incremental"


def test_scratch_of_an_old_run_is_removed_by_a_later_plan(tmp_path: Path) -> None:
    root = StorageRoot(tmp_path / "root")
    old = curation_ranges.scratch_root(root) / "old-run-0123456789ab"
    recent = curation_ranges.scratch_root(root) / "recent-run-0123456789ab"
    for folder in (old, recent):
        curation_ranges.write_parquet(folder / "person" / "part.parquet", pa.table({"x": [1]}))
    week_ago = old.stat().st_mtime - curation_ranges.SCRATCH_KEEP_S - 60
    os.utime(old, (week_ago, week_ago))
    curation_ranges.remove_stale(root, keep=tmp_path / "tonight")
    assert not old.exists() and recent.exists()


def test_a_publish_that_fails_midway_reruns_from_the_same_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The publish dies after committing some tables (an exception injected into the third
    table's commit): readers see each table at its old or new version, the scratch parts and
    no state file remain, and the retried publish lands on the one-task build's tables."""
    single = StorageRoot(tmp_path / "single")
    crosswalk_night(single)
    curation_night.curate_all(single, DEPTS, date(2026, 11, 18), "single")
    want = read_back(single)

    root = copy_staged(single, tmp_path / "mapped")
    plan = curation_night.plan_night(root, DEPTS, "dies", count=3)
    for part in curation_night.range_tasks(plan):
        curation_night.build_range(root, DEPTS, part, part["index"])
    real = streamed.publish
    calls: list[str] = []

    def dies_on_the_third(path: Any, *args: Any, **kw: Any) -> Any:
        calls.append(str(path))
        if len(calls) == 3:
            raise OSError("worker lost")
        return real(path, *args, **kw)

    monkeypatch.setattr(streamed, "publish", dies_on_the_third)
    with pytest.raises(OSError, match="worker lost"):
        curation_night.publish_ranges(root, DEPTS, date(2026, 11, 18), "dies", plan)
    monkeypatch.setattr(streamed, "publish", real)
    published = [n for n in curate.LAYOUT if delta.open_table(root.curated(n)) is not None]
    assert published == list(curate.LAYOUT)[:2]
    assert curation_night.read_state(root) is None and Path(plan["scratch"]).is_dir()
    out = curation_night.publish_ranges(root, DEPTS, date(2026, 11, 18), "dies", plan)
    assert out["person"]["inserted"] == out["person"]["updated"] == 0  # already published
    got = read_back(root)
    for name in TABLES:
        assert got[name].equals(want[name]), name
    assert curation_night.read_state(root) is not None and not Path(plan["scratch"]).exists()

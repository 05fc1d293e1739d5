"""The staged rows of a full build read once and scattered into each range's files
(``scatter``, ``curation_scatter.scatter_night``): a range reads from them exactly the rows
``curation_ranges.stack_in_range`` streams for it, every stack and builder, every range count;
the mapped build with the scatter equals the one-task build; a killed scatter reruns to the
same files and nothing reads a scatter without its marker; the consistency findings found
from a scatter equal the one-pass build's.

Real Delta tables: test_curate's crosswalk night with a couple whose spouses fall in other
ranges for every count and a fund account whose employer is a 注册号 the crosswalk maps; and
the 3,000-person sample night (``sample_night``). The kill is a real SIGKILL of a scatter
process between two of its files.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from test_curate import (
    CC,
    D1,
    DEPTS,
    REG2,
    REG3,
    A,
    B,
    C,
    D,
    _id,
    employee,
    marriage,
    person,
    stage,
)
from test_curation_ranges import TABLES, copy_staged, crosswalk_night, read_back

from datacloud import consistency_night, curate, curation_night, scatter
from datacloud.curate import BUILDERS, STACKS, Night
from datacloud.curation_config import load_curation_config
from datacloud.curation_ranges import KeyRange, bucket_of
from datacloud.curation_scatter import scatter_night
from datacloud.paths import StorageRoot
from datacloud.staged_rows import pin_versions

REPO = Path(__file__).resolve().parents[2]
COUNTS = (1, 2, 3, 7)
_fresh = itertools.count()


def apart_from(other: str, counts: tuple[int, ...] = (2, 3, 7)) -> str:
    """A new ID number in another bucket than ``other`` for every count of ``counts``."""
    while True:
        candidate = _id(f"3301061990020{next(_fresh):04d}")
        pair = pa.array([candidate, other])
        if all(len(set(bucket_of(pair, k).tolist())) == 2 for k in counts):
            return candidate


def split_night(root: StorageRoot) -> dict[str, str]:
    """The crosswalk night, and: a couple whose spouses fall in other ranges for every count
    (both in the register), a fund account whose employer is REG3 (mapped to CC)."""
    crosswalk_night(root)
    wife = apart_from(A)
    people = [(A, "张三"), (B, "李四"), (C, "王五"), (D, "赵六"), (wife, "钱七")]
    register = [person(f"RK{i}", p, n, "2026-01-01 08:00") for i, (p, n) in enumerate(people)]
    stage(root, "gongan", "czrk", register, D1)
    couples = [marriage("H1", "结婚", A, B, date(2010, 5, 1))]
    couples.append(marriage("H2", "结婚", C, wife, date(2012, 5, 1)))
    couples.append(marriage("H3", "离婚", A, wife, date(2020, 5, 1)))  # A's, in both ranges
    stage(root, "mz", "hydj", couples, D1)
    stage(root, "gjj", "grzh", [employee("G1", A, REG2), employee("G2", C, REG3)], D1)
    return {"wife": wife}


def forbid_streaming(monkeypatch: pytest.MonkeyPatch, module: Any) -> list[int]:
    """Make ``module``'s ``stack_in_range`` fail: what reads it did not read the scatter."""
    calls: list[int] = []

    def streamed(*a: Any, **k: Any) -> None:
        calls.append(1)
        raise AssertionError("streamed the staged tables instead of reading the scatter")

    monkeypatch.setattr(module, "stack_in_range", streamed)
    return calls


def same(got: pa.Table | None, want: pa.Table | None) -> bool:
    if got is None or want is None:
        return got is want
    return got.schema == want.schema and got.equals(want)


def scatter_all(root: StorageRoot, count: int, folder: Path) -> tuple[dict[str, Any], dict]:
    versions = pin_versions(root, DEPTS)
    night = Night(root, DEPTS, load_curation_config(), versions)
    doc = scatter.scatter(root, DEPTS, versions, [s.spread(night) for s in STACKS], count, folder)
    return doc, versions


@pytest.mark.parametrize("count", COUNTS)
def test_a_range_reads_from_the_scatter_the_rows_it_streams(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int
) -> None:
    root = StorageRoot(tmp_path / "root")
    wife = split_night(root)["wife"]
    scratch = tmp_path / "scratch"
    doc, versions = scatter_all(root, count, scatter.in_scratch(scratch))
    config = load_curation_config()
    streamed, built = {}, {}
    for i in range(count):  # today's path: every staged table streamed per range
        night = Night(root, DEPTS, config, versions, part=KeyRange(i, count))
        streamed[i] = {s: night.in_range(s, KeyRange(i, count)) for s in STACKS}
        built[i] = {name: build(night) for name, build in BUILDERS.items()}
    calls = forbid_streaming(monkeypatch, curate)
    for i in range(count):
        night = Night(root, DEPTS, config, versions, part=KeyRange(i, count), scratch=scratch)
        for s in STACKS:
            got = night.in_range(s, KeyRange(i, count))
            assert same(got, streamed[i][s]), (count, i, s.range_key.name)
        for name, build in BUILDERS.items():
            got_built, want_built = build(night), built[i][name]
            assert want_built is not None and got_built is not None
            assert got_built[0].equals(want_built[0]), (count, i, name)
    assert not calls
    # the split couple's divorce in both spouses' ranges (once in each), in no other
    registrations = [streamed[i][curate.REGISTRATIONS] for i in range(count)]
    holding = [
        i for i, t in enumerate(registrations) if "离婚" in t["registration_type"].to_pylist()
    ]
    spouses = {int(b) for b in bucket_of(pa.array([A, wife]), count)}
    assert set(holding) == spouses and len(spouses) == min(count, 2)
    for i in holding:
        assert registrations[i]["registration_type"].to_pylist().count("离婚") == 1
    stack_id = curate.REGISTRATIONS.spread(night).id
    assert doc["stacks"][stack_id]["rows"] == [t.num_rows for t in registrations]
    # through the crosswalk: CC's legacy record (REG3) and the shareholder written with REG3
    # land in CC's range only
    home = int(bucket_of(pa.array([CC]), count)[0])
    for stack in (curate.ENTERPRISES, curate.ROLES):
        legacy = [i for i in range(count) if REG3 in streamed[i][stack]["reg_number"].to_pylist()]
        assert legacy == [home], stack.range_key.name


@pytest.mark.parametrize("count", [3, 7])
def test_the_sample_nights_stacks_from_the_scatter_equal_the_streamed_ones(
    sample_night: dict, tmp_path: Path, count: int
) -> None:
    root, depts = sample_night["root"], sample_night["depts"]
    versions = pin_versions(root, depts)
    config = load_curation_config()
    night = Night(root, depts, config, versions)
    folder = scatter.in_scratch(tmp_path / "scratch")
    scatter.scatter(root, depts, versions, [s.spread(night) for s in STACKS], count, folder)
    rows = 0
    for i in range(count):
        part = KeyRange(i, count)
        streaming = Night(root, depts, config, versions, part=part)
        scattered = Night(root, depts, config, versions, part=part, scratch=tmp_path / "scratch")
        for s in STACKS:
            want = streaming.in_range(s, part)
            got = scatter.read(folder, s.spread(scattered), part, depts, versions)
            assert same(got, want), (count, i, s.range_key.name)
            rows += 0 if want is None else want.num_rows
    assert rows > 10_000


def mapped_with_scatter(
    root: StorageRoot, depts: list[Any], ds: date, count: int, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """plan, scatter, every range, publish (as the DAG runs them); the ranges must not stream."""
    plan = curation_night.plan_night(root, depts, "scatter-run", count=count)
    assert plan["mode"] == "full" and plan["count"] == count
    scratch = Path(plan["scratch"])
    done = scatter_night(root, depts, plan)
    assert done["scattered"] is (count > 1)
    with monkeypatch.context() as m:
        calls = forbid_streaming(m, curate) if count > 1 else []
        built = [curation_night.build_range(root, depts, plan, i) for i in plan["ranges"]]
    assert not calls
    out = curation_night.publish_ranges(root, depts, ds, "scatter-run", plan)
    assert not scratch.exists()  # the scatter goes with the scratch folder
    return {"plan": plan, "built": built, "published": out}


@pytest.mark.parametrize("count", [1, 3, 7])
def test_the_mapped_build_with_the_scatter_equals_the_one_task_build(
    sample_night: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int
) -> None:
    depts, ds = sample_night["depts"], sample_night["ds"]
    single = copy_staged(sample_night["root"], tmp_path / "single")
    curation_night.curate_all(single, depts, ds, "single")
    want = read_back(single)
    root = copy_staged(sample_night["root"], tmp_path / "mapped")
    mapped_with_scatter(root, depts, ds, count, monkeypatch)
    got = read_back(root)
    for name in TABLES:
        assert got[name].schema == want[name].schema, name
        assert got[name].equals(want[name]), (count, name)


def test_the_split_night_mapped_with_the_scatter_equals_one_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    single = StorageRoot(tmp_path / "single")
    wife = split_night(single)["wife"]
    curation_night.curate_all(single, DEPTS, D1, "single")
    want = read_back(single)
    married = want["person"].filter(pc.equal(want["person"]["id_number"], wife))
    assert married["marital_status"].to_pylist() == ["40"]  # the divorce, split from A
    for count in (2, 3, 7):
        root = copy_staged(single, tmp_path / f"mapped-{count}")
        with monkeypatch.context() as m:
            mapped_with_scatter(root, DEPTS, D1, count, m)
        got = read_back(root)
        for name in TABLES:
            assert got[name].equals(want[name]), (count, name)


KILL_BETWEEN_FILES = """
import json, os, signal, sys
from pathlib import Path
from datacloud import curation_scatter, scatter
from datacloud.config import load_departments
from datacloud.paths import StorageRoot

root, plan = StorageRoot(Path(sys.argv[1])), json.loads(sys.argv[2])
real = scatter.replace_with
calls = []

def die_on_the_fifth(path, write, **kw):
    calls.append(path)
    if len(calls) == 5:  # four files in place, the rest still hidden spools: SIGKILL
        os.kill(os.getpid(), signal.SIGKILL)
    real(path, write, **kw)

scatter.replace_with = die_on_the_fifth
curation_scatter.scatter_night(root, load_departments(), plan)
"""


def files_of(folder: Path) -> dict[str, pa.Table]:
    return {
        str(p.relative_to(folder)): pq.read_table(p)
        for p in sorted(folder.rglob("bucket-*.parquet"))
    }


def test_a_killed_scatter_is_never_read_and_reruns_to_the_same_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = StorageRoot(tmp_path / "root")
    split_night(root)
    count = 3
    plan = curation_night.plan_night(root, DEPTS, "killed-scatter", count=count)
    folder = scatter.in_scratch(Path(plan["scratch"]))
    clean = tmp_path / "clean"
    want_doc, versions = scatter_all(root, count, clean)
    want = files_of(clean)
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(KILL_BETWEEN_FILES),
            str(root.root),
            json.dumps(plan),
        ],
        env={**os.environ, "DATACLOUD_ROOT": str(root.root)},
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    # what the kill left: four files in place, hidden spools, no marker
    placed = sorted(folder.rglob("bucket-*.parquet"))
    assert len(placed) == 4
    assert any(p.name.startswith(".") and p.name.endswith(".tmp") for p in folder.rglob("*"))
    assert not scatter.marker_path(folder).exists()
    with open(placed[0], "r+b") as f:  # and one of them torn: half its bytes
        f.truncate(placed[0].stat().st_size // 2)
    # a range reads nothing of it: it streams the staged tables, the same rows
    config = load_curation_config()
    for i in range(count):
        part = KeyRange(i, count)
        scattered = Night(root, DEPTS, config, versions, part=part, scratch=folder.parent)
        streaming = Night(root, DEPTS, config, versions, part=part)
        for s in STACKS:
            with pytest.raises(scatter.NotScattered, match="no marker"):
                scatter.read(folder, s.spread(scattered), part, DEPTS, versions)
            assert same(scattered.in_range(s, part), streaming.in_range(s, part))
    # the rerun: the same files and marker as a scatter never killed
    scatter_night(root, DEPTS, plan)
    assert json.loads(scatter.marker_path(folder).read_text()) == want_doc
    got = files_of(folder)
    assert got.keys() == want.keys() and len(got) == count * len(STACKS)
    for name, t in want.items():
        assert got[name].equals(t), name
    # a file unlike its marker afterwards is not read either (and a rerun keeps the marker)
    torn = folder / next(iter(want))
    with open(torn, "r+b") as f:
        f.truncate(torn.stat().st_size // 2)
    stack = next(
        s for s in STACKS if torn.parent.name == s.spread(Night(root, DEPTS, config, versions)).id
    )
    index = int(torn.name.split("-")[1])
    with pytest.raises(scatter.NotScattered, match="not the file its marker names"):
        scatter.read(
            folder,
            stack.spread(Night(root, DEPTS, config, versions)),
            KeyRange(index, count),
            DEPTS,
            versions,
        )
    part = KeyRange(index, count)
    scattered = Night(root, DEPTS, config, versions, part=part, scratch=folder.parent)
    streaming = Night(root, DEPTS, config, versions, part=part)
    assert same(scattered.in_range(stack, part), streaming.in_range(stack, part))


def test_a_scatter_of_other_versions_or_count_is_not_read(tmp_path: Path) -> None:
    root = StorageRoot(tmp_path / "root")
    split_night(root)
    folder = tmp_path / "scatter"
    _, versions = scatter_all(root, 3, folder)
    night = Night(root, DEPTS, load_curation_config(), versions)
    spread = curate.PERSONS.spread(night)
    assert scatter.read(folder, spread, KeyRange(1, 3), DEPTS, versions) is not None
    with pytest.raises(scatter.NotScattered, match="in 4 buckets"):
        scatter.read(folder, spread, KeyRange(1, 4), DEPTS, versions)
    older = {k: (v - 1 if k == "gongan/czrk" else v) for k, v in versions.items()}
    with pytest.raises(scatter.NotScattered, match="other staged versions"):
        scatter.read(folder, spread, KeyRange(1, 3), DEPTS, older)


def test_scatter_order_puts_a_row_once_in_each_bucket_of_its_keys() -> None:
    keys = [pa.array(["a", "b", None, "c"]), pa.array(["a", "x", "y", None])]
    for count in (1, 2, 3, 7):
        order, sizes = scatter.scatter_order(keys, count)
        start = 0
        for i, n in enumerate(sizes.tolist()):
            want = [j for j, keep in enumerate(KeyRange(i, count).holds(*keys).to_pylist()) if keep]
            assert order[start : start + n].tolist() == want, (count, i)
            start += n
        assert start == len(order)


def test_consistency_buckets_read_the_scatter_and_equal_the_one_pass_build(
    sample_night: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    depts, ds = sample_night["depts"], sample_night["ds"]
    root = copy_staged(sample_night["root"], tmp_path / "root")
    monkeypatch.setenv("DATACLOUD_ROOT", str(root.root))
    whole = consistency_night.build(root, depts, ds, buckets=1)
    assert whole.num_rows > 40
    calls = forbid_streaming(monkeypatch, consistency_night)
    for count in (3, 7):
        assert consistency_night.build(root, depts, ds, buckets=count).equals(whole), count
    assert not calls
    assert list(consistency_night.scatter_root(root).iterdir()) == []  # removed after
    # and after a bucket that fails
    real = consistency_night.find_inconsistencies

    def fails_on_the_second(*a: Any, **k: Any) -> pa.Table:
        if fails_on_the_second.calls == 1:  # type: ignore[attr-defined]
            raise RuntimeError("a bucket failed")
        fails_on_the_second.calls += 1  # type: ignore[attr-defined]
        return real(*a, **k)

    fails_on_the_second.calls = 0  # type: ignore[attr-defined]
    monkeypatch.setattr(consistency_night, "find_inconsistencies", fails_on_the_second)
    with pytest.raises(RuntimeError, match="a bucket failed"):
        consistency_night.build(root, depts, ds, buckets=3)
    assert list(consistency_night.scatter_root(root).iterdir()) == []

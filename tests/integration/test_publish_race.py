"""Curated publishes racing other writers of the same table, each in its own process.

- our publish (deletion vectors, and copy-on-write) against an outsider looping delta-rs
  ``optimize.compact()``;
- our publish against an outsider looping ``vacuum(retention_hours=0, …, full=True)``, which
  deletes every file no version names (the night's file, between its write and its commit);
- two of our publishes of the same night at once (the table lock serialises them).

After every run the table holds exactly the expected rows (no key twice, none lost), read by
``delta.read_table`` (delta-rs) and by polars. Nothing is mocked: real processes, real Delta
tables on a tmp folder. Each outsider loop is bounded (``OUTSIDER_ROUNDS``), each run too.
``RUNS`` is small (the file ran ~185 s with 10): the moments a race can hit are placed
deterministically below, where an outside full 0-hour vacuum deletes the night's file
between its write and our commit, or right after our commit from a listing made before it
(what no Delta writer can prevent, only repair while it still runs: docs/curation.md).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from datacloud.delta import ROW_HASH, CommitInfo, MergeResult, PublishSpec, log, publish, read_table

RUNS = 3
ROWS = 3_000
OUTSIDER_ROUNDS = 300

PUBLISH = textwrap.dedent(
    """
    import sys, pyarrow as pa
    from datacloud.delta import CommitInfo, PublishSpec, publish
    from pathlib import Path
    path, tag, way = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    ids = list(range(0, {rows}, 10))
    rows = pa.table({{"id_number": [f"{{i:017d}}X" for i in ids],
                     "name": [f"{{tag}}{{i}}" for i in ids]}})
    gone = pa.array([f"{{i:017d}}X" for i in (3, 5)])
    dv_under = 1.0 if way == "dv" else 0.0
    print("READY", flush=True)
    sys.stdin.readline()
    spec = PublishSpec("id_number", ("id_number",), full=False, deletion_vectors_under=dv_under)
    publish(path, rows, gone, spec, CommitInfo("race", "2026-11-21"))
    """
).format(rows=ROWS)

OUTSIDER = textwrap.dedent(
    """
    import os, sys, time
    from deltalake import DeltaTable
    path, what, rounds, stop = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    print("READY", flush=True)
    for _ in range(rounds):
        if os.path.exists(stop):
            break
        try:
            dt = DeltaTable(path)
            if what == "optimize":
                dt.optimize.compact()
            else:
                dt.vacuum(retention_hours=0, enforce_retention_duration=False,
                          dry_run=False, full=True)
        except Exception:
            pass  # a conflict with our publish: the outsider just tries again
        time.sleep(0.001)
    """
)


def _start(code: str, *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
    return proc


def _base(path: Path) -> dict[str, str]:
    """Yesterday's table (deletion vectors enabled) and tonight's expected content."""
    ids = list(range(ROWS))
    rows = pa.table({"id_number": [f"{i:017d}X" for i in ids], "name": [f"a{i}" for i in ids]})
    publish(
        path, rows, None, PublishSpec("id_number", ("id_number",)), CommitInfo("r0", "2026-11-20")
    )
    expected = {f"{i:017d}X": f"a{i}" for i in ids}
    for i in range(0, ROWS, 10):
        expected[f"{i:017d}X"] = f"b{i}"
    for i in (3, 5):
        del expected[f"{i:017d}X"]
    return expected


def _assert_content(path: Path, expected: dict[str, str]) -> None:
    got = read_table(path).drop_columns([ROW_HASH])
    keys = got["id_number"].to_pylist()
    assert len(keys) == len(set(keys)), f"{len(keys) - len(set(keys))} keys duplicated"
    assert dict(zip(keys, got["name"].to_pylist(), strict=True)) == expected
    frame = pl.read_delta(str(path))
    assert frame.height == len(expected) and frame["id_number"].n_unique() == len(expected)
    assert dict(zip(frame["id_number"], frame["name"], strict=True)) == expected


def _race(path: Path, outsider: str | None, second: bool, way: str) -> None:
    ours = [_start(PUBLISH, str(path), "b", way)]
    if second:
        ours.append(_start(PUBLISH, str(path), "b", way))
    stop = path.parent / "stop"
    other = None
    if outsider:
        other = _start(OUTSIDER, str(path), outsider, str(OUTSIDER_ROUNDS), str(stop))
    for p in ours:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in ours:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    stop.touch()
    if other is not None:
        other.communicate(timeout=300)


@pytest.mark.parametrize(
    ("outsider", "second", "way"),
    [
        ("optimize", False, "dv"),
        ("optimize", False, "cow"),
        ("vacuum", False, "dv"),
        ("vacuum", False, "cow"),
        (None, True, "dv"),
    ],
    ids=["optimize-dv", "optimize-rewrite", "vacuum-dv", "vacuum-rewrite", "two-publishes"],
)
def test_publish_races_leave_exactly_the_expected_rows(
    tmp_path: Path, outsider: str | None, second: bool, way: str
) -> None:
    corrupted = []
    for run in range(RUNS):
        path = tmp_path / f"run{run}" / "person"
        expected = _base(path)
        _race(path, outsider, second, way)
        try:
            _assert_content(path, expected)
            for add in DeltaTable(str(path)).file_uris():  # no commit names a missing file
                assert Path(add.removeprefix("file://")).exists(), add
        except AssertionError as e:
            corrupted.append(f"run {run}: {e}")
    assert not corrupted, f"{len(corrupted)} of {RUNS} runs corrupted: {corrupted[:3]}"


# --- deterministic: an outside full 0-hour vacuum at the two moments that matter -----------


def _night(path: Path, way: str) -> MergeResult:
    ids = list(range(0, ROWS, 10))
    rows = pa.table({"id_number": [f"{i:017d}X" for i in ids], "name": [f"b{i}" for i in ids]})
    gone = pa.array([f"{i:017d}X" for i in (3, 5)])
    under = 1.0 if way == "dv" else 0.0
    spec = PublishSpec("id_number", ("id_number",), full=False, deletion_vectors_under=under)
    return publish(path, rows, gone, spec, CommitInfo("race", "2026-11-21"))


def _full_vacuum(dt: DeltaTable) -> list[str]:
    return dt.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False, full=True)


@pytest.mark.parametrize("way", ["dv", "cow"])
def test_a_full_vacuum_from_before_our_commit_deleting_right_after_it_is_repaired(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    """The outsider listed the table before our commit and deletes right after it, before
    our re-check: the night's file is gone although the log names it. Our publish writes it
    again before returning.

    The outsider is a vacuum that commits nothing (OSS Spark's VACUUM by default): the files
    delta-rs's full 0-hour vacuum finds unreferenced in the snapshot before our commit
    (``dry_run``), deleted right after the commit. delta-rs's own vacuum cannot be placed
    there: its VACUUM START commit after ours fails its conflict check and it deletes
    nothing. The hook only places the deletion at that moment."""
    path = tmp_path / "person"
    expected = _base(path)
    commit = log.write_entry
    vacuumed: list[str] = []

    def then_vacuum(root: Path, version: int, actions: list[dict]) -> None:
        doomed = DeltaTable(str(root)).vacuum(  # the outsider's listing: before our commit
            retention_hours=0, enforce_retention_duration=False, full=True
        )
        commit(root, version, actions)
        if not vacuumed:
            for name in doomed:  # relative to the table
                (root / name).unlink()
                vacuumed.append(name)

    monkeypatch.setattr(log, "write_entry", then_vacuum)
    r = _night(path, way)
    added = [a["add"]["path"] for a in log.entry(path, r.version) or [] if "add" in a]
    assert set(added) & set(vacuumed), "the vacuum did not delete the night's file"
    _assert_content(path, expected)
    for add in DeltaTable(str(path)).file_uris():
        assert Path(add.removeprefix("file://")).exists(), add


@pytest.mark.parametrize("way", ["dv", "cow"])
def test_a_full_vacuum_between_our_file_and_our_commit_is_repaired_and_the_version_is_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    """The outsider vacuums after our data file is written, before our entry: the file is
    deleted and VACUUM START/END take the version we meant. Our commit takes the next free
    one, the file is written again, and the result names the version committed (it named
    the one vacuum took before)."""
    path = tmp_path / "person"
    expected = _base(path)
    before = DeltaTable(str(path)).version()
    commit = log.write_entry
    vacuumed: list[str] = []

    def vacuum_first(root: Path, version: int, actions: list[dict]) -> None:
        if not vacuumed:
            vacuumed.extend(_full_vacuum(DeltaTable(str(root))))
        commit(root, version, actions)

    monkeypatch.setattr(log, "write_entry", vacuum_first)
    r = _night(path, way)
    assert vacuumed, "the vacuum deleted nothing"
    ops = [h["operation"] for h in DeltaTable(str(path)).history(3)]
    assert ops == ["MERGE" if way == "dv" else "WRITE", "VACUUM END", "VACUUM START"]
    assert r.version == DeltaTable(str(path)).version() == before + 3
    _assert_content(path, expected)
    for add in DeltaTable(str(path)).file_uris():
        assert Path(add.removeprefix("file://")).exists(), add

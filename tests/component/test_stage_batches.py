"""Batched staging (``datacloud.staging_batches``) against the whole-table path, on real Delta.

A property test: two nights of ``gongan.czrk`` drawn by hypothesis (duplicate ID numbers under
different source keys, ties on the update time, broken and missing ID numbers, rows that vanish
on the second night) are extracted from SQLite and staged twice, into two storage roots: once
whole (``nightly.stage(..., whole=True)``) and once in batches of a drawn size (1, and sizes
that put the two rows of a duplicate pair in different batches), with a drawn number of open
files per bucketed spill (``spill_buckets.MAX_OPEN``: fewer than the buckets puts several
buckets in one file). Staged rows, the returned counts, the run state's rule counts, the
rejected rows and issues and the gate's entry must be the same. Nothing is mocked.
"""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import date
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from datacloud import nightly, spill_buckets, staging_batches
from datacloud.delta import read_table
from datacloud.landing import iter_partition
from datacloud.paths import SQL_DIR, StorageRoot
from datacloud.quality import QualityGateError
from transforms.id_number import id_check_char


def _id(first17: str) -> str:
    return first17 + id_check_char(first17)


A, B, C = _id("33010619800101001"), _id("33010619900202002"), _id("33010619751231003")
BROKEN = A[:-1] + ("0" if A[-1] != "0" else "1")
IDS = [A, B, C, BROKEN, None]
TIMES = ["2026-11-01 08:00:00", "2026-11-10 09:00:00", "2026-11-15 10:00:00"]
NAMES = ["张三", "李四", "王五"]
DDL = (SQL_DIR / "sample" / "gongan.sql").read_text(encoding="utf-8")
DAYS = (date(2026, 11, 19), date(2026, 11, 20))

row = st.tuples(st.sampled_from(IDS), st.sampled_from(NAMES), st.sampled_from(TIMES))
night = st.dictionaries(st.integers(1, 14), row, min_size=1, max_size=12)


def _write(db: Path, rows: dict[int, tuple]) -> None:
    con = sqlite3.connect(db)
    con.executescript("DROP TABLE IF EXISTS czrk;\n" + DDL)
    con.executemany(
        "INSERT INTO czrk (rkbh, gmsfhm, xm, xb, mz, csrq, hjdz, lxdh, gxsj) "
        "VALUES (?,?,?,?,?,?,?,?,?)",
        [
            (f"RK{k:02d}", i, n, "1", "01", i[6:14] if i else None, "杭州市", None, t)
            for k, (i, n, t) in sorted(rows.items())
        ],
    )
    con.commit()
    con.close()


def _stage(root: StorageRoot, ds: date, run: str, batch: int | None) -> dict | str:
    dept = nightly.department("gongan")
    try:
        if batch is None:
            return nightly.stage(root, dept, "czrk", ds, run, whole=True)
        return nightly.stage(root, dept, "czrk", ds, run, batch_rows=batch)
    except QualityGateError as e:
        return str(e)


def _sorted(path: Path, key: list[str]) -> list[dict]:
    t = pq.read_table(path)
    return t.sort_by([(k, "ascending") for k in key]).to_pylist()


def _seen(root: StorageRoot, ds: date) -> dict:
    """Everything a night leaves behind that the two paths must agree on."""
    staged_path = root.staged("gongan", "czrk")
    staged = (
        read_table(staged_path).drop_columns(["_loaded_at"]).sort_by("_source_pk").to_pylist()
        if (staged_path / "_delta_log").is_dir()
        else None
    )
    state = json.loads((root.run_state("gongan", ds) / "czrk.json").read_text("utf-8"))
    rejected = root.rejected("gongan", "czrk", ds)
    gate = json.loads((root.quality() / "gongan" / ds.isoformat() / "czrk.json").read_text("utf-8"))
    gate.pop("data_docs")
    return {
        "staged": staged,
        "state": {
            k: state.get(k)
            for k in (
                "status",
                "rows_in",
                "rows_accepted",
                "rows_rejected",
                "rows_deduplicated",
                "rejections",
                "warnings",
                "staged_inserted",
                "staged_updated",
                "staged_deleted",
                "latest_source_update",
                "failure_kind",
                "error",
            )
        },
        "rows": _sorted(rejected / "rows.parquet", ["_source_pk"]),
        "issues": _sorted(rejected / "issues.parquet", ["source_pk", "field", "rule_code"]),
        "gate": gate,
    }


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(nights=st.tuples(night, night), batch=st.integers(1, 15), max_open=st.integers(1, 4))
@example(  # a duplicate pair (RK01, RK09) split by every batch size below 9, a tie (RK03, RK04)
    nights=(
        {
            1: (A, "张三", TIMES[2]),
            2: (C, "王五", TIMES[0]),
            3: (B, "李四", TIMES[1]),
            4: (B, "李四", TIMES[1]),
            5: (BROKEN, "张三", TIMES[0]),
            6: (None, "王五", TIMES[0]),
            9: (A, "张叁", TIMES[1]),
        },
        {2: (C, "王五", TIMES[2]), 4: (B, "李四", TIMES[1]), 9: (A, "张叁", TIMES[1])},
    ),
    batch=1,
    max_open=2,
)
def test_batched_staging_equals_the_whole_table_path(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    nights,
    batch,
    max_open,
) -> None:
    base = tmp_path_factory.mktemp("batches")
    monkeypatch.setattr(spill_buckets, "MAX_OPEN", max_open)
    db = base / "gongan.db"
    whole, batched = StorageRoot(base / "whole"), StorageRoot(base / "batched")
    monkeypatch.setenv("DATACLOUD_ROOT", str(base / "unused"))
    for i, (rows, ds) in enumerate(zip(nights, DAYS, strict=True)):
        _write(db, rows)
        for root in (whole, batched):
            nightly.extract(root, nightly.department("gongan"), "czrk", ds, f"sqlite:///{db}")
        out_whole = _stage(whole, ds, f"night-{i}", None)
        out_batched = _stage(batched, ds, f"night-{i}", batch)
        at = f"night {i + 1}, batch {batch}, {max_open} open"
        assert out_batched == out_whole, at
        assert _seen(batched, ds) == _seen(whole, ds), at
        if isinstance(out_batched, dict):
            n = out_batched
            assert n["rows_in"] == n["rows_accepted"] + n["rows_rejected"] + n["rows_deduplicated"]
        spill = list(batched.rejected("gongan", "czrk", ds).parent.glob(".stage-*"))
        assert spill == [], "the spill folder outlived the step"


def test_a_split_duplicate_pair_is_one_row_and_one_duplicate(
    storage_root: StorageRoot, tmp_path: Path
) -> None:
    """RK01 and RK09 carry the same ID number; batches of 2 put them four batches apart."""
    db = tmp_path / "gongan.db"
    rows = {k: (C if k != 1 else A, NAMES[0], TIMES[0]) for k in range(1, 9)}
    rows.update({k: (None, NAMES[1], TIMES[0]) for k in range(2, 9)})  # rejected: no ID number
    rows[9] = (A, NAMES[2], TIMES[2])  # the later update wins
    _write(db, rows)
    ds = DAYS[0]
    nightly.extract(storage_root, nightly.department("gongan"), "czrk", ds, f"sqlite:///{db}")
    batches = [
        b["rkbh"].to_pylist()
        for b in iter_partition(storage_root.raw_partition("gongan", "czrk", ds), 2)
    ]
    assert len(batches) == 5 and "RK01" in batches[0] and "RK09" in batches[4]
    out = nightly.stage(storage_root, nightly.department("gongan"), "czrk", ds, "n", batch_rows=2)
    assert (
        out["rows_in"],
        out["rows_accepted"],
        out["rows_rejected"],
        out["rows_deduplicated"],
    ) == (
        9,
        1,
        7,
        1,
    )
    staged = read_table(storage_root.staged("gongan", "czrk"))
    assert staged["_source_pk"].to_pylist() == ["RK09"]
    issues = pq.read_table(storage_root.rejected("gongan", "czrk", ds) / "issues.parquet")
    dup = issues.filter(pc.equal(issues["rule_code"], "DUPLICATE_KEY"))
    assert dup["source_pk"].to_pylist() == ["RK01"]


def _open_in(folder: Path) -> int:
    """How many files under ``folder`` this process holds open."""
    n = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            n += str(folder) in os.readlink(fd)
        except OSError:  # the listing's own descriptor, closed by now
            continue
    return n


def test_the_spill_files_open_at_once_do_not_grow_with_the_buckets(
    storage_root: StorageRoot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches of one row make a bucket per row (40); the bucketed spills share 2 files each.

    The open spill files are counted at every batch's normalisation and every bucket's
    deduplication: a writer per bucket (and per key bucket) kept up to 2 x 40 open, each
    holding a row group's metadata per batch, so that memory grew with batches x buckets."""
    monkeypatch.setattr(spill_buckets, "MAX_OPEN", 2)
    db = tmp_path / "gongan.db"
    _write(db, {k: (_id(f"33010619800101{k:03d}"), NAMES[k % 3], TIMES[0]) for k in range(40)})
    ds = DAYS[0]
    nightly.extract(storage_root, nightly.department("gongan"), "czrk", ds, f"sqlite:///{db}")
    spill_parent = storage_root.rejected("gongan", "czrk", ds).parent
    counts: list[int] = []

    def counting(fn):
        def inner(*args, **kwargs):
            counts.append(_open_in(spill_parent))
            return fn(*args, **kwargs)

        return inner

    monkeypatch.setattr(
        staging_batches, "normalise_table", counting(staging_batches.normalise_table)
    )
    monkeypatch.setattr(staging_batches, "deduplicate", counting(staging_batches.deduplicate))
    out = nightly.stage(storage_root, nightly.department("gongan"), "czrk", ds, "n", batch_rows=1)
    assert out["rows_accepted"] == 40
    assert len(counts) > 40  # 40 batches, then the buckets the 40 ID numbers hash into
    # rows and raw keys (2 files each) + rejected rows and issues; then accepted and losers' keys
    assert max(counts) <= 2 * 2 + 2, counts


def test_batch_size_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(staging_batches.BATCH_ENV, raising=False)
    assert staging_batches.batch_rows() == staging_batches.DEFAULT_BATCH_ROWS
    monkeypatch.setenv(staging_batches.BATCH_ENV, "5000")
    assert staging_batches.batch_rows() == 5000
    for bad in ("0", "-3", "many"):
        monkeypatch.setenv(staging_batches.BATCH_ENV, bad)
        with pytest.raises(ValueError, match=staging_batches.BATCH_ENV):
            staging_batches.batch_rows()


def test_a_spill_folder_of_a_dead_process_is_removed_by_the_next_stage(tmp_path: Path) -> None:
    rejected = tmp_path / "rejected" / "gongan" / "czrk" / "ds=2026-11-20"
    dead = rejected.parent / f"{staging_batches.SPILL_PREFIX}999999999-deadbeef"
    dead.mkdir(parents=True)
    (dead / "bucket-00000.parquet").write_bytes(b"raw personal data")
    alive = rejected.parent / f"{staging_batches.SPILL_PREFIX}{os.getpid()}-0000beef"
    alive.mkdir()
    new = staging_batches.spill_folder(rejected)
    assert not dead.exists() and alive.is_dir() and new.is_dir()

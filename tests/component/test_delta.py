"""Staged merges and curated publishes on real Delta tables (local files)."""

from __future__ import annotations

import decimal
import itertools
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from datacloud.delta import (
    ROW_HASH,
    CommitInfo,
    MaintainSpec,
    PublishSpec,
    consumed_versions,
    deleted_positions,
    history,
    key_ranges,
    maintain,
    merge_by_key,
    overlapping_row_groups,
    overwrite,
    publish,
    read_table,
    read_where,
    share_to_rewrite,
    version_as_of,
)


def _rows(keys: list[str], names: list[str]) -> pa.Table:
    n = len(keys)
    return pa.table(
        {"_source_pk": keys, "name": names, "sex": ["1"] * n, "n": [1] * n, "_run_id": ["r"] * n}
    )


COMPARE = ["name", "sex", "n"]


def test_merge_inserts_updates_deletes_and_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "staged"
    first = merge_by_key(
        path,
        _rows(["1", "2", "3"], ["a", "b", "c"]),
        "_source_pk",
        COMPARE,
        None,
        "r1",
        "2026-11-19",
    )
    assert first.inserted == 3
    second = merge_by_key(
        path,
        _rows(["1", "2", "4"], ["a", "B", "d"]),
        "_source_pk",
        COMPARE,
        pa.array(["3"]),
        "r2",
        "2026-11-20",
    )
    assert (second.inserted, second.updated, second.deleted) == (1, 1, 1)
    got = read_table(path).sort_by("_source_pk")
    assert got["_source_pk"].to_pylist() == ["1", "2", "4"]
    assert got["name"].to_pylist() == ["a", "B", "d"]
    # the same night again: no row changes
    again = merge_by_key(
        path,
        _rows(["1", "2", "4"], ["a", "B", "d"]),
        "_source_pk",
        COMPARE,
        pa.array([], pa.string()),
        "r3",
        "2026-11-20",
    )
    assert (again.inserted, again.updated, again.deleted) == (0, 0, 0)
    assert read_table(path).sort_by("_source_pk").equals(got)


def test_overwrite_skips_unchanged_content_and_keeps_history(tmp_path: Path) -> None:
    path = tmp_path / "curated"
    t1 = pa.table({"id_number": ["2", "1"], "v": [2, 1]})
    v0 = overwrite(path, t1, ["id_number"], "r1", "2026-11-19")
    assert overwrite(path, t1, ["id_number"], "r2", "2026-11-19") == v0  # rerun: no new version
    v1 = overwrite(
        path, pa.table({"id_number": ["1"], "v": [5]}), ["id_number"], "r3", "2026-11-20"
    )
    assert v1 == v0 + 1
    assert read_table(path)["v"].to_pylist() == [5]
    assert read_table(path, version=v0)["id_number"].to_pylist() == ["1", "2"]  # sorted by key
    meta = DeltaTable(str(path)).history(1)[0]
    assert meta["datacloud.ds"] == "2026-11-20"


def test_version_as_of_picks_the_latest_commit_on_or_before_the_date(tmp_path: Path) -> None:
    path = tmp_path / "t"
    for i, ds in enumerate(["2026-11-01", "2026-11-02", "2026-11-04"]):
        overwrite(path, pa.table({"k": [i]}), ["k"], f"run{i}", ds)
    assert version_as_of(path, "2026-10-31") is None
    assert version_as_of(path, "2026-11-01") == 0
    assert version_as_of(path, "2026-11-03") == 1
    assert version_as_of(path, "2026-12-01") == 2
    assert version_as_of(tmp_path / "missing", "2026-12-01") is None


# --- curated publish: sorted rewrite or merge, and lookup-ready files ------------------------


def _people(ids: list[int], tag: str) -> pa.Table:
    return pa.table(
        {
            "id_number": [f"{i:017d}X" for i in ids],
            "name": [f"{tag}{i % 7}" for i in ids],
            "phone": [None if i % 5 == 0 else f"138{i:08d}" for i in ids],
            "n": pa.array([i % 11 for i in ids], pa.int64()),
        }
    )


def _nights() -> list[tuple[pa.Table, pa.Array | None]]:
    """Yesterday's 3,000 persons, then nights of updates, inserts, deletes and a rerun."""
    keys = lambda ids: pa.array([f"{i:017d}X" for i in ids])  # noqa: E731
    night2 = _people([5, 10, 3001], "b")  # 5 and 10 change name, 3001 is new
    night2 = night2.set_column(2, "phone", pa.array([None, "13900000000", None]))
    return [
        (_people(list(range(3000)), "a"), None),
        (night2, keys([7, 8])),  # 7 and 8 gone
        (night2, keys([7, 8])),  # the same night again: nothing changes
        (_people([20, 21], "a"), keys([9999])),  # unchanged rows, an unknown deleted key
    ]


def _content(path: Path) -> pa.Table:
    return read_table(path).sort_by("id_number")


WAYS = {  # publish's three ways: (rewrite_over, deletion_vectors_under)
    "rewrite": (-1.0, 0.0),
    "merge": (1.0, 0.0),
    "deletion_vectors": (1.0, 1.0),
}


def test_sorted_rewrite_merge_and_deletion_vectors_publish_the_same_content(
    tmp_path: Path,
) -> None:
    results = {}
    for way, (over, dv_under) in WAYS.items():
        path = tmp_path / way
        results[way] = []
        for i, (rows, gone) in enumerate(_nights()):
            r = publish(
                path,
                rows,
                gone,
                PublishSpec(
                    "id_number", ("id_number",), deletion_vectors_under=dv_under, rewrite_over=over
                ),
                CommitInfo(f"r{i}", "2026-11-20", {"datacloud.full": "false"}),
            )
            results[way].append((r.version, r.inserted, r.updated, r.deleted))
            ops = [h["operation"] for h in DeltaTable(str(path)).history()]
            # the first publish writes the table, then lets its files carry deletion vectors
            assert ops[0] == ("ADD FEATURE" if i == 0 else "WRITE" if way == "rewrite" else "MERGE")
    assert results["rewrite"] == results["merge"] == results["deletion_vectors"]
    # night 2: +3001, 5 and 10 updated, 7 and 8 deleted; reruns make no version
    assert [r[1:] for r in results["merge"]] == [(3000, 0, 0), (1, 2, 2), (0, 0, 0), (0, 0, 0)]
    assert [r[0] for r in results["merge"]] == [1, 2, 2, 2]
    assert _content(tmp_path / "rewrite").equals(_content(tmp_path / "merge"))
    assert _content(tmp_path / "rewrite").equals(_content(tmp_path / "deletion_vectors"))
    dv = DeltaTable(str(tmp_path / "deletion_vectors"))
    assert len(dv.file_uris()) == 2  # yesterday's file, kept with a deletion vector, and one new
    assert {len(p) for p in deleted_positions(dv).values()} == {4}  # 5, 10 replaced; 7, 8 gone
    got = _content(tmp_path / "rewrite").to_pylist()
    assert len(got) == 2999
    by_id = {r["id_number"]: r for r in got}
    assert by_id[f"{10:017d}X"]["phone"] == "13900000000" and by_id[f"{5:017d}X"]["phone"] is None
    meta = DeltaTable(str(tmp_path / "rewrite")).history(1)[0]
    assert (meta["datacloud.ds"], meta["datacloud.run_id"], meta["datacloud.full"]) == (
        "2026-11-20",
        "r1",
        "false",
    )
    hist = history(tmp_path / "rewrite")[0]
    assert (hist["rows_added"], hist["rows_updated"], hist["rows_removed"]) == (1, 2, 2)


def _row_groups_sorted_and_disjoint(path: Path, key: str, max_rows: int) -> list[tuple]:
    """Every row group's ``key`` range from the Parquet footers; asserts the files' rows are
    sorted by key, row groups hold at most ``max_rows`` and their ranges are disjoint."""
    dt = DeltaTable(str(path))
    ranges = []
    for uri in dt.file_uris():
        f = pq.ParquetFile(uri.removeprefix("file://"))
        keys = f.read(columns=[key])[key]
        assert pc.all(pc.less_equal(keys[:-1], keys[1:])).as_py(), "file not sorted by key"
        for i in range(f.metadata.num_row_groups):
            rg = f.metadata.row_group(i)
            stats = rg.column(f.schema_arrow.get_field_index(key)).statistics
            assert stats is not None and stats.has_min_max, "no statistics"
            assert rg.num_rows <= max_rows
            ranges.append((stats.min, stats.max))
    ranges.sort()
    assert all(a[1] < b[0] for a, b in itertools.pairwise(ranges)), "row groups overlap"
    return ranges


@pytest.mark.parametrize("way", ["rewrite", "merge"])
def test_an_incremental_night_leaves_row_groups_sorted_and_disjoint(
    tmp_path: Path, way: str
) -> None:
    """20,000 persons in row groups of 1,000; a night touches 1% random keys, inserts and
    deletes. Either way (sorted rewrite, or merge then maintain) the published files are
    sorted by key and a point lookup's key falls in exactly one row group."""
    path = tmp_path / "person"
    n, rg = 20_000, 1_000
    publish(
        path,
        _people(list(range(0, 2 * n, 2)), "a"),
        None,
        PublishSpec("id_number", ("id_number",), row_group_rows=rg),
        CommitInfo("r0", "2026-11-19"),
    )
    rng = np.random.default_rng(7)
    touched = sorted(rng.choice(np.arange(0, 2 * n, 2), n // 100, replace=False).tolist())
    night = pa.concat_tables([_people(touched, "b"), _people([1, 2 * n + 1], "c")])  # 2 new
    gone = pa.array([f"{i:017d}X" for i in (4, 6)])
    r = publish(
        path,
        night,
        gone,
        PublishSpec(
            "id_number",
            ("id_number",),
            deletion_vectors_under=0.0,
            rewrite_over=-1.0 if way == "rewrite" else 1.0,
            row_group_rows=rg,
        ),
        CommitInfo("r1", "2026-11-20"),
    )
    assert (r.inserted, r.deleted) == (2, 2)
    # our copy-on-write (whole table or the files in the touched keys' range) writes sorted;
    # maintain reclusters when file key ranges overlap
    maintain(
        path, MaintainSpec("id_number", 30, 32, row_group_rows=rg), CommitInfo("r1", "2026-11-20")
    )
    assert overlapping_row_groups(DeltaTable(str(path)), "id_number") == 0
    assert (
        maintain(path, MaintainSpec("id_number", 30, 32), CommitInfo("r1", "2026-11-20"))[
            "reclustered_files"
        ]
        == 0
    )
    ranges = _row_groups_sorted_and_disjoint(path, "id_number", rg)
    assert len(ranges) >= n // rg
    for probe in (f"{touched[0]:017d}X", f"{2 * n + 1:017d}X", f"{1:017d}X"):
        assert sum(lo <= probe <= hi for lo, hi in ranges) == 1  # one row group to read
    assert read_table(path).num_rows == n + 2 - 2


def _point_lookup_reads(path: Path, key: str, probe: str) -> int:
    """Row groups a point lookup of ``probe`` must read (footer min/max)."""
    return sum(lo <= probe <= hi for _, _, lo, hi in key_ranges(DeltaTable(str(path)), key))


def test_a_deletion_vector_night_rewrites_no_file_and_stays_lookup_ready(tmp_path: Path) -> None:
    """20,000 persons; a night touches 1% random keys, inserts and deletes. The published
    file is kept whole with a deletion vector; the night's rows go to one sorted file; a
    point lookup reads at most one row group per file; readers (delta-rs, polars) see
    exactly the night's content; maintain reclusters once a fifth of the rows is deleted."""
    path = tmp_path / "person"
    n, rg = 20_000, 1_000
    base = _people(list(range(0, 2 * n, 2)), "a")
    publish(
        path,
        base,
        None,
        PublishSpec("id_number", ("id_number",), row_group_rows=rg),
        CommitInfo("r0", "2026-11-19"),
    )
    first = set(DeltaTable(str(path)).file_uris())
    rng = np.random.default_rng(7)
    touched = sorted(rng.choice(np.arange(0, 2 * n, 2), n // 100, replace=False).tolist())
    night = pa.concat_tables([_people(touched, "b"), _people([1, 2 * n + 1], "c")])  # 2 new
    gone = pa.array([f"{i:017d}X" for i in (4, 6)])
    r = publish(
        path,
        night,
        gone,
        PublishSpec("id_number", ("id_number",), row_group_rows=rg),
        CommitInfo("r1", "2026-11-20"),
    )
    assert (r.inserted, r.updated, r.deleted) == (2, len(touched), 2)
    dt = DeltaTable(str(path))
    assert first < set(dt.file_uris()) and len(dt.file_uris()) == 2  # nothing rewritten
    assert sum(len(p) for p in deleted_positions(dt).values()) == len(touched) + 2
    assert overlapping_row_groups(dt, "id_number", within_files=True) == 0
    assert (
        maintain(path, MaintainSpec("id_number", 30, 32), CommitInfo("r1", "2026-11-20"))[
            "reclustered_files"
        ]
        == 0
    )
    for probe in (f"{touched[0]:017d}X", f"{2 * n + 1:017d}X", f"{1:017d}X"):
        assert _point_lookup_reads(path, "id_number", probe) <= 2
    # what every reader sees: yesterday's rows, the touched ones replaced, 4 and 6 gone
    expected = {r["id_number"]: r for r in base.to_pylist()}
    for row in night.to_pylist():
        expected[row["id_number"]] = row
    for k in gone.to_pylist():
        del expected[k]
    got = read_table(path).sort_by("id_number")
    assert got.drop_columns([ROW_HASH]).to_pylist() == sorted(
        expected.values(), key=lambda r: r["id_number"]
    )
    assert pl.read_delta(str(path)).sort("id_number").to_arrow().cast(got.schema).equals(got)
    probe = pa.array([f"{touched[0]:017d}X", f"{4:017d}X", f"{1:017d}X"])  # replaced, gone, new
    some = read_where(dt, ["id_number", "name"], ["id_number"], probe).sort_by("id_number")
    assert some.to_pylist() == [
        {"id_number": f"{1:017d}X", "name": "c1"},
        {"id_number": f"{touched[0]:017d}X", "name": f"b{touched[0] % 7}"},
    ]
    # a second night on the same files: their deletion vectors grow, earlier ones kept
    again = _people(touched[:10], "c")
    publish(
        path,
        again,
        None,
        PublishSpec("id_number", ("id_number",), row_group_rows=rg),
        CommitInfo("r2", "2026-11-21"),
    )
    assert read_table(path).num_rows == n
    # vacuum keeps the files deletion vectors point into (inline vectors: no file of their own)
    DeltaTable(str(path)).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    assert read_table(path).num_rows == n
    assert (
        read_table(path, version=version_as_of(path, "2026-11-20")).sort_by("id_number").equals(got)
    )
    # a night deleting a fifth of the rows: maintain rewrites the table sorted, no vectors
    many = pa.array([f"{i:017d}X" for i in range(8, 2 * n, 8)])
    publish(
        path,
        night.slice(0, 0),
        many,
        PublishSpec("id_number", ("id_number",), deletion_vectors_under=1.0, row_group_rows=rg),
        CommitInfo("r3", "2026-11-22"),
    )
    done = maintain(
        path, MaintainSpec("id_number", 30, 32, row_group_rows=rg), CommitInfo("r3", "2026-11-22")
    )
    assert done["reclustered_files"] == 3
    assert deleted_positions(DeltaTable(str(path))) == {}
    assert read_table(path).num_rows == n - len(many)
    _row_groups_sorted_and_disjoint(path, "id_number", rg)


def test_share_to_rewrite_reads_file_key_ranges_from_the_log(tmp_path: Path) -> None:
    path = tmp_path / "t"
    for lo in (0, 1000, 2000, 3000):  # four sorted files of 1,000 keys each
        write_deltalake(str(path), _people(list(range(lo, lo + 1000)), "a"), mode="append")
    dt = DeltaTable(str(path))
    k = lambda *ids: pa.array([f"{i:017d}X" for i in ids])  # noqa: E731
    assert share_to_rewrite(dt, "id_number", k()) == 0.0
    assert share_to_rewrite(dt, "id_number", k(5)) == 0.25
    assert share_to_rewrite(dt, "id_number", k(5, 999, 2500)) == 0.5
    assert share_to_rewrite(dt, "id_number", k(5, 1500, 2500, 3999)) == 1.0
    assert share_to_rewrite(dt, "id_number", k(9000)) == 0.0  # a new key past every file


def test_with_deletion_vectors_off_tables_stay_readable_by_deltalakes_pyarrow(
    tmp_path: Path,
) -> None:
    """``publishing.deletion_vectors: false``: no deletion-vector feature, copy-on-write
    nights, and deltalake's pyarrow dataset keeps reading the table (it refuses tables whose
    protocol allows deletion vectors)."""
    on, off = tmp_path / "on", tmp_path / "off"
    for path, dv in ((on, True), (off, False)):
        for i, (rows, gone) in enumerate(_nights()[:2]):
            publish(
                path,
                rows,
                gone,
                PublishSpec("id_number", ("id_number",), deletion_vectors=dv),
                CommitInfo(f"r{i}", "2026-11-20"),
            )
    assert DeltaTable(str(off)).to_pyarrow_table().num_rows == 2999
    assert deleted_positions(DeltaTable(str(off))) == {}
    with pytest.raises(Exception, match="deletionVectors"):
        DeltaTable(str(on)).to_pyarrow_table()
    assert _content(on).equals(_content(off))


def test_deletion_vectors_of_every_container_kind_are_read_back_by_delta_rs(
    tmp_path: Path,
) -> None:
    """One 200,000-row file; a night deletes a dense run (a 65,536-bit bitmap container in
    the roaring format), a sparse scatter (array containers) across three 65,536-row ranges,
    and replaces some rows; delta-rs's reader, polars and ``deleted_positions`` all agree
    with what was deleted."""
    path = tmp_path / "t"
    n = 200_000
    base = _people(list(range(n)), "a")
    publish(
        path,
        base,
        None,
        PublishSpec("id_number", ("id_number",), row_group_rows=n),
        CommitInfo("r0", "2026-11-19"),
    )
    dense = list(range(70_000, 80_000))  # 10,000 in one 65,536 range: a bitmap container
    sparse = list(range(5, n, 997))  # array containers in every range
    gone_ids = sorted(set(dense) | set(sparse))
    replaced = [1, 65_535, 65_536, 131_072, n - 1]
    night = _people([i for i in replaced if i not in gone_ids], "z")
    gone = pa.array([f"{i:017d}X" for i in gone_ids])
    r = publish(
        path,
        night,
        gone,
        PublishSpec("id_number", ("id_number",), deletion_vectors_under=1.0, row_group_rows=n),
        CommitInfo("r1", "2026-11-20"),
    )
    assert (r.deleted, r.inserted) == (len(gone_ids), 0)
    dt = DeltaTable(str(path))
    [(_, positions)] = [(p, v) for p, v in deleted_positions(dt).items() if len(v) > 1000]
    expected_dead = sorted(set(gone_ids) | {i for i in replaced if i not in gone_ids})
    assert positions.tolist() == expected_dead  # row i of the file is person i
    got = read_table(path)
    assert got.num_rows == n - len(gone_ids)
    assert set(got["id_number"].to_pylist()).isdisjoint(gone.to_pylist())
    names = dict(zip(got["id_number"].to_pylist(), got["name"].to_pylist(), strict=True))
    assert all(names[f"{i:017d}X"].startswith("z") for i in replaced if i not in gone_ids)
    assert pl.read_delta(str(path)).height == got.num_rows


def test_deletion_vector_nights_survive_checkpoints_odd_values_and_crashes(tmp_path: Path) -> None:
    """Found in review, each checked here: a vector read back from a checkpoint is named
    exactly by the next night's ``remove``; NaN and infinity get no statistics (JSON has
    none); a decimal's value is hashed at the table's scale; a publish killed before its
    commit leaves a file that maintain vacuums once it is older than the retention, and a
    second maintain finds nothing to do; a checkpoint every ten versions."""
    path = tmp_path / "t"
    n = 2_000

    def rows(ids: list[int], tag: str) -> pa.Table:
        t = _people(ids, tag)
        f = [float("nan") if i % 3 == 0 else float("inf") if i % 3 == 1 else 1.5 for i in ids]
        cap = pa.array([decimal.Decimal(i) / 1_000_000 for i in ids], pa.decimal128(20, 6))
        return t.append_column("f", pa.array(f)).append_column("cap", cap)

    publish(
        path,
        rows(list(range(n)), "a"),
        None,
        PublishSpec("id_number", ("id_number",)),
        CommitInfo("r0", "2026-11-19"),
    )
    publish(
        path,
        rows([5, 6], "b"),
        None,
        PublishSpec("id_number", ("id_number",)),
        CommitInfo("r1", "2026-11-20"),
    )
    DeltaTable(str(path)).create_checkpoint()  # the file's vector now lives in the checkpoint
    publish(
        path,
        rows([7], "c"),
        None,
        PublishSpec("id_number", ("id_number",)),
        CommitInfo("r2", "2026-11-21"),
    )
    got = read_table(path)
    assert got.num_rows == n and len(DeltaTable(str(path)).file_uris()) == 3
    assert pl.read_delta(str(path)).height == n
    names = dict(zip(got["id_number"].to_pylist(), got["name"].to_pylist(), strict=True))
    assert [names[f"{i:017d}X"][0] for i in (5, 6, 7, 8)] == ["b", "b", "c", "a"]
    # the same value at another decimal scale is no change; another value is
    same = rows([9], "a").set_column(
        5, "cap", pa.array([decimal.Decimal("0.000009")], pa.decimal128(20, 9))
    )
    assert (
        publish(
            path,
            same,
            None,
            PublishSpec("id_number", ("id_number",)),
            CommitInfo("r3", "2026-11-22"),
        ).updated
        == 0
    )
    other = same.set_column(5, "cap", pa.array([decimal.Decimal("9")], pa.decimal128(20, 0)))
    assert (
        publish(
            path,
            other,
            None,
            PublishSpec("id_number", ("id_number",)),
            CommitInfo("r4", "2026-11-22"),
        ).updated
        == 1
    )
    # a publish killed between its data file and its commit: an orphan file, 31 days old
    orphan = path / "part-00000-killed-c000.zstd.parquet"
    pq.write_table(rows([1], "z"), orphan)
    month_ago = time.time() - 31 * 86_400
    os.utime(orphan, (month_ago, month_ago))
    assert (
        maintain(path, MaintainSpec("id_number", 30, 32), CommitInfo("r5", "2026-11-23"))[
            "vacuumed_files"
        ]
        == 1
    )
    assert not orphan.exists()
    version = DeltaTable(str(path)).version()
    assert (
        maintain(path, MaintainSpec("id_number", 30, 32), CommitInfo("r6", "2026-11-23"))[
            "vacuumed_files"
        ]
        == 0
    )
    assert DeltaTable(str(path)).version() == version  # nothing to do, no commit
    for i in range(12):  # checkpoints keep the log a reader replays short
        publish(
            path,
            rows([100 + i], "d"),
            None,
            PublishSpec("id_number", ("id_number",)),
            CommitInfo("r", "2026-11-24"),
        )
        maintain(path, MaintainSpec("id_number", 30, 32), CommitInfo("r", "2026-11-24"))
    last = json.loads((path / "_delta_log" / "_last_checkpoint").read_text())["version"]
    assert DeltaTable(str(path)).version() - last < 10
    assert read_table(path).num_rows == n


def test_consumed_staged_versions_are_kept_in_the_log_by_every_way_of_publishing(
    tmp_path: Path,
) -> None:
    """``CommitInfo.consumed`` becomes Delta app transactions (``txn``) in delta-rs commits
    and in our own: ``consumed_versions`` reads the latest per staged table back from the
    log (checkpoint included), and delta-rs reads the same ones."""
    path = tmp_path / "person"
    spec = PublishSpec("id_number", ("id_number",))
    assert consumed_versions(path) == {}  # no table

    def night(ids: list[int], tag: str, consumed: dict[str, int], **ways: float) -> int:
        commit = CommitInfo("r", "2026-11-20", consumed=consumed)
        return publish(path, _people(ids, tag), None, replace(spec, **ways), commit).version

    night(list(range(1000)), "a", {"gongan/czrk": 1})  # the first publish: delta-rs
    assert consumed_versions(path) == {"gongan/czrk": 1}
    night([5, 6], "b", {"gongan/czrk": 2, "mz/hydj": 7})  # deletion vectors: our commit
    assert consumed_versions(path) == {"gongan/czrk": 2, "mz/hydj": 7}
    DeltaTable(str(path)).create_checkpoint()  # the transactions now live in the checkpoint
    night([7], "c", {"gongan/czrk": 3}, deletion_vectors_under=0.0)  # copy-on-write of a file
    assert consumed_versions(path) == {"gongan/czrk": 3, "mz/hydj": 7}
    night([8], "c", {"gongan/czrk": 4}, deletion_vectors_under=0.0, rewrite_over=-1.0)
    assert consumed_versions(path) == {"gongan/czrk": 4, "mz/hydj": 7}
    DeltaTable(str(path)).alter.add_constraint({"n_ok": "n >= 0"})  # delta-rs MERGE from now
    v = night([9], "c", {"gongan/czrk": 5, "mz/hydj": 8})
    assert DeltaTable(str(path)).history(1)[0]["operation"] == "MERGE"
    assert consumed_versions(path) == {"gongan/czrk": 5, "mz/hydj": 8}
    maintain(path, MaintainSpec("id_number", 30, 0), CommitInfo("r", "2026-11-20"))
    assert DeltaTable(str(path)).version() > v  # reclustered: no publish, versions kept
    assert consumed_versions(path) == {"gongan/czrk": 5, "mz/hydj": 8}
    dt = DeltaTable(str(path))
    assert dt.transaction_version("datacloud.staged:gongan/czrk") == 5  # delta-rs agrees
    assert read_table(path).num_rows == 1000

"""Staged merges and curated publishes on real Delta tables (local files)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable

from datacloud.delta import merge_by_key, overwrite, read_table, version_as_of


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

"""``landing.iter_partition`` with ``columns``: only those columns, in the asked order, the
same rows as the whole partition; with none asked, the rows counted and nothing decoded; the
partition's checks (marker, files, row count) as without columns. And ``problems_night``'s
key read, which streams a partition's key columns through it, on a file without a key
column (no keys, the files still counted)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datacloud import nightly, problems_night
from datacloud.landing import (
    SUCCESS,
    IncompletePartition,
    MissingColumns,
    iter_partition,
    read_partition,
    replace_partition,
)
from datacloud.paths import StorageRoot

ROWS = pa.table(
    {
        "k": ["A", "B", None, "D", "E", "F", "G"],
        "n": pa.array([1, 2, 3, None, 5, 6, 7], pa.int64()),
        "v": [f"v{i}" for i in range(7)],
    }
)


def _partition(path: Path) -> Path:
    with replace_partition(path) as writer:
        writer.rows_per_file = 3
        for batch in ROWS.to_batches(max_chunksize=1):
            writer.write(batch)
    assert len(list(path.glob("*.parquet"))) == 3
    return path


def _by_hand(path: Path, files: dict[str, pa.Table], rows: int | None = None) -> Path:
    """A partition of the given files (their schemas may differ) and its marker."""
    path.mkdir(parents=True)
    for name, t in files.items():
        pq.write_table(t, path / name)
    total = sum(t.num_rows for t in files.values()) if rows is None else rows
    (path / SUCCESS).write_text(json.dumps({"rows": total, "files": sorted(files)}), "utf-8")
    return path


@pytest.mark.parametrize("columns", [["v"], ["n", "k"], ["k", "n", "v"]])
def test_the_asked_columns_in_their_order_are_the_whole_partitions(
    tmp_path: Path, columns: list[str]
) -> None:
    part = _partition(tmp_path / "p")
    tables = list(iter_partition(part, 2, columns))
    assert all(t.column_names == columns and t.num_rows <= 2 for t in tables)
    assert len(tables) >= 4  # three files, in batches of two
    assert pa.concat_tables(tables).to_pylist() == read_partition(part).select(columns).to_pylist()
    assert pa.concat_tables(iter_partition(part, 2)).equals(read_partition(part))  # as before


def test_no_column_asked_counts_the_rows_and_decodes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    part = _partition(tmp_path / "p")
    asked: list[Any] = []
    real = pq.ParquetFile.iter_batches

    def spy(self: pq.ParquetFile, *args: Any, **kwargs: Any) -> Any:
        asked.append(kwargs.get("columns"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    tables = list(iter_partition(part, 2, []))
    assert asked == [[], [], []]
    assert all(t.num_columns == 0 for t in tables)
    assert sum(t.num_rows for t in tables) == ROWS.num_rows


@pytest.mark.parametrize("columns", [None, [], ["k"]])
def test_the_partitions_checks_hold_with_columns(tmp_path: Path, columns: list[str] | None) -> None:
    part = _partition(tmp_path / "p")
    marker = json.loads((part / SUCCESS).read_text("utf-8"))

    (part / SUCCESS).write_text(json.dumps({**marker, "rows": 8}), "utf-8")
    batches = iter_partition(part, 2, columns)
    got = [next(batches)]  # the count is known wrong only after the last batch
    with pytest.raises(IncompletePartition, match="marker says 8 rows, files hold 7"):
        got.extend(batches)

    (part / SUCCESS).write_text(json.dumps({**marker, "files": [*marker["files"], "gone"]}))
    with pytest.raises(IncompletePartition, match="a file its marker names is missing"):
        list(iter_partition(part, 2, columns))

    (part / SUCCESS).unlink()
    with pytest.raises(IncompletePartition, match="no _SUCCESS"):
        next(iter_partition(part, 2, columns))


def test_a_file_without_an_asked_column_is_refused(tmp_path: Path) -> None:
    part = _by_hand(
        tmp_path / "p",
        {"part-00000.parquet": ROWS.slice(0, 4), "part-00001.parquet": ROWS.slice(4).drop(["n"])},
    )
    assert [t.num_rows for t in iter_partition(part, 10, ["k", "v"])] == [4, 3]
    with pytest.raises(MissingColumns, match=r"part-00001.parquet has no column \['n'\]"):
        list(iter_partition(part, 10, ["k", "n"]))


D1 = date(2026, 11, 18)


@pytest.mark.parametrize("rows", [None, 99])
def test_keys_read_of_a_file_without_a_key_column_is_none_after_the_count(
    storage_root: StorageRoot, rows: int | None
) -> None:
    """A file without a key column: no key read tonight is known (none); the partition's
    files are still counted against its marker (a wrong count still raises)."""
    dept = nightly.department("gongan")
    spec = dept.table("czrk")
    key = spec.primary_key[0]
    raw = pa.table({key: ["RK1", "RK2", "RK3"], "xm": ["x", "y", "z"]})
    partition = storage_root.raw_partition("gongan", "czrk", D1)
    _by_hand(
        Path(str(partition)),
        {"part-00000.parquet": raw.slice(0, 2), "part-00001.parquet": raw.slice(2).drop([key])},
        rows,
    )
    wanted = {("gongan", "czrk"): {"RK1", "RK2"}}
    read = {("gongan", "czrk")}
    if rows is None:
        assert problems_night.keys_read(storage_root, [dept], D1, read, wanted) == {
            ("gongan", "czrk"): set()
        }
    else:
        with pytest.raises(IncompletePartition, match="marker says 99 rows, files hold 3"):
            problems_night.keys_read(storage_root, [dept], D1, read, wanted)

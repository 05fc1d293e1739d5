"""``Parts.read_slice`` with ``columns``: only those columns decoded, the same rows as the
whole-row read then ``select``, in every slice (the null slice too), over parts that differ
(a part whose slice column is all null, a part without a column, an empty part)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datacloud.curation_ranges import Parts, split_points, write_parquet


def _parts(tmp_path: Path) -> Parts:
    one = pa.table(
        {
            "k": ["a", "b", None, "c", "c", "e", "f", None, "g", "h"],
            "x": pa.array(range(10), pa.int64()),
            "y": [f"y{i}" for i in range(10)],
            "z": pa.array([1.5 * i for i in range(10)]),
        }
    ).sort_by([("k", "ascending")])
    two = pa.table(  # its slice column is all null (typed null): every row in the last slice
        {
            "k": pa.nulls(3),
            "x": pa.array([100, 101, 102], pa.int64()),
            "y": ["p", "q", "r"],
            "z": pa.array([0.1, 0.2, 0.3]),
        }
    )
    three = pa.table(  # no column z at all
        {
            "k": ["b", "d", "d", "i", None],
            "x": pa.array([200, 201, 202, 203, 204], pa.int64()),
            "y": ["s", "t", "u", "v", "w"],
        }
    ).sort_by([("k", "ascending")])
    empty = one.schema.empty_table()
    files = []
    for i, t in enumerate((one, two, empty, three)):
        path = tmp_path / f"part-{i}.parquet"
        write_parquet(path, t, row_group_rows=2)  # several row groups: statistics skip some
        files.append(path)
    return Parts(tuple(files))


def _bounds(parts: Parts, rows: int) -> list[tuple[Any, Any]]:
    cuts = split_points(parts.read(["k"])["k"], rows)
    assert cuts, "the test needs several slices"
    return list(zip([None, *cuts], [*cuts, None], strict=True))


@pytest.mark.parametrize(
    "columns",
    [["x"], ["y", "x"], ["k", "z"], ["z"], ["z", "k", "y", "x"]],
)
def test_a_column_limited_slice_is_the_whole_slice_then_select(
    tmp_path: Path, columns: list[str]
) -> None:
    parts = _parts(tmp_path)
    bounds = _bounds(parts, 4)
    seen = 0
    for lo, hi in bounds:
        whole = parts.read_slice("k", lo, hi)
        limited = parts.read_slice("k", lo, hi, columns)
        assert limited.column_names == columns
        assert limited.schema == whole.select(columns).schema
        assert limited.num_rows == whole.num_rows
        assert limited.to_pylist() == whole.select(columns).to_pylist()  # values and order
        seen += limited.num_rows
    assert seen == parts.num_rows  # the slices cover the table, nulls in the last
    last = parts.read_slice("k", bounds[-1][0], None, ["x"])["x"].to_pylist()
    assert {100, 101, 102, 204} <= set(last)  # the null slice: the typed-null part, null keys


def test_only_the_asked_columns_are_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = _parts(tmp_path)
    bounds = _bounds(parts, 4)
    asked: list[Any] = []
    real = pq.read_table

    def spy(source: Any, *args: Any, **kwargs: Any) -> pa.Table:
        asked.append(kwargs.get("columns"))
        return real(source, *args, **kwargs)

    monkeypatch.setattr(pq, "read_table", spy)
    for lo, hi in bounds:
        parts.read_slice("k", lo, hi, ["x"])
    assert asked and all(c == ["x"] for c in asked)  # never a whole-row read, nor k itself
    asked.clear()
    parts.read_slice("k", None, None, ["y", "z"])
    assert asked == [["y", "z"], ["y", "z"], ["y"]]  # the part without z reads what it has


def test_an_unknown_column_is_refused(tmp_path: Path) -> None:
    parts = _parts(tmp_path)
    with pytest.raises(KeyError):
        parts.read_slice("k", None, None, ["x", "nope"])

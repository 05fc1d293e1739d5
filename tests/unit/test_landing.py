"""Raw landing: a partition is complete or absent; a rerun replaces it, never adds to it."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from datacloud.landing import IncompletePartition, read_partition, replace_partition


def test_rerun_replaces_the_partition(tmp_path: Path) -> None:
    part = tmp_path / "raw" / "gongan" / "czrk" / "ds=2026-11-20"
    for _ in range(2):
        with replace_partition(part) as w:
            w.write(pa.table({"a": [1, 2, 3]}))
    assert read_partition(part)["a"].to_pylist() == [1, 2, 3]
    assert [p.name for p in part.parent.iterdir()] == ["ds=2026-11-20"]  # no leftovers


def test_crash_mid_write_keeps_the_last_good_partition(tmp_path: Path) -> None:
    part = tmp_path / "p"
    with replace_partition(part) as w:
        w.write(pa.table({"a": [1]}))
    with pytest.raises(RuntimeError, match="connection dropped"), replace_partition(part) as w:
        w.write(pa.table({"a": [7, 8]}))
        raise RuntimeError("connection dropped")
    assert read_partition(part)["a"].to_pylist() == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["p"]


def test_partition_without_marker_is_not_taken_as_complete(tmp_path: Path) -> None:
    part = tmp_path / "p"
    with replace_partition(part) as w:
        w.write(pa.table({"a": [1]}))
    (part / "_SUCCESS").unlink()
    with pytest.raises(IncompletePartition, match="no _SUCCESS"):
        read_partition(part)
    with pytest.raises(IncompletePartition):
        read_partition(tmp_path / "absent")


def test_batches_with_a_null_only_column_are_cast_to_the_first_schema(tmp_path: Path) -> None:
    part = tmp_path / "p"
    with replace_partition(part) as w:
        w.write(pa.table({"a": pa.array(["x"]), "b": pa.array([1])}))
        w.write(pa.table({"a": pa.nulls(1), "b": pa.array([2])}))
    t = read_partition(part)
    assert t.schema.field("a").type == pa.string()
    assert t["a"].to_pylist() == ["x", None]


def test_background_writer_hands_a_write_error_to_the_caller(tmp_path: Path) -> None:
    from datacloud.landing import BackgroundWriter

    part = tmp_path / "p"
    with pytest.raises(pa.ArrowInvalid), replace_partition(part) as w:
        bg = BackgroundWriter(w)
        try:
            bg.write(pa.table({"a": [1, 2]}))
            bg.write(pa.table({"a": ["not a number"]}))  # cannot be cast to the first schema
            for _ in range(5):
                bg.write(pa.table({"a": [3]}))
        finally:
            bg.join()
    assert not part.exists()


def test_background_writer_writes_every_batch_in_order(tmp_path: Path) -> None:
    from datacloud.landing import BackgroundWriter

    part = tmp_path / "p"
    with replace_partition(part) as w:
        bg = BackgroundWriter(w)
        for i in range(50):
            bg.write(pa.table({"a": [i, i + 1000]}))
        bg.join()
    assert read_partition(part)["a"].to_pylist() == [v for i in range(50) for v in (i, i + 1000)]


def test_a_file_the_marker_names_missing_is_an_incomplete_partition(tmp_path: Path) -> None:
    part = tmp_path / "p"
    with replace_partition(part) as w:
        w.rows_per_file = 1
        w.write(pa.table({"a": [1]}))
        w.write(pa.table({"a": [2]}))
    (part / "part-00001.parquet").unlink()
    with pytest.raises(IncompletePartition, match="missing"):
        read_partition(part)


def test_a_chunk_whose_files_do_not_hold_its_marker_count_is_not_landed(tmp_path: Path) -> None:
    """A chunk folder that lost a file (as the old landing's kill mid-move left it) fails
    the landing instead of publishing a marker that counts rows no file holds."""
    from datacloud.landing import chunk_folder, land_chunks, write_chunk

    part = tmp_path / "t" / "ds=2026-11-20"
    folder = chunk_folder(part, "run")
    for i in range(2):
        with write_chunk(folder, i) as w:
            w.rows_per_file = 1
            w.write(pa.table({"a": [i]}))
            w.write(pa.table({"a": [i + 10]}))
    (folder / "chunk-00001" / "part-00000.parquet").unlink()
    with pytest.raises(IncompletePartition, match="chunk-00001"):
        land_chunks(part, folder, 2, pa.schema([("a", pa.int64())]))
    assert not part.exists()


def test_a_live_writer_of_another_partition_keeps_its_folder(tmp_path: Path) -> None:
    """The tidy of one partition's write deletes dead copies only: another partition's
    write in progress (its folder held by flock) goes on and lands."""
    table = tmp_path / "t"
    with replace_partition(table / "ds=1") as w1:
        w1.write(pa.table({"a": [1]}))
        (dead := table / ".ds=0.tmp-0badc0de").mkdir()  # a killed writer's folder
        with replace_partition(table / "ds=2") as w2:
            w2.write(pa.table({"a": [2]}))
        assert not dead.exists()
    assert read_partition(table / "ds=1")["a"].to_pylist() == [1]
    assert read_partition(table / "ds=2")["a"].to_pylist() == [2]
    assert sorted(p.name for p in table.iterdir()) == ["ds=1", "ds=2"]

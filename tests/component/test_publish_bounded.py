"""A full build's publish (``curation_night._check_and_publish_parts``, the gate and
``delta.streamed``) holds no whole column of a table: the slices are cut on a sample of the
column (``curation_ranges.cut_points``), a slice's links read the linked table's keys among
its values (``curated_links.keys_among``), and a rebuild pairs the published and tonight's
keys and row hashes a hash bucket at a time (``delta.spill``). The tables, figures and gate
entries are those of the whole-column code.

Real parquet parts (``curation_ranges.write_part``), real Delta tables, real Great
Expectations; the sample, slice and bucket sizes made tiny so that every path is taken.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from datacloud import curated_links, curation_night, curation_ranges, delta, key_hash
from datacloud.curate import LAYOUT
from datacloud.curation_config import load_curation_config
from datacloud.curation_ranges import KeyRange
from datacloud.delta import spill, streamed
from datacloud.paths import StorageRoot
from transforms.id_number import id_check_char

DS = date(2026, 11, 20)


def _id(seq: int) -> str:
    first17 = f"33010619800101{seq:03d}"
    return first17 + id_check_char(first17)


def persons(n: int, name: str = "张某") -> pa.Table:
    return pa.table(
        {
            "id_number": pa.array([_id(i) for i in range(n)], pa.string()),
            "name": pa.array([name] * n, pa.string()),
            "birth_date": pa.array([date(1980, 1, 1)] * n, pa.date32()),
        }
    )


def rights(owners: list[int], first: int = 0) -> pa.Table:
    certs = [f"浙(2026)杭州市不动产权第{first + i:07d}号" for i in range(len(owners))]
    ids = [_id(o) for o in owners]
    return pa.table(
        {
            "certificate_no": pa.array(certs, pa.string()),
            "owner_id_number": pa.array(ids, pa.string()),
            "_key": pa.array([f"{c}|{i}" for c, i in zip(certs, ids, strict=True)], pa.string()),
        }
    )


def parts_of(root: StorageRoot, run: str, name: str, table: pa.Table) -> Any:
    scratch = root.root / "scratch" / run
    files = []
    for i in range(3):
        kr = KeyRange(i, 3)
        rows = table.take(list(range(i, table.num_rows, 3)))
        curation_ranges.write_part(scratch, name, kr, rows, LAYOUT[name][1])
        files.append(curation_ranges.part_path(scratch, name, kr))
    return curation_ranges.Parts(tuple(files))


def publish(
    root: StorageRoot, run: str, tables: dict[str, pa.Table], *, gated: bool = True
) -> dict[str, Any]:
    gate = curation_night.quality_gate(root, DS) if gated else None
    commit = delta.CommitInfo(run, DS.isoformat(), {"datacloud.full": "true"}, consumed={})
    config = load_curation_config()
    out = {}
    for name, table in tables.items():
        parts = parts_of(root, run, name, table)
        out[name] = curation_night._check_and_publish_parts(
            root, name, parts, config, commit, gate, 7
        )
    return out


def entries(root: StorageRoot) -> dict[str, Any]:
    doc = json.loads((root.quality() / "curated" / DS.isoformat() / "gate.json").read_text())
    return {e["table"]: e for e in doc["suites"]}


def figures(out: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
    return {n: (o["inserted"], o["updated"], o["deleted"]) for n, o in out.items()}


def whole_read(*_a: Any, **_k: Any) -> None:
    raise AssertionError("a whole column read")


def test_a_full_builds_publish_holds_no_whole_column(
    storage_root: StorageRoot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """person (40) and property_right (30 rows, a broken link, co-owners), published in
    slices of 7 rows cut on a sample of every 4th value, then rebuilt over a changed night
    (a person renamed, a right gone, one new, one person gone) with 3-row hash buckets: the
    same rows, figures and gate entries as whole, and no whole read of the parts, the
    linked table's keys or the published keys and row hashes."""
    root = storage_root
    night = {"person": persons(40), "property_right": rights([i % 25 for i in range(29)] + [77])}
    changed = persons(39).set_column(1, "name", pa.array(["李某"] + ["张某"] * 38))
    again = {
        "person": changed,
        "property_right": pa.concat_tables(
            [night["property_right"].slice(1), rights([3], first=500)]
        ),
    }
    with monkeypatch.context() as m:
        m.setattr(curation_ranges, "SAMPLE_ROWS", 4)
        m.setattr(spill, "BUCKET_ROWS", 3)
        m.setattr(curation_ranges.Parts, "read", whole_read)
        m.setattr(curation_night.delta, "read_table", whole_read)
        m.setattr(streamed, "read_loaded", whole_read)
        first = publish(root, "first", night)
        gated_first = entries(root)
        second = publish(root, "second", again)
        gated_second = entries(root)
    assert figures(first) == {"person": (40, 0, 0), "property_right": (30, 0, 0)}
    assert figures(second) == {"person": (0, 1, 1), "property_right": (1, 0, 1)}
    for name, table in again.items():
        got = delta.read_table(root.curated(name)).drop_columns([delta.ROW_HASH])
        key = LAYOUT[name][0]
        assert got.sort_by(key).equals(table.select(got.column_names).sort_by(key)), name
        assert len(delta.load(root.curated(name)).file_uris()) > 2, name  # sliced
    # the whole-table gate on the same rows and register gives the same entries
    assert gated_second["property_right"]["failed_expectations"], "the broken link is seen"
    gate = curation_night.quality_gate(root, DS)
    for name, table in again.items():
        curation_night._refused(gate, name, table)
        assert entries(root)[name] == gated_second[name], name
    assert gated_first["property_right"]["rows"] == 30
    for name in again:  # the rebuild's buckets were set aside in the scratch, and are gone
        spilled = root.root / "scratch" / "second" / name / "_spill"
        assert spilled.is_dir() and not any(spilled.iterdir()), name


def test_a_rebuild_with_a_key_twice_is_refused_across_buckets(
    storage_root: StorageRoot, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = storage_root
    monkeypatch.setattr(spill, "BUCKET_ROWS", 2)
    publish(root, "first", {"person": persons(12)}, gated=False)
    twice = pa.concat_tables([persons(12), persons(12).slice(5, 1)])
    with pytest.raises(ValueError, match="duplicate values of key column id_number"):
        publish(root, "second", {"person": twice}, gated=False)
    spilled = root.root / "scratch" / "second" / "person" / "_spill"
    assert spilled.is_dir() and not any(spilled.iterdir())  # removed after the failure too


def test_cut_points_on_a_sample_keep_a_values_rows_together_and_size_the_slices(
    storage_root: StorageRoot,
) -> None:
    values = [f"v{i // 3:04d}" for i in range(3000)] + [None] * 20  # each value 3 times
    table = pa.table({"owner_id_number": pa.array(values, pa.string())})
    table = table.append_column("certificate_no", pa.array([str(i) for i in range(3020)]))
    parts = parts_of(storage_root, "cut", "property_right", table)
    column = table["owner_id_number"]
    exact = curation_ranges.split_points(column, 300)
    assert curation_ranges.cut_points(parts, "owner_id_number", 300) == exact  # no sample
    cuts = curation_ranges.cut_points(parts, "owner_id_number", 300, most=100)
    assert cuts == sorted(set(cuts)) and cuts != exact
    bounds = list(zip([None, *cuts], [*cuts, None], strict=True))
    sizes = [parts.read_slice("owner_id_number", lo, hi).num_rows for lo, hi in bounds]
    assert sum(sizes) == table.num_rows
    assert len(sizes) <= -(-table.num_rows // 300)  # never more slices than the rows ask
    assert all(200 <= n <= 400 for n in sizes[:-1]), sizes
    assert sizes[-1] <= 400 + 20


def test_keys_among_reads_the_linked_keys_a_slice_names(storage_root: StorageRoot) -> None:
    path = storage_root.curated("person")
    for lo in (0, 10, 20):  # three files
        write_deltalake(str(path), persons(30).slice(lo, 10), mode="append")
    delta.load(path).delete(f"id_number = '{_id(12)}'")
    dt = delta.load(path)
    asked = [_id(1), _id(12), _id(25), _id(25), _id(31), None, "33'", "无"]
    found = curated_links.keys_among(dt, "id_number", pa.array(asked, pa.string()))
    assert sorted(found.to_pylist()) == [_id(1), _id(25)]
    assert len(curated_links.keys_among(dt, "id_number", pa.array([], pa.string()))) == 0
    plain = pa.array([_id(1), _id(12), _id(25), _id(31), None], pa.string())  # a range read
    assert sorted(curated_links.keys_among(dt, "id_number", plain).to_pylist()) == [
        _id(1),
        _id(25),
    ]
    narrow = curated_links.keys_among(dt, "id_number", pa.array([_id(13), _id(14)]))
    assert sorted(narrow.to_pylist()) == [_id(13), _id(14)]


def test_bucket_of_in_pieces_is_bucket_of_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = pa.array([None, "", "x", *(f"{i}" * (i % 23) for i in range(1000))], pa.string())
    whole = key_hash.bucket_of(keys.slice(2), 64)
    monkeypatch.setattr(key_hash, "HASH_ROWS", 7)
    assert key_hash.bucket_of(keys.slice(2), 64).tolist() == whole.tolist()
    assert key_hash.bucket_of(keys, 64)[:2].tolist() == key_hash.bucket_of(keys[:2], 64).tolist()

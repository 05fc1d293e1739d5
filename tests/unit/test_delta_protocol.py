"""Our own Delta log entries against the protocol (PROTOCOL.md), and the feature gate.

Real Delta tables on tmp folders; the log entries are read back as JSON and checked against
the protocol's rules for the actions we write.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from datacloud.delta import AppendOnly, CommitInfo, PublishSpec, publish, read_table
from datacloud.delta import protocol as delta_protocol


def _rows(ids: list[int], tag: str) -> pa.Table:
    return pa.table(
        {
            "id_number": [f"{i:017d}X" for i in ids],
            "name": [f"{tag}{i}" for i in ids],
            "cap": pa.array([decimal.Decimal(i) / 100 for i in ids], pa.decimal128(20, 2)),
            "at": pa.array(
                [dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=i) for i in ids],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )


def _entries(path: Path) -> list[list[dict]]:
    log = path / "_delta_log"
    return [
        [json.loads(line) for line in f.read_text().splitlines()]
        for f in sorted(log.glob("0*.json"))
    ]


def test_our_log_entries_follow_the_protocol(tmp_path: Path) -> None:
    path = tmp_path / "t"
    publish(
        path,
        _rows(list(range(100)), "a"),
        None,
        PublishSpec("id_number", ("id_number",)),
        CommitInfo("r", "2026-11-20"),
    )
    first_add = next(a["add"] for a in _entries(path)[0] if "add" in a)
    publish(
        path,
        _rows([5, 6], "b"),
        None,
        PublishSpec("id_number", ("id_number",)),
        CommitInfo("r", "2026-11-21"),
    )
    entries = _entries(path)
    # the first publish that wants vectors: one commit, protocol + metaData, nothing else
    enable = entries[1]
    [protocol] = [a["protocol"] for a in enable if "protocol" in a]
    assert (protocol["minReaderVersion"], protocol["minWriterVersion"]) == (3, 7)
    assert protocol["readerFeatures"] == ["deletionVectors"]
    # writer 2 implied appendOnly and invariants: listed, plus deletionVectors, nothing more
    assert protocol["writerFeatures"] == ["appendOnly", "invariants", "deletionVectors"]
    [meta] = [a["metaData"] for a in enable if "metaData" in a]
    [old_meta] = [a["metaData"] for a in entries[0] if "metaData" in a]
    assert meta["configuration"] == {
        **old_meta["configuration"],
        "delta.enableDeletionVectors": "true",
    }
    assert json.loads(meta["schemaString"]) == json.loads(old_meta["schemaString"])
    assert meta["id"] == old_meta["id"]
    assert {k for a in enable for k in a} == {"commitInfo", "protocol", "metaData"}
    # the deletion-vector night
    night = entries[2]
    removes = [a["remove"] for a in night if "remove" in a]
    adds = [a["add"] for a in night if "add" in a]
    assert len(removes) == 1 and len(adds) == 2
    for r in removes:  # extendedFileMetadata true: partitionValues and size present
        assert r["extendedFileMetadata"] is True and "partitionValues" in r and "size" in r
        assert r["dataChange"] is True
        assert ("tags" in r) == (first_add.get("tags") is not None)
    kept = next(a for a in adds if a["path"] == first_add["path"])
    assert kept["deletionVector"]["cardinality"] == 2
    # statistics copied verbatim, tightBounds false added; the values keep their JSON form
    original = json.loads(first_add["stats"])
    copied = json.loads(kept["stats"])
    assert copied == {**original, "tightBounds": False}
    for part in ("minValues", "maxValues"):
        for column in ("cap", "at"):
            raw = json.dumps(original[part][column])
            assert f'"{column}":{raw}' in kept["stats"].replace(" ", "")
    assert (
        kept["size"] == first_add["size"]
        and kept["modificationTime"] == first_add["modificationTime"]
    )
    assert read_table(path).num_rows == 100


def test_remove_carries_the_adds_tags_and_vector() -> None:
    add = {
        "path": "p.parquet", "partitionValues": {}, "size": 10, "modificationTime": 1,
        "dataChange": True, "stats": '{"numRecords":3}', "tags": {"k": "v"},
        "deletionVector": {"storageType": "i", "pathOrInlineDv": "x", "sizeInBytes": 1,
                           "cardinality": 1},
    }  # fmt: skip
    r = delta_protocol.remove_action(add, 5)
    assert r["tags"] == {"k": "v"} and r["deletionVector"] == add["deletionVector"]
    assert (r["extendedFileMetadata"], r["size"], r["partitionValues"]) == (True, 10, {})
    assert "tags" not in delta_protocol.remove_action({**add, "tags": None}, 5)


def test_loose_stats_copies_every_value_verbatim() -> None:
    values = '"minValues":{"d":1.10,"t":"2026-01-01T00:00:00.000Z","tightBounds":1}'
    raw = '{"numRecords":2,' + values + ',"tightBounds":true}'
    out = delta_protocol.loose_stats(raw)
    assert out == '{"numRecords":2,' + values + ',"tightBounds":false}'


def test_append_only_refuses_updates_and_deletes_but_takes_new_keys(tmp_path: Path) -> None:
    path = tmp_path / "t"
    publish(
        path,
        _rows(list(range(10)), "a"),
        None,
        PublishSpec("id_number", ("id_number",)),
        CommitInfo("r", "2026-11-20"),
    )
    DeltaTable(str(path)).alter.set_table_properties({"delta.appendOnly": "true"})
    with pytest.raises(AppendOnly, match=r"t: delta.appendOnly=true.*update 1"):
        publish(
            path,
            _rows([3], "b"),
            None,
            PublishSpec("id_number", ("id_number",)),
            CommitInfo("r", "2026-11-21"),
        )
    with pytest.raises(AppendOnly, match="delete 1"):
        publish(
            path,
            _rows([], "b"),
            pa.array([f"{4:017d}X"]),
            PublishSpec("id_number", ("id_number",)),
            CommitInfo("r", "2026-11-21"),
        )
    r = publish(
        path,
        _rows([3, 50], "a"),
        None,
        PublishSpec("id_number", ("id_number",)),
        CommitInfo("r", "2026-11-21"),
    )
    assert (r.inserted, r.updated, r.deleted) == (1, 0, 0)
    assert read_table(path).num_rows == 11


def test_change_data_feed_tables_are_published_with_cdc(tmp_path: Path) -> None:
    path = tmp_path / "t"
    publish(
        path,
        _rows(list(range(10)), "a"),
        None,
        PublishSpec("id_number", ("id_number",), deletion_vectors=False),
        CommitInfo("r", "2026-11-20"),
    )
    DeltaTable(str(path)).alter.set_table_properties({"delta.enableChangeDataFeed": "true"})
    v = DeltaTable(str(path)).version()
    publish(
        path,
        _rows([3], "b"),
        None,
        PublishSpec("id_number", ("id_number",)),
        CommitInfo("r", "2026-11-21"),
    )
    [night] = _entries(path)[v + 1 :]
    assert any("cdc" in a for a in night), "no cdc action"
    assert not any("deletionVector" in a.get("add", {}) for a in night)
    feed = pa.table(DeltaTable(str(path)).load_cdf(starting_version=v + 1))
    assert sorted(feed["_change_type"].to_pylist()) == ["update_postimage", "update_preimage"]


def test_unknown_features_keep_our_writer_away(tmp_path: Path) -> None:
    path = tmp_path / "t"
    publish(
        path,
        _rows(list(range(10)), "a"),
        None,
        PublishSpec("id_number", ("id_number",), deletion_vectors=False),
        CommitInfo("r", "2026-11-20"),
    )
    DeltaTable(str(path)).alter.add_constraint({"cap_positive": "cap >= 0"})
    gate = delta_protocol.gate(DeltaTable(str(path)))
    assert not gate.ours and "CHECK constraint" in gate.why
    r = publish(
        path,
        _rows([3], "b"),
        None,
        PublishSpec("id_number", ("id_number",)),
        CommitInfo("r", "2026-11-21"),
    )
    assert r.updated == 1
    [night] = _entries(path)[-1:]
    assert next(a for a in night if "commitInfo" in a)["commitInfo"]["clientVersion"] != "datacloud"

"""How many key ranges a full build takes (``full_build`` in dags/curation.yaml), and the
plan as the curation DAG maps it (one entry per range, none for an incremental night)."""

from __future__ import annotations

import pytest

from datacloud.config import ConfigError
from datacloud.curation_config import CurationConfig, FullBuild, load_curation_config
from datacloud.curation_night import range_tasks
from datacloud.curation_ranges import KeyRange


def test_the_range_count_follows_the_staged_rows_unless_fixed() -> None:
    auto = FullBuild(rows_per_range=1_000_000, max_ranges=8)
    assert [auto.count(n) for n in (0, 1, 1_000_000, 1_000_001, 7_500_000, 90_000_000)] == [
        1,
        1,
        1,
        2,
        8,
        8,
    ]
    assert FullBuild(ranges=3).count(90_000_000) == 3
    shipped = load_curation_config().full_build
    assert shipped.ranges is None and shipped.count(10) == 1


def test_a_bad_full_build_setting_is_a_config_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "curation.yaml"
    path.write_text("full_build: {ranges: 0}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="full_build"):
        load_curation_config(path)
    assert CurationConfig().full_build == FullBuild()


def test_the_dag_maps_one_entry_per_range_and_none_on_an_incremental_night() -> None:
    plan = {"mode": "full", "count": 3, "ranges": [0, 1, 2], "versions": {"gongan/czrk": 4}}
    entries = range_tasks(plan)
    assert [e["index"] for e in entries] == [0, 1, 2]
    assert all("ranges" not in e and e["count"] == 3 and e["versions"] for e in entries)
    assert range_tasks({"mode": "incremental", "count": 0, "ranges": []}) == []
    with pytest.raises(ValueError):
        KeyRange(3, 3)

"""The raw gate (``quality.check_profile``) validates a night's profile a slice at a time and
gives the whole-profile gate's result: the same gate.json entry, the same stored GE result
entries, whatever the slice size (1, 2, 3 rows per slice up to the whole profile in one
slice, today's run), for a clean night, a row count out of its band (judged on the whole
table, not per slice), ``mostly`` thresholds that each slice alone would fail but the sum
passes (and the reverse), missing values and an empty night.

Real department configuration (gongan.yaml's czrk, a person table), real run state for the
volume history, real Great Expectations with its file stores and Data Docs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import yaml

from datacloud import quality, runstate
from datacloud.config import TableSpec, load_department
from datacloud.paths import DEPARTMENTS_DIR, StorageRoot
from datacloud.quality_ge import run_suite_slices
from datacloud.quality_profile import verdicts

DS = date(2026, 11, 20)
ROWS = 12
SIZES = [1, 2, 3, ROWS]  # rows per slice; the last: one slice, the whole profile
WHOLE = 1_000_000  # today's run: the whole profile as one frame
COLUMNS = ["id_number", "name", "birth_date", "sex", "phone"]
ID_LIKE = re.compile(r"\d{17}[\dXx]")


def czrk(folder: Path) -> TableSpec:
    """gongan.yaml's czrk with ratio checks critical from the first row (the defaults
    demote them below 100 rows): every verdict counts in these small profiles."""
    data = yaml.safe_load((DEPARTMENTS_DIR / "gongan.yaml").read_text(encoding="utf-8"))
    (table,) = [t for t in data["tables"] if t["name"] == "czrk"]
    table["quality"] = {"min_rows_for_ratios": 1}
    path = folder / "gongan.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return load_department(path).table("czrk")


def profile(
    invalid: dict[str, list[int]] | None = None,
    missing: dict[str, list[int]] | None = None,
    rows: int = ROWS,
) -> pa.Table:
    """A raw profile of ``rows`` rows, every verdict ``'valid'`` but the given rows."""
    out = {}
    for c in COLUMNS:
        bad, absent = np.zeros(rows, dtype=bool), np.zeros(rows, dtype=bool)
        bad[(invalid or {}).get(c, [])] = True
        absent[(missing or {}).get(c, [])] = True
        out[c] = verdicts(bad, absent)
    return pa.table(out)


# (profile, earlier nights' row counts, whether the gate passes)
CASES: dict[str, tuple[Callable[[], pa.Table], int, bool]] = {
    "clean": (profile, ROWS, True),
    # 12 rows against a median of 100: below the band 50..300 (each slice would be too)
    "volume_low": (profile, 100, False),
    # 12 rows against a median of 3: above the band 2..9 (slices of 2 or 3 rows are inside)
    "volume_high_only_whole": (profile, 3, False),
    # one invalid ID number in 12: 11/12 passes min_valid 0.9; its slice alone fails it
    "mostly_passes_in_sum": (lambda: profile({"id_number": [0]}), ROWS, True),
    # two invalid, in two slices: 10/12 fails 0.9; the other slices pass
    "mostly_fails_in_sum": (lambda: profile({"id_number": [1, 7]}), ROWS, False),
    # a missing name: 11/12 present fails min_present 0.95; valid over the present ones
    "missing_values": (
        lambda: profile({"name": [3]}, {"name": [5], "phone": [0, 11], "sex": [2]}),
        ROWS,
        False,
    ),
    "empty": (lambda: profile(rows=0), ROWS, False),
}


def _history(root: StorageRoot, rows: int) -> None:
    for back in (1, 2, 3):
        day = DS - timedelta(days=back)
        runstate.update(root, "gongan", day, "czrk", status="success", rows_in=rows)


def _stored(root: StorageRoot) -> dict[str, Any]:
    """The night's stored GE result of czrk (one file: a rerun replaces it)."""
    base = root.quality() / "gx" / "gongan" / "czrk"
    (found,) = [p for p in base.rglob("*.json") if "validations" in p.parts]
    return dict(json.loads(found.read_text(encoding="utf-8")))


def _gate(
    root: StorageRoot, spec: TableSpec, prof: pa.Table, slice_rows: int
) -> tuple[dict[str, Any], dict[str, Any], bool]:
    result = quality.check_profile(root, "gongan", spec, prof, prof.num_rows, DS, slice_rows)
    quality.record(root, DS, result)
    entry = json.loads((root.quality() / "gongan" / DS.isoformat() / "czrk.json").read_text())
    return entry, _stored(root), result.passed


def _comparable(stored: dict[str, Any]) -> dict[str, Any]:
    """The stored result's verdicts: its entries, statistics and success (its meta holds
    the batch's load time and markers, and the slices' count), without the expectations'
    ids (GE gives the suite fresh ones on every run, sliced or not)."""
    results = [
        {**r, "expectation_config": {k: v for k, v in r["expectation_config"].items() if k != "id"}}
        for r in stored["results"]
    ]
    return {"results": results, **{k: stored[k] for k in ("statistics", "success", "suite_name")}}


@pytest.mark.parametrize("case", list(CASES))
def test_the_sliced_raw_gate_gives_the_whole_profiles_result(
    storage_root: StorageRoot, tmp_path: Path, case: str
) -> None:
    build, history, passes = CASES[case]
    spec = czrk(tmp_path)
    _history(storage_root, history)
    prof = build()
    entry, stored, passed = _gate(storage_root, spec, prof, WHOLE)
    assert stored["meta"].get("datacloud_slices") is None  # one frame: GE's result as it is
    assert passed is passes
    assert entry["evaluated"] == len(stored["results"]) == 11
    for size in SIZES:
        got_entry, got_stored, got_passed = _gate(storage_root, spec, prof, size)
        assert got_entry == entry, size
        assert _comparable(got_stored) == _comparable(stored), size
        assert got_passed is passed, size
        slices = -(-prof.num_rows // size)
        assert got_stored["meta"].get("datacloud_slices") == (slices if slices > 1 else None)
    texts = [p.read_text(encoding="utf-8") for p in storage_root.quality().rglob("*.json")]
    texts += [p.read_text(encoding="utf-8") for p in storage_root.quality().rglob("*.html")]
    assert texts and not any(ID_LIKE.search(t) for t in texts)


def test_the_row_count_is_judged_on_the_whole_table_not_a_slice(
    storage_root: StorageRoot, tmp_path: Path
) -> None:
    """12 rows against a median of 3 (band 2..9): every slice of 3 rows is inside the band,
    the table is not; the entry names the table's 12 rows."""
    spec = czrk(tmp_path)
    _history(storage_root, 3)
    entry, stored, passed = _gate(storage_root, spec, profile(), 3)
    assert not passed
    (failed,) = entry["failed_expectations"]
    assert failed["check"] == "volume" and "12" in failed["observed"]
    row_count = "expect_table_row_count_to_be_between"
    (rows,) = [r for r in stored["results"] if r["expectation_config"]["type"] == row_count]
    assert rows["result"] == {"observed_value": 12} and rows["success"] is False


def test_table_level_expectations_are_added_up_only_when_asked(storage_root: StorageRoot) -> None:
    """The curated gate's slices keep refusing a table-level expectation (its suites have
    none); the raw gate asks for them."""
    suite = {
        "name": "test_rows",
        "expectations": [
            {
                "type": "expect_table_row_count_to_be_between",
                "kwargs": {"min_value": 1, "max_value": 5},
                "meta": {"check": "volume"},
                "severity": "critical",
            },
            {
                "type": "expect_table_columns_to_match_set",
                "kwargs": {"column_set": ["v"], "exact_match": False},
                "meta": {"check": "required_columns"},
                "severity": "critical",
            },
        ],
    }
    cut = pa.table({"v": ["valid"] * 4})
    with pytest.raises(ValueError, match="cannot be added up"):
        run_suite_slices(storage_root, ("test", "rows"), suite, iter([cut, cut]), {}, DS)
    run = run_suite_slices(
        storage_root, ("test", "rows"), suite, iter([cut, cut]), {}, DS, table_level=True
    )
    assert [o.success for o in run.outcomes] == [False, True]  # 8 rows > 5; each slice 4
    other = pa.table({"w": ["valid"] * 4})
    with pytest.raises(RuntimeError, match="other columns"):
        run_suite_slices(
            storage_root, ("test", "rows"), suite, iter([cut, other]), {}, DS, table_level=True
        )

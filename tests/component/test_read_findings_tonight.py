"""``problems_night.read_findings`` reads tonight's findings only: a real Delta
``curated/consistency`` holding two nights, read with the ``business_date`` filter and only the
columns a problem takes, gives the same problems and covered sources as the whole-table read
then filter it replaced; an older table without ``finding_zh`` too."""

from __future__ import annotations

from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from datacloud import consistency, nightly, problems, problems_night
from datacloud.curation_night import read_state, write_state
from datacloud.delta import open_table, overwrite, read_loaded
from datacloud.paths import StorageRoot
from transforms.id_number import id_check_char

D1, D2, D3 = date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20)


def _id(n: int) -> str:
    first17 = f"3301061980010{n:04d}"
    return first17 + id_check_char(first17)


def _night(ds: date, rows: list[tuple[str, str, int]]) -> pa.Table:
    """Findings of night ``ds``: (finding, department, person) rows in ``consistency.SCHEMA``."""
    n = len(rows)
    return pa.table(
        {
            "finding": [f for f, _, _ in rows],
            "finding_zh": [f"{f}（中文）" for f, _, _ in rows],
            "department": [d for _, d, _ in rows],
            "authoritative_department": ["gongan"] * n,
            "field": ["name"] * n,
            "record_kinds": ["person,marriage"] * n,
            "id_number": [_id(p) for _, _, p in rows],
            "business_date": pa.array([ds] * n, pa.date32()),
        },
        schema=consistency.SCHEMA,
    )


def _whole_read(
    root: StorageRoot, depts: list[Any], ds: date
) -> tuple[pa.Table, set[tuple[str, str]]]:
    """``read_findings`` as it was: every column of every night read, then filtered."""
    dt = open_table(root.curated(consistency.TABLE))
    rows = read_loaded(dt) if dt is not None else None
    if rows is not None and rows.num_rows:
        rows = rows.filter(pc.equal(pc.cast(rows["business_date"], pa.date32()), ds))
    state = read_state(root) or {}
    compared = (rows is not None and rows.num_rows > 0) or state.get("ds") == ds.isoformat()
    if not compared:
        return problems.OBSERVED_SCHEMA.empty_table(), set()
    covered = {(d.code, problems.FINDING_TABLE) for d in depts}
    if rows is None or not rows.num_rows:
        return problems.OBSERVED_SCHEMA.empty_table(), covered
    ids = pc.cast(rows["id_number"], pa.string())
    n = rows.num_rows
    zh = rows["finding_zh"] if "finding_zh" in rows.column_names else rows["finding"]
    observed = pa.table(
        {
            "kind": ["finding"] * n,
            "dept": pc.cast(rows["department"], pa.string()),
            "table": [problems.FINDING_TABLE] * n,
            "source_key": ids,
            "field": pc.cast(rows["field"], pa.string()),
            "rule": pc.cast(rows["finding"], pa.string()),
            "message_zh": pc.cast(zh, pa.string()),
            "person_key": ids,
        },
        schema=problems.OBSERVED_SCHEMA,
    )
    return observed, covered


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The arguments of every ``DeltaTable.to_pyarrow_table`` call."""
    calls: list[dict[str, Any]] = []
    real = DeltaTable.to_pyarrow_table

    def spy(self: DeltaTable, *args: Any, **kwargs: Any) -> pa.Table:
        calls.append(kwargs)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(DeltaTable, "to_pyarrow_table", spy)
    return calls


@pytest.mark.parametrize("legacy", [False, True], ids=["schema", "without_finding_zh"])
def test_only_tonights_findings_come_back_as_the_whole_read_gave_them(
    storage_root: StorageRoot, reads: list[dict[str, Any]], legacy: bool
) -> None:
    depts = [nightly.department(c) for c in ("gongan", "bdc")]
    first = _night(D1, [("name_conflict", "bdc", 1), ("sex_conflict", "gongan", 2)])
    second = _night(
        D2,
        [
            ("name_conflict", "bdc", 1),  # still there tonight
            ("name_conflict", "minzheng", 3),
            ("birth_conflict", "gjj", 4),
            ("sex_conflict", "bdc", 5),
        ],
    )
    both = pa.concat_tables([first, second])
    if legacy:
        both = both.drop_columns(["finding_zh"])
    overwrite(storage_root.curated(consistency.TABLE), both, consistency.SORT_BY, "r", "x")

    for ds, expected in ((D1, 2), (D2, 4)):
        reads.clear()
        got, covered = problems_night.read_findings(storage_root, depts, ds)
        assert len(reads) == 1  # one read, of tonight's rows and a problem's columns
        assert reads[0]["filters"] is not None
        assert set(reads[0]["columns"]) <= set(problems_night.FINDING_COLUMNS)
        assert "record_kinds" not in reads[0]["columns"]
        old, old_covered = _whole_read(storage_root, depts, ds)
        assert got.schema == old.schema == problems.OBSERVED_SCHEMA
        assert got.num_rows == expected
        assert got.to_pylist() == old.to_pylist()  # values and order
        assert covered == old_covered == {(d.code, problems.FINDING_TABLE) for d in depts}
    tonight = problems_night.read_findings(storage_root, depts, D2)[0]
    assert set(tonight["source_key"].to_pylist()) == {_id(1), _id(3), _id(4), _id(5)}
    zh = set(tonight["message_zh"].to_pylist())
    assert zh == (
        {"name_conflict", "birth_conflict", "sex_conflict"}
        if legacy
        else {"name_conflict（中文）", "birth_conflict（中文）", "sex_conflict（中文）"}
    )

    # a night without findings: nothing compared, unless the curation state says it ran
    assert problems_night.read_findings(storage_root, depts, D3) == _whole_read(
        storage_root, depts, D3
    )
    assert problems_night.read_findings(storage_root, depts, D3)[1] == set()
    write_state(storage_root, {"ds": D3.isoformat()})
    got, covered = problems_night.read_findings(storage_root, depts, D3)
    assert (got.num_rows, covered) == (0, _whole_read(storage_root, depts, D3)[1])
    assert covered == {(d.code, problems.FINDING_TABLE) for d in depts}


def test_no_consistency_table_reads_nothing(storage_root: StorageRoot) -> None:
    depts = [nightly.department(c) for c in ("gongan", "bdc")]
    assert problems_night.read_findings(storage_root, depts, D1) == _whole_read(
        storage_root, depts, D1
    )

"""Disputes for lookups (datacloud/problem_disputes.py) over a real problem table (Delta, written
by datacloud.problem_store): a person's open and disputed findings, the index rebuilt only when
the table's version changes."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from problem_rows import ID_A, ID_B, problem, sample_rows, table

from datacloud.paths import StorageRoot
from datacloud.problem_disputes import DisputeIndex, disputes_for, flag
from datacloud.problem_store import write_problems


def _rows() -> list[dict]:
    return [
        *sample_rows(),
        problem(
            "gongan",
            "consistency",
            ID_A,
            "address_conflict",
            kind="finding",
            field="address,name",
            person_key=ID_A,
            first_seen=date(2026, 12, 1),
        ),
        problem(
            "gongan",
            "consistency",
            ID_A,
            "old_conflict",
            kind="finding",
            field="marital_status",
            person_key=ID_A,
            status="fixed",
            fixed_on=date(2026, 12, 3),
        ),
    ]


def test_open_and_disputed_findings_of_a_person(tmp_path: Path) -> None:
    root = StorageRoot(tmp_path)
    rows = _rows()
    write_problems(root, table(rows), date(2026, 12, 4), "n1")
    index = DisputeIndex(root, check_seconds=0)
    found = index.disputes_for(ID_A)
    # the rejected row about ID_A and the fixed finding do not count
    assert [(d.field, d.status, d.table, d.since) for d in found] == [
        ("address", "open", "consistency", date(2026, 12, 1)),
        ("name", "open", "consistency", date(2026, 12, 1)),
    ]
    assert [d.field for d in index.disputes_for(ID_B.lower())] == ["name"]  # the finding in gjj
    assert index.disputes_for("110101199003077777") == []
    assert flag([]) == {"disputed": False, "disputes": []}
    shown = flag(found)
    assert shown["disputed"] is True and ID_A not in str(shown)
    assert shown["disputes"][0] == {
        "field": "address",
        "since": "2026-12-01",
        "status": "open",
        "table": "consistency",
    }

    # the next night: gongan disputes the address finding
    for r in rows:
        if r["rule"] == "address_conflict":
            r.update(response="disputed", disputed_since=date(2026, 12, 5))
    assert index.builds == 1
    index.disputes_for(ID_A)
    assert index.builds == 1  # same version: not rebuilt
    write_problems(root, table(rows), date(2026, 12, 5), "n2")
    found = index.disputes_for(ID_A)
    assert index.builds == 2
    assert next((d.field, d.status, d.since) for d in found) == (
        "address",
        "disputed",
        date(2026, 12, 5),
    )
    assert disputes_for(root, ID_A) == found  # the module's index of the root


def test_no_problem_table_yet(tmp_path: Path) -> None:
    assert disputes_for(StorageRoot(tmp_path), ID_A) == []

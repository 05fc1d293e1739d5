"""The feedback workbook written a batch of problems at a time (openpyxl's write-only sheets,
``problem_workbook.write_workbook``): the same saved parts, byte for byte, as the workbook
built in memory (``build_workbook``), and Python memory that does not grow with the number
of problems listed."""

from __future__ import annotations

import io
import re
import tracemalloc
import zipfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import workbook_in_memory

from datacloud import problem_store, problem_workbook
from datacloud.problems import problem_id

DS = date(2026, 11, 3)
_WHEN = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\+00:00|Z)?")


def _table(n: int) -> pa.Table:
    rows: list[dict[str, Any]] = []
    for i in range(n):
        dept = "gongan" if i % 7 else "bdc"
        table = ("czrk", "hjbd", "=cmd")[i % 3]
        key = f"RK{i:08d}" if i % 4 else f"110101199003077{i % 10}1X 13800138000"
        rule = ("ID_CHECK_DIGIT", "DATE_IMPOSSIBLE")[i % 2]
        rows.append(
            {
                "problem_id": problem_id(dept, table, key, rule),
                "kind": "rejected_row",
                "dept": dept,
                "table": table,
                "source_key": key,
                "field": "id_number",
                "rule": rule,
                "message_zh": "号码 13800138000 有误" if i % 5 == 0 else "=SUM(A1)",
                "person_key": "11010119900307771X" if i % 4 == 0 else None,
                "first_seen": DS - timedelta(days=i % 30),
                "last_seen": DS,
                "status": ("open", "reopened", "fixed")[i % 3 if i % 11 else 2],
                "fixed_on": None,
                "reopened_on": None,
                "due": DS + timedelta(days=i % 9 - 4),
                "overdue": False,
                "response": None,
                "response_at": None,
                "response_by": None,
                "response_note": None,
                "fix_failed": False,
                "disputed_since": None,
            }
        )
    return pa.Table.from_pylist(rows, schema=problem_store.SCHEMA)


def _parts(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {n: _WHEN.sub(b"T", z.read(n)) for n in z.namelist()}


@pytest.mark.parametrize("dept", ["gongan", "bdc", "nobody"])
def test_the_streamed_workbook_is_the_one_built_in_memory(tmp_path: Path, dept: str) -> None:
    table = _table(500)
    built = io.BytesIO()
    workbook_in_memory.build_workbook(table, dept).save(built)
    path = tmp_path / "problems.xlsx"
    listed = problem_workbook.write_workbook(path, table, dept)
    assert listed == len(workbook_in_memory.open_problems(table, dept))
    new, old = _parts(path.read_bytes()), _parts(built.getvalue())
    assert new.keys() == old.keys()
    assert {n for n in new if new[n] != old[n]} == set()


def _peak(tmp_path: Path, n: int) -> int:
    table = _table(n)
    tracemalloc.start()
    try:
        problem_workbook.write_workbook(tmp_path / f"{n}.xlsx", table, "gongan")
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_workbook_holds_a_batch_of_problems_not_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches of 500 problems: 4 times the problems, about the same Python objects at the
    peak (before: every problem's cells in openpyxl's in-memory sheets until saved)."""
    monkeypatch.setattr(problem_workbook, "WRITE_BATCH_ROWS", 500, raising=False)
    small, large = _peak(tmp_path, 3_000), _peak(tmp_path, 12_000)
    assert large < 1.6 * small, (small, large)

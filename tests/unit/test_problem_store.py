"""The problem table's store: a real Delta table under a temporary root."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa

from datacloud import problem_store
from datacloud.paths import StorageRoot


def _row(pid: str, dept: str = "bdc", **kw: object) -> dict[str, object]:
    row: dict[str, object] = {f.name: None for f in problem_store.SCHEMA}
    row.update(
        problem_id=pid,
        kind="rejected_row",
        dept=dept,
        table="bdc_qlr",
        source_key="1001",
        rule="ID_CHECKSUM",
        first_seen=date(2026, 11, 20),
        last_seen=date(2026, 11, 20),
        status="open",
        due=date(2026, 11, 27),
        overdue=False,
        fix_failed=False,
    )
    row.update(kw)
    return row


def test_empty_before_the_first_night(tmp_path: Path) -> None:
    root = StorageRoot(tmp_path)
    rows = problem_store.read_problems(root)
    assert rows.num_rows == 0 and rows.schema == problem_store.SCHEMA
    assert problem_store.version(root) is None and problem_store.latest_night(root) is None


def test_write_read_as_of_and_same_content_same_version(tmp_path: Path) -> None:
    root = StorageRoot(tmp_path)
    first = pa.Table.from_pylist(
        [
            _row("a" * 16),
            _row(
                "b" * 16,
                dept="gjj",
                response="disputed",
                response_at=datetime(2026, 11, 21, 2, tzinfo=UTC),
            ),
        ],
        schema=problem_store.SCHEMA,
    )
    v0 = problem_store.write_problems(root, first, date(2026, 11, 20), "night-1")
    assert problem_store.write_problems(root, first, date(2026, 11, 20), "rerun") == v0
    second = first.slice(0, 1)
    v1 = problem_store.write_problems(root, second, date(2026, 11, 21), "night-2")
    assert v1 == v0 + 1
    assert problem_store.latest_night(root) == date(2026, 11, 21)
    assert problem_store.read_problems(root).num_rows == 1
    earlier = problem_store.read_problems(root, as_of=date(2026, 11, 20))
    assert earlier.num_rows == 2 and earlier.schema == problem_store.SCHEMA
    assert problem_store.read_before(root, date(2026, 11, 21)).equals(earlier)
    assert problem_store.read_problems(root, "gjj", as_of=date(2026, 11, 20)).num_rows == 1
    assert problem_store.read_problems(root, "gjj").num_rows == 0
    assert problem_store.read_problems(root, as_of=date(2026, 11, 19)).num_rows == 0


def test_every_tracked_night_has_its_version(tmp_path: Path) -> None:
    """A new night commits even with unchanged rows (so the night it shows is known); a rerun
    of that night does not."""
    root = StorageRoot(tmp_path)
    rows = pa.Table.from_pylist([_row("c" * 16)], schema=problem_store.SCHEMA)
    v0 = problem_store.write_problems(root, rows, date(2026, 11, 20), "night-1")
    v1 = problem_store.write_problems(root, rows, date(2026, 11, 21), "night-2")
    assert v1 == v0 + 1 and problem_store.latest_night(root) == date(2026, 11, 21)
    assert problem_store.write_problems(root, rows, date(2026, 11, 21), "rerun") == v1
    assert problem_store.night_as_of(root, date(2026, 11, 20)) == date(2026, 11, 20)
    assert problem_store.night_as_of(root, date(2026, 11, 25)) == date(2026, 11, 21)
    assert problem_store.night_as_of(root, date(2026, 11, 19)) is None

"""Onboarding an incremental table: its first night is a full load (the source's history), the
nights after it read the business day's window only; a column the query selects that no
mapping uses is reported in the run state (``unmapped_columns``).

Real parts: a throwaway PostgreSQL database (created and dropped here) with several days of
history, the nightly steps ``extract`` and ``stage`` on real Delta tables.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import pg_database, rk_incremental_spec, use_department_folders

from datacloud import nightly
from datacloud.delta import read_table
from datacloud.paths import StorageRoot
from transforms.id_number import id_check_char

pytestmark = pytest.mark.integration

FIRST, SECOND = date(2026, 11, 20), date(2026, 11, 21)


def _id(n: int) -> str:
    first17 = f"33010619800101{n:03d}"
    return first17 + id_check_char(first17)


@pytest.fixture
def source() -> Iterator[str]:
    with pg_database("dc_first") as url:
        yield url


@pytest.fixture
def department(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, storage_root: StorageRoot):
    """A one-table department 'rk', incremental on gxsj, in temporary YAML and SQL folders."""
    query = "SELECT id, gmsfhm, xm, bz, gxsj FROM ryxx\n"
    use_department_folders(tmp_path, monkeypatch, rk_incremental_spec(), {"ryxx": query})
    return storage_root


def _insert(url: str, rows: list[tuple[int, datetime | None]]) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.exec_driver_sql(
            "CREATE TABLE IF NOT EXISTS ryxx "
            "(id INTEGER PRIMARY KEY, gmsfhm VARCHAR(32), xm VARCHAR(64), bz TEXT, "
            "gxsj TIMESTAMP(3))"
        )
        for pk, when in rows:
            c.execute(
                sa.text("INSERT INTO ryxx VALUES (:i, :g, '某某', '备注', :t)"),
                {"i": pk, "g": _id(pk), "t": when},
            )
    engine.dispose()


def _night(root: StorageRoot, url: str, ds: date) -> dict:
    dept = nightly.department("rk")
    nightly.extract(root, dept, "ryxx", ds, url)
    return nightly.stage(root, dept, "ryxx", ds, f"run-{ds}")


def test_the_first_night_loads_the_history_and_the_second_only_its_window(
    source: str, department: StorageRoot
) -> None:
    # ten days of history before the first night, two rows a day, and one NULL cursor
    history = [
        (i, datetime(2026, 11, 11, 9) + timedelta(days=i // 2, hours=i % 2)) for i in range(20)
    ]
    _insert(source, [*history, (20, None)])
    first = _night(department, source, FIRST)
    assert first["rows_in"] == 21  # all rows, not only 20 November's two
    state = json.loads(
        (department.run_state("rk", FIRST) / "ryxx.json").read_text(encoding="utf-8")
    )
    assert state["initial_load"] is True
    assert state["unmapped_columns"] == ["bz"]  # selected, mapped by nothing: reported

    # the second night: two rows of its day; the window (and the NULL cursor row) only
    _insert(source, [(21, datetime(2026, 11, 21, 8)), (22, datetime(2026, 11, 21, 20))])
    second = _night(department, source, SECOND)
    assert second["rows_in"] == 3  # 21, 22 and the NULL-cursor row 20
    state = json.loads(
        (department.run_state("rk", SECOND) / "ryxx.json").read_text(encoding="utf-8")
    )
    assert state.get("initial_load") is False
    staged = read_table(department.staged("rk", "ryxx"))
    assert sorted(int(k) for k in staged["_source_pk"].to_pylist()) == list(range(23))


def test_a_first_night_stopped_by_its_gate_is_still_a_full_load_next_time(
    source: str, department: StorageRoot
) -> None:
    """No staged table yet: every night is the first, until one is published."""
    _insert(source, [(i, datetime(2026, 11, 10 + i, 9)) for i in range(5)])
    root = department
    dept = nightly.department("rk")
    out = nightly.extract(root, dept, "ryxx", FIRST, source)  # extracted, never staged
    assert out["rows"] == 5
    again = _night(root, source, SECOND)
    assert again["rows_in"] == 5

"""The tracking night of an incremental table holds only the source keys it asks about.

gongan.czrk switched to incremental on gxsj (a real SQLite source, real extract, stage and
Delta problem table), two nights. Night 1 rejects RK2, RK3 and RK4 (a wrong check digit).
Night 2 reads RK1 (updated, fine), RK2 (corrected at the source), RK4 (updated, still wrong)
and RK6 (new, wrong); RK3 is not read again. So: RK2's problem is fixed, RK3's stays open
(not looked at), RK4's stays open and seen tonight, RK6's is new. The problem table equals
what the whole-partition computation of the keys read (every source key of the night, the
way it was done before) gives, and ``keys_read`` holds only the keys of problems.
"""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
from helpers import use_incremental_gongan

from datacloud import nightly, problem_store, problems, problems_night
from datacloud.landing import read_partition, replace_partition
from datacloud.normalise import source_pk
from datacloud.paths import SQL_DIR, StorageRoot
from datacloud.working_days import WorkingCalendar
from transforms.id_number import id_check_char

D1, D2 = date(2026, 11, 18), date(2026, 11, 19)
DDL = (SQL_DIR / "sample" / "gongan.sql").read_text(encoding="utf-8")


def _id(first17: str) -> str:
    return first17 + id_check_char(first17)


def _broken(id_number: str) -> str:
    return id_number[:-1] + ("0" if id_number[-1] != "0" else "1")


IDS = {n: _id(f"3301061980010100{n}") for n in range(1, 7)}


def _row(pk: str, id_number: str, name: str, when: str) -> tuple:
    return (pk, id_number, name, "1", "01", id_number[6:14], "杭州市", None, when)


def _source(db: Path, rows: list[tuple]) -> None:
    con = sqlite3.connect(db)
    con.executescript("DROP TABLE IF EXISTS czrk;\n" + DDL)
    con.executemany(
        "INSERT INTO czrk (rkbh, gmsfhm, xm, xb, mz, csrq, hjdz, lxdh, gxsj)"
        " VALUES (?,?,?,?,?,?,?,?,?)",
        rows,
    )
    con.commit()
    con.close()


def _all_keys(root: StorageRoot, ds: date) -> set[str]:
    """Every source key of the night's raw partition, as ``track_night`` computed it before."""
    spec = nightly.department("gongan").table("czrk")
    raw = read_partition(root.raw_partition("gongan", "czrk", ds))
    return {str(k) for k in source_pk(raw.select(spec.primary_key), spec).to_pylist()}


def _reference(root: StorageRoot, ds: date, calendar: WorkingCalendar) -> pa.Table:
    """Night ``ds``'s problem table with keys_read = every source key read tonight."""
    depts = [nightly.department("gongan")]
    rejected = problems_night.read_rejected(root, depts, ds)
    findings, compared = problems_night.read_findings(root, depts, ds)
    days = {d.code: d.problem_due_working_days for d in depts}
    table = problems.track(
        problem_store.read_before(root, ds),
        pa.concat_tables([rejected.observed, findings]),
        rejected.covered | compared,
        problems.latest_responses(problems_night.read_responses(root, depts), ds),
        ds,
        lambda dept, day: calendar.add(day, days.get(dept, 5)),
        {source: _all_keys(root, ds) for source in rejected.incremental},
    )
    return problem_store.conform(table).sort_by([(k, "ascending") for k in problem_store.SORT_BY])


@pytest.fixture
def incremental(tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_incremental_gongan(tmp_path, repo, monkeypatch)
    monkeypatch.setenv("DATACLOUD_HOLIDAYS", str(tmp_path / "no-holidays.yaml"))
    assert nightly.department("gongan").table("czrk").mode == "incremental"


def test_incremental_night_keeps_unread_rows_open_with_only_the_problems_keys(
    storage_root: StorageRoot, tmp_path: Path, incremental: None
) -> None:
    db = tmp_path / "gongan.db"
    url = f"sqlite:///{db}"
    calendar = WorkingCalendar.load()
    first = [
        _row("RK1", IDS[1], "张一", "2026-11-18 08:00:00"),
        _row("RK2", _broken(IDS[2]), "张二", "2026-11-18 08:00:00"),
        _row("RK3", _broken(IDS[3]), "张三", "2026-11-18 08:00:00"),
        _row("RK4", _broken(IDS[4]), "张四", "2026-11-18 08:00:00"),
        _row("RK5", IDS[5], "张五", "2026-11-18 08:00:00"),
    ]
    second = [
        _row("RK1", IDS[1], "张壹", "2026-11-19 09:00:00"),  # read again, fine
        _row("RK2", IDS[2], "张二", "2026-11-19 09:00:00"),  # (a) corrected at the source
        first[2],  # (b) RK3 not changed: not read tonight
        _row("RK4", _broken(IDS[4]), "张肆", "2026-11-19 09:00:00"),  # (c) read, still wrong
        first[4],
        _row("RK6", _broken(IDS[6]), "张六", "2026-11-19 09:00:00"),  # new tonight, wrong
    ]
    dept = nightly.department("gongan")
    for ds, rows in ((D1, first), (D2, second)):
        _source(db, rows)
        nightly.extract(storage_root, dept, "czrk", ds, url)
        nightly.stage(storage_root, dept, "czrk", ds, f"night-{ds}")
        problems_night.track_night(storage_root, [dept], ds, f"track-{ds}", calendar)

    assert _all_keys(storage_root, D2) == {"RK1", "RK2", "RK4", "RK6"}  # the window read
    table = problem_store.read_problems(storage_root)
    assert table.to_pylist() == _reference(storage_root, D2, calendar).to_pylist()
    by_key = {r["source_key"]: r for r in table.to_pylist()}
    assert set(by_key) == {"RK2", "RK3", "RK4", "RK6"}
    assert (by_key["RK2"]["status"], by_key["RK2"]["fixed_on"]) == ("fixed", D2)
    assert (by_key["RK3"]["status"], by_key["RK3"]["last_seen"]) == ("open", D1)
    assert (by_key["RK4"]["status"], by_key["RK4"]["last_seen"]) == ("open", D2)
    assert (by_key["RK4"]["first_seen"], by_key["RK6"]["first_seen"]) == (D1, D2)

    # what the night holds: only the keys of problems (RK1, read again, is nobody's problem)
    previous = problem_store.read_before(storage_root, D2)
    observed = problems_night.read_rejected(storage_root, [dept], D2).observed
    wanted = problems_night.wanted_keys(previous, observed)
    assert wanted[("gongan", "czrk")] == {"RK2", "RK3", "RK4", "RK6"}
    read = problems_night.keys_read(storage_root, [dept], D2, {("gongan", "czrk")}, wanted)
    assert read == {("gongan", "czrk"): {"RK2", "RK4", "RK6"}}


def test_keys_read_streams_a_composite_key_the_way_source_pk_forms_it(
    storage_root: StorageRoot, incremental: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A composite key (text, integer, nulls) over several files and batches: the hits are
    exactly the wanted keys among the whole partition's ``source_pk`` strings."""
    gongan = nightly.department("gongan")
    spec = gongan.table("czrk").model_copy(update={"primary_key": ["rkbh", "seq"]})
    dept = gongan.model_copy(update={"tables": [spec]})
    raw = pa.table(
        {
            "rkbh": ["A", "A", None, "B", "C", "丙", "D", None],
            "seq": pa.array([1, 2, 3, None, 10, 7, 0, None], pa.int64()),
            "xm": ["x"] * 8,
        }
    )
    partition = storage_root.raw_partition("gongan", "czrk", D1)
    with replace_partition(partition) as writer:
        writer.rows_per_file = 3
        for batch in raw.to_batches(max_chunksize=3):
            writer.write(batch)
    assert len(list(Path(str(partition)).glob("*.parquet"))) == 3
    monkeypatch.setattr(problems_night, "KEY_BATCH_ROWS", 2)

    whole = read_partition(partition)
    every = {str(k) for k in source_pk(whole.select(spec.primary_key), spec).to_pylist()}
    assert every == {"A|1", "A|2", "|3", "B|", "C|10", "丙|7", "D|0", "|"}
    wanted = {"A|2", "|3", "B|", "丙|7", "|", "C|1", "E|5", "A"}
    got = problems_night.keys_read(
        storage_root, [dept], D1, {("gongan", "czrk")}, {("gongan", "czrk"): wanted}
    )
    assert got == {("gongan", "czrk"): every & wanted}
    assert problems_night.keys_read(storage_root, [dept], D1, {("gongan", "czrk")}, {}) == {
        ("gongan", "czrk"): set()
    }

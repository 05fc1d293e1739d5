"""The problem-data loop over five real sample nights across the 2026 National Day week.

The sample departments (real SQLite sources, real Delta tables, the real curation and
consistency findings) load five nights: Tuesday 29 September, Wednesday 30 September, then
Thursday 8, Monday 12 and Tuesday 13 October (1-7 October are holidays; Saturday 10 October is
a make-up working day). Between the nights the departments act at their source and write
responses into the responses log as the contract has them:

- gongan deletes one rejected register row (fixed at source, and answers 已整改), then puts it
  back before 8 October (reopened, with a new deadline);
- gongan answers 已整改 for another rejected row without changing it (fix_failed);
- bdc disputes one cross-department finding (有异议: flagged, never overdue);
- everything else is ignored: due 12 October (five working days after 29 September, counting
  the make-up Saturday), overdue on the 13th.

Then: IDs stable, closures and reopenings on the right nights, a rerun of the last night makes
no Delta version, the reports agree with the problem table, the overview ranks by overdue
problems, and no page shows a full ID number.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow.compute as pc
import pytest
from helpers import full_id_numbers

from datacloud import nightly, problem_store, problems
from datacloud.curation_night import curate_all
from datacloud.demo import departments
from datacloud.paths import StorageRoot
from datacloud.problems_night import track_night
from datacloud.sample import generate, write_sqlite

N1, N2, N3, N4, N5 = (
    date(2026, 9, 29),
    date(2026, 9, 30),
    date(2026, 10, 8),
    date(2026, 10, 12),
    date(2026, 10, 13),
)
PERSONS = 400


def _night(root: StorageRoot, ds: date) -> dict[str, Any]:
    depts = departments()
    for dept in depts:
        for table in dept.tables:
            url = f"sqlite:///{root.samples() / (dept.code + '.db')}"
            nightly.extract(root, dept, table.name, ds, url)
            nightly.stage(root, dept, table.name, ds, f"night-{ds}")
    curate_all(root, depts, ds, f"curation-{ds}")
    tracked = track_night(root, depts, ds, f"curation-{ds}")
    nightly.refresh_reports(root, depts, ds)
    return tracked


def _respond(root: StorageRoot, row: dict[str, Any], response: str, day: date, note: str) -> None:
    """A response record as PROBLEMS-RESPONSES appends it (10:00 Shanghai on ``day``)."""
    at = datetime(day.year, day.month, day.day, 2, tzinfo=UTC)
    record = {
        "problem_id": row["problem_id"],
        "dept": row["dept"],
        "response": response,
        "note": note,
        "by": "测试员",
        "at": at.isoformat().replace("+00:00", "Z"),
        "channel": "inbox",
        "file_sha256": "0" * 64,
    }
    path = root.problem_responses(row["dept"])
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, ensure_ascii=False) + "\n")


def _rows(root: StorageRoot, **as_of: date) -> dict[str, dict[str, Any]]:
    return {r["problem_id"]: r for r in problem_store.read_problems(root, **as_of).to_pylist()}


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("problems") / "root"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATACLOUD_ROOT", str(folder))
        mp.setenv("DATACLOUD_HOLIDAYS", str(folder / "no-holidays.yaml"))  # library years only
        root = StorageRoot.from_env()
        write_sqlite(generate(PERSONS, 20261120, N1), root.samples())
        out: dict[str, Any] = {"root": root, "tracked": {}}
        out["tracked"][N1] = _night(root, N1)
        first = _rows(root)
        rejected = sorted(
            (
                r
                for r in first.values()
                if r["dept"] == "gongan" and r["table"] == "czrk" and r["kind"] == "rejected_row"
            ),
            key=lambda r: r["problem_id"],
        )
        findings = sorted(
            (r for r in first.values() if r["dept"] == "bdc" and r["kind"] == "finding"),
            key=lambda r: r["problem_id"],
        )
        assert len(rejected) >= 2 and findings, "the sample must have problems to act on"
        deleted, claimed, disputed = rejected[0], rejected[1], findings[0]
        db = sqlite3.connect(root.samples() / "gongan.db")
        kept = db.execute("SELECT * FROM czrk WHERE rkbh = ?", (deleted["source_key"],)).fetchall()
        columns = [c[1] for c in db.execute("PRAGMA table_info(czrk)")]
        assert len(kept) == 1
        db.execute("DELETE FROM czrk WHERE rkbh = ?", (deleted["source_key"],))
        db.commit()
        _respond(root, deleted, "fixed", N2, "已在源系统更正")
        _respond(root, claimed, "fixed", N2, "已更正")  # but not changed at the source
        _respond(root, disputed, "disputed", N2, "该人员为外省户籍，号码无误")
        out["tracked"][N2] = _night(root, N2)
        marks = ",".join("?" * len(columns))
        db.execute(f"INSERT INTO czrk ({','.join(columns)}) VALUES ({marks})", kept[0])
        db.commit()
        db.close()
        for ds in (N3, N4, N5):
            out["tracked"][ds] = _night(root, ds)
        out.update(first=first, deleted=deleted, claimed=claimed, disputed=disputed)
        yield out


def test_ids_stay_the_same_while_problems_persist(nights: dict[str, Any]) -> None:
    root, first = nights["root"], nights["first"]
    for ds in (N2, N3, N4, N5):
        rows = _rows(root, as_of=ds)
        persisting = {p for p, r in rows.items() if r["first_seen"] == N1}
        assert persisting <= set(first)
        still = {p for p, r in rows.items() if r["last_seen"] == ds and r["first_seen"] == N1}
        assert still, ds  # the ignored problems of the first night keep their IDs
    last = _rows(root)
    for pid, row in last.items():
        assert pid == problems.problem_id(row["dept"], row["table"], row["source_key"], row["rule"])
    ignored = [r for p, r in last.items() if p in first and r["status"] == "open"]
    assert ignored and all(r["last_seen"] == N5 for r in ignored)


def test_closures_and_reopenings_on_the_right_nights(nights: dict[str, Any]) -> None:
    root = nights["root"]
    deleted, claimed, disputed = nights["deleted"], nights["claimed"], nights["disputed"]
    n2 = _rows(root, as_of=N2)
    gone = n2[deleted["problem_id"]]
    assert gone["status"] == "fixed" and gone["fixed_on"] == N2 and not gone["fix_failed"]
    assert gone["response"] == "fixed" and gone["response_by"] == "测试员"
    failed = n2[claimed["problem_id"]]
    assert failed["status"] == "reopened" and failed["fix_failed"]
    assert failed["reopened_on"] == N2 and failed["due"] == claimed["due"]
    flagged = n2[disputed["problem_id"]]
    assert flagged["status"] == "open" and flagged["disputed_since"] == N2
    assert flagged["response_note"] == "该人员为外省户籍，号码无误"
    n3 = _rows(root, as_of=N3)
    back = n3[deleted["problem_id"]]
    assert back["status"] == "reopened" and back["reopened_on"] == N3
    assert back["first_seen"] == N1 and back["fixed_on"] == N2 and not back["fix_failed"]
    # a new deadline: Fri 9, Sat 10 (make-up working day), Mon 12, Tue 13, Wed 14 October
    assert back["due"] == date(2026, 10, 14)


def test_due_dates_across_the_national_day_week(nights: dict[str, Any]) -> None:
    root, first = nights["root"], nights["first"]
    # seen Tue 29 September: Wed 30, (1-7 October off), Thu 8, Fri 9, Sat 10 (worked), Mon 12
    assert {r["due"] for r in first.values()} == {date(2026, 10, 12)}
    n4, n5 = _rows(root, as_of=N4), _rows(root)
    ignored = [p for p, r in first.items() if n5[p]["status"] == "open" and not r["disputed_since"]]
    ignored = [p for p in ignored if n5[p]["disputed_since"] is None]
    assert ignored
    assert not any(n4[p]["overdue"] for p in ignored)  # due on the 12th: not yet overdue
    assert all(n5[p]["overdue"] for p in ignored)  # overdue on the 13th
    assert not n5[nights["disputed"]["problem_id"]]["overdue"]  # disputed: never overdue
    assert not n5[nights["deleted"]["problem_id"]]["overdue"]  # reopened: due the 14th
    assert n5[nights["claimed"]["problem_id"]]["overdue"]  # a failed fix keeps its deadline
    assert nights["tracked"][N5]["calendar"]["fallback_years"] == []


def test_a_rerun_changes_nothing(nights: dict[str, Any]) -> None:
    root = nights["root"]
    before = problem_store.version(root)
    assert nights["tracked"][N5]["version"] == before
    again = track_night(root, departments(), N5, "rerun")
    assert again["version"] == before and problem_store.version(root) == before
    older = track_night(root, departments(), N2, "rerun-of-an-older-night")
    assert older["skipped"] and problem_store.version(root) == before
    # one version per tracked night
    assert [nights["tracked"][d]["version"] for d in (N1, N2, N3, N4, N5)] == [0, 1, 2, 3, 4]


def test_reports_agree_with_the_problem_table(nights: dict[str, Any]) -> None:
    root = nights["root"]
    table = problem_store.read_problems(root)
    ranked = []
    for dept in departments():
        report = json.loads((root.report_dir(dept.code, N5) / "report.json").read_text("utf-8"))
        mine = table.filter(pc.equal(table["dept"], dept.code))
        figures = report["problems"]
        assert figures["tracked_night"] == N5.isoformat()
        assert {k: figures[k] for k in problems.summary(mine, N5)} == problems.summary(mine, N5)
        overdue = sorted(
            (r for r in mine.to_pylist() if r["overdue"]), key=lambda r: (r["due"], r["problem_id"])
        )
        assert [x["problem_id"] for x in figures["overdue_list"]] == [
            r["problem_id"] for r in overdue[:50]
        ]
        open_rows = [r for r in mine.to_pylist() if r["status"] in ("open", "reopened")]
        assert report["workbook_problems"] == len(open_rows)
        assert (root.report_dir(dept.code, N5) / "problems.xlsx").is_file()
        html = (root.report_dir(dept.code, N5) / "index.html").read_text("utf-8")
        assert 'id="problems"' in html and 'id="chart-problems"' in html
        assert not full_id_numbers(html) and not full_id_numbers(json.dumps(report))
        for x in figures["overdue_list"][:3]:
            assert x["problem_id"] in html
        if figures["overdue"]:
            assert any(t["kind"] == "problems_overdue" for t in report["todo"])
        ranked.append((-figures["overdue"], -figures["open"], dept.code))
        # the 30-night trend: a point on each tracked night, gaps elsewhere
        points = html.split('id="chart-problems"')[1].split("</svg>")[0]
        for ds in (N1, N2, N3, N4, N5):
            assert f"{ds.isoformat()} 未整改" in points
        assert f"{(N5 - timedelta(days=2)).isoformat()} 未整改" not in points
    bdc = json.loads((root.report_dir("bdc", N5) / "report.json").read_text("utf-8"))
    assert bdc["problems"]["disputed"] >= 1
    assert nights["disputed"]["problem_id"] in {
        x["problem_id"] for x in bdc["problems"]["disputed_list"]
    }
    overview = (root.root / "reports" / "index.html").read_text("utf-8")
    section = overview.split('id="problem-ranking"')[1]
    order = [c for _, _, c in sorted(ranked)]
    positions = [section.index(f'data-ranked-department="{c}"') for c in order]
    assert positions == sorted(positions)
    assert not full_id_numbers(overview)

"""The problem loop's pure part (``datacloud.problems.track``) over hand-built nights: stable
IDs, closures and reopenings on the right nights, responses applied once, fix_failed,
disputes, overdue, sources not looked at, incremental tables, reruns."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from datacloud import problems
from datacloud.config import Department
from datacloud.problem_store import SCHEMA
from datacloud.problems import OBSERVED_SCHEMA, Response, latest_responses, problem_id, track

D1, D2, D3, D4 = (date(2026, 11, 16) + timedelta(days=k) for k in range(4))  # Mon-Thu
ALL = {("bdc", "bdc_qlr"), ("bdc", "consistency"), ("gjj", "grzh")}


def due(_dept: str, day: date) -> date:
    return day + timedelta(days=2)  # a stand-in: working days are test_working_days'


def seen(*keys: str, table: str = "bdc_qlr", dept: str = "bdc") -> pa.Table:
    rows = [
        {
            "kind": "rejected_row",
            "dept": dept,
            "table": table,
            "source_key": k,
            "field": "owner_id_number",
            "rule": "ID_CHECK_DIGIT",
            "message_zh": "校验码不符",
            "person_key": None,
        }
        for k in keys
    ]
    return pa.Table.from_pylist(rows, schema=OBSERVED_SCHEMA)


def pid(key: str, table: str = "bdc_qlr", dept: str = "bdc") -> str:
    return problem_id(dept, table, key, "ID_CHECK_DIGIT")


def by_id(table: pa.Table) -> dict[str, dict[str, Any]]:
    return {r["problem_id"]: r for r in table.to_pylist()}


def response(key: str, what: str, day: date, hour: int = 10, **kw: Any) -> Response:
    at = datetime(day.year, day.month, day.day, hour, tzinfo=UTC) - timedelta(hours=8)
    return Response(pid(key), kw.pop("dept", "bdc"), what, kw.pop("note", ""), "张三", at, **kw)


def test_the_id_is_the_contracts_hash() -> None:
    expected = hashlib.sha256(b"bdc|bdc_qlr|1001|ID_CHECK_DIGIT").hexdigest()[:16]
    assert problem_id("bdc", "bdc_qlr", "1001", "ID_CHECK_DIGIT") == expected
    assert len(expected) == 16 and problem_id("bdc", "bdc_qlr", "1002", "ID_CHECK_DIGIT") != (
        expected
    )


def test_ids_stable_closed_when_gone_reopened_when_back() -> None:
    n1 = track(SCHEMA.empty_table(), seen("a", "b", "c"), ALL, {}, D1, due)
    assert n1.schema == SCHEMA and set(by_id(n1)) == {pid("a"), pid("b"), pid("c")}
    assert all(r["status"] == "open" and r["first_seen"] == D1 for r in by_id(n1).values())
    assert by_id(n1)[pid("a")]["due"] == D1 + timedelta(days=2)
    n2 = track(n1, seen("a", "b"), ALL, {}, D2, due)
    rows = by_id(n2)
    assert rows[pid("c")]["status"] == "fixed" and rows[pid("c")]["fixed_on"] == D2
    assert rows[pid("a")]["last_seen"] == D2 and rows[pid("a")]["first_seen"] == D1
    n3 = track(n2, seen("a", "c"), ALL, {}, D3, due)
    rows = by_id(n3)
    assert rows[pid("c")]["status"] == "reopened" and rows[pid("c")]["reopened_on"] == D3
    assert rows[pid("c")]["due"] == D3 + timedelta(days=2)  # a new deadline
    assert rows[pid("c")]["first_seen"] == D1 and not rows[pid("c")]["fix_failed"]
    assert rows[pid("b")]["status"] == "fixed" and rows[pid("b")]["fixed_on"] == D3
    # overdue: open and tonight after the due date
    n4 = track(n3, seen("a", "c"), ALL, {}, D4, due)
    rows = by_id(n4)
    assert rows[pid("a")]["overdue"] and not rows[pid("c")]["overdue"]
    assert not rows[pid("b")]["overdue"]
    assert problems.summary(n4, D4) | {"closure_rate": None} == {
        "total": 3,
        "open": 2,
        "new_tonight": 0,
        "fixed_tonight": 0,
        "reopened_tonight": 0,
        "overdue": 1,
        "disputed": 0,
        "fix_failed": 0,
        "cannot_fix": 0,
        "closure_rate": None,
        "median_age_days": 3,
    }


def test_a_fixed_response_still_wrong_the_next_night_is_reopened_as_fix_failed() -> None:
    n1 = track(SCHEMA.empty_table(), seen("a", "b"), ALL, {}, D1, due)
    said = latest_responses([response("a", "fixed", D2), response("b", "fixed", D2)], D2)
    n2 = track(n1, seen("a"), ALL, said, D2, due)  # a still there, b really fixed
    rows = by_id(n2)
    assert rows[pid("a")]["status"] == "reopened" and rows[pid("a")]["fix_failed"]
    assert rows[pid("a")]["reopened_on"] == D2 and rows[pid("a")]["due"] == D1 + timedelta(2)
    assert rows[pid("a")]["response"] == "fixed" and rows[pid("a")]["response_by"] == "张三"
    assert rows[pid("b")]["status"] == "fixed" and not rows[pid("b")]["fix_failed"]
    # the same response is not applied again: a stays reopened, still flagged
    n3 = track(n2, seen("a"), ALL, latest_responses([response("a", "fixed", D2)], D3), D3, due)
    assert by_id(n3)[pid("a")]["status"] == "reopened" and by_id(n3)[pid("a")]["fix_failed"]
    assert problems.summary(n3, D3)["fix_failed"] == 1


def test_a_dispute_records_who_when_why_and_is_not_overdue() -> None:
    n1 = track(SCHEMA.empty_table(), seen("a"), ALL, {}, D1, due)
    said = latest_responses([response("a", "disputed", D2, note="户籍信息有误")], D4)
    n4 = track(n1, seen("a"), ALL, said, D4, due)
    row = by_id(n4)[pid("a")]
    assert row["status"] == "open" and row["disputed_since"] == D2
    assert row["response_note"] == "户籍信息有误" and row["response_by"] == "张三"
    assert row["response_at"] == datetime(2026, 11, 17, 2, tzinfo=UTC)
    assert row["due"] < D4 and not row["overdue"]
    # the problem goes away: fixed, the dispute no longer stands
    n5 = track(n4, seen(), ALL, said, D4 + timedelta(1), due)
    assert by_id(n5)[pid("a")]["status"] == "fixed"
    assert by_id(n5)[pid("a")]["disputed_since"] is None


def test_responses_count_from_the_night_of_their_date_and_only_the_latest() -> None:
    late = response("a", "cannot_fix", D3, hour=0)  # Shanghai midnight of D3: not yet on D2
    early = response("a", "disputed", D2, hour=9, note="x")
    assert latest_responses([late, early], D2) == {pid("a"): early}
    assert latest_responses([early, late], D3) == {pid("a"): late}
    other = response("a", "fixed", D2, dept="gjj")  # another department's: not applied
    n1 = track(SCHEMA.empty_table(), seen("a"), ALL, {}, D1, due)
    n2 = track(n1, seen("a"), ALL, {pid("a"): other}, D2, due)
    assert by_id(n2)[pid("a")]["response"] is None


def test_a_source_not_looked_at_tonight_keeps_its_problems() -> None:
    n1 = track(SCHEMA.empty_table(), seen("a"), ALL, {}, D1, due)
    n2 = track(n1, seen(), ALL - {("bdc", "bdc_qlr")}, {}, D2, due)  # bdc_qlr did not load
    row = by_id(n2)[pid("a")]
    assert row["status"] == "open" and row["last_seen"] == D1
    # a fixed response waits for a night that looks at the source
    said = latest_responses([response("a", "fixed", D2)], D2)
    n2 = track(n1, seen(), ALL - {("bdc", "bdc_qlr")}, said, D2, due)
    assert by_id(n2)[pid("a")]["response"] is None
    n3 = track(n2, seen("a"), ALL, latest_responses([response("a", "fixed", D2)], D3), D3, due)
    assert by_id(n3)[pid("a")]["fix_failed"]


def test_an_incremental_table_closes_only_the_rows_it_read_again() -> None:
    n1 = track(SCHEMA.empty_table(), seen("a", "b"), ALL, {}, D1, due)
    n2 = track(n1, seen(), ALL, {}, D2, due, keys_read={("bdc", "bdc_qlr"): {"b"}})
    rows = by_id(n2)
    assert rows[pid("a")]["status"] == "open" and rows[pid("b")]["status"] == "fixed"


def test_two_fields_breaking_one_rule_in_one_row_are_one_problem() -> None:
    both = pa.concat_tables([seen("m1", table="hydj", dept="mz")] * 2)
    both = both.set_column(
        OBSERVED_SCHEMA.get_field_index("field"),
        "field",
        pa.array(["wife_id_number", "husband_id_number"], pa.string()),
    )
    n1 = track(SCHEMA.empty_table(), both, {("mz", "hydj")}, {}, D1, due)
    assert n1.num_rows == 1 and n1["field"][0].as_py() == "husband_id_number,wife_id_number"


def test_a_rerun_gives_the_same_table() -> None:
    n1 = track(SCHEMA.empty_table(), seen("a", "b", "c"), ALL, {}, D1, due)
    said = latest_responses([response("a", "fixed", D2), response("c", "disputed", D2)], D2)
    once = track(n1, seen("a", "c"), ALL, said, D2, due)
    assert track(n1, seen("a", "c"), ALL, said, D2, due).equals(once)


def test_a_department_has_five_working_days_unless_configured() -> None:
    spec = {
        "code": "rs",
        "name": "人社厅",
        "connection_id": "dept_rs",
        "tables": [
            {
                "name": "cbry",
                "kind": "person",
                "primary_key": ["id"],
                "columns": {
                    "id_number": {"source": "sfzh", "normalise": "id_number"},
                    "name": {"source": "xm", "normalise": "person_name"},
                },
            }
        ],
    }
    assert Department.model_validate(spec).problem_due_working_days == 5
    spec["problem_due_working_days"] = 10
    assert Department.model_validate(spec).problem_due_working_days == 10
    spec["problem_due_working_days"] = 0
    with pytest.raises(ValueError, match="problem_due_working_days"):
        Department.model_validate(spec)


def test_a_response_older_than_the_problem_is_not_applied() -> None:
    """A problem fixed and dropped from the table (KEEP_FIXED_DAYS) that comes back is new: the
    responses to its earlier life stay in the log but are not applied to it."""
    old = latest_responses([response("a", "disputed", D1 - timedelta(days=500))], D2)
    n2 = track(SCHEMA.empty_table(), seen("a"), ALL, old, D2, due)
    row = by_id(n2)[pid("a")]
    assert row["response"] is None and row["disputed_since"] is None and row["first_seen"] == D2

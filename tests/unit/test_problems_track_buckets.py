"""``problems.track`` in buckets of problem IDs equals the former all-at-once code.

The former ``track`` (one dict per problem of the whole table, sorted in Python) is kept here
as the oracle. Generated nights: thousands of problems over several departments and tables
(table names whose UTF-8 byte order is tested against Python's string order), an observed
problem repeated with another field, the person key only on its second issue, sources not
looked at, an incremental table with the keys read tonight, fixed / disputed / cannot_fix
responses (one of another department, one older than its problem), fixed problems pruned
after ``KEEP_FIXED_DAYS``. Each night's table from 1, 3 and 7 buckets, and from the default
bucketing with small buckets, equals the oracle's, rows and order.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from datacloud import problems
from datacloud.problem_store import OPEN, SCHEMA
from datacloud.problems import (
    KEEP_FIXED_DAYS,
    OBSERVED_SCHEMA,
    Response,
    latest_responses,
    problem_id,
)

D0 = date(2026, 11, 16)
# (department, table): ASCII, Chinese and a character outside the BMP, upper before lower
SOURCES = [
    ("bdc", "bdc_qlr"),
    ("bdc", "consistency"),
    ("gjj", "grzh"),
    ("gjj", "Grzh"),
    ("gongan", "czrk"),
    ("gongan", "consistency"),
    ("mz", "hydj"),
    ("mz", "婚姻"),
    ("mz", "hydj_é"),
    ("rs", "cbry\U0001f600"),
    ("rs", "cbry\uff21"),
]
INCREMENTAL = ("gongan", "czrk")
FIELDS = ["id_number", "name", "phone", None]
RULES = ["ID_CHECK_DIGIT", "NAME_EMPTY", "PHONE_FORMAT"]
# the arguments of one night of track
Night = tuple[
    pa.Table,
    pa.Table,
    set[tuple[str, str]],
    dict[str, Response],
    date,
    problems.Due,
    dict[tuple[str, str], set[str]],
]


def due(dept: str, day: date) -> date:
    return day + timedelta(days=1 + len(dept) % 4)


# --- the former code, the oracle --------------------------------------------------------------


def _old_observed_by_id(observed: pa.Table) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for row in observed.to_pylist():
        pid = problem_id(row["dept"], row["table"], str(row["source_key"]), row["rule"])
        held = out.get(pid)
        if held is None:
            out[pid] = {**row, "source_key": str(row["source_key"]), "fields": {row["field"]}}
            continue
        held["fields"].add(row["field"])
        if held.get("person_key") is None:
            held["person_key"] = row.get("person_key")
    for row in out.values():
        row["field"] = ",".join(sorted(f for f in row.pop("fields") if f)) or None
    return out


def _old_apply_response(row: dict[str, Any], r: Response) -> None:
    row["response"] = r.response
    row["response_at"] = r.at
    row["response_by"] = r.by
    row["response_note"] = r.note
    row["disputed_since"] = r.day if r.response == "disputed" else None
    row["fix_failed"] = False


def old_track(
    previous: pa.Table,
    observed: pa.Table,
    covered: set[tuple[str, str]],
    responses: Mapping[str, Response],
    ds: date,
    due: problems.Due,
    keys_read: Mapping[tuple[str, str], set[str]] | None = None,
) -> pa.Table:
    keys_read = keys_read or {}
    seen = _old_observed_by_id(observed)
    rows: dict[str, dict[str, Any]] = {r["problem_id"]: r for r in previous.to_pylist()}
    for pid, ob in seen.items():
        if pid not in rows:
            rows[pid] = {
                **{f.name: None for f in SCHEMA},
                **{k: ob[k] for k in OBSERVED_SCHEMA.names},
                "problem_id": pid,
                "first_seen": ds,
                "last_seen": ds,
                "status": "open",
                "due": due(ob["dept"], ds),
                "overdue": False,
                "fix_failed": False,
                "_new": True,
            }
    out = []
    for pid, row in rows.items():
        new = row.pop("_new", False)
        source = (row["dept"], row["table"])
        looked = source in covered and (
            source not in keys_read or row["source_key"] in keys_read[source]
        )
        r = responses.get(pid)
        fresh = (
            r is not None
            and r.dept == row["dept"]
            and (row["response_at"] is None or r.at > row["response_at"])
            and r.day >= row["first_seen"]
            and (looked or r.response != "fixed")
        )
        if fresh:
            assert r is not None
            _old_apply_response(row, r)
        if looked and pid in seen:
            ob = seen[pid]
            row["last_seen"] = ds
            row["field"] = ob["field"] or row["field"]
            row["message_zh"] = ob["message_zh"] or row["message_zh"]
            row["person_key"] = ob["person_key"] or row["person_key"]
            if row["status"] == "fixed":
                row["status"] = "reopened"
                row["reopened_on"] = ds
                row["due"] = due(row["dept"], ds)
            elif fresh and r is not None and r.response == "fixed" and not new:
                row["status"] = "reopened"
                row["reopened_on"] = ds
                row["fix_failed"] = True
        elif looked and row["status"] in OPEN:
            row["status"] = "fixed"
            row["fixed_on"] = ds
            row["fix_failed"] = False
            row["disputed_since"] = None
        fixed_on = row["fixed_on"] if row["status"] == "fixed" else None
        if fixed_on is not None and fixed_on < ds - timedelta(days=KEEP_FIXED_DAYS):
            continue
        row["overdue"] = bool(
            row["status"] in OPEN and row["disputed_since"] is None and ds > row["due"]
        )
        out.append(row)
    out.sort(key=lambda x: (x["dept"], x["table"], x["problem_id"]))
    return pa.Table.from_pylist(out, schema=SCHEMA)


# --- generated nights ---------------------------------------------------------------------------


def observed_night(rng: random.Random, keys: int, rate: float) -> pa.Table:
    """Tonight's issues: about ``rate`` of ``keys`` source keys per source break a rule; some
    rows break it in two fields (the second issue carrying the person key)."""
    rows = []
    for dept, table in SOURCES:
        kind = "finding" if table == "consistency" else "rejected_row"
        for k in range(keys):
            if rng.random() >= rate:
                continue
            rule = RULES[k % len(RULES)]
            row = {
                "kind": kind,
                "dept": dept,
                "table": table,
                "source_key": f"K{k:05d}",
                "field": rng.choice(FIELDS),
                "rule": rule,
                "message_zh": rng.choice(["校验码不符", "姓名为空", None]),
                "person_key": rng.choice([None, f"P{k:05d}"]),
            }
            rows.append(row)
            if rng.random() < 0.1:  # the same rule broken in another field of the row
                rows.append({**row, "field": "phone", "person_key": f"Q{k:05d}"})
    rng.shuffle(rows)
    return pa.Table.from_pylist(rows, schema=OBSERVED_SCHEMA)


def responses_for(rng: random.Random, table: pa.Table, ds: date) -> dict[str, Response]:
    """Responses to some of the table's problems, made on ``ds`` (or earlier than a problem's
    first night, or by another department)."""
    made = []
    for row in table.to_pylist():
        if rng.random() >= 0.15:
            continue
        what = rng.choice(["fixed", "fixed", "disputed", "cannot_fix"])
        day = ds
        dept = row["dept"]
        if rng.random() < 0.05:
            day = row["first_seen"] - timedelta(days=3)  # to an earlier life of the ID
        if rng.random() < 0.05:
            dept = "other"  # another department's: not applied
        at = datetime(day.year, day.month, day.day, rng.randrange(0, 16), tzinfo=UTC)
        made.append(Response(row["problem_id"], dept, what, "说明", "张三", at))
    return latest_responses(made, ds)


def nights(seed: int) -> list[Night]:
    """The arguments of several nights of ``track``, each from the oracle's previous table."""
    rng = random.Random(seed)
    days = [D0, D0 + timedelta(1), D0 + timedelta(2), D0 + timedelta(3), D0 + timedelta(430)]
    previous = SCHEMA.empty_table()
    out: list[Night] = []
    for n, ds in enumerate(days):
        observed = observed_night(rng, 500, 0.45 if n % 2 else 0.6)
        covered = set(SOURCES)
        if n == 2:
            covered -= {("gjj", "grzh"), ("bdc", "consistency")}  # did not load / not compared
        keys_read = {INCREMENTAL: {f"K{k:05d}" for k in range(500) if rng.random() < 0.5}}
        responses = responses_for(rng, previous, ds) if previous.num_rows else {}
        if n == 3:  # a previous table in several chunks
            half = previous.num_rows // 2
            previous = pa.concat_tables([previous.slice(0, half), previous.slice(half)])
        args: Night = (previous, observed, covered, responses, ds, due, keys_read)
        out.append(args)
        previous = old_track(*args)
    return out


NIGHTS = nights(20261206)


def test_the_generated_nights_cover_every_case() -> None:
    """The nights hold what the buckets must keep apart: thousands of problems, every status,
    failed fixes, disputes, a night that prunes old fixed problems, two issues one problem."""
    assert NIGHTS[2][0].num_rows > 3000
    statuses: set[str] = set()
    flags = {"fix_failed": 0, "disputed": 0, "merged_fields": 0}
    for args in NIGHTS:
        table = old_track(*args)
        statuses |= set(table["status"].to_pylist())
        flags["fix_failed"] += pc.sum(table["fix_failed"]).as_py() or 0
        flags["disputed"] += table.num_rows - table["disputed_since"].null_count
        flags["merged_fields"] += sum(1 for f in table["field"].to_pylist() if f and "," in f)
    assert statuses == {"open", "fixed", "reopened"}
    assert all(flags.values()), flags
    last = NIGHTS[-1]
    kept = set(old_track(*last)["problem_id"].to_pylist())
    assert set(last[0]["problem_id"].to_pylist()) - kept  # fixed problems pruned on the last


@pytest.mark.parametrize("buckets", [1, 3, 7])
@pytest.mark.parametrize("night", range(len(NIGHTS)))
def test_buckets_give_the_former_table(night: int, buckets: int) -> None:
    args = NIGHTS[night]
    expected = old_track(*args)
    got = problems.track(*args, buckets=buckets)
    assert got.schema == expected.schema
    assert got.num_rows == expected.num_rows
    assert got["problem_id"].to_pylist() == expected["problem_id"].to_pylist()  # the order
    assert got.to_pylist() == expected.to_pylist()
    assert got.equals(expected)


def test_the_buckets_split_the_problems() -> None:
    """Every bucket holds problems, an ID observed and previous falls in one bucket."""
    previous, observed = NIGHTS[2][0], NIGHTS[2][1]
    ids = problems.observed_ids(observed)
    assert ids.to_pylist() == [
        problem_id(r["dept"], r["table"], r["source_key"], r["rule"]) for r in observed.to_pylist()
    ]
    old = problems._bucket_of(previous["problem_id"], 7).to_pylist()
    new = problems._bucket_of(ids, 7).to_pylist()
    assert set(old) == set(range(7)) == set(new)
    of = dict(zip(previous["problem_id"].to_pylist(), old, strict=True))
    both = [(of[p], b) for p, b in zip(ids.to_pylist(), new, strict=True) if p in of]
    assert both and all(a == b for a, b in both)


def test_the_default_bucketing_of_track(monkeypatch: pytest.MonkeyPatch) -> None:
    """``track`` picks one bucket per ``BUCKET_ROWS`` rows; small buckets, the same table."""
    args = NIGHTS[3]
    assert problems._buckets(args[0], args[1]) == 1
    expected = old_track(*args)
    assert problems.track(*args).equals(expected)
    monkeypatch.setattr(problems, "BUCKET_ROWS", 500)
    assert problems._buckets(args[0], args[1]) > 7
    assert problems.track(*args).equals(expected)

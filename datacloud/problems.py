"""The problem-data loop (问题数据闭环), pure: tonight's problems + the table the nights before
left + the departments' responses → the new problem table (docs/problems.md).

A problem is one rejected row's broken rule (``rejected_row``: department, source table, source
primary key, rule code) or one cross-department finding (``finding``: department, table
``consistency``, the person's ID number, finding code). Its ID is stable night after night:
``sha256("dept|table|source_key|rule")[:16]``.

Each night, for every source the platform looked at tonight (a table normalised tonight, the
cross-department comparison if curation published one):

- a problem seen for the first time is ``open``, due ``N`` working days later (per department,
  ``datacloud.working_days``);
- an open problem no longer seen is ``fixed`` with ``fixed_on`` = tonight;
- a fixed problem seen again is ``reopened`` with ``reopened_on`` and a new due date;
- a ``fixed`` response (已整改) checked tonight against a problem still seen makes it
  ``reopened`` with ``fix_failed`` (its due date stays: the claimed fix did not hold);
- a ``disputed`` response (有异议) sets ``disputed_since`` (the day it was made); the problem
  stays open, flagged, and is not overdue while disputed;
- a ``cannot_fix`` response (无法整改) is recorded; the problem stays open.

Problems of a source not looked at tonight (a table that did not load, a night without
curation, a row of an incremental table not read again tonight) keep their state: a table
that failed to load fixed nothing. ``overdue`` is
recomputed every night: open or reopened, not disputed, and tonight after the due date.

Responses come from the append-only log (``<root>/problems/responses/<dept>.jsonl``); the
night of business date ``ds`` applies, per problem, the latest response made on or before
``ds`` (Shanghai date of its ``at``) that is newer than the one the table holds
(``response_at``): each response is applied once, and a rerun of a night applies the same ones.
"""

from __future__ import annotations

import hashlib
import statistics
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from datacloud.business_day import SHANGHAI
from datacloud.problem_store import OPEN, RESPONSES, SCHEMA, SORT_BY

FINDING_TABLE = "consistency"  # the "table" of a cross-department finding
KEEP_FIXED_DAYS = 400  # fixed problems are dropped this long after their fix (Delta keeps them)
TREND_NIGHTS = 30
BUCKET_ROWS = 200_000  # previous + observed rows per bucket of track (memory, not results)
ID_BATCH_ROWS = 65_536  # rows whose problem IDs or buckets are computed at a time
OBSERVED_SCHEMA = pa.schema(
    [
        ("kind", pa.string()),
        ("dept", pa.string()),
        ("table", pa.string()),
        ("source_key", pa.string()),
        ("field", pa.string()),
        ("rule", pa.string()),
        ("message_zh", pa.string()),
        ("person_key", pa.string()),
    ]
)
RESPONSE_ZH = {"fixed": "已整改", "disputed": "有异议", "cannot_fix": "无法整改"}
STATUS_ZH = {"open": "未整改", "fixed": "已整改", "reopened": "重新出现"}

Due = Callable[[str, date], date]  # (department, from) -> due date


def problem_id(dept: str, table: str, source_key: str, rule: str) -> str:
    """The stable ID of a problem: 16 hex digits of sha256("dept|table|source_key|rule")."""
    return hashlib.sha256(f"{dept}|{table}|{source_key}|{rule}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Response:
    """One accepted response row of the log (docs/problems.md, the responses log)."""

    problem_id: str
    dept: str
    response: str  # fixed | disputed | cannot_fix
    note: str
    by: str
    at: datetime  # aware, UTC
    channel: str = ""
    file_sha256: str = ""

    @property
    def day(self) -> date:
        """The Shanghai date the response was made: the night that applies it."""
        return self.at.astimezone(SHANGHAI).date()

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Response:
        """A log record as a Response; ValueError when it does not follow the contract."""
        response = str(record.get("response") or "")
        if response not in RESPONSES:
            raise ValueError(f"unknown response {response!r}")
        at = datetime.fromisoformat(str(record["at"]).replace("Z", "+00:00"))
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        return cls(
            problem_id=str(record["problem_id"]),
            dept=str(record["dept"]),
            response=response,
            note=str(record.get("note") or ""),
            by=str(record.get("by") or ""),
            at=at.astimezone(UTC),
            channel=str(record.get("channel") or ""),
            file_sha256=str(record.get("file_sha256") or ""),
        )


def latest_responses(responses: Iterable[Response], ds: date) -> dict[str, Response]:
    """Per problem, the latest response made on or before business date ``ds``."""
    out: dict[str, Response] = {}
    for r in responses:
        if r.day > ds:
            continue
        held = out.get(r.problem_id)
        if held is None or (r.at, r.file_sha256) > (held.at, held.file_sha256):
            out[r.problem_id] = r
    return out


def observed_ids(observed: pa.Table) -> pa.ChunkedArray:
    """Every observed row's ``problem_id``, ``ID_BATCH_ROWS`` rows at a time (only a batch's
    keys are Python strings at a time)."""
    keys = observed.select(["dept", "table", "source_key", "rule"])
    parts = []
    for batch in keys.to_batches(max_chunksize=ID_BATCH_ROWS):
        dept, table, key, rule = (batch.column(i).to_pylist() for i in range(4))
        ids = [
            problem_id(d, t, str(k), r) for d, t, k, r in zip(dept, table, key, rule, strict=True)
        ]
        parts.append(pa.array(ids, pa.string()))
    return pa.chunked_array(parts, pa.string())


def _bucket_of(ids: pa.ChunkedArray, buckets: int) -> pa.ChunkedArray:
    """Each problem ID's bucket: crc32 of its UTF-8 modulo ``buckets`` (a null ID: 0). Stable:
    an ID of the previous table and the same ID observed tonight share their bucket."""
    parts = []
    for chunk in ids.chunks:
        for start in range(0, len(chunk), ID_BATCH_ROWS):
            values = chunk.slice(start, ID_BATCH_ROWS).to_pylist()
            parts.append(
                pa.array(
                    [0 if v is None else zlib.crc32(v.encode()) % buckets for v in values],
                    pa.int32(),
                )
            )
    return pa.chunked_array(parts, pa.int32())


def _buckets(previous: pa.Table, observed: pa.Table) -> int:
    """How many buckets ``track`` needs: one per ``BUCKET_ROWS`` previous and observed rows."""
    return max(1, -(-(previous.num_rows + observed.num_rows) // BUCKET_ROWS))


def _observed_by_id(observed: pa.Table, ids: pa.ChunkedArray) -> dict[str, dict[str, Any]]:
    """Tonight's problems by ID (``ids``: the rows' IDs, ``observed_ids``); several issues of
    one ID (two fields breaking the same rule in one row) become one problem naming every
    field."""
    out: dict[str, dict[str, Any]] = {}
    for pid, row in zip(ids.to_pylist(), observed.to_pylist(), strict=True):
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


def _apply_response(row: dict[str, Any], r: Response) -> None:
    row["response"] = r.response
    row["response_at"] = r.at
    row["response_by"] = r.by
    row["response_note"] = r.note
    row["disputed_since"] = r.day if r.response == "disputed" else None
    row["fix_failed"] = False


def track(
    previous: pa.Table,
    observed: pa.Table,
    covered: set[tuple[str, str]],
    responses: Mapping[str, Response],
    ds: date,
    due: Due,
    keys_read: Mapping[tuple[str, str], set[str]] | None = None,
    *,
    buckets: int | None = None,
) -> pa.Table:
    """The problem table after night ``ds``.

    ``previous``: the table the nights before left (``SCHEMA``); ``observed``: tonight's
    problems (``OBSERVED_SCHEMA``); ``covered``: the (department, table) sources looked at
    tonight (a finding's table is ``consistency``); ``responses``: per problem the latest
    response up to ``ds`` (``latest_responses``); ``due(dept, day)``: the due date of a
    problem of ``dept`` seen on ``day``; ``keys_read``: for an incremental table, the source
    keys read tonight (a row not read again tonight is not fixed by its absence).

    A problem's night depends only on its own rows, so the problems are tracked in buckets of
    their IDs (``_bucket_of``, one bucket per ``BUCKET_ROWS`` rows): only one bucket's rows
    are Python objects at a time, each bucket's result becomes an Arrow table, and the
    buckets joined are sorted by (department, table, problem ID). ``buckets``: how many
    (default one per ``BUCKET_ROWS`` rows; the result is the same for any number).
    """
    keys_read = keys_read or {}
    buckets = buckets or _buckets(previous, observed)
    ids = observed_ids(observed)
    groups = _buckets_of_rows(previous, observed, ids, buckets)
    parts = [track_rows(p, o, i, covered, responses, ds, due, keys_read) for p, o, i in groups]
    # Arrow orders strings by their UTF-8 bytes: Python's code point order, as before
    table = pa.concat_tables(parts).sort_by([(k, "ascending") for k in SORT_BY])
    return table.combine_chunks()


def _buckets_of_rows(
    previous: pa.Table, observed: pa.Table, ids: pa.ChunkedArray, buckets: int
) -> Iterator[tuple[pa.Table, pa.Table, pa.ChunkedArray]]:
    """The previous rows, the observed rows and their IDs of each bucket, one at a time."""
    if buckets <= 1:
        yield previous, observed, ids
        return
    previous_bucket = _bucket_of(previous["problem_id"], buckets)
    observed_bucket = _bucket_of(ids, buckets)
    for b in range(buckets):
        mine = pc.equal(observed_bucket, b)
        yield previous.filter(pc.equal(previous_bucket, b)), observed.filter(mine), ids.filter(mine)


def track_rows(
    previous: pa.Table,
    observed: pa.Table,
    ids: pa.ChunkedArray,
    covered: set[tuple[str, str]],
    responses: Mapping[str, Response],
    ds: date,
    due: Due,
    keys_read: Mapping[tuple[str, str], set[str]],
) -> pa.Table:
    """The night of the problems in ``previous`` and ``observed`` (every row of each of their
    IDs), row by row, as an Arrow table (``SCHEMA``, not sorted)."""
    seen = _observed_by_id(observed, ids)
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
            and r.day >= row["first_seen"]  # not one to an earlier life of the ID (pruned)
            and (looked or r.response != "fixed")  # a fix is checked on a night that looks
        )
        if fresh:
            assert r is not None
            _apply_response(row, r)
        if looked and pid in seen:
            ob = seen[pid]
            row["last_seen"] = ds
            row["field"] = ob["field"] or row["field"]
            row["message_zh"] = ob["message_zh"] or row["message_zh"]
            row["person_key"] = ob["person_key"] or row["person_key"]
            if row["status"] == "fixed":  # seen again after it was gone
                row["status"] = "reopened"
                row["reopened_on"] = ds
                row["due"] = due(row["dept"], ds)
            elif fresh and r is not None and r.response == "fixed" and not new:
                row["status"] = "reopened"  # the department said fixed; the source says not
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
    return pa.Table.from_pylist(out, schema=SCHEMA)


# --- figures for the reports ------------------------------------------------------------------


def _count(mask: pa.Array | pa.ChunkedArray) -> int:
    """The rows a boolean mask selects (a null selects none, as ``None`` is falsy)."""
    return int(pc.sum(pc.fill_null(mask, False).cast(pa.int64())).as_py() or 0)


def _on(column: pa.Array | pa.ChunkedArray, day: date) -> pa.Array | pa.ChunkedArray:
    """``column == day`` per row (a null row is not on that day)."""
    return pc.fill_null(pc.equal(column, pa.scalar(day, pa.date32())), False)


def summary(table: pa.Table, ds: date) -> dict[str, Any]:
    """The figures of a department's 问题整改 section from its rows of the problem table as
    night ``ds`` left them: open, new tonight, fixed tonight, reopened tonight, overdue,
    disputed, fix failed, closure rate and median age of the open problems (in days).
    Counted column-wise (Arrow compute): no row becomes a Python object."""
    status = table["status"]
    is_open = pc.fill_null(pc.is_in(status, value_set=pa.array(OPEN, pa.string())), False)
    opened = table.filter(is_open)
    window = ds - timedelta(days=TREND_NIGHTS - 1)
    recent = pc.or_(
        pc.fill_null(pc.greater_equal(table["last_seen"], pa.scalar(window, pa.date32())), False),
        is_open,
    )
    n_recent = _count(recent)
    closed = _count(pc.and_(recent, pc.fill_null(pc.equal(status, "fixed"), False)))
    # (ds - first_seen) in days: date32 holds days since the epoch
    epoch_day = (ds - date(1970, 1, 1)).days
    ages = pc.subtract(epoch_day, opened["first_seen"].cast(pa.int32())).to_pylist()
    return {
        "total": table.num_rows,
        "open": opened.num_rows,
        "new_tonight": _count(_on(table["first_seen"], ds)),
        "fixed_tonight": _count(pc.and_(pc.equal(status, "fixed"), _on(table["fixed_on"], ds))),
        "reopened_tonight": _count(
            pc.and_(pc.equal(status, "reopened"), _on(table["reopened_on"], ds))
        ),
        "overdue": _count(opened["overdue"]),
        "disputed": _count(pc.is_valid(opened["disputed_since"])),
        "fix_failed": _count(opened["fix_failed"]),
        "cannot_fix": _count(pc.equal(opened["response"], "cannot_fix")),
        "closure_rate": round(closed / n_recent, 4) if n_recent else None,
        "median_age_days": float(statistics.median(ages)) if ages else None,
    }

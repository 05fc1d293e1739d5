"""The citizen's data tracker over a real audit trail (JSON-lines files in a temporary folder,
written by the real ``AuditLog``), with the real matters catalogue: several persons, several
departments and matters; exactly one person's lookups come back, without the clerk; a citizen
asking about another number gets 403, and that refusal is audited like every tracker request.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import full_id_numbers

from datacloud.lookup.audit import AuditLog, FileSink
from datacloud.lookup.auth import Principal
from datacloud.lookup.keys import MalformedKey
from datacloud.lookup.service import Forbidden
from datacloud.lookup.tracker import Tracker, department_names, entries_for
from datacloud.matters import load_matters
from datacloud.paths import departments_dir
from transforms.id_number import id_check_char

AUDIT_KEY = b"tracker-test-audit-key-0123456"


def _id(body17: str) -> str:
    return body17 + id_check_char(body17)


ALICE, BOB, CAROL = _id("11010119800101001"), _id("11010219750505002"), _id("32010519900909003")
GJJ_CLERK = Principal(
    "公积金中心 城东窗口 张三", "clerk", "api", "k-gjj", department="gjj",
    matters=frozenset({"gjj_withdrawal"}),
)  # fmt: skip
BDC_CLERK = Principal(
    "不动产登记中心 李四", "clerk", "api", "k-bdc", department="bdc",
    matters=frozenset({"property_registration"}),
)  # fmt: skip
AUDITOR = Principal("审计员 王五", "auditor", "api", "k-aud")


@pytest.fixture
def audit(tmp_path: Path) -> AuditLog:
    return AuditLog([FileSink(tmp_path / "audit")], AUDIT_KEY)


@pytest.fixture
def tracker(audit: AuditLog) -> Tracker:
    return Tracker(audit, load_matters(), department_names(departments_dir()))


def _lookups(audit: AuditLog) -> list[dict[str, Any]]:
    """What the lookup service writes for a few lookups (its own AuditLog.record call)."""
    done = []
    for who, endpoint, number, matter, case_no, outcome in (
        (GJJ_CLERK, "property_status", ALICE, "gjj_withdrawal", "GJJ-2026-0001", "found"),
        (GJJ_CLERK, "property_status", BOB, "gjj_withdrawal", "GJJ-2026-0002", "found"),
        (BDC_CLERK, "person", ALICE, "property_registration", "BDC/2026/77", "found"),
        (BDC_CLERK, "property_status", ALICE, "property_registration", "BDC/2026/77", "found"),
        (GJJ_CLERK, "person", ALICE, "property_registration", "GJJ-2026-0003",
         "matter_not_granted"),
        (BDC_CLERK, "property_status", CAROL, "property_registration", "BDC/2026/78",
         "not_found"),
    ):  # fmt: skip
        done.append(
            audit.record(who, endpoint, "办件", number, outcome, matter=matter, case_no=case_no)
        )
    audit.record(AUDITOR, "audit_search", "核查", ALICE, "found")
    audit.event("key_refused", None, {"reason": "unknown"})  # not a lookup: never listed
    return done


def _citizen(audit: AuditLog, number: str) -> Principal:
    return Principal("市民门户", "citizen", "api", "k-cit", subject_hmac=audit.key_hash(number))


def _trail(tmp_path: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for f in sorted((tmp_path / "audit").glob("lookups-*.jsonl"))
        for line in f.read_text(encoding="utf-8").splitlines()
    ]


def test_the_tracker_lists_exactly_that_persons_lookups_without_the_clerk(
    audit, tracker, tmp_path
) -> None:
    written = _lookups(audit)
    found = tracker.track(AUDITOR, ALICE)
    alice = [r for r in written if r["key_hmac"] == audit.key_hash(ALICE)]
    lookups = [e for e in found.entries if e["endpoint"] != "tracker"]
    # the four lookups of Alice, the auditor's search of her, nothing of Bob or Carol
    assert len(lookups) == len(alice) + 1 == 5
    assert sorted(e["case_no"] for e in lookups if e["case_no"]) == sorted(
        r["case_no"] for r in alice
    )
    assert [e["at"] for e in found.entries] == sorted(
        (e["at"] for e in found.entries), reverse=True
    )
    gjj = next(e for e in lookups if e["case_no"] == "GJJ-2026-0001")
    assert gjj == {
        "at": alice[0]["at"],
        "department": "gjj",
        "department_name": "住房公积金管理中心",
        "matter": "gjj_withdrawal",
        "matter_name": "住房公积金提取",
        "case_no": "GJJ-2026-0001",
        "endpoint": "property_status",
        "endpoint_name": "不动产权属状况查询",
        "outcome": "found",
        "outcome_name": "已答复",
    }
    refused = next(e for e in lookups if e["outcome"] == "matter_not_granted")
    assert (
        refused["outcome_name"] == "事项未授权，已拒绝" and refused["matter_name"] == "不动产登记"
    )
    text = json.dumps(found.entries, ensure_ascii=False)
    for private in ("张三", "李四", "王五", "k-gjj", "k-bdc", "办件", ALICE, BOB):
        assert private not in text
    # the request itself is on the trail, as the auditor's tracker view of Alice
    assert _trail(tmp_path)[-1]["id"] == found.audit_id
    assert _trail(tmp_path)[-1]["endpoint"] == "tracker"
    assert _trail(tmp_path)[-1]["key_hmac"] == audit.key_hash(ALICE)

    bob = tracker.track(AUDITOR, BOB)
    assert [e["case_no"] for e in bob.entries if e["endpoint"] != "tracker"] == ["GJJ-2026-0002"]
    limited = tracker.track(AUDITOR, ALICE, limit=2)
    assert len(limited.entries) == 2 and limited.total > 2


def test_a_citizen_sees_its_own_number_only_and_a_refusal_is_audited(
    audit, tracker, tmp_path
) -> None:
    _lookups(audit)
    alice = _citizen(audit, ALICE)
    own = tracker.track(alice, ALICE)
    assert {e["case_no"] for e in own.entries} >= {"GJJ-2026-0001", "BDC/2026/77"}
    # her own tracker views are not someone looking at her data
    assert tracker.track(alice, ALICE).entries == own.entries
    before = len(_trail(tmp_path))
    with pytest.raises(Forbidden, match="own ID number"):
        tracker.track(alice, BOB)
    refusal = _trail(tmp_path)[before:]
    assert [(r["endpoint"], r["outcome"], r["role"]) for r in refusal] == [
        ("tracker", "forbidden", "citizen")
    ]
    assert refusal[0]["key_hmac"] == audit.key_hash(BOB)
    # Bob's tracker shows the refused attempt on his number (by a citizen key, no name)
    bob_view = tracker.track(AUDITOR, BOB).entries
    assert [e["outcome"] for e in bob_view if e["endpoint"] == "tracker"] == ["found", "forbidden"]
    assert not full_id_numbers(json.dumps(bob_view, ensure_ascii=False))


def test_a_clerk_may_not_use_the_tracker_and_a_bad_number_is_refused(
    audit, tracker, tmp_path
) -> None:
    with pytest.raises(Forbidden):
        tracker.track(GJJ_CLERK, ALICE)
    with pytest.raises(MalformedKey):
        tracker.track(AUDITOR, ALICE[:-1] + ("0" if ALICE[-1] != "0" else "1"))
    assert [(r["endpoint"], r["outcome"].split(":")[0]) for r in _trail(tmp_path)] == [
        ("tracker", "forbidden"),
        ("tracker", "malformed"),
    ]


def test_entries_for_skips_other_persons_events_and_citizens_own_views() -> None:
    records = [
        {"kind": "lookup", "key_hmac": "a", "endpoint": "person", "at": "1", "outcome": "found"},
        {"kind": "lookup", "key_hmac": "b", "endpoint": "person", "at": "2", "outcome": "found"},
        {"kind": "key_refused", "key_hmac": "a", "at": "3"},
        {"kind": "lookup", "key_hmac": "a", "endpoint": "tracker", "role": "citizen", "at": "4",
         "outcome": "found"},
        {"kind": "lookup", "key_hmac": "a", "endpoint": "tracker", "role": "auditor", "at": "5",
         "outcome": "found", "who": "审计员"},
    ]  # fmt: skip
    lines = entries_for(records, "a")
    assert [e["at"] for e in lines] == ["5", "1"]
    assert all("who" not in e and "role" not in e for e in lines)


class _MemorySink:
    """A sink that keeps records in memory (an audit sink other than the file trail)."""

    def __init__(self) -> None:
        self.kept: list[dict[str, Any]] = []

    def write(self, record: dict[str, Any]) -> None:
        self.kept.append(dict(record))

    def records(self) -> list[dict[str, Any]]:
        return self.kept


def test_torn_lines_are_skipped_and_other_sinks_are_read(audit, tmp_path) -> None:
    _lookups(audit)
    day = sorted((tmp_path / "audit").glob("lookups-*.jsonl"))[-1]
    with day.open("ab") as fh:  # a torn last line that names Alice's hash
        fh.write(b'{"kind": "lookup", "key_hmac": "' + audit.key_hash(ALICE).encode() + b'", "at')
    found = Tracker(audit).track(AUDITOR, ALICE)
    assert len([e for e in found.entries if e["endpoint"] != "tracker"]) == 5

    memory = _MemorySink()
    other = AuditLog([memory], AUDIT_KEY)
    other.record(GJJ_CLERK, "property_status", "", ALICE, "found", matter="gjj_withdrawal",
                 case_no="MEM-1")  # fmt: skip
    other.record(GJJ_CLERK, "property_status", "", BOB, "found", matter="gjj_withdrawal",
                 case_no="MEM-2")  # fmt: skip
    listed = Tracker(other, load_matters()).track(AUDITOR, ALICE).entries
    assert [e["case_no"] for e in listed if e["endpoint"] != "tracker"] == ["MEM-1"]

"""Problem table rows for the response-workbook tests: the contract's schema
(/docs/problems.md), built here so the tests need no night; the Delta-backed tests write them
with ``datacloud.problem_store`` when it is there."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa

from datacloud.problem_store import SCHEMA

# valid check characters (GB 11643): real-looking ID numbers that must never show unmasked
ID_A = "330106199001011234"
ID_B = "110101198506154321"


def problem_id(dept: str, table: str, source_key: str, rule: str) -> str:
    return hashlib.sha256(f"{dept}|{table}|{source_key}|{rule}".encode()).hexdigest()[:16]


def problem(
    dept: str,
    table: str,
    source_key: str,
    rule: str,
    *,
    kind: str = "rejected_row",
    field: str = "id_number",
    message_zh: str = "身份证号码校验位错误",
    person_key: str | None = None,
    status: str = "open",
    first_seen: date = date(2026, 11, 30),
    due: date = date(2026, 12, 7),
    **extra: Any,
) -> dict[str, Any]:
    row: dict[str, Any] = {name: None for name in SCHEMA.names}
    row.update(
        problem_id=problem_id(dept, table, source_key, rule),
        kind=kind,
        dept=dept,
        table=table,
        source_key=source_key,
        field=field,
        rule=rule,
        message_zh=message_zh,
        person_key=person_key,
        first_seen=first_seen,
        last_seen=date(2026, 12, 4),
        status=status,
        due=due,
        overdue=False,
        fix_failed=False,
    )
    row.update(extra)
    return row


def table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def sample_rows() -> list[dict[str, Any]]:
    """Two departments; gjj with two tables, a finding about a person, a fixed problem."""
    return [
        problem("gjj", "gjj_account", f"{ID_A}", "ID_CHECKSUM", person_key=ID_A),
        problem(
            "gjj",
            "gjj_account",
            "A-1002",
            "DATE_FORMAT",
            field="open_date",
            message_zh="日期格式不对：=SUM(A1)",
            due=date(2026, 12, 8),
        ),
        problem(
            "gjj",
            "gjj_account",
            "A-1003",
            "PHONE",
            field="phone",
            message_zh="手机号 13812345678 位数不对",
            status="reopened",
        ),
        problem(
            "gjj", "gjj_withdrawal", "W-7", "AMOUNT_NEG", field="amount", message_zh="提取金额为负"
        ),
        problem(
            "gjj",
            "person",
            ID_B,
            "name_conflict",
            kind="finding",
            field="name",
            message_zh=f"姓名与公安户籍不一致（{ID_B}）",
            person_key=ID_B,
        ),
        problem("gjj", "gjj_account", "A-9", "PHONE", status="fixed", fixed_on=date(2026, 12, 3)),
        problem("bdc", "property_right", "P-1", "ID_CHECKSUM", person_key=ID_A),
    ]


def now() -> datetime:
    return datetime.now(UTC)

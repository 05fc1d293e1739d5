"""Why a step failed, classified once, where the failure happens.

The run state records a ``failure_kind`` with every failure (``datacloud.nightly``); the
report reads it and never guesses from the error text. ``classify`` is that one place: an
exception's type and text (the driver's own, before masking) to one of ``KINDS``. A run state
written before kinds were recorded is classified from its stored error text by the same rules
(``classify_text``).
"""

from __future__ import annotations

import re
from typing import Final

SOURCE_UNREACHABLE: Final = "source_unreachable"
SCHEMA_CHANGE: Final = "schema_change"
QUALITY_GATE: Final = "quality_gate"
ERROR: Final = "error"
NOT_RUN: Final = "not_run"

# kind -> what the report says (Chinese)
KINDS: Final[dict[str, str]] = {
    SOURCE_UNREACHABLE: "数据源无法连接",
    SCHEMA_CHANGE: "表结构变化",
    QUALITY_GATE: "质量检查未通过",
    ERROR: "处理出错",
    NOT_RUN: "未运行",
}

_UNREACHABLE = re.compile(
    r"connection refused|could not connect|can't connect|timed out|timeout|"
    r"unable to open database|name or service not known|could not translate host|"
    r"server closed the connection|lost connection|connection reset|terminating connection|"
    r"unreachable|\bconnect\b",
    re.IGNORECASE,
)
_MISSING_COLUMN = re.compile(
    r"(column|field).*(does not exist|unknown|no such)|no such column|unknown column|"
    r"returns no column",
    re.IGNORECASE,
)


def classify_text(text: str) -> str:
    """The kind of a failure from its text: a missing column is a schema change, a refused or
    timed-out connection an unreachable source, anything else an error."""
    if _MISSING_COLUMN.search(text):
        return SCHEMA_CHANGE
    if _UNREACHABLE.search(text):
        return SOURCE_UNREACHABLE
    return ERROR


def classify(e: BaseException) -> str:
    """The kind of an exception: its own ``kind`` when it carries one (ExtractionError,
    SchemaDriftError, QualityGateError), else ``classify_text`` of its type and text."""
    kind = getattr(e, "kind", None)
    if isinstance(kind, str) and kind in KINDS:
        return kind
    return classify_text(f"{type(e).__name__}: {e}")

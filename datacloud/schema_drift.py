"""Schema drift: the source table's columns (SQLAlchemy reflection) against what we expect.

Before extracting, the source table is reflected and compared with the snapshot taken at the
last successful extraction and with the columns the department YAML maps. An added column is
recorded and extraction goes on. A mapped column that is gone (dropped or renamed), or whose
type changed to an incompatible family, fails that table with a message naming department,
table, column, old and new type.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import inspect, types
from sqlalchemy.engine import URL

from datacloud.atomic import replace_text
from datacloud.config import Department, TableSpec
from datacloud.connections import engine as source_engine

FAMILIES: list[tuple[str, type]] = [
    ("boolean", types.Boolean),
    ("integer", types.Integer),
    ("float", types.Float),  # before Numeric: Float is a Numeric subclass
    ("numeric", types.Numeric),
    ("datetime", types.DateTime),
    ("date", types.Date),
    ("time", types.Time),
    ("text", types.String),
    ("binary", types._Binary),
]
# old family -> new families a mapped column may move to without breaking its rules
WIDENING = {
    "integer": {"integer", "numeric", "float", "text"},
    "numeric": {"numeric", "text"},
    "float": {"float", "text"},
    "date": {"date", "datetime", "text"},
    "datetime": {"datetime", "text"},
    "text": {"text"},
    "boolean": {"boolean", "integer", "text"},
}


class SchemaDriftError(RuntimeError):
    """The source table changed in a way the YAML mapping cannot absorb."""

    kind = "schema_change"  # datacloud.failures


@dataclass(frozen=True)
class Change:
    column: str
    change: str  # added | dropped | type_changed
    old_type: str | None
    new_type: str | None
    breaking: bool


def family(t: types.TypeEngine) -> str:
    for name, cls in FAMILIES:
        if isinstance(t, cls):
            return name
    return type(t).__name__.lower()


def reflect(url: URL | str, table: str) -> dict[str, str]:
    """Column name -> type as the database declares it (e.g. ``VARCHAR(32)``), in table order."""
    engine = source_engine(url)
    try:
        cols = inspect(engine).get_columns(table)
        dialect = engine.dialect
        return {
            c["name"]: f"{family(c['type'])}:{c['type'].compile(dialect=dialect)}" for c in cols
        }
    finally:
        engine.dispose()


def compare(
    dept: Department, table: TableSpec, previous: dict[str, str] | None, current: dict[str, str]
) -> list[Change]:
    """Changes between the last snapshot and now; ``breaking`` ones stop the table."""
    mapped = set(table.source_columns)
    changes: list[Change] = []
    if previous is None:
        return changes
    for col, old in previous.items():
        new = current.get(col)
        if new is None:
            changes.append(Change(col, "dropped", _decl(old), None, col in mapped))
        elif old != new:
            of, nf = old.split(":", 1)[0], new.split(":", 1)[0]
            ok = nf in WIDENING.get(of, {of})
            changes.append(
                Change(col, "type_changed", _decl(old), _decl(new), col in mapped and not ok)
            )
    for col, new in current.items():
        if col not in previous:
            changes.append(Change(col, "added", None, _decl(new), False))
    return changes


def _decl(t: str) -> str:
    return t.split(":", 1)[1]


def describe(dept: Department, table: TableSpec, change: Change) -> str:
    what = {
        "dropped": f"column {change.column} ({change.old_type}) is gone (dropped or renamed)",
        "type_changed": f"column {change.column} changed type from {change.old_type} to {change.new_type}",
        "added": f"column {change.column} ({change.new_type}) was added",
    }[change.change]
    return f"department {dept.code}, table {table.name}: {what}"


def check(
    url: URL | str, dept: Department, table: TableSpec, snapshot: Path
) -> tuple[list[Change], dict[str, str]]:
    """Reflect the source table and compare; raise SchemaDriftError on a breaking change.

    Returns the changes (for the report) and the current schema, which the caller saves with
    :func:`save` once the extraction succeeded. A table the query does not name directly
    (a view or a join) is checked through the columns the query returns.
    """
    current = reflect(url, table.name)
    if not current:
        raise SchemaDriftError(
            f"department {dept.code}, table {table.name}: the source has no such table"
        )
    previous = json.loads(snapshot.read_text(encoding="utf-8")) if snapshot.is_file() else None
    changes = compare(dept, table, previous, current)
    breaking = [c for c in changes if c.breaking]
    if breaking:
        raise SchemaDriftError("; ".join(describe(dept, table, c) for c in breaking))
    return changes, current


def save(snapshot: Path, schema: dict[str, str]) -> None:
    replace_text(snapshot, json.dumps(schema, ensure_ascii=False, indent=2))


def as_dicts(changes: list[Change]) -> list[dict[str, object]]:
    return [asdict(c) for c in changes]

"""Per-table outcome of one department night, kept under ``runs/<dept>/<date>/<table>.json``.

Each task records what it did (or why it failed); the report task reads them, so the
report is written even when an earlier task failed.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from datacloud.atomic import locked, replace_text
from datacloud.masking import mask_text
from datacloud.paths import StorageRoot

# fields that hold error texts (a driver error may quote a row's values): masked when stored
ERROR_FIELDS = frozenset({"error", "message", "errors"})


def _path(root: StorageRoot, dept: str, ds: date, table: str) -> Path:
    return root.run_state(dept, ds) / f"{table}.json"


def read(root: StorageRoot, dept: str, ds: date, table: str) -> dict[str, Any]:
    p = _path(root, dept, ds, table)
    if not p.is_file():
        return {"table": table, "status": "not_run"}
    data: dict[str, Any] = json.loads(p.read_text(encoding="utf-8"))
    return data


def _masked(value: Any) -> Any:
    """An error field's value with ID and mobile numbers masked (strings at any depth)."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return value


def update(root: StorageRoot, dept: str, ds: date, table: str, **fields: Any) -> dict[str, Any]:
    """Merge fields into the table's state, under the table's lock (the chunk tasks of one
    table run in parallel, and each read-modify-write must see the others' fields): read,
    merge, replace the state file (``atomic.replace_text``). Error fields are masked."""
    fields = {k: _masked(v) if k in ERROR_FIELDS else v for k, v in fields.items()}
    p = _path(root, dept, ds, table)
    with locked(p):
        state = read(root, dept, ds, table)
        state.update(fields, table=table)
        replace_text(p, json.dumps(state, ensure_ascii=False, indent=2, default=str))
    return state


def reset(root: StorageRoot, dept: str, ds: date, table: str) -> None:
    """Forget an earlier attempt of the same night (a rerun starts clean)."""
    p = _path(root, dept, ds, table)
    with locked(p):
        p.unlink(missing_ok=True)


def history(
    root: StorageRoot, dept: str, table: str, before: date, nights: int, field: str = "rows_in"
) -> list[tuple[date, int]]:
    """``field`` of the table's latest ``nights`` successful nights before ``before``, newest first.

    A night that failed (a gate included) or never ran is not history: the volume check
    compares tonight with nights that were published.
    """
    base = root.run_state(dept, before).parent
    found: list[tuple[date, int]] = []
    if not base.is_dir():
        return found
    days = []
    for d in base.iterdir():
        try:
            day = date.fromisoformat(d.name)
        except ValueError:
            continue
        if day < before:
            days.append(day)
    for day in sorted(days, reverse=True):
        state = read(root, dept, day, table)
        if state.get("status") == "success" and isinstance(state.get(field), int):
            found.append((day, state[field]))
            if len(found) == nights:
                break
    return found

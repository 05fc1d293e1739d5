"""Per-table outcome of one department night, kept under ``runs/<dept>/<date>/<table>.json``.

Each task records what it did (or why it failed); the report task reads them, so the
report is written even when an earlier task failed.
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Any

from datacloud.paths import StorageRoot


def _path(root: StorageRoot, dept: str, ds: date, table: str) -> Path:
    return root.run_state(dept, ds) / f"{table}.json"


def read(root: StorageRoot, dept: str, ds: date, table: str) -> dict[str, Any]:
    p = _path(root, dept, ds, table)
    if not p.is_file():
        return {"table": table, "status": "not_run"}
    data: dict[str, Any] = json.loads(p.read_text(encoding="utf-8"))
    return data


def update(root: StorageRoot, dept: str, ds: date, table: str, **fields: Any) -> dict[str, Any]:
    """Merge fields into the table's state (atomic replace of the file)."""
    state = read(root, dept, ds, table)
    state.update(fields, table=table)
    p = _path(root, dept, ds, table)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, p)
    return state


def reset(root: StorageRoot, dept: str, ds: date, table: str) -> None:
    """Forget an earlier attempt of the same night (a rerun starts clean)."""
    _path(root, dept, ds, table).unlink(missing_ok=True)


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

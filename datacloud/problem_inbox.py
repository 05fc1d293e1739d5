"""The departments' inbox of returned feedback workbooks: ``<state root>/problems/inbox/<dept>/``.

``process_inbox`` takes every file a department dropped into its folder (not the hidden ones, not
Office's ``~$`` lock files, not one still being copied: younger than ``min_age_seconds``),
imports it (``datacloud.problem_responses.import_file``, channel ``inbox``, ``by`` the OS user
owning the file) and moves it: accepted (or already imported) to ``done/``, refused to
``rejected/`` with ``<file>.error.txt`` beside it holding the one error (department, file, sheet,
row, column, what is wrong). Moved files get the time of processing in front of their name, so
a department may drop a corrected file of the same name again.
"""

from __future__ import annotations

import logging
import os
import pwd
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from datacloud import problem_store
from datacloud.atomic import fsync_dir, replace_text
from datacloud.paths import StorageRoot
from datacloud.problem_responses import (
    ResponseFileError,
    default_by,
    import_file,
    shown_name,
)

log = logging.getLogger(__name__)
DONE = "done"
REJECTED = "rejected"
MIN_AGE_SECONDS = 30.0  # a file written this recently may still be being copied in


@dataclass(frozen=True)
class InboxOutcome:
    dept: str
    file: str
    outcome: str  # accepted | already_imported | rejected
    recorded: int
    moved_to: str
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "dept": self.dept,
            "file": self.file,
            "outcome": self.outcome,
            "recorded": self.recorded,
            "moved_to": self.moved_to,
            "error": self.error,
        }


def _owner(path: Path) -> str:
    try:
        return f"os:{pwd.getpwuid(path.stat().st_uid).pw_name}"
    except (KeyError, OSError):
        return default_by()


def _move(path: Path, folder: Path, stamp: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{stamp}-{shown_name(path.name)}"  # ID and phone numbers masked
    os.replace(path, target)
    fsync_dir(folder)
    fsync_dir(path.parent)
    return target


def _waiting(path: Path, min_age_seconds: float, now: float) -> bool:
    name = path.name
    if name.startswith((".", "~$")) or path.is_symlink() or not path.is_file():
        return True  # a symbolic link is never followed (import_file refuses one too)
    return now - path.stat().st_mtime < min_age_seconds


def departments(root: StorageRoot) -> list[str]:
    """The departments with an inbox folder."""
    inbox = root.problems() / "inbox"
    if not inbox.is_dir():
        return []
    return sorted(p.name for p in inbox.iterdir() if p.is_dir() and not p.name.startswith("."))


def process_dept(
    root: StorageRoot,
    dept: str,
    problems: pa.Table,
    *,
    min_age_seconds: float = MIN_AGE_SECONDS,
) -> list[InboxOutcome]:
    """Import and move every waiting file of one department's inbox (in name order)."""
    folder = root.problem_inbox(dept)
    if not folder.is_dir():
        return []
    now = time.time()
    out: list[InboxOutcome] = []
    for path in sorted(folder.iterdir()):  # bounded by the folder
        if _waiting(path, min_age_seconds, now):
            continue
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        try:
            result = import_file(
                root, dept, path, by=_owner(path), channel="inbox", problems=problems
            )
        except ResponseFileError as e:
            moved = _move(path, folder / REJECTED, stamp)
            replace_text(
                moved.with_name(moved.name + ".error.txt"),
                f"{e.message}\n\ncode: {e.code}\nat: {datetime.now(UTC).isoformat()}\n"
                "整份表未被接收（没有记录任何答复）。请按提示修改这份反馈表后，重新放入收件箱。\n",
            )
            log.warning("problems inbox: %s refused: %s", shown_name(path.name), e.code)
            out.append(
                InboxOutcome(dept, shown_name(path.name), "rejected", 0, str(moved), e.message)
            )
            continue
        moved = _move(path, folder / DONE, stamp)
        outcome = "already_imported" if result.already_imported else "accepted"
        shown = shown_name(path.name)
        log.info("problems inbox: %s %s, %d records", shown, outcome, result.recorded)
        out.append(InboxOutcome(dept, shown, outcome, result.recorded, str(moved)))
    return out


def process_inbox(
    root: StorageRoot,
    dept: str | None = None,
    *,
    problems: pa.Table | None = None,
    min_age_seconds: float = MIN_AGE_SECONDS,
) -> list[InboxOutcome]:
    """Process the inbox of ``dept``, or of every department with an inbox folder."""
    table = problems if problems is not None else problem_store.read_problems(root)
    out: list[InboxOutcome] = []
    for code in [dept] if dept else departments(root):
        try:
            root.problem_inbox(code)
        except ValueError:
            log.warning("problems inbox: folder %r is not a department code: skipped", code[:40])
            continue
        out.extend(process_dept(root, code, table, min_age_seconds=min_age_seconds))
    return out

"""Day anchors of the lookup audit trail, kept with the nightly reports.

The trail's hash chain shows an edited, deleted, inserted or reordered record, but not the last
records of a day removed, nor a trail rewritten whole with every hash recomputed. So each
finished UTC day's record count and last hash (``audit_chain.day_anchor``) is written, once, to
``reports/audit-anchors/<day>.json`` by the Airflow worker that writes the night's reports (not
by the lookup server), and shown on the operators' overview. ``datacloud audit verify --anchor
reports/audit-anchors/<day>.json`` checks a trail against it. An anchor is never rewritten: a
day whose trail no longer matches its anchor is logged as an error and keeps the first anchor.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from datacloud.lookup.audit_chain import check_anchor, day_anchor
from datacloud.paths import StorageRoot

log = logging.getLogger(__name__)
DAYS_BACK = 7  # finished days anchored at each run (a missed night is caught up)


def anchor_folder(root: StorageRoot) -> Path:
    return root.root / "reports" / "audit-anchors"


def _write_once(path: Path, anchor: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(anchor, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    with tmp.open("rb") as fh:
        os.fsync(fh.fileno())
    try:
        os.link(tmp, path)  # fails if an anchor is there already: never rewritten
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


def anchor_finished_days(root: StorageRoot, now: datetime | None = None) -> list[dict[str, Any]]:
    """Anchor the finished UTC days (up to ``DAYS_BACK``) that have a trail file and no anchor.

    Returns the anchors of those days, newest first, each as written (or as found, with
    ``mismatch`` set when the trail no longer holds what the anchor says).
    """
    trail = root.audit()
    folder = anchor_folder(root)
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    out: list[dict[str, Any]] = []
    for back in range(1, DAYS_BACK + 1):
        day = (today - timedelta(days=back)).isoformat()
        path = folder / f"{day}.json"
        if path.is_file():
            kept = json.loads(path.read_text(encoding="utf-8"))
            problem = check_anchor(trail, kept)
            if problem:
                log.error("audit anchor %s: the trail no longer matches: %s", day, problem)
            out.append({**kept, "mismatch": problem})
            continue
        if not (trail / f"lookups-{day}.jsonl").is_file():
            continue
        anchor = day_anchor(trail, day)
        folder.mkdir(parents=True, exist_ok=True)
        _write_once(path, anchor)
        out.append({**anchor, "mismatch": None})
    return out


def latest_anchors(root: StorageRoot, limit: int = DAYS_BACK) -> list[dict[str, Any]]:
    """The newest anchors kept, newest first (for the overview page)."""
    folder = anchor_folder(root)
    if not folder.is_dir():
        return []
    paths = sorted(folder.glob("????-??-??.json"), reverse=True)[:limit]
    return [json.loads(p.read_text(encoding="utf-8")) for p in paths]

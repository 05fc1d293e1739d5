"""Day anchors of the audit trail are kept with the nightly reports, never rewritten, and catch
the last records of a day removed (which the hash chain alone cannot see).

Real files in tmp_path; the trail written through the real FileSink; `datacloud audit verify`
through a real subprocess for the exit code an operator's shell sees.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from datacloud.audit_anchors import anchor_finished_days, anchor_folder, latest_anchors
from datacloud.lookup.audit import FileSink
from datacloud.paths import StorageRoot

NOW = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)


def _trail(root: StorageRoot, day: str, n: int) -> None:
    sink = FileSink(root.audit())
    try:
        for i in range(n):
            sink.write({"id": f"r{i}", "at": f"{day}T0{i % 10}:00:00.000+00:00", "kind": "lookup"})
    finally:
        sink.close()


def _verify(root: StorageRoot, anchor: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("datacloud")
    cmd = [str(exe), "audit", "verify", "--folder", str(root.audit()), "--anchor", str(anchor)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def test_finished_days_are_anchored_once_and_today_is_not(tmp_path: Path) -> None:
    root = StorageRoot(tmp_path)
    _trail(root, "2026-11-20", 3)
    _trail(root, "2026-11-21", 2)  # today (UTC): not finished, not anchored
    anchors = anchor_finished_days(root, NOW)
    assert [a["day"] for a in anchors] == ["2026-11-20"]
    assert anchors[0]["records"] == 3 and anchors[0]["mismatch"] is None
    kept = anchor_folder(root) / "2026-11-20.json"
    first = kept.read_text(encoding="utf-8")
    assert not (anchor_folder(root) / "2026-11-21.json").exists()
    assert _verify(root, kept).returncode == 0

    _trail(root, "2026-11-20", 1)  # a late write into the anchored day
    again = anchor_finished_days(root, NOW)
    assert kept.read_text(encoding="utf-8") == first, "an anchor was rewritten"
    assert again[0]["mismatch"] is None  # the anchored records are still the file's first three
    assert latest_anchors(root)[0]["last_hash"] == json.loads(first)["last_hash"]


def test_the_last_records_removed_are_caught_by_the_anchor(tmp_path: Path) -> None:
    root = StorageRoot(tmp_path)
    _trail(root, "2026-11-20", 4)
    anchor_finished_days(root, NOW)
    day_file = root.audit() / "lookups-2026-11-20.jsonl"
    lines = day_file.read_bytes().splitlines(keepends=True)
    day_file.write_bytes(b"".join(lines[:-1]))  # the chain of the first three is still intact

    found = anchor_finished_days(root, NOW)
    assert found[0]["mismatch"] and "fewer records" in found[0]["mismatch"]
    proc = _verify(root, anchor_folder(root) / "2026-11-20.json")
    assert proc.returncode == 1, proc.stdout + proc.stderr


def test_the_overview_shows_the_anchors(tmp_path: Path) -> None:
    from datacloud.config import load_departments
    from datacloud.report import write_overview

    root = StorageRoot(tmp_path)
    day = datetime.now(UTC).date().fromordinal(datetime.now(UTC).date().toordinal() - 1)
    _trail(root, day.isoformat(), 2)
    page = write_overview(root, load_departments(), day).read_text(encoding="utf-8")
    anchor = json.loads((anchor_folder(root) / f"{day.isoformat()}.json").read_text())
    assert 'id="audit-anchors"' in page and anchor["last_hash"] in page

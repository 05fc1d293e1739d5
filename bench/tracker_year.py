"""The data tracker over a year's trail: 365 closed day files of ``rows`` records each (one in a
thousand the asked person's), written as JSON lines directly (chain fields filled, not linked:
neither reader checks the chain). Measures the first request (it builds every sidecar index),
a request through the sidecars (best of three), and the byte search of every file without the
index. Run: ``.venv/bin/python -m bench.tracker_year 2000``; prints one JSON line.
docs/proofs.md#tracker
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from datacloud.lookup.audit import AuditLog, FileSink
from datacloud.lookup.audit_chain import parse, trail_files
from datacloud.lookup.auth import Principal
from datacloud.lookup.tracker import Tracker
from transforms.id_number import id_check_char

KEY = b"bench-tracker-audit-key-012345"
PERSON = "11010119800101001" + id_check_char("11010119800101001")


def _write_year(folder: Path, rows: int, wanted: str) -> None:
    first = date(2025, 12, 1)
    for d in range(365):
        day = first + timedelta(days=d)
        with (folder / f"lookups-{day}.jsonl").open("w", encoding="utf-8") as fh:
            for i in range(rows):
                n = d * rows + i
                record = {
                    "id": f"{n:032x}",
                    "at": f"{day}T00:00:{i % 60:02d}.000+00:00",
                    "who": "公积金中心 城东窗口",
                    "role": "clerk",
                    "channel": "api",
                    "endpoint": "property_status",
                    "purpose": "",
                    "key_hmac": wanted if n % 1000 == 0 else hashlib.sha256(b"%d" % n).hexdigest(),
                    "as_of": None,
                    "outcome": "found",
                    "matter": "gjj_withdrawal",
                    "case_no": f"GJJ-2026-{n:07d}",
                    "department": "gjj",
                    "kind": "lookup",
                    "alg": "sha256",
                    "prev": "0" * 64,
                    "hash": "0" * 64,
                }
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")


def _byte_search(folder: Path, wanted: str) -> list[dict[str, Any]]:
    """What the tracker did before the index: every file's bytes searched for the HMAC."""
    needle, out = wanted.encode(), []
    for _, path in trail_files(folder):
        with path.open("rb") as fh:
            for raw in fh:
                if needle in raw and raw.endswith(b"\n"):
                    rec = parse(raw)
                    if rec is not None and rec.get("key_hmac") == wanted:
                        out.append(rec)
    return out


def run(rows: int) -> dict[str, Any]:
    wanted = hmac.new(KEY, PERSON.encode(), hashlib.sha256).hexdigest()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "audit"
        folder.mkdir()
        _write_year(folder, rows, wanted)
        size = sum(p.stat().st_size for p in folder.iterdir())
        who = Principal("bench", "auditor", "cli")
        tracker = Tracker(AuditLog([FileSink(folder)], KEY))
        t = time.perf_counter()
        matches = len(_byte_search(folder, wanted))
        scan = time.perf_counter() - t
        t = time.perf_counter()
        tracker.track(who, PERSON)
        first = time.perf_counter() - t
        best, total = float("inf"), 0
        for _ in range(3):
            t = time.perf_counter()
            total = tracker.track(who, PERSON).total
            best = min(best, time.perf_counter() - t)
    return {
        "records": 365 * rows,
        "trail_mb": round(size / 1e6),
        "entries": total,
        "scan_matches": matches,
        "byte_search_s": round(scan, 3),
        "first_request_builds_s": round(first, 3),
        "indexed_request_s": round(best, 4),
    }


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)))

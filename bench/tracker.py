"""The data tracker over a long audit trail: one person's lookups found among ``rows`` records
(one in a thousand is that person's), by the tracker (a byte search for the person's HMAC,
only the matching lines parsed) against reading every record as ``FileSink.records`` does
(what the audit search does). The trail is written as JSON lines directly (the chain fields
filled, not linked: neither reader checks the chain). Best of three rounds each.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import tempfile
from pathlib import Path

from bench.harness import best_of, timed_ratio, write_result
from datacloud.lookup.audit import AuditLog, FileSink
from datacloud.lookup.auth import Principal
from datacloud.lookup.tracker import Tracker
from transforms.id_number import id_check_char

KEY = b"bench-tracker-audit-key-012345"
PERSON = "11010119800101001" + id_check_char("11010119800101001")


def run(rows: int = 200_000) -> Path:
    wanted = hmac.new(KEY, PERSON.encode(), hashlib.sha256).hexdigest()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "audit"
        folder.mkdir()
        day = folder / "lookups-2026-12-01.jsonl"
        with day.open("w", encoding="utf-8") as fh:
            for i in range(rows):
                key_hmac = wanted if i % 1000 == 0 else hashlib.sha256(b"%d" % i).hexdigest()
                record = {
                    "id": f"{i:032x}",
                    "at": f"2026-12-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}.000+00:00",
                    "who": "公积金中心 城东窗口",
                    "role": "clerk",
                    "channel": "api",
                    "endpoint": "property_status",
                    "purpose": "",
                    "key_hmac": key_hmac,
                    "as_of": None,
                    "outcome": "found",
                    "matter": "gjj_withdrawal",
                    "case_no": f"GJJ-2026-{i:06d}",
                    "department": "gjj",
                    "kind": "lookup",
                    "alg": "sha256",
                    "prev": "0" * 64,
                    "hash": "0" * 64,
                }
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        size = day.stat().st_size
        audit = AuditLog([FileSink(folder)], KEY)
        tracker = Tracker(audit)
        who = Principal("bench", "auditor", "cli")
        found = tracker.track(who, PERSON)
        ours = best_of(lambda: tracker.track(who, PERSON))
        sink = FileSink(folder)
        anchor = best_of(lambda: [r for r in sink.records() if r.get("key_hmac") == wanted])
    metrics = [
        timed_ratio("track", ours, "parse every record (FileSink.records)", anchor, "<= 0.5")
    ]
    return write_result("tracker", rows, metrics, trail_bytes=size, entries=found.total)

"""Shared harness: timing, metric records and the result file.

Result file: ``{"name", "rows", "metrics": [{"metric", "ours_s", "anchor", "anchor_s",
"ratio", "target"}], "machine", "measured_at"}``. ``ratio`` is ours/anchor for times (or
the stated figure); ``target`` a string such as ``"<= 1.6"``. Benchmarks report; they never
assert a wall-clock time.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Metric:
    metric: str
    ours_s: float
    anchor: str
    anchor_s: float
    ratio: float
    target: str

    def met(self) -> bool:
        op, value = self.target.split()
        return self.ratio <= float(value) if op == "<=" else self.ratio >= float(value)


def best_of(fn: Callable[[], Any], repeat: int = 3) -> float:
    """The fastest of ``repeat`` runs, in seconds (the least disturbed by a noisy machine)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def timed_ratio(metric: str, ours: float, anchor: str, anchor_s: float, target: str) -> Metric:
    return Metric(
        metric, round(ours, 6), anchor, round(anchor_s, 6), round(ours / anchor_s, 4), target
    )


def write_result(name: str, rows: int, metrics: list[Metric], **extra: Any) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = {
        "name": name,
        "rows": rows,
        "metrics": [asdict(m) for m in metrics],
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "measured_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        **extra,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path

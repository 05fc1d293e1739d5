"""Staging memory: peak RSS of the ``stage_czrk`` task, whole-table path against batches.

``nightly.stage`` on ``gongan.czrk`` (the largest table: normalise every person column, the
raw quality gate with Great Expectations, the merge into the staged Delta table), each run in
a fresh interpreter whose peak resident set is the kernel's high-water mark (``VmHWM`` of
/proc/self/status: ``ru_maxrss`` would carry the parent's peak across fork and exec).

For each population (1M and 3M persons by default; ``--rows N`` runs one), the raw partition is
landed once from ``datacloud.sample.generate`` (seed 7; not measured) and hard-linked into two
fresh storage roots. In each root the stage runs twice: night 1 writes the staged table, night 2
merges the next night into it (the same persons, 1% of the names changed: the MERGE path).
The whole-table path's MERGE night is run at 1M persons only (it needed 11 GiB there). ``whole`` is the
path before issue 16 (``stage(..., whole=True)``: the partition read whole), ``batched`` the
path the DAGs run (``DATACLOUD_STAGE_BATCH_ROWS``, default 200,000). Both must give the same
counts. Wall times are printed for information only (the machine is shared).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

from bench.harness import Metric, write_result

DEPT, TABLE = "gongan", "czrk"
DS = date(2026, 11, 20)
NEXT = date(2026, 11, 21)
# the whole-table path's MERGE night needed 11.1 GiB at 1M persons (DataFusion's in-memory
# hash join on the whole source): not run above this size on a shared 24 GiB machine
WHOLE_MERGE_UP_TO = 1_000_000
SEED = 7
SIZES = (1_000_000, 3_000_000)
REPO = Path(__file__).resolve().parent.parent
WORK = Path(tempfile.gettempdir()) / "dc-bench-stage"

LAND = """
import sys
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pathlib import Path
from datacloud.landing import replace_partition
from datacloud.sample import generate
persons, seed, first, second = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
czrk = generate(persons, seed).tables["gongan"]["czrk"]
with replace_partition(first) as w:
    for batch in czrk.to_batches(max_chunksize=100_000):
        w.write(batch)
# the next night: every 100th person's name changed (1% of the rows), the rest as they were
name = czrk["xm"].combine_chunks()
every = pa.array(np.arange(czrk.num_rows) % 100 == 0)
changed = pc.if_else(every, pc.binary_join_element_wise(name, pa.scalar("改"), ""), name)
czrk = czrk.set_column(czrk.column_names.index("xm"), "xm", changed)
with replace_partition(second) as w:
    for batch in czrk.to_batches(max_chunksize=100_000):
        w.write(batch)
print(czrk.num_rows)
"""

CHILD = """
import json, sys, time
from datetime import date
from pathlib import Path
from datacloud import nightly
from datacloud.paths import StorageRoot
root, whole, run = StorageRoot(Path(sys.argv[1])), sys.argv[2] == "whole", sys.argv[3]
ds = date.fromisoformat(sys.argv[4])
t0 = time.perf_counter()
out = nightly.stage(root, nightly.department("gongan"), "czrk", ds, run, whole=whole)
wall = time.perf_counter() - t0
status = Path("/proc/self/status").read_text().splitlines()
hwm_kib = int(next(line for line in status if line.startswith("VmHWM:")).split()[1])
print("RESULT", json.dumps({**out, "wall_s": wall, "peak_rss_mib": hwm_kib / 1024}))
"""


def _env() -> dict[str, str]:
    return {**os.environ, "GX_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(REPO)}


def landed(persons: int) -> tuple[Path, Path]:
    """The raw czrk partitions of two nights of ``persons`` persons (the second with 1% of the
    names changed), landed once and reused by later runs."""
    template = WORK / f"{persons}" / "template" / "raw" / DEPT / TABLE
    first, second = (template / f"ds={d.isoformat()}" for d in (DS, NEXT))
    if not (second / "_SUCCESS").is_file():
        subprocess.run(
            [sys.executable, "-c", LAND, str(persons), str(SEED), str(first), str(second)],
            env=_env(),
            check=True,
            cwd=REPO,
        )
    return first, second


def staged_in_child(root: Path, path: str, run: str, ds: date) -> dict[str, Any]:
    script = WORK / "stage_child.py"  # a file: under -c pyspark (imported by GE) exits
    script.write_text(CHILD, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(script), str(root), path, run, ds.isoformat()],
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line[len("RESULT ") :])
    return result


def measure(persons: int) -> dict[str, Any]:
    """Both paths, two nights each (a new staged table, then a MERGE of 1% changes), in fresh
    roots beside the landed partitions."""
    partitions = landed(persons)
    out: dict[str, Any] = {}
    for path in ("whole", "batched"):
        root = WORK / f"{persons}" / path
        shutil.rmtree(root, ignore_errors=True)
        for partition in partitions:
            target = root / "raw" / DEPT / TABLE / partition.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(partition, target, copy_function=os.link)
        nights = [(DS, "bench-1"), (NEXT, "bench-2")]
        if path == "whole" and persons > WHOLE_MERGE_UP_TO:
            nights = nights[:1]
        try:
            out[path] = [staged_in_child(root, path, run, ds) for ds, run in nights]
        finally:
            shutil.rmtree(root, ignore_errors=True)
    counts = ("rows_in", "rows_accepted", "rows_rejected", "rows_deduplicated")
    for whole, batched in zip(out["whole"], out["batched"], strict=False):
        assert {k: whole[k] for k in counts} == {k: batched[k] for k in counts}, (whole, batched)
    return out


def run(persons: int | None = None) -> Path:
    sizes = (persons,) if persons else SIZES
    detail: dict[str, Any] = {}
    metrics: list[Metric] = []
    for size in sizes:
        got = measure(size)
        detail[str(size)] = got
        for night, label in enumerate(("new_table", "merge_1pct")):
            batched = got["batched"][night]["peak_rss_mib"]
            whole = (
                got["whole"][night]["peak_rss_mib"] if night < len(got["whole"]) else float("nan")
            )
            metrics.append(
                Metric(
                    f"peak_rss_mib_{size // 1_000_000}m_{label}",
                    round(batched, 1),
                    "the whole-table path (stage whole=True), MiB",
                    round(whole, 1),
                    round(batched, 1),
                    "<= 4096",
                )
            )
        print(json.dumps({str(size): got}, indent=1), flush=True)
    rows = max(got["whole"][0]["rows_in"] for got in detail.values())
    return write_result(
        "stage",
        rows,
        metrics,
        batch_rows=int(os.environ.get("DATACLOUD_STAGE_BATCH_ROWS") or 200_000),
        runs=detail,
        note="ours_s and anchor_s are peak RSS in MiB (VmHWM of a fresh process), not seconds; "
        "the machine was shared with other engineers' jobs (RSS is not moved by CPU noise)",
    )

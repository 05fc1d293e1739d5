"""The scatter task of a full build over key ranges: between the plan and the range tasks, the
staged rows every range reads are read once and scattered into one file per stack and range
(``scatter``), so each range task reads its own files instead of streaming every staged table
(docs/curation.md, "A full build over key ranges").

The stacks are the builders' (``curate.STACKS``), with their range keys as a range computes
them (the crosswalk at the plan's versions). The files go to the plan's scratch folder
(``scatter.in_scratch``), which the publish removes. A range reads them through
``curate.Night`` given the scratch folder; where the scatter is absent or incomplete (one
range: nothing to scatter; a killed scatter: no marker) it streams the staged tables as
before, the same rows.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from datacloud import scatter
from datacloud.config import Department
from datacloud.curate import STACKS, Night
from datacloud.curation_config import CurationConfig, load_curation_config
from datacloud.paths import StorageRoot

log = logging.getLogger(__name__)

Plan = dict[str, Any]  # curation_night.plan_night's answer (or one of its range entries)


def scatter_night(
    root: StorageRoot,
    depts: list[Department],
    plan: Plan,
    *,
    config: CurationConfig | None = None,
) -> dict[str, Any]:
    """The scatter task: every stack the range tasks read (``curate.STACKS``), each staged
    table read once at the plan's versions, into a file per stack and range in the plan's
    scratch folder (the marker last). Nothing to do on an incremental night or over one
    range. A rerun keeps a complete scatter, else writes the same files again."""
    count = int(plan.get("count") or 0)
    if plan.get("mode") != "full" or count <= 1:
        return {"scattered": False, "count": count}
    config = config or load_curation_config()
    if config.fingerprint(depts) != plan["fingerprint"]:
        raise RuntimeError("the survivorship rules changed after the plan; run the night again")
    night = Night(root, depts, config, dict(plan["versions"]))
    folder = scatter.in_scratch(Path(plan["scratch"]))
    t0 = time.perf_counter()
    doc = scatter.scatter(
        root, depts, night.versions, [s.spread(night) for s in STACKS], count, folder
    )
    rows = {sid: sum(e["rows"]) for sid, e in doc["stacks"].items()}
    log.info(
        "curation scatter: %d stacks into %d ranges in %.1f s: %s",
        len(rows),
        count,
        time.perf_counter() - t0,
        rows,
    )
    return {"scattered": True, "count": count, "rows": sum(rows.values())}

"""Airflow settings against Airflow's own share of a night (``make bench ONLY=night_airflow``).

The sample databases of ``bench/night.py`` for ``rows`` persons (default 100,000; loaded,
not timed), then the whole night through ``airflow dags test`` (every department DAG, then
``curation``) once per settings variant of ``night.AIRFLOW_SETTINGS``, each on a fresh storage
root and metadata database, the variants in turn. Figure: the wall of each variant and
``lean_vs_default``, the wall with the lean settings ÷ the default one (target ``<= 0.9``:
a setting worth keeping cuts a tenth). Written to bench/results/night_airflow.json; the
night's own task-function seconds, for the share, are in bench/results/night.json.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench import night
from bench.harness import timed_ratio, write_result


def run(rows: int = 100_000) -> Path:
    before = night.load_average()
    walls = {}
    try:
        sources = night.load_sources(rows)
        with tempfile.TemporaryDirectory(prefix="dc-bench-night-airflow-") as tmp:
            for name, settings in night.AIRFLOW_SETTINGS.items():
                try:
                    walls[name] = night.airflow_night(Path(tmp) / name, settings)
                except RuntimeError as e:  # the other variant's figures stand
                    walls[name] = {"failed": str(e), "wall_s": float("nan")}
    finally:
        night.drop_sources()
    metric = timed_ratio(
        "lean_vs_default",
        walls["lean"]["wall_s"],
        "the same night through airflow dags test with the default settings",
        walls["default"]["wall_s"],
        "<= 0.9",
    )
    return write_result(
        "night_airflow",
        sources["source_rows"],
        [metric],
        persons=rows,
        settings=night.AIRFLOW_SETTINGS,
        runs=walls,
        load_average_before=before,
        load_average_after=night.load_average(),
    )

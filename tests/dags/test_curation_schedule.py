"""The curation DAG runs on the staged tables' Asset events, or at the configured cutoff."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_curation_runs_on_every_staged_asset_or_at_the_cutoff() -> None:
    from airflow.dag_processing.dagbag import DagBag

    from datacloud.config import load_departments
    from datacloud.curation_config import load_curation_config

    dag = DagBag(dag_folder=str(REPO / "dags")).dags["curation"]
    timetable = dag.timetable
    assert type(timetable).__name__ == "AssetOrTimeSchedule"
    assert timetable.timetable.expression == load_curation_config().cutoff == "30 5 * * *"
    assert str(timetable.timetable.timezone) == "Asia/Shanghai"
    uris = {a.uri for a in dag.timetable.asset_condition.objects}
    expected = {
        f"datacloud://staged/{d.code}/{t.name}" for d in load_departments() for t in d.tables
    }
    assert uris == expected and len(uris) == sum(len(d.tables) for d in load_departments())
    assert type(dag.timetable.asset_condition).__name__ == "AssetAll"

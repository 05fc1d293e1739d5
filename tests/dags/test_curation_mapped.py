"""The curation DAG's shape: a plan task; on a full build the range tasks mapped over the
plan's ranges (dynamic task mapping), then one publish; on an incremental night the one
curate task; problems and reports after either."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_full_build_maps_range_tasks_and_an_incremental_night_is_one_task() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert not bag.import_errors
    dag = bag.dags["curation"]
    upstream = {t.task_id: t.upstream_task_ids for t in dag.tasks}
    assert upstream == {
        "plan": set(),
        "curate": {"plan"},
        "scatter": {"plan"},
        "build_range": {"plan", "scatter"},
        "publish_ranges": {"plan", "build_range"},
        "track_problems": {"curate", "publish_ranges"},
        "serving_files": {"curate", "publish_ranges"},
        "refresh_reports": {"track_problems"},
    }
    # the range tasks: mapped over the plan's return value, one entry per key range (an
    # empty list on an incremental night: no range runs and the publish is skipped)
    ranges = dag.get_task("build_range")
    assert type(ranges).__name__ == "DecoratedMappedOperator"
    expand = ranges._get_specified_expand_input().value  # what .expand() was given
    assert set(expand) == {"part"}
    assert expand["part"].operator.task_id == "plan" and expand["part"].key == "return_value"
    # only the one-task night and the publish change curated tables (their Asset events)
    for task_id in ("curate", "publish_ranges"):
        assert {a.uri for a in dag.get_task(task_id).outlets} >= {"datacloud://curated/person"}
    for task_id in ("plan", "scatter", "build_range"):
        assert not dag.get_task(task_id).outlets
    # the publish waits for every range; problems and reports follow whichever night ran
    assert str(dag.get_task("publish_ranges").trigger_rule).endswith(("all_success", "ALL_SUCCESS"))
    for task_id in ("track_problems", "refresh_reports"):
        assert str(dag.get_task(task_id).trigger_rule).endswith(("all_done", "ALL_DONE"))

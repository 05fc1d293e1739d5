"""The curation DAG's tasks: plan (full or incremental), then either curate (incremental) or
build_range mapped over the key ranges and publish_ranges (a full build), then track_problems
(the problem table) after whichever ran, then refresh_reports (the reports show tonight's
findings and problems)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_problems_are_tracked_after_curation_and_before_the_reports() -> None:
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(REPO / "dags")).dags["curation"]
    # the edges: tests/dags/test_curation_mapped.py
    assert dag.get_task("refresh_reports").upstream_task_ids == {"track_problems"}
    track = dag.get_task("track_problems")
    # a failed curation still tracks the rejected rows (and the reports still follow)
    assert str(track.trigger_rule) in ("all_done", "TriggerRule.ALL_DONE")
    assert str(dag.get_task("refresh_reports").trigger_rule) in ("all_done", "TriggerRule.ALL_DONE")
    assert not track.outlets
    # the lookups' serving files after whichever publish ran (the other is skipped); a failed
    # publish builds nothing
    serving = dag.get_task("serving_files")
    assert str(serving.trigger_rule) in (
        "none_failed_min_one_success",
        "TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS",
    )

"""Each Airflow Asset is defined once (datacloud/assets.py) and both DAG files use it: the
department DAGs' stage tasks emit exactly the Assets the curation DAG waits for."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_no_dag_file_builds_an_asset_of_its_own() -> None:
    """A name or URI written twice is how a rename leaves curation waiting for its cutoff."""
    built = []
    for path in sorted((REPO / "dags").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Asset":
                built.append(f"{path.name}:{node.lineno}")
    assert built == []


def test_curation_waits_for_what_the_departments_emit() -> None:
    from airflow.dag_processing.dagbag import DagBag

    from datacloud.assets import CURATED

    dags = DagBag(dag_folder=str(REPO / "dags")).dags
    emitted = {
        (a.name, a.uri)
        for dag_id, dag in dags.items()
        if dag_id.startswith("dept_")
        for task in dag.tasks
        if task.task_id.startswith("stage_")
        for a in task.outlets
    }
    awaited = {(a.name, a.uri) for a in dags["curation"].timetable.asset_condition.objects}
    from datacloud.config import load_departments

    assert emitted == awaited and len(awaited) == sum(len(d.tables) for d in load_departments())
    published = {(a.name, a.uri) for a in dags["curation"].get_task("curate").outlets}
    assert published == {(a.name, a.uri) for a in CURATED}

"""``datacloud run``'s progress: the task events read from ``airflow dags test``'s own lines
(the lines are copied from a real run's log, airflow 3.3)."""

from __future__ import annotations

from datacloud.run import TaskEvent, TaskWatcher

LINES = [
    "2026-12-04T23:20:23.904256Z [info     ] [DAG TEST] starting task_id=extract_cbry "
    "map_index=-1 [airflow.sdk.definitions.dag] loc=dag.py:1501",
    "2026-12-04T23:20:29.811826Z [info     ] Task instance state updated    "
    "[airflow.api_fastapi.execution_api.routes.task_instances] correlation_id=01a2 "
    "loc=task_instances.py:485 new_state=success rows_affected=1 ti_id=01a2",
    "2026-12-04T23:20:29.862775Z [info     ] [DAG TEST] end task task_id=extract_cbry "
    "map_index=-1 [airflow.sdk.definitions.dag] loc=dag.py:1563",
    "2026-12-04T23:20:29.878674Z [info     ] [DAG TEST] starting task_id=extract_czrk "
    "map_index=2 [airflow.sdk.definitions.dag] loc=dag.py:1501",
    "2026-12-04T23:20:30.100000Z [info     ] Task instance state updated    "
    "[airflow.api_fastapi.execution_api.routes.task_instances] new_state=failed rows_affected=1",
    "2026-12-04T23:20:30.200000Z [info     ] [DAG TEST] end task task_id=extract_czrk "
    "map_index=2 [airflow.sdk.definitions.dag] loc=dag.py:1563",
    "2026-12-04T23:20:30.300000Z [info     ] [DAG TEST] starting task_id=report map_index=-1",
    "2026-12-04T23:20:30.400000Z [info     ] [DAG TEST] end task task_id=report map_index=-1",
]


def test_each_task_instance_is_reported_with_its_final_state() -> None:
    seen: list[TaskEvent] = []
    watch = TaskWatcher(seen.append)
    for line in LINES:
        watch(line)
    assert [(e.label, e.state) for e in seen] == [
        ("extract_cbry", None),
        ("extract_cbry", "success"),
        ("extract_czrk[2]", None),
        ("extract_czrk[2]", "failed"),
        ("report", None),
        ("report", "ended"),  # no state logged: not called a success
    ]

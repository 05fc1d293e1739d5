"""The curation DAG (airflow): golden records and relations from every department's staged tables.

Runs at the night's cutoff (05:30 Asia/Shanghai) with whatever has landed, and publishes
each curated table in one Delta commit.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Asset, CronTriggerTimetable, task

from datacloud.canonical import CURATED_TABLES


@task(outlets=[Asset(name=f"curated.{t}", uri=f"datacloud://curated/{t}") for t in CURATED_TABLES])
def curate() -> dict[str, Any]:
    """Build and publish every curated table."""
    from airflow.sdk import get_current_context

    from datacloud.nightly import business_date, curate

    ctx = get_current_context()
    ds = business_date(ctx["data_interval_end"], ctx["dag_run"].conf)
    return curate(ds, ctx["run_id"])


with DAG(
    dag_id="curation",
    description="golden person and enterprise records, relations (一人一档, 一企一档)",
    schedule=CronTriggerTimetable(
        "30 5 * * *", timezone="Asia/Shanghai", interval=timedelta(days=1)
    ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["datacloud", "curation"],
    doc_md=__doc__,
    default_args={
        "owner": "datacloud",
        "retries": int(os.environ.get("DATACLOUD_TASK_RETRIES", 2)),
        "retry_delay": timedelta(minutes=5),
        "retry_exponential_backoff": 2.0,
        "execution_timeout": timedelta(hours=3),
    },
):
    curate()

"""The curation DAG (airflow): golden records and relations from every department's staged tables.

Runs when every department's staged tables have been updated (their Asset events), or at the
cutoff of ``dags/curation.yaml`` (05:30 Asia/Shanghai) with whatever has landed. ``plan``
decides the night: an incremental one (``curate``, one task, recomputes only the keys the
staged changes touch) or a full build (the first night, a survivorship change, conf
``{"full": true}``): ``scatter`` reads the staged tables once and writes each range's rows to
its own files in the plan's scratch folder, then ``build_range`` mapped over the key ranges
(dynamic task mapping, spread over the Celery workers) reads only its range's files, then
``publish_ranges``. Each curated table changes by one Delta commit either way; the tasks of
the other kind are skipped (``scatter`` does nothing on an incremental night).
Then tonight's problems are tracked (``track_problems``: the problem table, docs/problems.md)
and tonight's department reports are written again, so they show the cross-department
findings (比对) curation has just published and the 问题整改 section.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import (
    DAG,
    AssetAll,
    AssetOrTimeSchedule,
    CronTriggerTimetable,
    TriggerRule,
    task,
)

from datacloud.assets import CURATED, staged_assets
from datacloud.business_day import business_date, of_staged_events
from datacloud.config import ConfigError, Department, load_department
from datacloud.curation_config import load_curation_config
from datacloud.paths import departments_dir

CONFIG = load_curation_config()


def _departments() -> list[Department]:
    """The departments whose YAML is valid (a broken one is the department DAG's import error)."""
    out = []
    for path in sorted(departments_dir().glob("*.yaml")):
        try:
            out.append(load_department(path))
        except ConfigError:
            continue
    return out


STAGED = staged_assets(_departments())


def _night() -> tuple[Any, dict[str, Any], str]:
    """The run's business date, conf and run id."""
    from airflow.sdk import get_current_context

    ctx = get_current_context()
    conf = dict(ctx["dag_run"].conf or {})
    # an asset-triggered run covers the business date its staged events carry (a backfill or a
    # past night triggers curation today); without one, the day before it ran
    events = ctx.get("triggering_asset_events") or {}
    stamped = of_staged_events([e.extra for evs in events.values() for e in evs])
    if stamped is not None and not conf.get("business_date"):
        conf["business_date"] = stamped.isoformat()
    end = ctx.get("data_interval_end") or ctx["dag_run"].run_after
    return business_date(end, conf), conf, ctx["run_id"]


@task
def plan() -> list[dict[str, Any]]:
    """Full build or incremental night: one entry per key range of a full build (the plan and
    the range's index), none for an incremental night (``curation_night.range_tasks``)."""
    from datacloud.config import load_departments
    from datacloud.curation_night import plan_night, range_tasks
    from datacloud.paths import StorageRoot

    _, conf, run_id = _night()
    root = StorageRoot.from_env()
    return range_tasks(plan_night(root, load_departments(), run_id, full=bool(conf.get("full"))))


@task(outlets=CURATED)
def curate(planned: list[dict[str, Any]]) -> dict[str, Any]:
    """An incremental night: build, check and publish every curated table (the touched keys
    only). Skipped when the plan is a full build."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from datacloud.config import load_departments
    from datacloud.curation_night import curate_night
    from datacloud.paths import StorageRoot
    from datacloud.quality import QualityGateError

    if planned:
        raise AirflowSkipException(f"a full build over {len(planned)} key ranges")
    ds, _, run_id = _night()
    root = StorageRoot.from_env()  # the task edge reads the environment once
    try:
        return curate_night(root, load_departments(), ds, run_id)
    except QualityGateError as e:  # the same data gives the same verdict: no retries
        raise AirflowFailException(str(e)) from e


@task
def scatter(planned: list[dict[str, Any]]) -> dict[str, Any]:
    """A full build's staged rows read once, before the ranges start together: each range's
    rows of every stack into its own files in the scratch folder (``curation_scatter``);
    nothing on an incremental night or over one range. A range without them streams the
    staged tables itself."""
    from datacloud.config import load_departments
    from datacloud.curation_scatter import scatter_night
    from datacloud.paths import StorageRoot

    if not planned:
        return {"scattered": False, "count": 0}
    return scatter_night(StorageRoot.from_env(), load_departments(), planned[0])


@task
def build_range(part: dict[str, Any]) -> dict[str, Any]:
    """A full build's range task: its part of every curated table, into the scratch folder
    (mapped over the plan's entries: none on an incremental night)."""
    from datacloud.config import load_departments
    from datacloud.curation_night import build_range as build
    from datacloud.paths import StorageRoot

    return build(StorageRoot.from_env(), load_departments(), part, part["index"])


@task(outlets=CURATED)
def publish_ranges(planned: list[dict[str, Any]]) -> dict[str, Any]:
    """A full build's publish: every curated table once from all the ranges' parts, through
    the gate on the whole table; the findings, the state file, the resource catalogue."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from datacloud.config import load_departments
    from datacloud.curation_night import publish_night
    from datacloud.paths import StorageRoot
    from datacloud.quality import QualityGateError

    if not planned:  # an incremental night (curate ran): nothing to publish here
        raise AirflowSkipException("an incremental night: no key ranges to publish")
    ds, _, run_id = _night()
    try:
        return publish_night(StorageRoot.from_env(), load_departments(), ds, run_id, planned[0])
    except QualityGateError as e:  # the same data gives the same verdict: no retries
        raise AirflowFailException(str(e)) from e


@task(trigger_rule=TriggerRule.ALL_DONE)
def track_problems() -> dict[str, Any]:
    """Track tonight's problems (问题数据闭环): rejected rows and findings against the problem
    table, the departments' responses applied; also after a failed curation (the rejected
    rows are the departments' either way; findings not compared tonight keep their state)."""
    from datacloud.config import load_departments
    from datacloud.paths import StorageRoot
    from datacloud.problems_night import track_night

    ds, _, run_id = _night()
    return track_night(StorageRoot.from_env(), load_departments(), ds, run_id)


@task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS, retries=0)
def serving_files() -> dict[str, int]:
    """Build the lookup serving files of the versions just published, so every replica
    switches within its poll interval instead of building them on first sight
    (docs/lookup.md). After whichever of curate / publish_ranges ran; a failure here is only
    slower lookups on the new version, never a lost night."""
    from datacloud.lookup.paged import build_latest_serving_files
    from datacloud.paths import StorageRoot

    return build_latest_serving_files(StorageRoot.from_env())


@task(trigger_rule=TriggerRule.ALL_DONE)
def refresh_reports() -> dict[str, str]:
    """Rewrite tonight's department reports, now with the cross-department findings."""
    from datacloud.config import load_departments
    from datacloud.nightly import refresh_reports as run
    from datacloud.paths import StorageRoot

    return run(StorageRoot.from_env(), load_departments(), _night()[0])


with DAG(
    dag_id="curation",
    description="golden person and enterprise records, relations (一人一档, 一企一档)",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(
            CONFIG.cutoff, timezone=CONFIG.timezone, interval=timedelta(days=1)
        ),
        assets=AssetAll(*STAGED),
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
    planned = plan()
    ranges = build_range.expand(part=planned)
    scatter(planned) >> ranges  # once, before the ranges run in parallel
    published = publish_ranges(planned)
    ranges >> published
    curated = [curate(planned), published]
    curated >> track_problems() >> refresh_reports()
    curated >> serving_files()

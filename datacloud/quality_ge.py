"""Running one suite with Great Expectations 1.x on a profile table, with its Data Docs page.

Each scope (a department table, or ``curated/<table>``) has its own small file context under
``quality/gx/<scope>/`` (so parallel tasks never write the same GE config) and its own Data
Docs site under ``quality/data_docs/<scope>/``. A night's result is stored under the run name
``<date>`` with the run time fixed to that date: rerunning a night replaces its result and its
page instead of adding new ones. Results are kept as ``SUMMARY`` with no unexpected values,
progress bars and analytics are off. GE is imported here only, inside the task.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pyarrow as pa

from datacloud.paths import StorageRoot
from datacloud.quality_words import in_chinese, in_english, observation

log = logging.getLogger(__name__)
SITE = "datacloud"
DATASOURCE = "profiles"
RESULT_FORMAT: dict[str, Any] = {
    "result_format": "SUMMARY",
    "partial_unexpected_count": 0,
    "include_unexpected_rows": False,
}


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's verdict, with no data value in it."""

    check: str
    expectation: str
    column: str | None
    severity: str
    success: bool
    observed: str
    observed_zh: str = ""  # the same in Chinese, for the department's report


@dataclass(frozen=True)
class SuiteRun:
    outcomes: list[ExpectationOutcome]
    data_docs: str | None  # the result's Data Docs page, relative to the storage root
    seconds: float  # GE's share: import, context, validation, Data Docs


def _context(root: StorageRoot, scope: tuple[str, str]) -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    project = root.quality() / "gx" / scope[0] / scope[1]
    project.mkdir(parents=True, exist_ok=True)
    ctx = gx.get_context(mode="file", project_root_dir=project)
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    docs = root.quality() / "data_docs" / scope[0] / scope[1]
    sites = ctx.get_site_names()
    if SITE not in sites:
        ctx.add_data_docs_site(
            SITE,
            {
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": os.path.relpath(docs, ctx.root_directory),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
    if "local_site" in sites:
        ctx.delete_data_docs_site("local_site")
    return ctx


def _docs_path(root: StorageRoot, url: str | None) -> str | None:
    if not url or not url.startswith("file://"):
        return None
    path = Path(unquote(urlparse(url).path)).resolve()
    try:
        return path.relative_to(root.root).as_posix()
    except ValueError:
        return None


def run_suite(
    root: StorageRoot,
    scope: tuple[str, str],
    suite: dict[str, Any],
    profile: pa.Table,
    params: dict[str, float],
    ds: date,
) -> SuiteRun:
    """Validate ``profile`` against ``suite`` (plain JSON) and build its Data Docs page."""
    started = time.perf_counter()
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.core.run_identifier import RunIdentifier

    ctx = _context(root, scope)
    name = f"{scope[0]}.{scope[1]}"
    gx_suite = gx.ExpectationSuite(
        name=suite["name"], expectations=suite["expectations"], meta=suite.get("meta")
    )
    if len(gx_suite.expectations) != len(suite["expectations"]):  # GE drops bad ones silently
        raise ValueError(f"suite {suite['name']}: an expectation is not valid for GE")
    gx_suite = ctx.suites.add_or_update(gx_suite)
    source = ctx.data_sources.add_or_update_pandas(DATASOURCE)
    asset = source.add_dataframe_asset(scope[1])
    batch = asset.add_batch_definition_whole_dataframe("whole")
    definition = ctx.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=name, data=batch, suite=gx_suite)
    )
    checkpoint = ctx.checkpoints.add_or_update(
        gx.Checkpoint(
            name=name,
            validation_definitions=[definition],
            actions=[UpdateDataDocsAction(name="data_docs", site_names=[SITE])],
            result_format=RESULT_FORMAT,
        )
    )
    run_id = RunIdentifier(
        run_name=ds.isoformat(), run_time=datetime(ds.year, ds.month, ds.day, tzinfo=UTC)
    )
    result = checkpoint.run(
        batch_parameters={"dataframe": profile.to_pandas()},
        expectation_parameters=params,
        run_id=run_id,
    )
    ((identifier, validation),) = result.run_results.items()
    outcomes = []
    for r in validation.results:
        cfg = r.expectation_config
        seen = observation(cfg.type, dict(cfg.kwargs), dict(r.result or {}))
        outcomes.append(
            ExpectationOutcome(
                check=str((cfg.meta or {}).get("check", cfg.type)),
                expectation=cfg.type,
                column=cfg.kwargs.get("column"),
                severity=str(getattr(cfg.severity, "value", cfg.severity)),
                success=bool(r.success),
                observed=in_english(seen),
                observed_zh=in_chinese(seen),
            )
        )
    urls = ctx.get_docs_sites_urls(resource_identifier=identifier, site_names=[SITE])
    page = _docs_path(root, urls[0].get("site_url") if urls else None)
    return SuiteRun(outcomes, page, time.perf_counter() - started)

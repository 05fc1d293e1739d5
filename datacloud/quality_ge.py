"""Running one suite with Great Expectations 1.x on a profile table, with its Data Docs page.

Each scope (a department table, or ``curated/<table>``) has its own small file context under
``quality/gx/<scope>/`` (so parallel tasks never write the same GE config) and its own Data
Docs site under ``quality/data_docs/<scope>/``. A night's result is stored under the run name
``<date>`` with the run time fixed to that date: rerunning a night replaces its result and its
page instead of adding new ones. Results are kept as ``SUMMARY`` with no unexpected values,
progress bars and analytics are off. GE is imported here only, inside the task.

A profile may come as slices (``run_suite_slices``: the curated gate of a full build's
publish, the raw gate of a night's table): each is validated alone and the counts of each
expectation are added up into the one result of the table, stored and rendered as one page.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
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
    return run_suite_slices(root, scope, suite, [profile], params, ds)


def run_suite_slices(
    root: StorageRoot,
    scope: tuple[str, str],
    suite: dict[str, Any],
    profiles: Iterable[pa.Table],
    params: dict[str, float],
    ds: date,
    table_level: bool = False,
) -> SuiteRun:
    """Validate a table's profile given as slices (``profiles``, taken one at a time: only
    one slice's pandas frame is alive at once) and build one Data Docs page for the table.

    Each slice is validated by the same checkpoint; the slices' results are added up per
    expectation (``combined``: counts summed, percentages and success recomputed from the
    sums as GE computes them, ``mostly`` included), so a table's result is GE's result on
    the whole profile whenever each expectation's verdict on a row depends on that row alone
    or, for uniqueness, when no value of the column repeats across slices (the caller's
    business: ``quality.check_curated_slices``). One slice is GE's result as it is. The
    combined result is stored as the night's result and its page built from it.

    With ``table_level`` the table-level expectations of the raw suites are judged on the
    whole table too: the row count on the slices' rows summed (by GE's own check of the
    expectation), the column set once (every slice has the same columns). Without it, a
    suite holding one cannot be sliced (``ValueError``).
    """
    started = time.perf_counter()
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )

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
    # no actions: the Data Docs page is built below, once, from the table's (combined) result
    checkpoint = ctx.checkpoints.add_or_update(
        gx.Checkpoint(
            name=name,
            validation_definitions=[definition],
            actions=[],
            result_format=RESULT_FORMAT,
        )
    )
    run_id = RunIdentifier(
        run_name=ds.isoformat(), run_time=datetime(ds.year, ds.month, ds.day, tzinfo=UTC)
    )
    identifier: Any = None
    validation: Any = None
    slices = 0
    for profile in profiles:
        frame = profile.to_pandas()
        result = checkpoint.run(
            batch_parameters={"dataframe": frame},
            expectation_parameters=params,
            run_id=run_id,
        )
        ((this, one),) = result.run_results.items()
        del frame, result  # the slice's frame goes; its result's counts are kept
        if identifier is not None and this != identifier:
            raise RuntimeError(f"{name}: a slice's result has another identifier than the first")
        identifier = this
        validation = one if validation is None else _added(validation, one, table_level)
        slices += 1
    if validation is None:
        raise ValueError(f"{name}: no profile to validate")
    if slices > 1:
        _judged(validation)
        validation.meta["datacloud_slices"] = slices
        ctx.validation_results_store.store_validation_results(
            suite_validation_result=validation, suite_validation_result_identifier=identifier
        )
    ctx.build_data_docs(
        site_names=[SITE],
        resource_identifiers=[identifier, ExpectationSuiteIdentifier(name=suite["name"])],
    )
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


# --- adding up the results of a table's slices ----------------------------------------------

_SUMMED = ("element_count", "unexpected_count", "missing_count")
# the raw suites' table-level expectations (expectations/raw_*.json)
_ROW_COUNT = "expect_table_row_count_to_be_between"
_COLUMN_SET = "expect_table_columns_to_match_set"


def _raised(r: Any) -> bool:
    return bool((r.exception_info or {}).get("raised_exception"))


def _added(total: Any, more: Any, table_level: bool = False) -> Any:
    """``total`` (a suite's result over the slices so far) with a further slice's result
    ``more`` added: each column map expectation's counts summed. An expectation that raised
    in a slice keeps that slice's result (it fails). With ``table_level``, the row count's
    observed rows are summed (judged in ``_judged``) and the column set's result must be
    the same in every slice. Other expectations (no per-row counts, e.g. a row count check
    without ``table_level``) cannot be added up: ``ValueError``."""
    if len(total.results) != len(more.results):
        raise RuntimeError("the slices' results have other expectations")
    for i, (a, b) in enumerate(zip(total.results, more.results, strict=True)):
        if a.expectation_config.type != b.expectation_config.type:
            raise RuntimeError("the slices' results have other expectations")
        if _raised(a):
            continue
        if _raised(b):
            total.results[i] = b
            continue
        ra, rb = a.result or {}, b.result or {}
        kind = a.expectation_config.type
        if table_level and kind == _ROW_COUNT:
            ra["observed_value"] = int(ra["observed_value"]) + int(rb["observed_value"])
            continue
        if table_level and kind == _COLUMN_SET:
            if ra != rb or a.success != b.success:
                raise RuntimeError("the slices' results have other columns")
            continue
        if "element_count" not in ra or "element_count" not in rb:
            raise ValueError(
                f"{a.expectation_config.type}: no per-row counts, it cannot be added up over slices"
            )
        for k in _SUMMED:
            if k in ra:
                ra[k] = int(ra[k] or 0) + int(rb.get(k) or 0)
    return total


def _judged(validation: Any) -> None:
    """Percentages and success of the summed counts, as GE computes them for one frame
    (``_format_map_output``, ``_mostly_success``; ``expect_column_values_to_not_be_null``,
    which has no missing count, over every row), then the suite's statistics and success.
    A row count (summed by ``_added``) is judged by GE's own check of the expectation; a
    column set keeps its (every slice's) verdict."""
    for r in validation.results:
        if _raised(r):
            continue
        res = r.result
        kind = r.expectation_config.type
        if kind == _ROW_COUNT:
            check = r.expectation_config.to_domain_obj()
            judged = check._validate(metrics={"table.row_count": int(res["observed_value"])})
            r.success, r.result = bool(judged["success"]), dict(judged["result"])
            continue
        if kind == _COLUMN_SET:
            continue
        total, bad = int(res["element_count"]), int(res.get("unexpected_count") or 0)
        mostly = r.expectation_config.kwargs.get("mostly")
        mostly = 1.0 if mostly is None else float(mostly)  # a suite parameter: filled by now
        if "missing_count" in res:  # over the values present
            nonnull = total - int(res["missing_count"])
            res["missing_percent"] = res["missing_count"] / total * 100 if total else None
            res["unexpected_percent_total"] = bad / total * 100 if total else None
            share = bad / nonnull * 100 if total and nonnull else None
            res["unexpected_percent_nonmissing"] = share
            res["unexpected_percent"] = share
            considered = nonnull
        else:  # over every row
            res["unexpected_percent"] = bad / total * 100 if total else None
            considered = total
        for k, v in res.items():  # lists of values (none kept: partial_unexpected_count 0)
            if isinstance(v, list):
                res[k] = []
        r.success = considered == 0 or (considered - bad) / considered >= mostly
    evaluated = len(validation.results)
    passed = sum(1 for r in validation.results if r.success)
    validation.statistics = {
        "evaluated_expectations": evaluated,
        "successful_expectations": passed,
        "unsuccessful_expectations": evaluated - passed,
        "success_percent": passed / evaluated * 100 if evaluated else None,
    }
    validation.success = passed == evaluated

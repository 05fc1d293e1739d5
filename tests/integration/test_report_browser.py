"""The HTML reports of real nights, opened from disk in headless Chromium (Debian's ``chromium``).

Three nights of the five sample departments run through extract and stage (no Airflow);
on the last night the mz source is unreachable. Each page must load with no console error,
no page error and no request outside the file system, and draw its charts. Screenshots are
kept in tests/artifacts/ (git-ignored) to look at.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest

from datacloud import nightly
from datacloud.config import Department
from datacloud.demo import departments as sample_departments
from datacloud.paths import REPO_ROOT, StorageRoot
from datacloud.report import write_department_report, write_overview
from datacloud.sample import DEFAULT_BUSINESS_DATE, generate, write_sqlite
from transforms.id_number import is_valid_id_number

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO_ROOT / "tests" / "artifacts"
DS = DEFAULT_BUSINESS_DATE
NIGHTS = [DS - timedelta(days=3), DS - timedelta(days=1), DS]  # DS - 2 missing: a gap
UNREACHABLE = "postgresql+psycopg2://postgres@127.0.0.1:1/nope"
FAILING = "mz"


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Three nights of every department; mz's source unreachable on the last one."""
    tmp = tmp_path_factory.mktemp("report-browser")
    dbs = write_sqlite(generate(300, seed=5), tmp / "samples")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATACLOUD_ROOT", str(tmp / "root"))
        root = StorageRoot.from_env()
        depts = sample_departments()  # those with a sample database
        staged: dict[tuple[str, str], dict[str, Any]] = {}
        for ds in NIGHTS:
            for dept in depts:
                for table in dept.tables:
                    if ds == DS and dept.code == FAILING:
                        with pytest.raises(Exception, match="department mz, table hydj"):
                            nightly.extract(
                                StorageRoot.from_env(), dept, table.name, ds, UNREACHABLE
                            )
                        continue
                    nightly.extract(
                        StorageRoot.from_env(), dept, table.name, ds, f"sqlite:///{dbs[dept.code]}"
                    )
                    staged[(dept.code, table.name)] = nightly.stage(
                        StorageRoot.from_env(),
                        dept,
                        table.name,
                        ds,
                        "test-run",
                    )
                write_department_report(root, dept, ds)
        overview = write_overview(root, depts, DS)
        yield {"root": root, "depts": depts, "staged": staged, "overview": overview}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield b
        b.close()


class Opened:
    """A page opened from disk, with everything it complained about or tried to fetch."""

    def __init__(self, browser: Any, path: Path) -> None:
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page = browser.new_page(viewport={"width": 1100, "height": 900})
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.errors.append(f"failed: {r.url}"))
        self.page.on("request", lambda r: self.requests.append(r))
        self.page.goto(path.as_uri(), wait_until="load")

    def outside(self) -> list[str]:
        return [r.url for r in self.requests if not r.url.startswith(("file://", "data:"))]


def _drawn(page: Any, chart_id: str) -> dict[str, int]:
    """Counts of the chart's marks that have a real size on screen."""
    result: dict[str, int] = page.evaluate(
        """(id) => {
            const svg = document.getElementById(id);
            if (!svg) return {svg: 0};
            const sized = (el) => {
                const r = el.getBoundingClientRect();
                return r.width > 0 && r.height > 0;
            };
            const all = (sel) => [...svg.querySelectorAll(sel)];
            return {
                svg: sized(svg) ? 1 : 0,
                rect: all('rect').filter(sized).length,
                path: all('path.series').filter(p => p.getTotalLength() > 0).length,
                circle: all('circle').filter(sized).length,
            };
        }""",
        chart_id,
    )
    return result


def _links_resolve(page: Any, path: Path) -> None:
    hrefs: list[str] = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
    assert hrefs
    for href in hrefs:
        url = urlparse(href)
        assert url.scheme == "file", href  # relative links only: work from disk
        assert Path(unquote(url.path)).is_file(), f"{path.name}: broken link {href}"


def _full_id_numbers(text: str) -> set[str]:
    found = re.findall(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])", text)
    return {m for m in found if is_valid_id_number(m.upper())}


def _screenshot(opened: Opened, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    out = ARTIFACTS / f"report-{name}.png"
    opened.page.screenshot(path=str(out), full_page=True)
    assert out.stat().st_size > 10_000
    return out


def _depts(night: dict[str, Any]) -> list[Department]:
    return list(night["depts"])


def test_report_counts_equal_the_pipelines(night: dict[str, Any]) -> None:
    root: StorageRoot = night["root"]
    for (code, table), counts in night["staged"].items():
        if code == FAILING:
            continue
        report = json.loads((root.report_dir(code, DS) / "report.json").read_text("utf-8"))
        (entry,) = [t for t in report["tables"] if t["table"] == table]
        for k in ("rows_in", "rows_accepted", "rows_rejected", "rows_deduplicated"):
            assert entry[k] == counts[k], (code, table, k)
        assert entry["rows_in"] == (
            entry["rows_accepted"] + entry["rows_rejected"] + entry["rows_deduplicated"]
        )
    # the sample's dirt gets some rows rejected, so the pages below do draw bar charts
    assert sum(c["rows_rejected"] for c in night["staged"].values()) > 0


@pytest.mark.parametrize("code", ["gongan", "scjg", "bdc", "gjj"])
def test_department_page_loads_and_draws_its_charts(
    night: dict[str, Any], browser: Any, code: str
) -> None:
    root: StorageRoot = night["root"]
    path = root.report_dir(code, DS) / "index.html"
    opened = Opened(browser, path)
    try:
        assert opened.errors == []
        assert opened.outside() == []
        report = json.loads((path.parent / "report.json").read_text("utf-8"))
        # one headline from every part of the night: green 成功 only with nothing to do
        assert opened.page.locator("#status").inner_text() == report["headline_zh"]
        assert (report["headline"] == "success") is (report["todo"] == [])
        if report["totals"]["rows_rejected"]:  # the sample's dirt: something to do
            assert report["headline"] == "action_needed"
        assert opened.page.locator("#todo li[data-todo]").count() == len(report["todo"])
        help_ = opened.page.locator("#help")
        assert help_.is_visible() and "rejected.csv" in help_.inner_text()
        assert "docs/reports.md" not in opened.page.content()
        rules = {c for t in report["tables"] for c in t["rejections_by_rule"]}
        bars = _drawn(opened.page, "chart-rejections")
        if rules:  # one bar per rule
            assert bars["svg"] == 1 and bars["rect"] == len(rules)
        else:
            assert bars == {"svg": 0} and "本晚没有拒收的数据" in opened.page.content()
        volume = _drawn(opened.page, "chart-volume")
        assert volume["svg"] == 1 and volume["circle"] == 2 * len(NIGHTS)
        assert volume["path"] == 2  # nights DS-1 and DS joined; DS-3 stands alone after a gap
        assert _drawn(opened.page, "chart-rejected")["circle"] == len(NIGHTS)
        _links_resolve(opened.page, path)
        assert not _full_id_numbers(opened.page.content())
        _screenshot(opened, code)
    finally:
        opened.page.close()


def test_failed_night_page_says_source_unreachable(night: dict[str, Any], browser: Any) -> None:
    root: StorageRoot = night["root"]
    path = root.report_dir(FAILING, DS) / "index.html"
    report = json.loads((path.parent / "report.json").read_text("utf-8"))
    assert report["status"] == "failed"
    assert report["status_reasons"][0]["failure_kind"] == "source_unreachable"
    opened = Opened(browser, path)
    try:
        assert opened.errors == [] and opened.outside() == []
        assert opened.page.locator("#status").inner_text() == "失败"
        assert "数据源无法连接" in opened.page.locator("#reasons").inner_text()
        volume = _drawn(opened.page, "chart-volume")  # the earlier good nights
        assert volume["circle"] == 2 * (len(NIGHTS) - 1)
        _links_resolve(opened.page, path)
        _screenshot(opened, FAILING)
    finally:
        opened.page.close()


def test_a_platform_fault_page_says_so_with_its_cause(browser: Any, tmp_path: Path) -> None:
    """A table the platform failed (a YAML mapping a column its SQL does not select): the page
    says the platform is at fault and its operators are on it, and shows the masked cause."""
    from datacloud import runstate

    root = StorageRoot(tmp_path / "root")
    dept = next(d for d in sample_departments() if d.code == FAILING)
    for table in dept.tables:
        runstate.update(
            root,
            dept.code,
            DS,
            table.name,
            status="failed",
            stage="extract",
            error=f"department {dept.code}, table {table.name}: extraction failed: MappingError: "
            "the query returns no column(s) ['djjgx'] that the YAML maps",
            failure_kind="error",
        )
    path = write_department_report(root, dept, DS).parent / "index.html"
    opened = Opened(browser, path)
    try:
        assert opened.errors == [] and opened.outside() == []
        assert opened.page.locator("#status").inner_text() == "失败（平台原因）"
        reasons = opened.page.locator("#reasons").inner_text()
        assert "平台原因，运维人员正在处理" in reasons and "djjgx" in reasons
        assert "恢复原表结构" not in reasons
        assert opened.page.locator("#reasons pre.error").first.is_visible()  # not folded away
        assert "平台正在处理" in opened.page.locator("#todo").inner_text()
        _links_resolve(opened.page, path)
        _screenshot(opened, "platform-fault")
    finally:
        opened.page.close()


def test_overview_lists_every_department_and_links_to_reports(
    night: dict[str, Any], browser: Any
) -> None:
    path: Path = night["overview"]
    opened = Opened(browser, path)
    try:
        assert opened.errors == [] and opened.outside() == []
        rows = opened.page.eval_on_selector_all(
            "tr[data-department]", "els => els.map(e => e.dataset.department)"
        )
        assert rows == [d.code for d in _depts(night)]
        cells = opened.page.locator(f'tr[data-department="{FAILING}"] td[data-night]')
        assert cells.count() == 30
        assert cells.last.get_attribute("data-status") == "failed"
        loaded = 'td[data-status="success"], td[data-status="action_needed"]'
        assert opened.page.locator(loaded).count() == len(_depts(night)) * 3 - 1
        _links_resolve(opened.page, path)
        _screenshot(opened, "overview")
        opened.page.click(f'tr[data-department="gongan"] td[data-night="{DS.isoformat()}"] a')
        opened.page.wait_for_load_state("load")
        assert opened.page.url.endswith(f"gongan/{DS.isoformat()}/index.html")
        assert opened.errors == []
    finally:
        opened.page.close()

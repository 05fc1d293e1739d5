"""The resource catalogue's page (资源目录) of a real night, opened from disk in headless
Chromium (Debian's ``chromium``), as the report pages are (test_report_browser.py).

One sample night (SQLite sources, ``nightly.extract``/``stage``, ``curation_night.curate_night``
with its real gate) writes ``catalogue/index.html``. The page must load with no console
error, no page error and no request outside the file system; show every table with the
version, row count and gate of catalogue.json, and every field with its Chinese name; its
links must resolve on disk. A screenshot is kept in tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest
from helpers import full_id_numbers

from datacloud import catalogue_night, curation_night, nightly
from datacloud.demo import departments as sample_departments
from datacloud.paths import REPO_ROOT, StorageRoot
from datacloud.sample import DEFAULT_BUSINESS_DATE, generate, write_sqlite

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO_ROOT / "tests" / "artifacts"
DS = DEFAULT_BUSINESS_DATE


@pytest.fixture(scope="module")
def page_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("catalogue-browser") / "root"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATACLOUD_ROOT", str(folder))
        root = StorageRoot.from_env()
        write_sqlite(generate(300, 20261120, DS), root.samples())
        depts = sample_departments()
        for dept in depts:
            for table in dept.tables:
                url = f"sqlite:///{root.samples() / (dept.code + '.db')}"
                nightly.extract(root, dept, table.name, DS, url)
                nightly.stage(root, dept, table.name, DS, "browser")
        curation_night.curate_night(root, depts, DS, "browser-cur")
        yield catalogue_night.catalogue_dir(root) / catalogue_night.HTML_NAME


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


def test_the_catalogue_page_opens_from_disk_and_shows_catalogue_json(
    page_path: Path, browser: Any
) -> None:
    doc = json.loads((page_path.parent / catalogue_night.JSON_NAME).read_text("utf-8"))
    errors: list[str] = []
    requests: list[str] = []
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: errors.append(f"failed: {r.url}"))
    page.on("request", lambda r: requests.append(r.url))
    try:
        page.goto(page_path.as_uri(), wait_until="load")
        assert errors == []
        assert [u for u in requests if not u.startswith(("file://", "data:"))] == []
        assert page.locator("h1").inner_text() == "资源目录"
        rows = page.eval_on_selector_all(
            "#overview tr[data-table]", "els => els.map(e => e.dataset.table)"
        )
        assert rows == [t["name"] for t in doc["tables"]]
        for t in doc["tables"]:
            row = page.locator(f'#overview tr[data-table="{t["name"]}"]')
            assert row.is_visible()
            assert row.locator("[data-rows]").inner_text() == f"{t['rows']:,}"
            assert row.locator("[data-version]").inner_text() == str(t["version"])
            assert t["quality_gate"]["status_zh"] in row.inner_text()
            assert t["sharing"] in row.inner_text()
            section = page.locator(f"section#t-{t['name']}")
            shown = section.locator("tr[data-field] [data-name-zh]").all_inner_texts()
            assert shown == [f["name_zh"] for f in t["fields"]]
        assert page.locator("#fields-total").inner_text() == str(
            sum(len(t["fields"]) for t in doc["tables"])
        )
        hrefs: list[str] = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
        assert hrefs
        for href in hrefs:
            url = urlparse(href)
            assert url.scheme == "file", href
            assert Path(unquote(url.path)).is_file(), href
            if url.fragment:
                assert page.locator(f"#{url.fragment}").count() == 1, href
        page.click('#overview tr[data-table="property_right"] a')
        assert page.url.endswith("#t-property_right")
        assert not full_id_numbers(page.content())
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "catalogue.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        assert errors == []
    finally:
        page.close()

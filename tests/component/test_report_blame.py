"""Blame the right party (issue 22): a YAML that maps a column its own SQL does not select is
the platform's mistake, recorded so where it happens and said so in the department's report;
a column dropped from the department's table is still the department's.

Real sample SQLite sources, the real extraction step and run state, the real report writer.
The department folder is a copy of the project's (DATACLOUD_DEPARTMENTS_DIR) with one edit.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import date
from pathlib import Path

import pytest

from datacloud import nightly, runstate
from datacloud.paths import DEPARTMENTS_DIR, StorageRoot
from datacloud.report import write_department_report
from datacloud.sample import generate, write_sqlite

DS = date(2026, 11, 20)


@pytest.fixture
def departments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "departments"
    shutil.copytree(DEPARTMENTS_DIR, folder)
    monkeypatch.setenv("DATACLOUD_DEPARTMENTS_DIR", str(folder))
    return folder


def _night(root: StorageRoot, db: Path) -> dict[str, object]:
    dept = nightly.department("mz")
    with pytest.raises(Exception, match="department mz, table hydj"):
        nightly.extract(root, dept, "hydj", DS, f"sqlite:///{db}")
    write_department_report(root, dept, DS)
    return json.loads((root.report_dir("mz", DS) / "report.json").read_text("utf-8"))


def test_a_yaml_typo_is_the_platforms_fault_not_a_schema_change(
    storage_root: StorageRoot, departments: Path
) -> None:
    yaml = departments / "mz.yaml"
    yaml.write_text(
        yaml.read_text("utf-8").replace("source: djjg,", "source: djjgx,"), encoding="utf-8"
    )
    dbs = write_sqlite(generate(60, 3, DS), storage_root.samples())
    report = _night(storage_root, dbs["mz"])
    state = runstate.read(storage_root, "mz", DS, "hydj")
    assert state["failure_kind"] == "error"  # decided where it failed, not a schema change
    (table,) = report["tables"]
    assert table["fault"] == "platform" and "djjgx" in table["error"]
    assert report["headline_zh"] == "失败（平台原因）" and report["platform_fault"] is True
    html = (storage_root.report_dir("mz", DS) / "index.html").read_text("utf-8")
    assert "平台原因，运维人员正在处理" in html and "djjgx" in html
    reasons = html[html.index('id="reasons"') : html.index("</ul>", html.index('id="reasons"'))]
    assert "恢复原表结构" not in reasons


def test_a_column_dropped_at_the_source_is_still_the_departments(
    storage_root: StorageRoot, departments: Path
) -> None:
    dbs = write_sqlite(generate(60, 3, DS), storage_root.samples())
    nightly.extract(storage_root, nightly.department("mz"), "hydj", DS, f"sqlite:///{dbs['mz']}")
    with sqlite3.connect(dbs["mz"]) as conn:  # the department drops a mapped column
        conn.execute("ALTER TABLE hydj DROP COLUMN djjg")
    report = _night(storage_root, dbs["mz"])
    (table,) = report["tables"]
    assert (table["failure_kind"], table["fault"]) == ("schema_change", "department")
    assert report["platform_fault"] is False
    assert [i["who"] for i in report["todo"]] == ["department"]

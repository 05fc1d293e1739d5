"""``datacloud catalogue build|show`` through the real command line (a subprocess per call),
on an empty storage root: nothing published yet is still a catalogue, ``show`` before any
build is exit 3, an unknown table exit 2. tests/component/test_catalogue_nights.py holds
the content against real nights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from datacloud.curated_tables import TABLES

EXE = str(Path(sys.executable).with_name("datacloud"))


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATACLOUD_ROOT": str(root)}
    env.pop("DATACLOUD_STATE_ROOT", None)
    return subprocess.run(
        [EXE, "catalogue", *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_show_before_any_build_is_unavailable(tmp_path: Path) -> None:
    out = run(tmp_path, "show")
    assert out.returncode == 3, out.stdout
    assert "no resource catalogue yet" in out.stderr and "datacloud catalogue build" in out.stderr
    assert "Traceback" not in out.stderr


def test_build_then_show(tmp_path: Path) -> None:
    out = run(tmp_path, "build")
    assert out.returncode == 0, out.stderr
    folder = tmp_path / "catalogue"
    assert str(folder / "index.html") in out.stdout
    doc = json.loads((folder / "catalogue.json").read_text(encoding="utf-8"))
    assert [t["name"] for t in doc["tables"]] == list(TABLES)
    assert not any(t["published"] for t in doc["tables"]) and doc["business_date"] is None
    assert "尚未发布" in (folder / "index.html").read_text(encoding="utf-8")

    listed = run(tmp_path, "show")
    assert listed.returncode == 0, listed.stderr
    assert all(name in listed.stdout for name in ("person", "有条件共享", "不予共享"))
    fields = run(tmp_path, "show", "person", "--json")
    assert fields.returncode == 0, fields.stderr
    person = json.loads(fields.stdout)
    assert person["name"] == "person" and person["fields"][0]["name_zh"] == "公民身份号码"
    unknown = run(tmp_path, "show", "persons")
    assert unknown.returncode == 2 and "TABLE: expected one of person" in unknown.stderr


def test_a_bad_date_is_a_usage_error(tmp_path: Path) -> None:
    out = run(tmp_path, "build", "--date", "2026-13-01")
    assert out.returncode == 2 and "--date: expected YYYY-MM-DD" in out.stderr
    assert not (tmp_path / "catalogue").exists()

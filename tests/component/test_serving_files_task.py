"""The curation DAG's ``serving_files`` task (``paged.build_latest_serving_files``): after a
real sample night every served curated table has its serving build at its newest version, and
a replica opening that version finds it ready (it builds nothing itself)."""

from __future__ import annotations

from datetime import date

import pytest
from helpers import built_night_root

from datacloud.lookup import paged
from datacloud.lookup.paged import build_latest_serving_files, ensure_built, serving_folder
from datacloud.lookup.snapshot import INDEXES, latest_version


def test_every_served_table_is_built_at_its_newest_version_once(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    with built_night_root(tmp_path_factory, "serving", 600, date(2026, 11, 20), "r1") as root:
        assert not serving_folder(root).exists() or not any(serving_folder(root).iterdir())
        built = build_latest_serving_files(root)
        newest = {t: latest_version(root.curated(t)) for t in INDEXES}
        assert built == {t: v for t, v in newest.items() if v is not None}
        assert built  # the sample night publishes the served tables
        for table in built:
            builds = [p for p in (serving_folder(root) / table).iterdir() if p.is_dir()]
            assert [p for p in builds if (p / "meta.json").is_file() and not p.name.startswith(".")]
        # a replica seeing those versions opens the builds: building again would fail here
        calls: list[str] = []
        monkeypatch.setattr(paged, "build_table", lambda *a, **k: calls.append("built"))
        for table, version in built.items():
            assert (
                ensure_built(root, serving_folder(root), table, version) / "meta.json"
            ).is_file()
        assert calls == []
        # and the task is idempotent (a rerun of the night's task builds nothing new)
        assert build_latest_serving_files(root) == built
        assert calls == []

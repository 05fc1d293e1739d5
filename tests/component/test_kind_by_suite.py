"""A kind added by configuration (its raw suite ``expectations/raw_<kind>.json``) goes through
a night like a built-in one: extracted, normalised, gated by its own suite and staged with
every canonical column its table maps. Real SQLite source, Delta table and GE suite; the
expectations folder is a temporary copy (the shipped one is not written to)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import department_spec, use_department_folders

from datacloud import nightly
from datacloud.delta import read_table
from datacloud.paths import StorageRoot
from transforms.id_number import id_check_char

DS = date(2026, 11, 20)


def _id(n: int) -> str:
    first17 = f"33010619800101{n:03d}"
    return first17 + id_check_char(first17)


def test_a_table_of_a_configured_kind_is_staged_with_its_columns(
    social_insurance_suite: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, storage_root
) -> None:
    spec = department_spec(
        table="cbxx",
        kind="social_insurance",
        columns={
            "id_number": {"source": "sfzh", "normalise": "id_number", "required": True},
            "insured_since": {"source": "cbrq", "normalise": "date"},
        },
    )
    use_department_folders(
        tmp_path, monkeypatch, spec, {"cbxx": "SELECT id, sfzh, cbrq FROM cbxx\n"}
    )
    url = f"sqlite:///{tmp_path / 'rs.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.exec_driver_sql("CREATE TABLE cbxx (id INTEGER PRIMARY KEY, sfzh TEXT, cbrq TEXT)")
        for i in range(1, 4):
            c.exec_driver_sql(f"INSERT INTO cbxx VALUES ({i}, '{_id(i)}', '2020-0{i}-01')")
        c.exec_driver_sql("INSERT INTO cbxx VALUES (4, '123', '2020-04-01')")  # rejected
    engine.dispose()

    root: StorageRoot = storage_root
    dept = nightly.department("rs")
    nightly.extract(root, dept, "cbxx", DS, url)
    out = nightly.stage(root, dept, "cbxx", DS, "night-1")
    assert (out["rows_in"], out["rows_accepted"], out["rows_rejected"]) == (4, 3, 1)
    staged = read_table(root.staged("rs", "cbxx")).sort_by("_source_pk").to_pylist()
    assert [r["id_number"] for r in staged] == [_id(1), _id(2), _id(3)]
    assert [r["insured_since"] for r in staged] == [date(2020, i, 1) for i in range(1, 4)]
    gate = json.loads((root.run_state("rs", DS) / "cbxx.json").read_text(encoding="utf-8"))
    assert gate["quality_gate"]["suite"] == "raw_social_insurance"
    assert gate["quality_gate"]["passed"] is True

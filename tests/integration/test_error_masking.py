"""A real PostgreSQL error that quotes a row's ID number never reaches the run state file,
the task log or the traceback Airflow prints in full: each holds the masked form.

The source is a database of our own (created and dropped here) with the sample czrk table and
one row; the department's query (``DATACLOUD_SQL_DIR`` pointed at a copy) filters on the ID
number cast to an integer, which PostgreSQL refuses with ``value "<the ID number>" is out of range``.
"""

from __future__ import annotations

import logging
import shutil
import traceback
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import pg_database

from datacloud import nightly
from datacloud.config import load_department
from datacloud.paths import SQL_DIR, StorageRoot, departments_dir

pytestmark = pytest.mark.integration
DS = date(2026, 11, 20)
ID = "330102199001011234"
MASKED = "330102********1234"
QUERY = """SELECT rkbh, gmsfhm, xm, xb, mz, csrq, hjdz, lxdh, gxsj
FROM czrk WHERE CAST(gmsfhm AS integer) > 0"""


@pytest.fixture
def source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    ddl = (SQL_DIR / "sample" / "gongan.sql").read_text(encoding="utf-8")
    create = ddl[ddl.index("CREATE TABLE czrk") :].split(";")[0]
    with pg_database("dc_mask") as url:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql(create)
            conn.exec_driver_sql(
                "INSERT INTO czrk (rkbh, gmsfhm, xm, xb, mz, csrq, hjdz, lxdh, gxsj) VALUES "
                f"('RK1', '{ID}', '张三', '1', '01', '19900101', '杭州市', '13812345678', "
                "'2026-11-20 08:00:00')"
            )
        engine.dispose()
        sql = tmp_path / "sql"
        shutil.copytree(SQL_DIR, sql)
        (sql / "gongan" / "czrk.sql").write_text(QUERY, encoding="utf-8")
        monkeypatch.setenv("DATACLOUD_SQL_DIR", str(sql))
        yield url


@pytest.mark.parametrize("step", ["extract", "plan"])
def test_driver_error_with_an_id_number_is_masked_everywhere(
    step: str, source: str, storage_root: StorageRoot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gongan = load_department(departments_dir() / "gongan.yaml")
    with pytest.raises(Exception) as info:
        getattr(nightly, step)(storage_root, gongan, "czrk", DS, source)
    assert not isinstance(info.value, TypeError), info.value  # the step ran, and failed in it
    shown = "".join(traceback.format_exception(info.value))
    state = (storage_root.run_state("gongan", DS) / "czrk.json").read_text(encoding="utf-8")
    # the error is the driver's, it reached every place, and only in masked form
    assert "out of range" in state and MASKED in state, state
    assert MASKED in shown and "out of range" in shown
    assert getattr(info.value, "kind", None) == "error"
    for where, text in (("run state", state), ("traceback", shown), ("log", caplog.text)):
        assert ID not in text, where

"""``datacloud validate --connect``: every extraction query compiled on its source with no rows,
so a mapped column the query does not select is named (file, table, column) before a night.

Real parts: the console script in a subprocess, a throwaway PostgreSQL database (created and
dropped here), the department's connection in ``AIRFLOW_CONN_DEPT_RS`` as in production.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from helpers import department_spec, pg_database

pytestmark = pytest.mark.integration

EXE = Path(sys.executable).with_name("datacloud")

RS = department_spec()


@pytest.fixture(scope="module")
def source() -> Iterator[str]:
    with pg_database("dc_validate") as url:
        engine = sa.create_engine(url)
        with engine.begin() as c:
            c.exec_driver_sql(
                "CREATE TABLE cbry (id INTEGER PRIMARY KEY, sfzh TEXT, xm TEXT, cbdw TEXT)"
            )
            c.exec_driver_sql("INSERT INTO cbry VALUES (1, '110101199003074477', '张三', '某单位')")
        engine.dispose()
        yield url.replace("postgresql+psycopg2://", "postgres://")


@pytest.fixture
def folders(tmp_path: Path, source: str) -> dict:
    deps, sql = tmp_path / "departments", tmp_path / "sql"
    deps.mkdir()
    (sql / "rs").mkdir(parents=True)
    (deps / "rs.yaml").write_text(yaml.safe_dump(RS, allow_unicode=True), "utf-8")
    # a deployment with its own departments folder keeps a matters catalogue naming them
    # (the shipped one names the sample's departments, which this folder does not have)
    matters = {
        "items": [
            {
                "id": "property_status",
                "name_zh": "有无现势房产",
                "endpoint": "property_status",
                "table": "property_right",
                "fields": ["owner_id_number", "status"],
            }
        ],
        "matters": [
            {
                "code": "social_security",
                "name_zh": "社保登记",
                "items": ["property_status"],
                "departments": ["rs"],
            }
        ],
    }
    (tmp_path / "matters.yaml").write_text(yaml.safe_dump(matters, allow_unicode=True), "utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "DATACLOUD_"))}
    env.update(
        DATACLOUD_MATTERS=str(tmp_path / "matters.yaml"),
        HOME=str(tmp_path),
        DATACLOUD_ROOT=str(tmp_path / "root"),
        DATACLOUD_DEPARTMENTS_DIR=str(deps),
        DATACLOUD_SQL_DIR=str(sql),
        AIRFLOW_CONN_DEPT_RS=source,
    )
    return {"sql": sql / "rs" / "cbry.sql", "env": env, "home": tmp_path}


def validate(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EXE), "validate", *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_a_mapped_column_the_query_does_not_select_is_named(folders: dict) -> None:
    folders["sql"].write_text("SELECT id, sfzh FROM cbry\n", "utf-8")  # xm forgotten
    offline = validate([], folders["env"])
    assert offline.returncode == 0, offline.stderr  # without the source it cannot know
    proc = validate(["--connect"], folders["env"])
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert str(folders["sql"]) in proc.stderr
    assert "table cbry: column 'xm'" in proc.stderr and "not selected by the query" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (folders["home"] / "airflow").exists()  # Airflow's import made no ~/airflow


def test_a_query_that_fails_on_the_source_is_named(folders: dict) -> None:
    folders["sql"].write_text("SELECT id, sfzh, xm FROM cbry_old\n", "utf-8")
    proc = validate(["--connect"], folders["env"])
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "table cbry: the query fails on the source" in proc.stderr and "cbry_old" in proc.stderr


def test_a_complete_query_passes_and_unmapped_columns_are_listed(folders: dict) -> None:
    folders["sql"].write_text("SELECT id, sfzh, xm, cbdw FROM cbry;\n", "utf-8")
    proc = validate(["--connect"], folders["env"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "rs.cbry: the query on the source returns every mapped column" in proc.stdout
    assert "unmapped" in proc.stdout and "cbdw" in proc.stdout


def test_connect_without_the_connection_exits_3(folders: dict) -> None:
    folders["sql"].write_text("SELECT id, sfzh, xm FROM cbry\n", "utf-8")
    env = dict(folders["env"])
    del env["AIRFLOW_CONN_DEPT_RS"]
    proc = validate(["--connect"], env)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "AIRFLOW_CONN_DEPT_RS" in proc.stderr


def test_a_folder_that_does_not_exist_fails(folders: dict) -> None:
    proc = validate(["--folder", "/nonexistent"], folders["env"])
    assert proc.returncode == 2 and "/nonexistent is not a folder" in proc.stderr
    assert "ok" not in proc.stdout


def test_an_unreachable_source_exits_3_without_its_password(folders: dict) -> None:
    folders["sql"].write_text("SELECT id, sfzh, xm FROM cbry\n", "utf-8")
    env = dict(folders["env"], AIRFLOW_CONN_DEPT_RS="postgres://etl:s3cret-pw@127.0.0.1:1/rs")
    proc = validate(["--connect"], env)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "department rs: source" in proc.stderr and "did not answer" in proc.stderr
    assert "s3cret-pw" not in proc.stdout + proc.stderr

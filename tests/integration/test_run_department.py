"""``datacloud run``: one department night through Airflow, following docs/configuration.md's
"Adding a department" guide on a throwaway PostgreSQL database.

Real parts only: the console script in a subprocess, a PostgreSQL database created and
dropped here as the new department's source, its connection in ``AIRFLOW_CONN_DEPT_RS`` (as in
production), Airflow's ``dags test`` on the embedded SQLite metadata database under the
storage root, real Delta tables. ``HOME`` is a temporary folder, so a ``~/airflow`` created by
mistake would show. Nothing is mocked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from helpers import pg_database

from transforms.id_number import id_check_char

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DS = date(2026, 11, 20)
EXE = Path(sys.executable).with_name("datacloud")


def _id(n: int) -> str:
    first17 = f"11010119900307{n:03d}"
    return first17 + id_check_char(first17)


@pytest.fixture(scope="module")
def source() -> Iterator[str]:
    """A throwaway PostgreSQL database holding the new department's table (three persons,
    one with a mistyped ID number) and a column its YAML does not map (cbdw)."""
    with pg_database("dc_run") as url:
        engine = sa.create_engine(url)
        with engine.begin() as c:
            c.exec_driver_sql(
                "CREATE TABLE cbry (id INTEGER PRIMARY KEY, sfzh VARCHAR(18), xm VARCHAR(40), "
                "cbdw VARCHAR(80), gxsj TIMESTAMP)"
            )
            for i, (number, name) in enumerate(
                [(_id(1), "张三"), (_id(2), "李四"), (_id(3)[:-1] + "0", "王五")], start=1
            ):
                c.execute(
                    sa.text("INSERT INTO cbry VALUES (:i, :s, :x, '某单位', '2026-11-20 09:00')"),
                    {"i": i, "s": number, "x": name},
                )
        engine.dispose()
        yield url.replace("postgresql+psycopg2://", "postgres://")


RS_YAML = {
    "code": "rs",
    "name": "人力资源和社会保障厅（社保）",
    "connection_id": "dept_rs",
    "tables": [
        {
            "name": "cbry",
            "description": "参保人员 insured persons",
            "kind": "person",
            "mode": "full",
            "primary_key": ["id"],
            "cursor": "gxsj",
            "columns": {
                "id_number": {"source": "sfzh", "normalise": "id_number", "required": True},
                "name": {"source": "xm", "normalise": "person_name", "required": True},
            },
        }
    ],
}


@pytest.fixture(scope="module")
def onboarded(tmp_path_factory: pytest.TempPathFactory, source: str) -> dict:
    """The guide's steps 1-3 in temporary folders: the shipped YAMLs and queries copied, a new
    ``rs.yaml`` and ``sql/rs/cbry.sql``, the connection in the environment."""
    base = tmp_path_factory.mktemp("onboard")
    deps, sql = base / "departments", base / "sql"
    shutil.copytree(REPO / "dags" / "departments", deps)
    shutil.copytree(REPO / "sql", sql)
    (deps / "rs.yaml").write_text(yaml.safe_dump(RS_YAML, allow_unicode=True), "utf-8")
    (sql / "rs").mkdir()
    (sql / "rs" / "cbry.sql").write_text(
        "-- 参保人员\nSELECT id, sfzh, xm, cbdw, gxsj FROM cbry\n", "utf-8"
    )
    (base / "home").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "DATACLOUD_"))}
    env.update(
        HOME=str(base / "home"),
        DATACLOUD_ROOT=str(base / "root"),
        DATACLOUD_DEPARTMENTS_DIR=str(deps),
        DATACLOUD_SQL_DIR=str(sql),
        AIRFLOW_CONN_DEPT_RS=source,
        COLUMNS="200",
    )
    return {"base": base, "env": env, "root": base / "root", "home": base / "home"}


def datacloud(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EXE), *args], env=env, capture_output=True, text=True, timeout=900, check=False
    )


@pytest.fixture(scope="module")
def night(onboarded: dict) -> subprocess.CompletedProcess[str]:
    """Step 4 and the night: validate, then ``datacloud run --dept rs --date … --curate``."""
    checked = datacloud(["validate"], onboarded["env"])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "rs: 人力资源和社会保障厅（社保）, 1 table(s)" in checked.stdout
    return datacloud(
        ["run", "--dept", "rs", "--date", DS.isoformat(), "--curate"], onboarded["env"]
    )


def test_the_night_exits_zero_with_progress_and_a_summary(night, onboarded) -> None:
    out = night.stdout
    assert night.returncode == 0, out[-3000:] + night.stderr[-3000:]
    for task in ("extract_cbry", "stage_cbry", "report"):
        assert f"dept_rs: {task} success" in out
    # the first curation night is a full build: the range tasks and their publish (the
    # one-task curate is for incremental nights and is skipped)
    assert "curation: plan success" in out and "curation: publish_ranges success" in out
    assert "curation: curate skipped" in out
    # rows in 3: accepted 2, rejected 1 (the mistyped check character), deduplicated 0
    assert "rs.cbry" in out and "3" in out
    report = onboarded["root"] / "reports" / "rs" / DS.isoformat() / "index.html"
    assert str(report) in out
    assert "Traceback" not in out + night.stderr


def test_the_department_is_in_its_report_and_the_overview(night, onboarded) -> None:
    assert night.returncode == 0
    day = onboarded["root"] / "reports" / "rs" / DS.isoformat()
    report = json.loads((day / "report.json").read_text(encoding="utf-8"))
    assert report["department"] == "rs" and report["status"] == "success"
    assert report["totals"]["rows_in"] == 3
    assert report["totals"]["rows_accepted"] == 2 and report["totals"]["rows_rejected"] == 1
    overview = (onboarded["root"] / "reports" / "index.html").read_text(encoding="utf-8")
    assert "人力资源和社会保障厅（社保）" in overview


def test_unmapped_source_columns_are_in_the_run_state_and_the_report(night, onboarded) -> None:
    root = onboarded["root"]
    state = json.loads((root / "runs" / "rs" / DS.isoformat() / "cbry.json").read_text("utf-8"))
    assert state["unmapped_columns"] == ["cbdw"]
    report = json.loads(
        (root / "reports" / "rs" / DS.isoformat() / "report.json").read_text("utf-8")
    )
    (table,) = report["tables"]
    assert table["unmapped_columns"] == ["cbdw"]


def test_airflow_lives_under_the_storage_root_and_samples_are_untouched(night, onboarded) -> None:
    assert night.returncode == 0
    root = onboarded["root"]
    assert (root / "airflow" / "airflow.db").is_file()
    assert not (onboarded["home"] / "airflow").exists()
    assert not (root / "samples").exists()
    assert (root / "airflow" / "run-logs" / f"dept_rs-{DS.isoformat()}.log").is_file()


def test_persons_unknown_to_the_register_stay_out_of_curated_person(night, onboarded) -> None:
    """gongan (the household register) has not run: the new department's persons are
    findings (unregistered_person), not golden records."""
    from datacloud.delta import open_table, read_table

    root = onboarded["root"]
    person = root / "curated" / "person"
    if open_table(person) is not None:
        ids = set(read_table(person, ["id_number"])["id_number"].to_pylist())
        assert not ids & {_id(1), _id(2)}
    findings = read_table(root / "curated" / "consistency").to_pylist()
    mine = {(r["id_number"], r["finding"]) for r in findings if r["department"] == "rs"}
    assert mine == {(_id(1), "unregistered_person"), (_id(2), "unregistered_person")}


def test_a_missing_connection_exits_3_before_airflow_starts(onboarded) -> None:
    env = dict(onboarded["env"])
    del env["AIRFLOW_CONN_DEPT_RS"]
    env["DATACLOUD_ROOT"] = str(onboarded["base"] / "root-missing")
    proc = datacloud(["run", "--dept", "rs", "--date", DS.isoformat()], env)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "AIRFLOW_CONN_DEPT_RS" in proc.stderr and "Traceback" not in proc.stderr
    assert not (onboarded["base"] / "root-missing" / "airflow").exists()


def test_a_failed_night_exits_1_after_its_summary(onboarded, source) -> None:
    env = dict(onboarded["env"])
    env["DATACLOUD_ROOT"] = str(onboarded["base"] / "root-failed")
    env["AIRFLOW_CONN_DEPT_RS"] = source.rsplit("/", 1)[0] + "/postgres"  # no table cbry there
    proc = datacloud(["run", "--dept", "rs", "--date", DS.isoformat(), "--retries", "0"], env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "dept_rs: extract_cbry failed" in proc.stdout
    assert "失败" in proc.stdout  # the report's status, in the summary
    assert "dept_rs" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--date", "2026-11-20"], "--dept"),
        (["run", "--dept", "rs", "--date", "2026-13-01"], "--date"),
        (["run", "--dept", "../rs", "--date", "2026-11-20"], "--dept"),
        (["run", "--dept", "nosuch", "--date", "2026-11-20"], "no department 'nosuch'"),
        (["run", "--dept", "rs", "--curate-only", "--date", "2026-11-20"], "--curate-only"),
        (["run", "--dept", "rs", "--date", "2026-11-20", "--retries", "-1"], "--retries"),
    ],
)
def test_usage_errors_exit_2(onboarded, args: list[str], message: str) -> None:
    proc = datacloud(args, onboarded["env"])
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr

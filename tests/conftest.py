"""Test settings shared by every suite.

Airflow reads its configuration when first imported, so its home (a temporary folder with a
SQLite metadata database), the DAG folder and the storage root are set here, before any test
imports airflow or datacloud.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_SESSION_TMP = Path(tempfile.mkdtemp(prefix="datacloud-tests-"))

os.environ["AIRFLOW_HOME"] = str(_SESSION_TMP / "airflow")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = (
    f"sqlite:///{_SESSION_TMP / 'airflow' / 'airflow.db'}"
)
os.environ["DATACLOUD_ROOT"] = str(_SESSION_TMP / "root")
os.environ.pop("DATACLOUD_DEPARTMENTS_DIR", None)
os.environ.pop("DATACLOUD_SQL_DIR", None)
(_SESSION_TMP / "airflow").mkdir(parents=True, exist_ok=True)


@pytest.fixture
def storage_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fresh DATACLOUD_ROOT for one test."""
    from datacloud.paths import StorageRoot

    monkeypatch.setenv("DATACLOUD_ROOT", str(tmp_path / "root"))
    return StorageRoot.from_env()


@pytest.fixture
def repo() -> Path:
    return REPO


SAMPLE_PERSONS, SAMPLE_SEED = 3_000, 20261120


@pytest.fixture(scope="session")
def sample_night(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A sample night without Airflow, shared by the suites that check the pipeline against
    the generator's ground truth: 3,000 persons (default dirt, seed 20261120, business date
    2026-11-20) written as SQLite department databases, then ``nightly.extract`` and
    ``nightly.stage`` of every department table (real Delta tables). Keys: ``root``,
    ``sample``, ``depts``, ``ds``. test_consistency_sample publishes its findings into this
    root; the others only read its staged tables."""
    from datetime import date

    from datacloud import nightly
    from datacloud.demo import departments as sample_departments
    from datacloud.paths import StorageRoot
    from datacloud.sample import generate, write_sqlite

    ds = date(2026, 11, 20)
    root = StorageRoot(tmp_path_factory.mktemp("sample-night"))
    sample = generate(SAMPLE_PERSONS, SAMPLE_SEED, business_date=ds)
    dbs = write_sqlite(sample, root.samples())
    depts = sample_departments()  # those with a sample database
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATACLOUD_ROOT", str(root.root))
        for dept in depts:
            for table in dept.tables:
                nightly.extract(root, dept, table.name, ds, f"sqlite:///{dbs[dept.code]}")
                nightly.stage(root, dept, table.name, ds, "night-1")
    return {"root": root, "sample": sample, "depts": depts, "ds": ds}


@pytest.fixture
def social_insurance_suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The shipped suites plus ``raw_social_insurance.json``, written the way
    docs/configuration.md says (a copy of a raw suite, its name, kind and columns changed),
    in a temporary expectations folder (the shipped one is not written to); yields it."""
    import json
    import shutil

    from datacloud import canonical, quality_suites

    folder = tmp_path / "expectations"
    shutil.copytree(quality_suites.EXPECTATIONS_DIR, folder)
    suite = json.loads((folder / "raw_person.json").read_text(encoding="utf-8"))
    suite["name"] = "raw_social_insurance"
    suite["meta"]["datacloud"]["kind"] = "social_insurance"
    keep = []
    for e in suite["expectations"]:
        check = e["meta"]["check"]
        if check == "required_columns":
            e["kwargs"]["column_set"] = ["id_number"]
        if check in ("volume", "required_columns") or check.startswith("id_number."):
            keep.append(e)
    suite["expectations"] = keep
    (folder / "raw_social_insurance.json").write_text(json.dumps(suite), encoding="utf-8")
    monkeypatch.setattr(quality_suites, "EXPECTATIONS_DIR", folder)
    quality_suites._load.cache_clear()
    canonical.kinds.cache_clear()
    yield folder
    quality_suites._load.cache_clear()
    canonical.kinds.cache_clear()

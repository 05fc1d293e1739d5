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

"""Every path under the storage root comes from here.

The storage root is ``DATACLOUD_ROOT`` (default ``var/`` in the repository). It holds
``raw/``, ``staged/``, ``rejected/``, ``curated/``, ``reports/``, ``quality/`` and, for the embedded
demo, ``samples/`` and ``airflow/``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DAGS_DIR = REPO_ROOT / "dags"
DEPARTMENTS_DIR = DAGS_DIR / "departments"
SQL_DIR = REPO_ROOT / "sql"
EXPECTATIONS_DIR = REPO_ROOT / "expectations"

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def departments_dir() -> Path:
    """The folder of department YAMLs (``DATACLOUD_DEPARTMENTS_DIR`` overrides, for tests)."""
    return Path(os.environ.get("DATACLOUD_DEPARTMENTS_DIR", DEPARTMENTS_DIR))


def sql_dir() -> Path:
    """The folder of extraction queries (``DATACLOUD_SQL_DIR`` overrides, for tests)."""
    return Path(os.environ.get("DATACLOUD_SQL_DIR", SQL_DIR))


def _safe(part: str) -> str:
    if not _NAME.match(part):
        raise ValueError(f"not a safe path component: {part!r}")
    return part


@dataclass(frozen=True)
class StorageRoot:
    """The storage root and the layout below it."""

    root: Path

    @classmethod
    def from_env(cls) -> StorageRoot:
        root = str(os.environ.get("DATACLOUD_ROOT", REPO_ROOT / "var"))
        if "://" in root:  # Path() would quietly make "s3://b/" a local folder "s3:/b"
            raise ValueError(
                f"DATACLOUD_ROOT={root}: object-store roots are not supported yet; use a local "
                "or shared-volume path (docs/operations.md)"
            )
        return cls(Path(root).resolve())

    def raw_partition(self, dept: str, table: str, ds: date) -> Path:
        return self.root / "raw" / _safe(dept) / _safe(table) / f"ds={ds.isoformat()}"

    def staged(self, dept: str, table: str) -> Path:
        return self.root / "staged" / _safe(dept) / _safe(table)

    def rejected(self, dept: str, table: str, ds: date) -> Path:
        """Rejected rows and issues of one night, as Parquet (raw values: the department's own data).

        ``rows.parquet``: one row per rejected source row (raw columns, ``_source_pk``,
        ``reject_reasons``); ``issues.parquet``: one row per (row, field, rule), warnings included.
        """
        return self.root / "rejected" / _safe(dept) / _safe(table) / f"ds={ds.isoformat()}"

    def curated(self, table: str) -> Path:
        return self.root / "curated" / _safe(table)

    def report_dir(self, dept: str, ds: date) -> Path:
        return self.root / "reports" / _safe(dept) / ds.isoformat()

    def run_state(self, dept: str, ds: date) -> Path:
        """Per-table outcome files of one department night, read by the report task."""
        return self.root / "runs" / _safe(dept) / ds.isoformat()

    def schema_snapshot(self, dept: str, table: str) -> Path:
        """The source table's columns at the last successful extraction (schema drift)."""
        return self.root / "runs" / _safe(dept) / "_schema" / f"{_safe(table)}.json"

    def quality(self) -> Path:
        return self.root / "quality"

    def samples(self) -> Path:
        return self.root / "samples"

    def airflow_home(self) -> Path:
        return self.root / "airflow"

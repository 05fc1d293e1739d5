"""Every path under the storage root comes from here.

The data root is ``DATACLOUD_ROOT`` (default ``var/`` in the repository): a local folder or
``s3://bucket/prefix`` on an S3-compatible object store (``datacloud/storage.py``). It holds the
data plane that platform users read: ``raw/``, ``staged/`` and ``curated/``.

The state root is ``DATACLOUD_STATE_ROOT``: the control plane, which needs a file system with
atomic rename (run state ``runs/``, ``reports/``, ``quality/``, ``rejected/``, ``audit/``,
``curated/_curation.json``, schema snapshots and, for the embedded demo, ``samples/`` and
``airflow/``). It defaults to the data root when that is local and is required when it is not.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from datacloud.storage import DataPath, is_object_store, parse

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
    if not _NAME.fullmatch(part):  # fullmatch: "$" would let a trailing newline through
        raise ValueError(f"not a safe path component: {part!r}")
    return part


@dataclass(frozen=True)
class StorageRoot:
    """The storage roots and the layout below them.

    ``root`` is the state root (control plane, always a local or shared folder); ``data`` the
    data root (raw partitions, staged and curated Delta tables), the same folder unless given.
    """

    root: Path
    data: DataPath | None = None

    def __post_init__(self) -> None:
        if self.data is None:
            object.__setattr__(self, "data", self.root)

    @property
    def data_root(self) -> DataPath:
        assert self.data is not None  # set in __post_init__
        return self.data

    @classmethod
    def from_env(cls) -> StorageRoot:
        data = parse(str(os.environ.get("DATACLOUD_ROOT", REPO_ROOT / "var")))
        state = os.environ.get("DATACLOUD_STATE_ROOT", "").strip()
        if not state:
            if is_object_store(data):
                raise ValueError(
                    f"DATACLOUD_ROOT={data} is on an object store: set DATACLOUD_STATE_ROOT to a "
                    "local or shared folder for run state, reports, quality results and the "
                    "curation state, which need atomic rename (docs/operations.md)"
                )
            assert isinstance(data, Path)
            return cls(data)
        if "://" in state:
            raise ValueError(
                f"DATACLOUD_STATE_ROOT={state}: must be a local or shared folder, not an object "
                "store (it needs atomic rename; docs/operations.md)"
            )
        return cls(Path(state).resolve(), data)

    def raw_partition(self, dept: str, table: str, ds: date) -> DataPath:
        return self.data_root / "raw" / _safe(dept) / _safe(table) / f"ds={ds.isoformat()}"

    def staged(self, dept: str, table: str) -> DataPath:
        return self.data_root / "staged" / _safe(dept) / _safe(table)

    def rejected(self, dept: str, table: str, ds: date) -> Path:
        """Rejected rows and issues of one night, as Parquet (raw values: the department's own data).

        ``rows.parquet``: one row per rejected source row (raw columns, ``_source_pk``,
        ``reject_reasons``); ``issues.parquet``: one row per (row, field, rule), warnings included.
        """
        return self.root / "rejected" / _safe(dept) / _safe(table) / f"ds={ds.isoformat()}"

    def curated(self, table: str) -> DataPath:
        return self.data_root / "curated" / _safe(table)

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

    def problems(self) -> Path:
        """The problem-data loop (问题数据闭环, docs/problems.md): the problem table, the
        departments' responses log and their inbox."""
        return self.root / "problems"

    def problems_table(self) -> Path:
        """The problem table: a Delta table, one row per problem (``datacloud.problem_store``)."""
        return self.problems() / "problems"

    def problem_responses(self, dept: str) -> Path:
        """A department's responses: append-only JSON lines, one record per accepted response."""
        return self.problems() / "responses" / f"{_safe(dept)}.jsonl"

    def problem_inbox(self, dept: str) -> Path:
        """The folder a department drops its returned response workbooks into."""
        return self.problems() / "inbox" / _safe(dept)

    def samples(self) -> Path:
        return self.root / "samples"

    def audit(self) -> Path:
        """The lookup audit trail (append-only JSON lines, one file per day)."""
        return self.root / "audit"

    def lookup_serving(self) -> Path:
        """The lookup service's files of each curated version (``datacloud.lookup.paged``)."""
        return self.root / "lookup" / "serving"

    def airflow_home(self) -> Path:
        return self.root / "airflow"

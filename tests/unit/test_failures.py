"""Failure kinds are classified once, where the failure happens (datacloud.failures), and the
report shows the kind recorded there."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from datacloud import failures, runstate
from datacloud.extract import failed
from datacloud.nightly import department
from datacloud.paths import StorageRoot
from datacloud.quality import QualityGateError
from datacloud.report import failure_kind
from datacloud.schema_drift import SchemaDriftError

DS = date(2026, 11, 20)


class OperationalError(Exception):
    """Stands in for a driver's error class (only its name and text matter)."""


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        # psycopg2 when the host name does not resolve: the source is unreachable
        (
            OperationalError('could not translate host name "db.gov" to address'),
            "source_unreachable",
        ),
        (OperationalError("connection to server failed: Connection refused"), "source_unreachable"),
        (
            OperationalError("(sqlite3.OperationalError) unable to open database file"),
            "source_unreachable",
        ),
        (OperationalError("column xm does not exist"), "schema_change"),
        (OperationalError("the query returns no column(s) ['xm']"), "schema_change"),
        (SchemaDriftError("column xm was dropped"), "schema_change"),
        (QualityGateError("key.unique failed"), "quality_gate"),
        (ValueError("counts do not reconcile"), "error"),
    ],
)
def test_the_kind_is_decided_where_the_failure_happens(error: Exception, kind: str) -> None:
    assert failures.classify(error) == kind
    dept = department("scjg")
    if not isinstance(error, QualityGateError):  # the extraction step's own error
        assert failed(dept, dept.tables[0], "extraction", error).kind == kind


def test_the_report_shows_the_recorded_kind(tmp_path: Path) -> None:
    """A failure recorded as unreachable at the extract step is reported so, whatever words
    its (masked) text happens to hold."""
    root = StorageRoot(tmp_path)
    dept = department("scjg")
    e = failed(dept, dept.tables[0], "extraction", OperationalError("could not translate host"))
    runstate.update(
        root,
        "scjg",
        DS,
        "qyjbxx",
        status="failed",
        stage="extract",
        error=str(e),
        failure_kind=e.kind,
    )
    assert failure_kind(runstate.read(root, "scjg", DS, "qyjbxx")) == "source_unreachable"


def test_every_kind_has_its_words_in_the_report() -> None:
    assert set(failures.KINDS) == {
        "source_unreachable",
        "schema_change",
        "quality_gate",
        "error",
        "not_run",
    }
    assert all(failures.KINDS.values())

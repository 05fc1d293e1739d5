"""``problems_night.track_night`` over buckets spilled to local disk (``problems_buckets``):
the table it publishes is ``problems.track``'s over the whole night (the previous table, the
rejected rows, their person keys), rows and order, for any number of buckets and slices, a
rerun makes no version, and the Python memory it holds does not grow with the problems.

Real parts: the shipped gongan department, its rejected rows written by
``nightly.write_rejected``, the run state by ``runstate.update``, the problem table in Delta.
"""

from __future__ import annotations

import tracemalloc
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from datacloud import nightly, problem_store, problems, problems_buckets, runstate
from datacloud import problems_night as pn
from datacloud.consistency import MENTIONS
from datacloud.normalise import SOURCE_PK
from datacloud.paths import StorageRoot
from datacloud.working_days import WorkingCalendar
from transforms.id_number import id_check_char

D1, D2 = date(2026, 11, 2), date(2026, 11, 3)
RULES = ("ID_CHECK_DIGIT", "DATE_IMPOSSIBLE", "NAME_EMPTY")


def _id(n: int) -> str:
    first17 = f"330106198001{n % 10**5:05d}"
    return first17 + id_check_char(first17)


def _night(root: StorageRoot, ds: date, keys: range) -> None:
    """Rejected rows of gongan.czrk for the source keys ``keys`` (two rules for every third
    row, a warning for every row: the file holds both), the table loaded tonight."""
    dept = nightly.department("gongan")
    spec = dept.table("czrk")
    person = spec.columns[MENTIONS[spec.kind][0][0]].source
    assert person is not None
    pks = [f"RK{k:08d}" for k in keys]
    issues = {"source_pk": [], "field": [], "source_column": [], "raw_value": [], "rule_code": [],
              "severity": []}  # fmt: skip
    for i, pk in enumerate(pks):
        rules = [RULES[i % 3]] + ([RULES[(i + 1) % 3]] if i % 3 == 0 else [])
        for rule in [*rules, "WARN_ONLY"]:
            issues["source_pk"].append(pk)
            issues["field"].append("id_number" if rule != "NAME_EMPTY" else "name")
            issues["source_column"].append("gmsfhm")
            issues["raw_value"].append("x")
            issues["rule_code"].append(rule)
            issues["severity"].append("warn" if rule == "WARN_ONLY" else "reject")
    rows = pa.table({SOURCE_PK: pks, person: [_id(k) if k % 5 else "bad" for k in keys]})
    folder = root.rejected("gongan", "czrk", ds)
    folder.mkdir(parents=True, exist_ok=True)
    nightly.write_rejected(folder, rows, pa.table(issues))
    runstate.update(root, "gongan", ds, "czrk", status="success")


def _reference(root: StorageRoot, ds: date) -> pa.Table:
    """Night ``ds`` as ``problems.track`` over the whole night gives it (the path before)."""
    depts = [nightly.department("gongan")]
    calendar = WorkingCalendar.load()
    rejected = pn.read_rejected(root, depts, ds)
    findings, compared = pn.read_findings(root, depts, ds)
    previous = problem_store.read_before(root, ds)
    observed = pa.concat_tables([rejected.observed, findings])
    table = problems.track(
        previous,
        observed,
        rejected.covered | compared,
        problems.latest_responses(pn.read_responses(root, depts), ds),
        ds,
        lambda dept, day: calendar.add(day, depts[0].problem_due_working_days),
        pn.keys_read(root, depts, ds, rejected.incremental, pn.wanted_keys(previous, observed)),
    )
    return problem_store.conform(table).sort_by([(k, "ascending") for k in problem_store.SORT_BY])


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StorageRoot:
    monkeypatch.setenv("DATACLOUD_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("DATACLOUD_HOLIDAYS", str(tmp_path / "no-holidays.yaml"))
    return StorageRoot.from_env()


@pytest.mark.parametrize("bucket_rows, slice_rows", [(50_000, 100_000), (150, 40)])
def test_the_spilled_night_publishes_the_table_track_gives(
    root: StorageRoot, monkeypatch: pytest.MonkeyPatch, bucket_rows: int, slice_rows: int
) -> None:
    monkeypatch.setattr(problems_buckets, "BUCKET_ROWS", bucket_rows)
    monkeypatch.setattr(problems_buckets, "SLICE_ROWS", slice_rows)
    depts = [nightly.department("gongan")]
    _night(root, D1, range(0, 600))
    first = pn.track_night(root, depts, D1, "n1")
    assert problem_store.read_problems(root).equals(_reference(root, D1))
    _night(root, D2, range(300, 900))  # half fixed, half still seen, new ones
    expected = _reference(root, D2)
    second = pn.track_night(root, depts, D2, "n2")
    got = problem_store.read_problems(root)
    assert got.equals(expected)  # the rows, their order too
    assert set(got["status"].to_pylist()) == {"open", "fixed"}
    assert second["rows"] == got.num_rows and second["version"] == first["version"] + 1
    opened = sum(s in problem_store.OPEN for s in got["status"].to_pylist())
    assert second["counts"]["gongan"]["open"] == opened
    assert pn.track_night(root, depts, D2, "rerun")["version"] == second["version"]
    assert problem_store.version(root) == second["version"]


def _peak(root: StorageRoot, n: int) -> int:
    depts = [nightly.department("gongan")]
    _night(root, D1, range(0, n))
    pn.track_night(root, depts, D1, "n1")
    _night(root, D2, range(n // 2, n + n // 2))
    tracemalloc.start()
    try:
        pn.track_night(root, depts, D2, "n2")
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_python_memory_of_a_night_does_not_grow_with_its_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches, buckets and slices of 1,000 rows: a night of 4 times the problems holds about
    the same Python objects at its peak (before: every rejected row, every problem's key and
    the whole previous table as Python objects at once)."""
    monkeypatch.setattr(problems_buckets, "BUCKET_ROWS", 1_000)
    monkeypatch.setattr(problems_buckets, "SLICE_ROWS", 1_000)
    monkeypatch.setattr(pn, "KEY_BATCH_ROWS", 1_000)
    monkeypatch.setattr(problem_store, "BATCH_ROWS", 1_000)
    monkeypatch.setenv("DATACLOUD_HOLIDAYS", str(tmp_path / "no-holidays.yaml"))
    peaks = []
    for n in (3_000, 12_000):
        monkeypatch.setenv("DATACLOUD_ROOT", str(tmp_path / f"root-{n}"))
        peaks.append(_peak(StorageRoot.from_env(), n))
    assert peaks[1] < 1.6 * peaks[0], peaks

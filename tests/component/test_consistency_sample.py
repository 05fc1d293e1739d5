"""Consistency findings on the sample departments against the generator's ground truth.

3,000 persons (default dirt rates, a fixed seed) are written as SQLite department databases and
go through the real night without Airflow: ``nightly.extract`` and ``nightly.stage`` for every
department table (real Delta tables), then ``consistency_night.publish``. The findings must be
exactly the conflicts the generator recorded, as far as the pipeline can see them:

- a conflict on a row is visible when that row or one of its duplicate copies was accepted
  (the ground truth lists the dirt that rejects a row: ``REJECTING``; checked against the
  pipeline's own rejected rows);
- a name or sex conflict needs the person in the accepted register (someone to disagree with);
- a marital conflict is not judged for a person in a rejected marriage registration.

Nothing else may be found: field dirt (spaces, dot variants, legacy or full-width numbers) is
normalised away, and a rejected row (wrong check character) produces no finding.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from datacloud import consistency, consistency_night, nightly
from datacloud.delta import read_table
from datacloud.demo import departments as sample_departments
from datacloud.paths import StorageRoot
from datacloud.sample import DirtRates, SampleData, generate, write_sqlite

PERSONS = 3_000
SEED = 20261120
DS = date(2026, 11, 20)
CONFLICTS = {
    "name_conflict",
    "sex_conflict",
    "unregistered_owner",
    "unregistered_legal_rep",
    "unregistered_shareholder",
    "marital_conflict",
}
REJECTING = {"id_wrong_check", "credit_wrong_check", "impossible_date"}
PKS = {"czrk": "rkbh", "qyjbxx": "qyid", "qygd": "gdid", "bdc_qlr": "ywh", "grzh": "grzh"}
PKS["qydmdz"] = "dzid"
PKS["hydj"] = "djxh"
# the ID column of the person a name or sex column describes
ID_OF = {
    "qlrmc": "zjh",
    "xb": "zjh",
    "xingming": "zjhm",
    "xingbie": "zjhm",
    "fddbr": "fddbr_sfzh",
    "gdmc": "gdzjhm",
    "nfxm": "nfsfzh",
    "nvfxm": "nvfsfzh",
}


@pytest.fixture(scope="module")
def night(sample_night: dict[str, Any]) -> dict[str, Any]:
    root, sample, depts = sample_night["root"], sample_night["sample"], sample_night["depts"]
    assert (sample.manifest["persons"], sample.manifest["seed"], sample_night["ds"]) == (
        PERSONS,
        SEED,
        DS,
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATACLOUD_ROOT", str(root.root))
        published = consistency_night.publish(root, depts, DS, "night-1")
        again = consistency_night.publish(root, depts, DS, "night-1-rerun")
    return {
        "root": root,
        "sample": sample,
        "depts": depts,
        "published": published,
        "again": again,
        "findings": read_table(root.curated(consistency.TABLE)),
    }


class Truth:
    """The ground truth of one sample, read the way the pipeline sees the data."""

    def __init__(self, sample: SampleData):
        self.sample = sample
        self.rows = sample.ground_truth.to_pylist()
        self.fixes: dict[tuple[str, str, str, str], str | None] = {}
        self.rejected: set[tuple[str, str, str]] = set()
        self.copies: dict[tuple[str, str, str], set[str]] = defaultdict(set)
        for r in self.rows:
            key = (r["dept"], r["table"], r["pk"])
            if r["dirt"] in REJECTING:
                self.rejected.add(key)
            if r["dirt"] == "duplicate_row":
                self.copies[(r["dept"], r["table"], r["clean"])].add(r["pk"])
                self.copies[key].add(r["clean"])
            elif r["column"] != "*" and r["dirt"] not in CONFLICTS:
                self.fixes[(*key, r["column"])] = r["clean"]
        self.values: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        for dept, tables in sample.tables.items():
            for name, table in tables.items():
                pk = PKS[name]
                self.values[(dept, name)] = {str(r[pk]): r for r in table.to_pylist()}
        wrong_code = {  # qygd's query joins its enterprise's credit code: rejected with it
            r["pk"]
            for r in self.rows
            if (r["dept"], r["table"], r["column"], r["dirt"])
            == ("scjg", "qyjbxx", "tyshxydm", "credit_wrong_check")
        }
        for pk, row in self.values[("scjg", "qygd")].items():
            if str(row["qyid"]) in wrong_code:
                self.rejected.add(("scjg", "qygd", pk))

    def clean(self, dept: str, table: str, pk: str, column: str) -> Any:
        fixed = self.fixes.get((dept, table, pk, column))
        return fixed if fixed is not None else self.values[(dept, table)][pk][column]

    def visible(self, dept: str, table: str, pk: str) -> bool:
        """The row, or a duplicate copy of it, was accepted."""
        group = {pk} | self.copies[(dept, table, pk)]
        return any((dept, table, p) not in self.rejected for p in group)

    def registered(self) -> set[str]:
        return {
            self.clean("gongan", "czrk", pk, "gmsfhm")
            for pk in self.values[("gongan", "czrk")]
            if ("gongan", "czrk", pk) not in self.rejected
        }

    def in_rejected_marriages(self) -> set[str]:
        return {
            self.clean("mz", "hydj", pk, column)
            for (dept, table, pk) in self.rejected
            if (dept, table) == ("mz", "hydj")
            for column in ("nfsfzh", "nvfsfzh")
        }

    def expected(self) -> set[tuple[str, str, str]]:
        """(finding, department, id_number) the pipeline can see."""
        registered, blocked = self.registered(), self.in_rejected_marriages()
        out = set()
        for r in self.rows:
            kind, dept, table, pk = r["dirt"], r["dept"], r["table"], r["pk"]
            if kind not in CONFLICTS or not self.visible(dept, table, pk):
                continue
            if r["column"] == "*":
                person = r["dirty"]
                if kind == "marital_conflict" and person in blocked:
                    continue
            else:
                person = self.clean(dept, table, pk, ID_OF[r["column"]])
                if person not in registered:
                    continue
            out.add((kind, dept, person))
        return out


@pytest.fixture(scope="module")
def truth(night: dict[str, Any]) -> Truth:
    return Truth(night["sample"])


def test_rows_the_truth_says_are_rejected_are_the_rows_the_pipeline_rejected(
    night: dict[str, Any], truth: Truth
) -> None:
    root: StorageRoot = night["root"]
    pipeline = set()
    for dept in night["depts"]:
        for table in dept.tables:
            path = root.rejected(dept.code, table.name, DS) / "rows.parquet"
            for pk in pq.read_table(path, columns=["_source_pk"])["_source_pk"].to_pylist():
                pipeline.add((dept.code, table.name, pk))
    assert pipeline == truth.rejected


def test_findings_are_exactly_the_conflicts_of_the_ground_truth(
    night: dict[str, Any], truth: Truth
) -> None:
    findings = night["findings"].to_pylist()
    got = {(f["finding"], f["department"], f["id_number"]) for f in findings}
    expected = truth.expected()
    assert {k for k, _, _ in expected} == CONFLICTS  # every kind is there to be found
    assert len(expected) > 40
    assert got == expected, (sorted(got - expected)[:10], sorted(expected - got)[:10])


def test_conflicts_hidden_by_rejected_rows_are_not_findings(truth: Truth) -> None:
    """The sample does hold conflicts the pipeline cannot see (so the exclusions above are
    exercised), and persons whose only register rows were rejected."""
    visible = truth.expected()
    recorded = {r["dirt"] for r in truth.rows if r["dirt"] in CONFLICTS}
    assert recorded == CONFLICTS
    hidden = [
        r
        for r in truth.rows
        if r["dirt"] in CONFLICTS and not truth.visible(r["dept"], r["table"], r["pk"])
    ]
    assert hidden or len(visible) < sum(r["dirt"] in CONFLICTS for r in truth.rows)


def test_each_row_names_its_authority_and_the_night(night: dict[str, Any]) -> None:
    findings = night["findings"]
    assert findings.schema == consistency.SCHEMA
    authority = {
        "name_conflict": "gongan",
        "sex_conflict": "gongan",
        "unregistered_owner": "gongan",
        "unregistered_legal_rep": "gongan",
        "unregistered_shareholder": "gongan",
        "marital_conflict": "mz",
    }
    for f in findings.to_pylist():
        assert f["authoritative_department"] == authority[f["finding"]], f["finding"]
        assert f["business_date"] == DS
        assert f["finding_zh"] == consistency.FINDINGS[f["finding"]].zh
        assert f["department"] != "gongan"
    keys = [(f["finding"], f["department"], f["id_number"]) for f in findings.to_pylist()]
    assert len(keys) == len(set(keys))  # one row per finding, person and department


def test_publish_counts_and_a_rerun_changes_nothing(night: dict[str, Any]) -> None:
    published, again = night["published"], night["again"]
    assert again["version"] == published["version"]
    counts = consistency.count_by_department(night["findings"])
    assert published["counts"] == counts
    assert sum(sum(c.values()) for c in counts.values()) == night["findings"].num_rows
    assert set(counts) <= {"scjg", "bdc", "gjj", "mz"}


def test_clean_sample_has_no_findings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Default dirt without the conflicts: nothing to find, whatever else is dirty."""
    rates = DirtRates.parse([f"{k}=0" for k in sorted(CONFLICTS)])
    sample = generate(600, 3, business_date=DS, dirt=rates)
    root = StorageRoot(tmp_path / "root")
    dbs = write_sqlite(sample, root.samples())
    monkeypatch.setenv("DATACLOUD_ROOT", str(root.root))
    depts = sample_departments()  # those with a sample database
    for dept in depts:
        for table in dept.tables:
            nightly.extract(root, dept, table.name, DS, f"sqlite:///{dbs[dept.code]}")
            nightly.stage(root, dept, table.name, DS, "clean")
    assert sample.ground_truth.num_rows > 100  # dirty, but without conflicts
    assert consistency_night.build(root, depts, DS).num_rows == 0

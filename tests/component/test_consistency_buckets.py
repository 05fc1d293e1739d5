"""The consistency findings found bucket by bucket of the ID number equal the one-pass build.

On the sample night (3,000 persons, real staged Delta tables, ``conftest.sample_night``),
``consistency_night.build`` in 1, 3 and 7 buckets gives the same findings table, row for
row. A copy of the night gets extra staged marriage registrations whose couples are split
across buckets (a divorce without marriage, a second marriage, an undecidable history), so
each person's marital findings must come out exactly once, from the person's own bucket.
"""

from __future__ import annotations

import itertools
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from datacloud import consistency, consistency_night
from datacloud.curation_ranges import bucket_of
from datacloud.delta import open_table, read_loaded
from datacloud.delta.rs import write
from datacloud.paths import StorageRoot
from transforms.id_number import id_check_char

BUCKETS = (3, 7)
KINDS = {  # the findings the sample holds (its generator makes no others)
    "name_conflict",
    "sex_conflict",
    "unregistered_owner",
    "unregistered_legal_rep",
    "unregistered_shareholder",
    "marital_conflict",
}


def _kinds(findings: pa.Table) -> set[str]:
    return set(findings["finding"].to_pylist())


def test_findings_in_buckets_equal_the_one_pass_build(
    sample_night: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, depts, ds = sample_night["root"], sample_night["depts"], sample_night["ds"]
    monkeypatch.setenv("DATACLOUD_ROOT", str(root.root))
    assert consistency_night.bucket_count(root, depts) == 1  # a small night: one pass
    whole = consistency_night.build(root, depts, ds, buckets=1)
    assert whole.schema == consistency.SCHEMA
    assert _kinds(whole) >= KINDS
    assert whole.num_rows > 40
    # some marital finding's person has a spouse in another bucket (a split couple)
    marriages = consistency_night.read_marriages(root, depts)
    married = set(
        whole.filter(pc.equal(whole["finding"], "marital_conflict"))["id_number"].to_pylist()
    )
    for count in BUCKETS:
        h = bucket_of(marriages["husband_id_number"], count)
        w = bucket_of(marriages["wife_id_number"], count)
        split = pa.array(h != w)
        couples = marriages.filter(split)
        assert married & set(
            couples["husband_id_number"].to_pylist() + couples["wife_id_number"].to_pylist()
        )
        assert consistency_night.build(root, depts, ds, buckets=count).equals(whole), count


def _id(first17: str) -> str:
    return first17 + id_check_char(first17)


_fresh = itertools.count()


def _person(apart_from: str | None = None) -> str:
    """A new synthetic ID number; in another bucket than ``apart_from`` for every count of
    ``BUCKETS`` when given."""
    while True:
        candidate = _id(f"6501021960{next(_fresh):07d}")
        if apart_from is None:
            return candidate
        pair = pa.array([candidate, apart_from])
        if all(len(set(bucket_of(pair, k).tolist())) == 2 for k in BUCKETS):
            return candidate


def test_couples_split_across_buckets_give_each_finding_once(
    sample_night: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src: StorageRoot = sample_night["root"]
    depts, ds = sample_night["depts"], sample_night["ds"]
    root = StorageRoot(tmp_path / "root")
    shutil.copytree(src.root, root.root)
    monkeypatch.setenv("DATACLOUD_ROOT", str(root.root))
    mz = next(d for d in depts if any(t.kind == "marriage" for t in d.tables))
    spec = next(t for t in mz.tables if t.kind == "marriage")
    path = root.staged(mz.code, spec.name)
    dt = open_table(path)
    assert dt is not None
    staged = read_loaded(dt)
    x, u, m = _person(), _person(), _person()
    y, v, w, n, o, z = _person(x), _person(u), _person(u), _person(m), _person(m), _person(m)
    rows: list[tuple[str, str, str, date | None]] = [
        ("离婚", x, y, date(2015, 1, 1)),  # x and y: divorce without marriage, each once
        ("结婚", u, v, date(2010, 1, 1)),
        ("结婚", w, u, date(2012, 1, 1)),  # u married again, v never divorced: u's conflict
        ("结婚", m, n, date(2010, 1, 1)),
        ("结婚", m, o, date(2011, 1, 1)),  # m's conflict, but ...
        ("结婚", z, m, None),  # ... an undated registration: m's history undecidable
    ]
    extra = staged.slice(0, 1).take(pa.array([0] * len(rows)))
    columns = {
        "registration_type": [r[0] for r in rows],
        "husband_id_number": [r[1] for r in rows],
        "wife_id_number": [r[2] for r in rows],
        "registered_date": [r[3] for r in rows],
    }
    for name, values in columns.items():
        i = extra.schema.get_field_index(name)
        extra = extra.set_column(
            i, extra.schema.field(i), pa.array(values, extra.schema.field(i).type)
        )
    pk = extra.schema.get_field_index("_source_pk")
    if pk >= 0:
        keys = pa.array([f"split-{i}" for i in range(len(rows))], extra.schema.field(pk).type)
        extra = extra.set_column(pk, extra.schema.field(pk), keys)
    write(path, extra, mode="append")

    whole = consistency_night.build(root, depts, ds, buckets=1)
    marital = whole.filter(pc.is_in(whole["id_number"], pa.array([x, y, u, v, w, m, n, o, z])))
    got = sorted(zip(marital["finding"].to_pylist(), marital["id_number"].to_pylist(), strict=True))
    assert got == sorted(
        [
            ("divorce_without_marriage", x),
            ("divorce_without_marriage", y),
            ("marital_conflict", u),
        ]
    )
    assert {"divorce_without_marriage", *KINDS} <= _kinds(whole)
    for count in BUCKETS:
        assert consistency_night.build(root, depts, ds, buckets=count).equals(whole), count

"""The normalisers against the sample generator's ground truth: 100% agreement on every dirt kind.

A sample of 3,000 persons (all five departments, default dirt rates, a fixed seed) is
generated once. Every ground-truth row names a source column; the department YAMLs say
which canonical column and normaliser it goes through. For each kind of dirt:

- fixable (``FIXABLE``): the dirty value normalises to exactly the clean value, with the
  same issue as the clean value itself (e.g. ID_COUNTY_HISTORICAL for a retired county);
  ``id_legacy_15`` with the warning ID_LEGACY_15;
- unfixable (``UNFIXABLE``): the dirty value is rejected with the expected rule code and no
  value;
- ``legacy_reg_number``: no credit code, the 15-digit 注册号 kept in the ``reg_number`` extra,
  and the warning CC_LEGACY_REG_NUMBER;
- row-level kinds (``ROW_LEVEL``), each checked for what it means: ``null_field`` (a NULL in
  an optional column: normalises to null with no issue, and the clean value it replaced is
  itself clean), ``updated_after_load`` (the new value as the table holds it normalises to
  ``clean`` without an issue), and ``duplicate_row`` (through ``datacloud.normalise.normalise_table``:
  when both copies are accepted, exactly one survives, the later one);
- cross-department conflicts (``CONFLICTS``): not dirt a normaliser can see. A conflicting
  name or sex normalises without a rejection to a value other than the clean one (so the
  consistency check, ``tests/component/test_consistency_sample.py``, has something to find); a
  row-level conflict names a valid ID number in canonical form.

A kind the generator learns later fails ``test_every_dirt_kind_is_handled`` until it is
handled here.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from datacloud.config import ColumnSpec, Department, TableSpec, load_departments
from datacloud.normalise import NormaliseOutcome, normalise_table
from datacloud.sample import DirtRates, SampleData, generate
from transforms.adapters import apply_adapters
from transforms.registry import get_normaliser
from transforms.result import NormaliseContext, Normalised
from transforms.rules import RULES

PERSONS = 3_000
SEED = 20261120
BUSINESS_DATE = datetime.date(2026, 11, 20)

FIXABLE = {
    "id_lowercase_x",
    "id_fullwidth",
    "id_legacy_15",
    "whitespace",
    "name_dot_variant",
    "credit_lowercase",
}
UNFIXABLE = {
    "id_wrong_check": "ID_CHECK_DIGIT",
    "credit_wrong_check": "CC_CHECK_CHAR",
    "impossible_date": "DATE_IMPOSSIBLE",
}
LEGACY = {"legacy_reg_number": "CC_LEGACY_REG_NUMBER"}
ROW_LEVEL = {
    "null_field": "an optional value left NULL: normalises to null without an issue",
    "updated_after_load": "the value changed on the business date: the new value is clean",
    "duplicate_row": "a row entered twice: checked through normalise_table's deduplication",
}
FIELD_CONFLICTS = {"name_conflict", "sex_conflict"}
CONFLICTS = FIELD_CONFLICTS | {
    "unregistered_owner",
    "unregistered_legal_rep",
    "unregistered_shareholder",
    "marital_conflict",
}
HANDLED = FIXABLE | set(UNFIXABLE) | set(LEGACY) | set(ROW_LEVEL) | CONFLICTS


@dataclass(frozen=True)
class Target:
    dept: Department
    table: TableSpec
    canonical: str
    spec: ColumnSpec


@pytest.fixture(scope="module")
def sample() -> SampleData:
    return generate(PERSONS, SEED, business_date=BUSINESS_DATE)


@pytest.fixture(scope="module")
def targets() -> dict[tuple[str, str, str], Target]:
    """(dept, table, source column) → where the department YAML sends it."""
    out = {}
    for dept in load_departments():
        for table in dept.tables:
            for canonical, spec in table.columns.items():
                if spec.source is not None:
                    out[(dept.code, table.name, spec.source)] = Target(dept, table, canonical, spec)
    return out


@pytest.fixture(scope="module")
def truth(sample: SampleData) -> list[dict[str, Any]]:
    return sample.ground_truth.to_pylist()


def _normalise(target: Target, values: list[str | None]) -> Normalised:
    """The column's adapters (if its YAML names any), then its normaliser."""
    arr = apply_adapters(pa.array(values, pa.string()), target.spec.adapters)
    ctx = NormaliseContext(business_date=BUSINESS_DATE, options=target.spec.options)
    return get_normaliser(target.spec.normalise)(arr, ctx)


def _text(values: pa.Array) -> list[str | None]:
    """Normalised values in the ground truth's canonical text (dates as ISO strings)."""
    return pc.cast(values, pa.string()).to_pylist()


def _rows(out: Normalised) -> list[dict[str, Any]]:
    extras = {k: v.to_pylist() for k, v in out.extras.items()}
    return [
        {"value": v, "issue": i, **{k: e[n] for k, e in extras.items()}}
        for n, (v, i) in enumerate(zip(_text(out.values), out.issues.to_pylist(), strict=True))
    ]


def test_sample_has_every_dirt_kind(truth: list[dict[str, Any]]) -> None:
    assert {r["dirt"] for r in truth} == set(DirtRates.kinds())


def test_every_dirt_kind_is_handled(truth: list[dict[str, Any]]) -> None:
    present = {r["dirt"] for r in truth}
    assert present == HANDLED, f"handle new kinds {present - HANDLED}; gone: {HANDLED - present}"


def test_every_dirty_column_is_mapped(
    truth: list[dict[str, Any]], targets: dict[tuple[str, str, str], Target]
) -> None:
    unmapped = {
        (r["dept"], r["table"], r["column"])
        for r in truth
        if r["column"] != "*" and (r["dept"], r["table"], r["column"]) not in targets
    }
    assert not unmapped


def _field_rows(
    truth: list[dict[str, Any]], kinds: set[str]
) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in truth:
        if r["dirt"] in kinds:
            groups[(r["dept"], r["table"], r["column"])].append(r)
    return groups


def _expected(kind: str, truth_row: dict[str, Any], clean: dict[str, Any]) -> dict[str, Any]:
    """What normalising the dirty value must give, for one field-level ground-truth row."""
    if kind in UNFIXABLE:
        return {"value": None, "issue": UNFIXABLE[kind]}
    if kind in LEGACY:
        return {"value": None, "issue": LEGACY[kind], "reg_number": truth_row["dirty"]}
    issue = "ID_LEGACY_15" if kind == "id_legacy_15" else clean["issue"]
    return {"value": truth_row["clean"], "issue": issue}


def test_field_dirt_agrees_with_ground_truth(
    truth: list[dict[str, Any]], targets: dict[tuple[str, str, str], Target]
) -> None:
    kinds = FIXABLE | set(UNFIXABLE) | set(LEGACY)
    disagreements = []
    covered: set[str] = set()
    checked = 0
    for key, rows in sorted(_field_rows(truth, kinds).items()):
        target = targets[key]
        dirty = _rows(_normalise(target, [r["dirty"] for r in rows]))
        clean = _rows(_normalise(target, [r["clean"] for r in rows]))
        for r, got, clean_out in zip(rows, dirty, clean, strict=True):
            want = _expected(r["dirt"], r, clean_out)
            if r["dirt"] in FIXABLE:  # the clean value itself is clean, canonical and kept
                assert clean_out["value"] == r["clean"], (key, r)
                assert clean_out["issue"] is None or RULES[clean_out["issue"]].severity == "warn"
            if {k: got.get(k) for k in want} != want:
                disagreements.append((*key, r["pk"], r["dirt"], r["dirty"], want, got))
            covered.add(r["dirt"])
            checked += 1
    assert covered == kinds
    assert checked > 1_000
    assert not disagreements, "\n".join(map(repr, disagreements[:20]))


def test_fields_without_dirt_are_clean(
    sample: SampleData,
    truth: list[dict[str, Any]],
    targets: dict[tuple[str, str, str], Target],
) -> None:
    """The converse: a field the ground truth does not list is clean, so no normaliser may
    reject it or change an identifier (only value-describing warnings are allowed)."""
    dirty = {(r["dept"], r["table"], r["pk"], r["column"]) for r in truth}
    problems = []
    checked = 0
    for (dept, table, column), target in sorted(targets.items()):
        raw = sample.tables[dept][table]
        if target.spec.normalise == "keep" or column not in raw.column_names:
            continue  # kept as is, or joined in by the extraction query (qygd.qy_tyshxydm)
        pks = _source_pk(raw, target.table)
        values = [None if v is None else str(v) for v in raw[column].to_pylist()]
        out = _rows(_normalise(target, values))
        for pk, value, got in zip(pks, values, out, strict=True):
            if (dept, table, pk, column) in dirty or value is None:
                continue
            checked += 1
            code = got["issue"]
            rejected = code is not None and RULES[code].severity == "reject"
            emptied = code == "PHONE_INVALID"
            identifier = target.spec.normalise in {"id_number", "credit_code"}
            if rejected or emptied or (identifier and got["value"] != value):
                problems.append((dept, table, pk, column, value, got))
    assert checked > 50_000
    assert not problems, "\n".join(map(repr, problems[:20]))


def test_conflicts_are_well_formed_values_that_differ(
    truth: list[dict[str, Any]], targets: dict[tuple[str, str, str], Target]
) -> None:
    groups = _field_rows(truth, FIELD_CONFLICTS)
    assert {r["dirt"] for rows in groups.values() for r in rows} == FIELD_CONFLICTS
    for key, rows in groups.items():
        dirty = _rows(_normalise(targets[key], [r["dirty"] for r in rows]))
        clean = _rows(_normalise(targets[key], [r["clean"] for r in rows]))
        for r, got, want in zip(rows, dirty, clean, strict=True):
            assert got["value"] is not None and got["value"] != want["value"], (key, r)
            assert got["issue"] is None or RULES[got["issue"]].severity == "warn", (key, r)
    row_level = [r for r in truth if r["dirt"] in CONFLICTS - FIELD_CONFLICTS]
    assert {r["dirt"] for r in row_level} == CONFLICTS - FIELD_CONFLICTS
    ids = get_normaliser("id_number")(
        pa.array([r["dirty"] for r in row_level], pa.string()),
        NormaliseContext(business_date=BUSINESS_DATE, options={}),
    )
    assert _text(ids.values) == [r["dirty"] for r in row_level]
    assert all(r["column"] == "*" and r["clean"] is None for r in row_level)


def test_null_field(
    truth: list[dict[str, Any]], targets: dict[tuple[str, str, str], Target]
) -> None:
    rows_by_column = _field_rows(truth, {"null_field"})
    assert rows_by_column
    for key, rows in rows_by_column.items():
        target = targets[key]
        assert not target.spec.required, f"{key}: a required column cannot be left NULL"
        nulls = _normalise(target, [r["dirty"] for r in rows])
        assert nulls.values.null_count == len(rows) and nulls.issues.null_count == len(rows)
        clean = _rows(_normalise(target, [r["clean"] for r in rows]))
        assert [c["value"] for c in clean] == [r["clean"] for r in rows], key
        assert all(c["issue"] is None for c in clean), key


def test_updated_after_load(
    sample: SampleData,
    truth: list[dict[str, Any]],
    targets: dict[tuple[str, str, str], Target],
) -> None:
    """``clean`` is the new value in canonical form; the table holds it in the source's own
    convention (gjj.sjhm: '151-0227-7887', '+86 151 0227 7887'): it must normalise to ``clean``."""
    rows_by_column = _field_rows(truth, {"updated_after_load"})
    assert rows_by_column
    for (dept, table, column), rows in rows_by_column.items():
        raw = sample.tables[dept][table]
        target = targets[(dept, table, column)]
        pk = _source_pk(raw, target.table)
        in_table = dict(zip(pk, raw[column].to_pylist(), strict=True))
        new = _rows(_normalise(target, [in_table[r["pk"]] for r in rows]))
        assert [n["value"] for n in new] == [r["clean"] for r in rows], (dept, table, column)
        assert all(n["issue"] is None for n in new), (dept, table, column)


# -- duplicate_row, through normalise_table ------------------------------------------------------


def _source_pk(raw: pa.Table, table: TableSpec) -> list[str]:
    return [str(v) for v in raw[table.primary_key[0]].to_pylist()]


def _extracted(sample: SampleData, dept: str, table: str) -> pa.Table:
    """The table as its extraction query returns it (sql/<dept>/<table>.sql)."""
    raw = sample.tables[dept][table]
    if (dept, table) == ("scjg", "qygd"):  # LEFT JOIN qyjbxx for the enterprise's code
        ents = sample.tables["scjg"]["qyjbxx"]
        codes = dict(zip(ents["qyid"].to_pylist(), ents["tyshxydm"].to_pylist(), strict=True))
        qy = pa.array([codes.get(q) for q in raw["qyid"].to_pylist()], pa.string())
        raw = raw.append_column("qy_tyshxydm", qy)
    return raw


@pytest.fixture(scope="module")
def outcomes(sample: SampleData) -> dict[tuple[str, str], NormaliseOutcome]:
    out = {}
    for dept in load_departments():
        for table in dept.tables:
            raw = _extracted(sample, dept.code, table.name)
            out[(dept.code, table.name)] = normalise_table(raw, dept, table, BUSINESS_DATE)
    return out


def _shown_as_legacy(truth: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(r["dept"], r["table"], r["pk"]) for r in truth if r["dirt"] == "legacy_reg_number"}


def test_duplicate_rows_are_deduplicated(
    truth: list[dict[str, Any]], outcomes: dict[tuple[str, str], NormaliseOutcome]
) -> None:
    """When both copies are accepted, the later copy survives and the original is counted as
    deduplicated. One known exception, from the YAML rather than the normalisers: scjg.qyjbxx
    deduplicates on [credit_code, reg_number], so a copy written with the 15-digit 注册号
    while the other shows the credit code (legacy_reg_number dirt on one copy only) has a
    different key and both copies stay (no row holds both numbers to link them)."""
    pairs: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for r in truth:
        if r["dirt"] == "duplicate_row":
            pairs[(r["dept"], r["table"])].append((r["pk"], r["clean"]))  # (copy, original)
    assert set(pairs) == set(outcomes), "every sample table has duplicates"
    legacy = _shown_as_legacy(truth)
    problems = []
    unmatched = 0
    for key, outcome in outcomes.items():
        assert outcome.reconciles()
        accepted = set(outcome.accepted["_source_pk"].to_pylist())
        rejected = set(outcome.rejected["_source_pk"].to_pylist())
        expected = 0
        for copy, original in pairs[key]:
            if copy in rejected or original in rejected:
                continue  # one copy quarantined: nothing to deduplicate
            if ((*key, copy) in legacy) != ((*key, original) in legacy):
                unmatched += 1
                if not (copy in accepted and original in accepted):
                    problems.append((*key, copy, original, "expected both kept"))
                continue
            expected += 1
            if copy not in accepted or original in accepted:  # the later copy survives
                problems.append((*key, copy, original, "expected only the copy"))
        assert outcome.rows_deduplicated == expected, key
    assert not problems, problems
    assert unmatched <= 2  # seen: one pair at this seed; report if it grows

"""The curated gate of a full build's publish runs a slice at a time
(``curation_night._refused_parts``: ``QualityGate.check_slices`` on ranges of its
``slice_column`` read from the range parts) and gives the whole-table gate's verdict and
gate.json entry, one Data Docs page per table, whatever the slice size: 1 row per slice up
to the whole table, with failing tables (an invalid ID number, an owner not in the person
register, a duplicate key, a duplicate key whose slice column is null, a key without any
part) and, for a table whose layout's first column is not in its key
(``housing_fund_account``: sorted by ``id_number``, keyed by ``account_no``), a duplicate
key whose two rows sit in two slices of the layout's column.

Real parquet parts (``curation_ranges.write_part``), a real Delta person table for the
links, real Great Expectations.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import write_deltalake
from helpers import full_id_numbers

from datacloud import curation_night, curation_ranges, quality
from datacloud.curate import LAYOUT
from datacloud.curation_ranges import KeyRange
from datacloud.paths import StorageRoot
from datacloud.quality_ge import run_suite, run_suite_slices
from transforms.id_number import id_check_char

DS = date(2026, 11, 20)
SIZES = [1, 2, 3, 5, 100_000]  # rows per slice; the last: one slice, the whole table


def _id(seq: int, born: str = "19800101") -> str:
    first17 = f"330106{born}{seq:03d}"
    return first17 + id_check_char(first17)


P = [_id(i) for i in range(12)]  # in the person register
STRANGER = _id(500)  # a valid ID number nobody registered
WRONG = P[4][:-1] + ("0" if P[4][-1] != "0" else "1")  # a wrong check character


def rights(extra: Sequence[tuple[str | None, str | None]] = ()) -> pa.Table:
    """A property_right table: co-owned certificates (a certificate under two owners is two
    keys), every owner registered, then ``extra`` rows."""
    rows = [(f"浙(2026)杭州市不动产权第{i:07d}号", P[i % 10]) for i in range(10)]
    rows += [
        ("浙(2026)杭州市不动产权第0000003号", P[7]),
        ("浙(2026)杭州市不动产权第0000011号", P[2]),
    ]
    rows += list(extra)
    return pa.table(
        {
            "certificate_no": pa.array([r[0] for r in rows], pa.string()),
            "owner_id_number": pa.array([r[1] for r in rows], pa.string()),
            "owner_name": pa.array(["某某"] * len(rows), pa.string()),
            "floor_area_m2": pa.array([str(80 + i) for i in range(len(rows))], pa.string()),
        }
    )


RIGHTS: dict[str, Callable[[], pa.Table]] = {
    "clean": rights,
    "invalid_id": lambda: rights([("浙(2026)杭州市不动产权第0000020号", WRONG)]),
    "broken_link": lambda: rights([("浙(2026)杭州市不动产权第0000021号", STRANGER)]),
    "duplicate_key": lambda: rights([("浙(2026)杭州市不动产权第0000005号", P[5])]),
    "duplicate_null_owner": lambda: rights(
        [("浙(2026)杭州市不动产权第0000030号", None), ("浙(2026)杭州市不动产权第0000030号", None)]
    ),
    "no_key": lambda: rights([(None, None)]),
}


@pytest.fixture
def root(storage_root: StorageRoot) -> StorageRoot:
    """A storage root with tonight's curated person register (the links' target)."""
    persons = pa.table(
        {
            "id_number": pa.array(P, pa.string()),
            "birth_date": pa.array([date(1980, 1, 1)] * len(P), pa.date32()),
        }
    )
    write_deltalake(str(storage_root.curated("person")), persons)
    return storage_root


def parts_of(root: StorageRoot, name: str, table: pa.Table, ranges: int = 2) -> Any:
    """``table`` as ``ranges`` range parts of a full build (rows dealt round-robin, each part
    sorted by the layout), as ``publish_ranges`` reads them."""
    scratch = root.root / "scratch" / "gate-test"
    files = []
    for i in range(ranges):
        rows = table.take(list(range(i, table.num_rows, ranges)))
        kr = KeyRange(i, ranges)
        curation_ranges.write_part(scratch, name, kr, rows, LAYOUT[name][1])
        files.append(curation_ranges.part_path(scratch, name, kr))
    return curation_ranges.Parts(tuple(files))


def entry(root: StorageRoot, name: str) -> dict[str, Any]:
    doc = json.loads((root.quality() / "curated" / DS.isoformat() / "gate.json").read_text())
    (found,) = [e for e in doc["suites"] if e["table"] == name]
    return dict(found)


def whole(root: StorageRoot, name: str, table: pa.Table) -> tuple[str | None, dict[str, Any]]:
    gate = curation_night.quality_gate(root, DS)
    verdict = curation_night._refused(gate, name, table)
    return verdict, entry(root, name)


def sliced(
    root: StorageRoot, name: str, parts: Any, rows: int, by: str | None = None
) -> tuple[str | None, dict[str, Any]]:
    gate = curation_night.quality_gate(root, DS)
    if by is not None:  # slice by another column than the gate's own (a control)
        gate.slice_column = lambda _name: by  # type: ignore[method-assign]
    bounds = curation_night._slicer(parts, rows)
    verdict = curation_night._refused_parts(gate, name, parts, bounds)
    return verdict, entry(root, name)


def pages(root: StorageRoot, name: str) -> list[Path]:
    docs = root.quality() / "data_docs" / "curated" / name / "validations"
    return sorted(docs.rglob("*.html"))


@pytest.mark.parametrize("case", list(RIGHTS))
def test_the_sliced_gate_gives_the_whole_table_gates_entry(root: StorageRoot, case: str) -> None:
    table = RIGHTS[case]()
    gate = curation_night.quality_gate(root, DS)
    assert gate.slice_column("property_right") == "owner_id_number"  # the layout's, in the key
    want_verdict, want = whole(root, "property_right", table)
    failed = {f["check"] for f in want["failed_expectations"]}
    expected = {
        "clean": set(),
        "invalid_id": {"owner_id_number.valid", "owner_id_number.resolves"},
        "broken_link": {"owner_id_number.resolves"},
        "duplicate_key": {"key.unique"},
        "duplicate_null_owner": {"key.unique"},
        "no_key": {"key.present"},
    }[case]
    assert failed == expected, want  # the case is what it says
    assert (want_verdict is None) == (case in ("clean", "broken_link"))
    parts = parts_of(root, "property_right", table)
    for rows in SIZES:
        verdict, got = sliced(root, "property_right", parts, rows)
        assert got == want, (case, rows)
        assert verdict == want_verdict, (case, rows)
        assert got["rows"] == table.num_rows
    # one Data Docs page for the table's night, the combined result's: its counts are the
    # whole table's
    (page,) = pages(root, "property_right")
    assert (root.root / want["data_docs"]).resolve() == page.resolve()
    stored = sorted((root.quality() / "gx" / "curated" / "property_right").rglob("*.json"))
    results = [p for p in stored if "validations" in p.parts and DS.isoformat() in p.parts]
    assert len(results) == 1, results
    counts = json.loads(results[0].read_text(encoding="utf-8"))["results"]
    assert {c["result"]["element_count"] for c in counts} == {table.num_rows}
    # no personal data in the gate's entry, the stored result or the page
    for text in (json.dumps(got, ensure_ascii=False), results[0].read_text(), page.read_text()):
        assert not full_id_numbers(text)
        assert "不动产权第" not in text and WRONG not in text


def funds(pairs: list[tuple[str, str]]) -> pa.Table:
    return pa.table(
        {
            "account_no": pa.array([a for a, _ in pairs], pa.string()),
            "id_number": pa.array([p for _, p in pairs], pa.string()),
            "employer_credit_code": pa.array([None] * len(pairs), pa.string()),
            "opened_date": pa.array([date(2020, 1, 1)] * len(pairs), pa.date32()),
        }
    )


@pytest.mark.parametrize("duplicate", [False, True])
def test_a_table_whose_layout_column_is_not_in_its_key_is_gated_by_slices_of_its_key(
    root: StorageRoot, duplicate: bool
) -> None:
    """housing_fund_account is sorted by id_number but keyed by account_no: two rows of one
    account under the first and the last person sit in two slices of id_number, so the
    gate slices it by account_no; slicing by id_number would miss the duplicate."""
    pairs = [(f"GJJ{i:04d}", P[i]) for i in range(1, 11)]
    if duplicate:
        pairs += [("GJJ0001", P[11])]  # the account of P[1] once more, under P[11]
    table = funds(pairs)
    gate = curation_night.quality_gate(root, DS)
    assert LAYOUT["housing_fund_account"][1][0] == "id_number"
    assert gate.slice_column("housing_fund_account") == "account_no"
    want_verdict, want = whole(root, "housing_fund_account", table)
    assert ("key.unique" in {f["check"] for f in want["failed_expectations"]}) == duplicate
    assert (want_verdict is None) == (not duplicate)
    parts = parts_of(root, "housing_fund_account", table, ranges=3)
    for rows in SIZES:
        assert sliced(root, "housing_fund_account", parts, rows) == (want_verdict, want), rows
    if duplicate:  # the control: by the layout's column, a slice holds one row of the two
        verdict, naive = sliced(root, "housing_fund_account", parts, 1, by="id_number")
        assert verdict is None and naive != want


def test_every_curated_tables_gate_slices_by_a_column_of_its_key() -> None:
    gate = curation_night.quality_gate(StorageRoot(Path("/nonexistent")), DS)
    for name in LAYOUT:
        meta = gate._meta(name)
        assert meta is not None, name
        assert gate.slice_column(name) in meta["key"], name
        assert gate.slice_column(name) in gate.columns(name), name


def _mostly_suite() -> dict[str, Any]:
    return {
        "name": "test_mostly",
        "expectations": [
            {
                "type": "expect_column_values_to_be_in_set",
                "kwargs": {"column": "v", "value_set": ["valid"], "mostly": 0.9},
                "meta": {"check": "v.valid"},
                "severity": "critical",
            },
            {
                "type": "expect_column_values_to_not_be_null",
                "kwargs": {"column": "v", "mostly": 0.8},
                "meta": {"check": "v.present"},
                "severity": "warning",
            },
            {
                "type": "expect_column_values_to_be_unique",
                "kwargs": {"column": "k"},
                "meta": {"check": "k.unique"},
                "severity": "critical",
            },
        ],
    }


@pytest.mark.parametrize("bad", [1, 2])
def test_mostly_is_judged_on_the_sums_not_per_slice(storage_root: StorageRoot, bad: int) -> None:
    """20 rows, ``bad`` invalid in the first slice of 4 (25-50%: that slice alone fails
    ``mostly`` 0.9); 2 nulls in the last slice (50% of it, 10% of the table). One bad of 18
    present values passes 0.9, two fail it; the sums decide, as on the whole profile."""
    v = ["invalid"] * bad + ["valid"] * (16 - bad) + ["valid", "valid", None, None]
    profile = pa.table({"v": pa.array(v, pa.string()), "k": pa.array(range(20), pa.int64())})
    suite = _mostly_suite()
    one = run_suite(storage_root, ("test", "whole"), suite, profile, {}, DS)
    cuts = [profile.slice(0, 4), profile.slice(4, 12), profile.slice(16, 4)]
    many = run_suite_slices(storage_root, ("test", "sliced"), suite, iter(cuts), {}, DS)
    assert many.outcomes == one.outcomes
    assert [o.success for o in one.outcomes] == [bad == 1, True, True]
    each = [run_suite(storage_root, ("test", "each"), suite, c, {}, DS).outcomes for c in cuts]
    assert not each[0][0].success and not each[2][1].success  # a slice alone would fail
    assert many.data_docs is not None and (storage_root.root / many.data_docs).is_file()


def test_an_expectation_without_row_counts_is_not_added_up(storage_root: StorageRoot) -> None:
    suite = {
        "name": "test_rows",
        "expectations": [
            {
                "type": "expect_table_row_count_to_be_between",
                "kwargs": {"min_value": 1, "max_value": 5},
                "meta": {"check": "volume"},
                "severity": "critical",
            }
        ],
    }
    profile = pa.table({"v": ["valid"] * 4})
    with pytest.raises(ValueError, match="cannot be added up"):
        run_suite_slices(storage_root, ("test", "rows"), suite, iter([profile, profile]), {}, DS)


def test_check_curated_is_the_one_slice_case(root: StorageRoot) -> None:
    table = RIGHTS["duplicate_key"]()
    persons = pa.table({"id_number": pa.array(P, pa.string())})
    one = quality.check_curated(root, "property_right", table, DS, {"person": persons})
    empty = table.slice(0, 0)
    halves = [empty, table.slice(0, 6), empty, table.slice(6), empty]
    # both halves hold a row of the duplicate key: these slices break the key apart, and
    # the sum misses it; the gate never slices so (test above), this shows the sum's limit
    split = quality.check_curated_slices(
        root, "property_right", iter(halves), DS, {"person": persons}
    )
    assert split.rows == one.rows == table.num_rows
    assert not one.passed and split.passed


@pytest.mark.parametrize("case", ["broken_link", "invalid_id"])
def test_links_resolve_a_slice_at_a_time_on_a_sampled_cut(
    root: StorageRoot, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The person register in several files, one of them later than the night's first
    read; the cut taken on a sample of every 3rd value (``curation_ranges.SAMPLE_ROWS``)
    and the links looked up per slice: the whole-table gate's entry, and the register's key
    column never read whole (``delta.read_table``) nor the parts' slice column
    (``Parts.read``)."""
    for i in (100, 101):  # two more persons, each appended as its own file
        more = {"id_number": [_id(i)], "birth_date": [date(1980, 1, 1)]}
        write_deltalake(
            str(root.curated("person")),
            pa.table(
                more, schema=pa.schema([("id_number", pa.string()), ("birth_date", pa.date32())])
            ),
            mode="append",
        )
    table = pa.concat_tables(
        [RIGHTS[case](), rights([("浙(2026)杭州市不动产权第0000040号", _id(101))]).slice(12)]
    )
    want_verdict, want = whole(root, "property_right", table)
    assert want["rows"] == table.num_rows
    parts = parts_of(root, "property_right", table, ranges=3)
    monkeypatch.setattr(curation_ranges, "SAMPLE_ROWS", 3)

    def whole_read(*_a: Any, **_k: Any) -> None:
        raise AssertionError("a whole column read")

    monkeypatch.setattr(curation_night.delta, "read_table", whole_read)
    monkeypatch.setattr(curation_ranges.Parts, "read", whole_read)
    for rows in (1, 2, 5):
        verdict, got = sliced(root, "property_right", parts, rows)
        assert (verdict, got) == (want_verdict, want), rows

"""The sample department generator: determinism, schema, relations, dirt and its ground truth."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datacloud.sample import (
    DEFAULT_BUSINESS_DATE,
    DEPARTMENTS,
    DirtRates,
    SampleData,
    codes,
    generate,
    write_ground_truth,
    write_sqlite,
)
from datacloud.sample.ddl import SQL_DIR

PERSONS = 2000
ID_COLUMNS = {
    ("gongan", "czrk"): ["gmsfhm"],
    ("scjg", "qyjbxx"): ["fddbr_sfzh"],
    ("scjg", "qygd"): ["gdzjhm"],
    ("bdc", "bdc_qlr"): ["zjh"],
    ("gjj", "grzh"): ["zjhm"],
    ("mz", "hydj"): ["nfsfzh", "nvfsfzh"],
}
NAME_OF_ID = {
    "gmsfhm": "xm",
    "fddbr_sfzh": "fddbr",
    "gdzjhm": "gdmc",
    "zjh": "qlrmc",
    "zjhm": "xingming",
    "nfsfzh": "nfxm",
    "nvfsfzh": "nvfxm",
}
PKS = {
    "czrk": "rkbh",
    "qyjbxx": "qyid",
    "qygd": "gdid",
    "qydmdz": "dzid",
    "bdc_qlr": "ywh",
    "grzh": "grzh",
    "hydj": "djxh",
}


@pytest.fixture(scope="module")
def sample() -> SampleData:
    return generate(PERSONS, seed=7)


@pytest.fixture(scope="module")
def truth(sample: SampleData) -> list[dict]:
    return sample.ground_truth.to_pylist()


UNREGISTERED = ("unregistered_owner", "unregistered_legal_rep", "unregistered_shareholder")
CONFLICTS = ("name_conflict", "sex_conflict", *UNREGISTERED, "marital_conflict")


def _clean_rows(sample: SampleData, truth: list[dict], dept: str, table: str) -> list[dict]:
    """The table's rows with every dirty field replaced by its clean value, duplicates and
    second marriages without a divorce dropped (rows about unregistered persons stay)."""
    fixes: dict[tuple[str, str], str | None] = {}
    duplicates = set()
    for r in truth:
        if (r["dept"], r["table"]) != (dept, table):
            continue
        if r["dirt"] in ("duplicate_row", "marital_conflict"):
            duplicates.add(r["pk"])
        elif r["column"] != "*":
            fixes[(r["pk"], r["column"])] = r["clean"]
    pk = PKS[table]
    rows = []
    for row in sample.tables[dept][table].to_pylist():
        key = str(row[pk])
        if key in duplicates:
            continue
        rows.append({c: fixes.get((key, c), v) for c, v in row.items()})
    return rows


def _date(text: str, fmt: str) -> dt.date:
    """A date in the department's format, or ISO (the clean form of an impossible date)."""
    if len(text) == 10 and text[4] == "-" and fmt != "%Y-%m-%d":
        return dt.date.fromisoformat(text)
    return dt.datetime.strptime(text, fmt).date()


def test_check_characters_match_the_published_examples() -> None:
    assert codes.is_valid_id("11010519491231002X")
    assert codes.id_check_char("11010519491231002") == "X"
    assert codes.is_valid_credit_code("91350100M000100Y43")
    assert codes.org_check_char("M000100Y") == "4"
    assert not codes.is_valid_credit_code("91350100M000100Y44")
    body = "33010601000064"
    number = body + codes.reg_check_digit(body)
    p = 10  # ISO 7064 MOD 11,10: a valid number leaves (p + check) mod 10 == 1
    for ch in number[:-1]:
        p = ((p + int(ch)) % 10 or 10) * 2 % 11
    assert (p + int(number[-1])) % 10 == 1


def test_same_seed_gives_identical_data_and_another_seed_differs() -> None:
    a, b, c = generate(300, seed=11), generate(300, seed=11), generate(300, seed=12)
    for dept in DEPARTMENTS:
        for name, table in a.tables[dept].items():
            assert table.equals(b.tables[dept][name]), f"{dept}.{name}"
    assert a.ground_truth.equals(b.ground_truth)
    assert a.manifest == b.manifest
    assert not a.tables["gongan"]["czrk"].equals(c.tables["gongan"]["czrk"])


def test_every_table_has_exactly_the_columns_of_its_ddl(sample: SampleData) -> None:
    assert tuple(sample.tables) == DEPARTMENTS
    for dept in DEPARTMENTS:
        con = sqlite3.connect(":memory:")
        con.executescript((SQL_DIR / f"{dept}.sql").read_text("utf-8"))
        names = [n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        assert sorted(names) == sorted(sample.tables[dept]), dept
        for name, table in sample.tables[dept].items():
            columns = [row[1] for row in con.execute(f"PRAGMA table_info({name})")]
            assert table.column_names == columns, f"{dept}.{name}"
        assert (SQL_DIR / f"{dept}.sql").read_text("utf-8").startswith("-- ")


def test_write_sqlite_writes_five_queryable_files(sample: SampleData, tmp_path: Path) -> None:
    write_sqlite(sample, tmp_path)  # twice: the second replaces the first
    paths = write_sqlite(sample, tmp_path)
    assert sorted(paths) == sorted(DEPARTMENTS)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{d}.db" for d in DEPARTMENTS)
    for dept, path in paths.items():
        con = sqlite3.connect(path)
        for name, table in sample.tables[dept].items():
            (count,) = con.execute(f"SELECT COUNT(*) FROM {name}").fetchone()
            assert count == table.num_rows > 0, f"{dept}.{name}"
        con.close()
    con = sqlite3.connect(paths["scjg"])
    (total,) = con.execute("SELECT SUM(czbl) FROM qygd WHERE gdid = 1").fetchone()
    assert 0 < total <= 1
    con = sqlite3.connect(paths["gongan"])
    first = sample.tables["gongan"]["czrk"].slice(0, 1).to_pylist()[0]
    row = con.execute(
        "SELECT gmsfhm, xm, gxsj FROM czrk WHERE rkbh = ?", (first["rkbh"],)
    ).fetchone()
    assert row == (first["gmsfhm"], first["xm"], first["gxsj"].strftime("%Y-%m-%d %H:%M:%S"))


def test_write_ground_truth_writes_parquet_and_manifest(sample: SampleData, tmp_path: Path) -> None:
    path = write_ground_truth(sample, tmp_path)
    assert pq.read_table(path).equals(sample.ground_truth)
    manifest = json.loads((tmp_path / "manifest.json").read_text("utf-8"))
    assert manifest["seed"] == 7 and manifest["persons"] == PERSONS
    assert manifest["business_date"] == DEFAULT_BUSINESS_DATE.isoformat()
    assert manifest["row_counts"]["gongan"]["czrk"] == sample.tables["gongan"]["czrk"].num_rows
    assert sum(manifest["dirt_counts"].values()) == sample.ground_truth.num_rows
    assert set(manifest["dirt_rates"]) == set(DirtRates.kinds())


def test_every_referenced_person_is_registered_with_the_same_name(
    sample: SampleData, truth: list[dict]
) -> None:
    """Apart from the rows the ground truth lists as about unregistered persons."""
    register = {r["gmsfhm"]: r["xm"] for r in _clean_rows(sample, truth, "gongan", "czrk")}
    assert len(register) == PERSONS
    assert all(codes.is_valid_id(i) for i in register)
    outside = {(r["dept"], r["table"], r["pk"]) for r in truth if r["dirt"] in UNREGISTERED}
    for (dept, table), columns in ID_COLUMNS.items():
        rows = _clean_rows(sample, truth, dept, table)
        assert rows, f"{dept}.{table} is empty"
        for column in columns:
            for row in rows:
                if (dept, table, str(row[PKS[table]])) in outside:
                    assert row[column] not in register and codes.is_valid_id(row[column])
                    continue
                assert row[column] in register, f"{dept}.{table}.{column}: {row[column]}"
                assert register[row[column]] == row[NAME_OF_ID[column]]


def test_ids_credit_codes_and_dates_are_canonical_after_cleaning(
    sample: SampleData, truth: list[dict]
) -> None:
    enterprises = _clean_rows(sample, truth, "scjg", "qyjbxx")
    credit = {r["tyshxydm"] for r in enterprises}
    assert all(codes.is_valid_credit_code(c) for c in credit)
    employers = _clean_rows(sample, truth, "gjj", "grzh")
    assert {r["dwtyshxydm"] for r in employers} <= credit
    for row in _clean_rows(sample, truth, "gongan", "czrk"):
        birth = _date(row["csrq"], "%Y%m%d")  # no impossible date left
        assert row["gmsfhm"][6:14] == birth.strftime("%Y%m%d")
        assert 0 <= (DEFAULT_BUSINESS_DATE - birth).days < 96 * 366
        assert int(row["gmsfhm"][16]) % 2 == (1 if row["xb"] == "1" else 0)


def test_shares_of_an_enterprise_sum_to_one(sample: SampleData, truth: list[dict]) -> None:
    totals: dict[int, Decimal] = defaultdict(Decimal)
    for row in _clean_rows(sample, truth, "scjg", "qygd"):
        totals[row["qyid"]] += row["czbl"]
    enterprises = {r["qyid"] for r in _clean_rows(sample, truth, "scjg", "qyjbxx")}
    assert set(totals) == enterprises
    assert set(totals.values()) == {Decimal("1.0000")}


def test_some_adults_own_property_and_some_do_not(sample: SampleData, truth: list[dict]) -> None:
    persons = _clean_rows(sample, truth, "gongan", "czrk")
    adults = {
        r["gmsfhm"]
        for r in persons
        if (DEFAULT_BUSINESS_DATE - _date(r["csrq"], "%Y%m%d")).days >= 18 * 366
    }
    owners = {r["zjh"] for r in _clean_rows(sample, truth, "bdc", "bdc_qlr")}
    share = len(owners & adults) / len(adults)
    assert 0.45 < share < 0.65
    certificates = Counter(r["bdcqzh"] for r in _clean_rows(sample, truth, "bdc", "bdc_qlr"))
    assert max(certificates.values()) == 2  # co-owned by a married couple


def test_nobody_is_in_two_current_marriages(sample: SampleData, truth: list[dict]) -> None:
    sex = {r["gmsfhm"]: r["xb"] for r in _clean_rows(sample, truth, "gongan", "czrk")}
    current: dict[str, str] = {}
    events = sorted(
        _clean_rows(sample, truth, "mz", "hydj"),
        key=lambda r: _date(r["djrq"], "%Y.%m.%d"),
    )
    assert {r["ywlx"] for r in events} == {"结婚", "离婚"}
    for r in events:
        man, woman = r["nfsfzh"], r["nvfsfzh"]
        assert (sex[man], sex[woman]) == ("1", "2")
        if r["ywlx"] == "结婚":
            assert man not in current and woman not in current
            current[man], current[woman] = woman, man
        else:
            assert current.pop(man) == woman and current.pop(woman) == man


def test_dirty_values_differ_from_clean_ones(truth: list[dict]) -> None:
    assert truth
    for r in truth:
        assert r["dirty"] != r["clean"], r


def test_every_id_dirt_kind_occurs_at_default_rates(sample: SampleData, truth: list[dict]) -> None:
    id_columns = {c for columns in ID_COLUMNS.values() for c in columns}
    kinds = {r["dirt"] for r in truth if r["column"] in id_columns}
    expected = {"id_wrong_check", "id_legacy_15", "id_lowercase_x", "id_fullwidth", "whitespace"}
    assert expected <= kinds
    assert set(sample.manifest["dirt_counts"]) == set(DirtRates.kinds())
    assert all(sample.manifest["dirt_counts"][k] > 0 for k in DirtRates.kinds())
    for r in truth:
        if r["dirt"] == "id_legacy_15":
            assert len(r["dirty"]) == 15 and r["clean"][6:8] == "19"
            assert r["dirty"] == r["clean"][:6] + r["clean"][8:17]
        elif r["dirt"] == "id_lowercase_x":
            assert r["dirty"] == r["clean"][:17] + "x"


def test_rates_are_roughly_honoured(sample: SampleData, truth: list[dict]) -> None:
    rates = DirtRates()
    fields = sum(sample.tables[d][t].num_rows * len(cs) for (d, t), cs in ID_COLUMNS.items())
    rows = sum(t.num_rows for ts in sample.tables.values() for t in ts.values())
    counts = Counter(r["dirt"] for r in truth)
    x = sum(
        1
        for (d, t), cs in ID_COLUMNS.items()
        for c in cs
        for v in sample.tables[d][t][c].to_pylist()
        if v.strip().upper().endswith(("X", "Ｘ"))
    )

    def near(kind: str, expected: float) -> None:
        assert 0.6 * expected < counts[kind] < 1.4 * expected, (kind, counts[kind], expected)

    near("id_wrong_check", rates.id_wrong_check * fields)
    near("id_fullwidth", rates.id_fullwidth * fields)
    near("id_lowercase_x", rates.id_lowercase_x * x * 0.95)
    near("duplicate_row", rates.duplicate_row * rows)
    updatable = sum(sample.tables[d][t].num_rows for d, t in [
        ("gongan", "czrk"), ("scjg", "qyjbxx"), ("bdc", "bdc_qlr"), ("gjj", "grzh")
    ])  # fmt: skip
    near("updated_after_load", rates.updated_after_load * updatable)


def test_a_zero_rate_gives_no_dirt_of_that_kind() -> None:
    zero = DirtRates.parse(["id_wrong_check=0", "whitespace=0", "duplicate_row=0"])
    kinds = set(generate(500, seed=3, dirt=zero).ground_truth["dirt"].to_pylist())
    assert kinds.isdisjoint({"id_wrong_check", "whitespace", "duplicate_row"})
    assert "id_legacy_15" in kinds
    clean = generate(300, seed=3, dirt=DirtRates().scaled(0))
    assert clean.ground_truth.num_rows == 0
    assert clean.ground_truth.schema == pa.schema(
        [(n, pa.string()) for n in clean.ground_truth.schema.names]
    )


def test_updated_rows_carry_the_business_date_and_others_are_older(
    sample: SampleData, truth: list[dict]
) -> None:
    updated = {(r["dept"], r["table"], r["pk"]) for r in truth if r["dirt"] == "updated_after_load"}
    midnight = dt.datetime.combine(DEFAULT_BUSINESS_DATE, dt.time())
    for dept, tables in sample.tables.items():
        for name, table in tables.items():
            for key, when in zip(
                table[PKS[name]].to_pylist(), table["gxsj"].to_pylist(), strict=True
            ):
                on_the_day = midnight <= when < midnight + dt.timedelta(days=1)
                assert on_the_day == ((dept, name, str(key)) in updated), (dept, name, key, when)


def test_dirt_rates_parse_and_errors() -> None:
    rates = DirtRates.parse(["whitespace=0.1", "id_legacy_15 = 0"])
    assert rates.whitespace == 0.1 and rates.id_legacy_15 == 0.0
    assert rates.id_wrong_check == DirtRates().id_wrong_check
    with pytest.raises(ValueError, match=r"unknown dirt kind 'spaces'.*whitespace"):
        DirtRates.parse(["spaces=0.1"])
    with pytest.raises(ValueError, match="whitespace"):
        DirtRates.parse(["whitespace=lots"])
    with pytest.raises(ValueError, match="outside"):
        DirtRates.parse(["null_field=1.5"])
    with pytest.raises(ValueError, match="kind=rate"):
        DirtRates.parse(["whitespace"])
    assert DirtRates().scaled(0) == DirtRates(**dict.fromkeys(DirtRates.kinds(), 0.0))
    assert DirtRates().scaled(1000).id_lowercase_x == 1.0


def test_small_samples_and_bad_arguments() -> None:
    tiny = generate(10, seed=1)
    assert tiny.tables["gongan"]["czrk"].num_rows >= 10
    assert tiny.tables["scjg"]["qyjbxx"].num_rows >= 1
    with pytest.raises(ValueError, match="persons"):
        generate(0, seed=1)


# -- cross-department conflicts ------------------------------------------------------------------


def _row(sample: SampleData, table: str, dept: str, pk: str) -> dict:
    return next(r for r in sample.tables[dept][table].to_pylist() if str(r[PKS[table]]) == pk)


def test_conflicts_disagree_with_the_register(sample: SampleData, truth: list[dict]) -> None:
    """A name or sex conflict is written as it stands (no field dirt on top) and differs from
    the register's value; the clean value is the register's."""
    register = {r["gmsfhm"]: r for r in _clean_rows(sample, truth, "gongan", "czrk")}
    id_of = {name: id_col for id_col, name in NAME_OF_ID.items()} | {"xb": "zjh", "xingbie": "zjhm"}
    sex_words = {"xb": {"男": "1", "女": "2"}, "xingbie": {"M": "1", "F": "2"}}
    seen = Counter()
    for r in truth:
        if r["dirt"] not in ("name_conflict", "sex_conflict"):
            continue
        seen[(r["dept"], r["column"])] += 1
        row = _row(sample, r["table"], r["dept"], r["pk"])
        assert row[r["column"]] == r["dirty"] != r["clean"], r
        fields = [
            c for c in truth if (c["dept"], c["table"], c["pk"]) == (r["dept"], r["table"], r["pk"])
        ]
        assert sum(c["column"] == r["column"] for c in fields) == 1, fields  # the only dirt
        id_number = next(
            (c["clean"] for c in fields if c["column"] == id_of[r["column"]]),
            row[id_of[r["column"]]],
        )
        person = register[id_number]
        if r["dirt"] == "name_conflict":
            assert r["clean"] == person["xm"] and r["dirty"] != person["xm"]
        else:
            words = sex_words[r["column"]]
            assert words[r["clean"]] == person["xb"] != words[r["dirty"]]
    assert {d for d, _ in seen} == {"bdc", "gjj", "scjg", "mz"}
    assert {c for _, c in seen} >= {"xb", "xingbie"}


def test_unregistered_persons_and_second_marriages(sample: SampleData, truth: list[dict]) -> None:
    register = {r["gmsfhm"] for r in _clean_rows(sample, truth, "gongan", "czrk")}
    where = {
        "unregistered_owner": ("bdc", "bdc_qlr", ["zjh"]),
        "unregistered_legal_rep": ("scjg", "qyjbxx", ["fddbr_sfzh"]),
        "unregistered_shareholder": ("scjg", "qygd", ["gdzjhm"]),
        "marital_conflict": ("mz", "hydj", ["nfsfzh", "nvfsfzh"]),
    }
    found = Counter()
    for r in truth:
        if r["dirt"] not in where:
            continue
        dept, table, columns = where[r["dirt"]]
        assert (r["dept"], r["table"], r["column"], r["clean"]) == (dept, table, "*", None)
        assert codes.is_valid_id(r["dirty"])
        row = _row(sample, table, dept, r["pk"])
        fixes = {
            c["column"]: c["clean"] for c in truth if (c["table"], c["pk"]) == (table, r["pk"])
        }
        assert r["dirty"] in [fixes.get(c, row[c]) for c in columns]
        if r["dirt"] == "marital_conflict":
            assert row["ywlx"] == "结婚" and r["dirty"] in register
        else:
            assert r["dirty"] not in register and r["dirty"][:2] != "33"
        found[r["dirt"]] += 1
    assert set(found) == set(where)
    # a second marriage: the person was married, not divorced, before that registration
    marriages = sorted(
        (_date(r["djrq"], "%Y.%m.%d"), r["ywlx"], r["nfsfzh"], r["nvfsfzh"], r["djxh"])
        for r in _clean_rows(
            sample, [t for t in truth if t["dirt"] != "marital_conflict"], "mz", "hydj"
        )
    )
    second = {r["pk"]: r["dirty"] for r in truth if r["dirt"] == "marital_conflict"}
    for when, _, _, _, key in marriages:
        if key in second:
            person = second[key]
            before = [m for m in marriages if m[0] < when and person in (m[2], m[3])]
            assert before and before[-1][1] == "结婚", (key, before)


def test_conflict_rates_leave_the_register_and_the_rows_alone() -> None:
    """Conflicts draw from their own random streams: without them the register (which gets
    none) is identical and every other table has the same rows; only the rows' values (and
    the dirt drawn after a skipped conflicting name) may differ."""
    off = DirtRates.parse([f"{k}=0" for k in CONFLICTS])
    a, b = generate(800, seed=5), generate(800, seed=5, dirt=off)
    assert a.tables["gongan"]["czrk"].equals(b.tables["gongan"]["czrk"])
    truth_a, truth_b = a.ground_truth.to_pylist(), b.ground_truth.to_pylist()
    assert [r for r in truth_a if r["dept"] == "gongan"] == [
        r for r in truth_b if r["dept"] == "gongan"
    ]
    assert not {r["dirt"] for r in truth_b} & set(CONFLICTS)
    assert {r["dirt"] for r in truth_a} >= {"name_conflict", "sex_conflict"}
    for dept in ("scjg", "bdc", "gjj"):
        for name, table in a.tables[dept].items():
            key = PKS[name]
            assert table[key].equals(b.tables[dept][name][key]), (dept, name)

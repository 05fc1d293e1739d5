"""Hostile values never reach an accepted (publishable) row: each is rejected with its rule.

NUL and other control characters, bidi overrides, a 10 MB name, markup-only names, names
without a letter, undecodable bytes and records without a key go through the real
``normalise_table`` of the gongan (person) and scjg (enterprise) departments; every test
checks that the table reconciles (rows_in = accepted + rejected + deduplicated).
"""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from datacloud.config import Department, load_department
from datacloud.normalise import NormaliseOutcome, normalise_table
from datacloud.normalise_csv import CsvHeaderError, InputError, normalise_csv
from datacloud.paths import DEPARTMENTS_DIR
from datacloud.report import _write_rejected_csv
from transforms.credit_code import credit_code_check_char, reg_number_check_digit
from transforms.id_number import id_check_char
from transforms.names import normalise_enterprise_name, normalise_person_name, normalise_text
from transforms.result import NormaliseContext

DS = date(2026, 11, 20)
CTX = NormaliseContext(business_date=DS)
PERSON_COLUMNS = ["rkbh", "gmsfhm", "xm", "xb", "mz", "csrq", "hjdz", "lxdh", "gxsj"]
TEN_MB = 10 * 1024 * 1024


def _id(n: int) -> str:
    first17 = f"33010619800101{n:03d}"
    return first17 + id_check_char(first17)


@pytest.fixture(scope="module")
def gongan() -> Department:
    return load_department(DEPARTMENTS_DIR / "gongan.yaml")


@pytest.fixture(scope="module")
def scjg() -> Department:
    return load_department(DEPARTMENTS_DIR / "scjg.yaml")


def _people(names: list[str | None], addresses: list[str | None] | None = None) -> pa.Table:
    n = len(names)
    addresses = addresses or [None] * n
    rows = [
        (f"RK{i}", _id(i), name, "1", "01", "19800101", addresses[i], None, "2026-11-01 08:00:00")
        for i, name in enumerate(names)
    ]
    return pa.table({c: [r[j] for r in rows] for j, c in enumerate(PERSON_COLUMNS)})


def _reasons(out: NormaliseOutcome) -> dict[str, list[str]]:
    return {r["_source_pk"]: r["reject_reasons"] for r in out.rejected.to_pylist()}


def _reconciles(out: NormaliseOutcome) -> None:
    assert out.rows_in == out.rows_accepted + out.rows_rejected + out.rows_deduplicated
    assert out.rejected.num_rows == out.rows_rejected


HOSTILE_NAMES = {
    "nul": ("张\x00三", "TEXT_CONTROL_CHAR"),
    "c0_vertical_tab": ("张\x0b三", "TEXT_CONTROL_CHAR"),
    "c1_nel": ("张\x85三", "TEXT_CONTROL_CHAR"),
    "zero_width_space": ("张\u200b三", "TEXT_CONTROL_CHAR"),
    "rlm": ("张\u200f三", "TEXT_CONTROL_CHAR"),
    "bom": ("\ufeff张三", "TEXT_CONTROL_CHAR"),
    "rlo": ("张\u202e三", "TEXT_BIDI_CHAR"),
    "lre": ("\u202a张三", "TEXT_BIDI_CHAR"),
    "rli": ("张三\u2067", "TEXT_BIDI_CHAR"),
    "pdi": ("张\u2069三", "TEXT_BIDI_CHAR"),
    "script": ("<script>alert('x')</script>", "TEXT_MARKUP"),
    "bold_empty": ("<b></b>", "TEXT_MARKUP"),
    "fullwidth_tag": ("＜b＞张三＜/b＞", "TEXT_MARKUP"),
    "entity": ("张&lt;三", "TEXT_MARKUP"),
    "no_letter": ("…！？", "NAME_EMPTY"),
    "too_long": ("张" * 51, "TEXT_TOO_LONG"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_NAMES))
def test_hostile_person_names_are_rejected_with_their_rule(gongan: Department, case: str) -> None:
    value, code = HOSTILE_NAMES[case]
    raw = _people(["李四", value])
    out = normalise_table(raw, gongan, gongan.table("czrk"), DS)
    assert _reasons(out) == {"RK1": [code]}
    assert out.accepted["_source_pk"].to_pylist() == ["RK0"]
    assert out.accepted["name"].to_pylist() == ["李四"]
    _reconciles(out)


def test_names_that_are_fine_stay_accepted() -> None:
    names = ["张三", "阿依古丽·买买提", "O'Brien Anna", "Jean-Luc Picard", "张\t三", "欧阳 娜娜"]
    out = normalise_person_name(pa.array(names), CTX)
    assert out.issues.null_count == len(names)
    assert out.values.to_pylist() == [
        "张三",
        "阿依古丽·买买提",
        "O'Brien Anna",
        "Jean-Luc Picard",
        "张三",  # a tab is whitespace: cleaning removes it, nothing hostile is left
        "欧阳娜娜",
    ]
    assert normalise_person_name(pa.array(["张" * 50]), CTX).issues.null_count == 1


def test_a_ten_megabyte_name_is_rejected_not_published(gongan: Department) -> None:
    raw = _people(["李四", "张" * TEN_MB, "A" * TEN_MB])
    out = normalise_table(raw, gongan, gongan.table("czrk"), DS)
    assert _reasons(out) == {"RK1": ["TEXT_TOO_LONG"], "RK2": ["TEXT_TOO_LONG"]}
    assert out.accepted["name"].to_pylist() == ["李四"]
    _reconciles(out)


def test_control_and_bidi_characters_in_any_text_column(gongan: Department) -> None:
    addresses = [
        "杭州市西湖区",
        "杭州市\x00西湖区",
        "杭州市\u202e区湖西",
        "杭州市\r\n西湖区",
        "区" * 201,
    ]
    raw = _people(["甲", "乙", "丙", "丁", "戊"], addresses)
    out = normalise_table(raw, gongan, gongan.table("czrk"), DS)
    assert _reasons(out) == {
        "RK1": ["TEXT_CONTROL_CHAR"],
        "RK2": ["TEXT_BIDI_CHAR"],
        "RK4": ["TEXT_TOO_LONG"],
    }
    accepted = dict(
        zip(
            out.accepted["_source_pk"].to_pylist(),
            out.accepted["registered_address"].to_pylist(),
            strict=True,
        )
    )
    assert accepted == {"RK0": "杭州市西湖区", "RK3": "杭州市 西湖区"}  # CR LF cleaned to a space
    _reconciles(out)


def test_undecodable_bytes_are_rejected_as_encoding_invalid(gongan: Department) -> None:
    # what the readers make of the bytes D5 C5 FF in a UTF-8 source (and decode_gbk of FF)
    raw = _people(["李四", "\ufffd\\xD5\ufffd\\xC5\ufffd\\xFF", "张\ufffd"])
    out = normalise_table(raw, gongan, gongan.table("czrk"), DS)
    assert _reasons(out) == {"RK1": ["ENCODING_INVALID"], "RK2": ["ENCODING_INVALID"]}
    issues = {r["source_pk"]: r for r in out.issues.to_pylist()}
    assert issues["RK1"]["raw_value"] == "\ufffd\\xD5\ufffd\\xC5\ufffd\\xFF"  # kept for the owner
    _reconciles(out)


def test_enterprise_names(scjg: Department) -> None:
    code = "91350100M000100Y4" + credit_code_check_char("91350100M000100Y4")
    names = ["某某(集团)有限公司", "<b>某某</b>有限公司", "123456", "某" * 101, "A&B有限公司"]
    raw = pa.table(
        {
            "qyid": [f"Q{i}" for i in range(len(names))],
            "tyshxydm": [code] * len(names),
            "qymc": names,
            "gxsj": ["2026-11-01 08:00:00"] * len(names),
        }
    )
    for col in ("qylx", "fddbr", "fddbr_sfzh", "zczb", "clrq", "djzt", "zs"):
        raw = raw.append_column(col, pa.nulls(len(names), pa.string()))
    out = normalise_table(raw, scjg, scjg.table("qyjbxx"), DS)
    assert _reasons(out) == {
        "Q1": ["TEXT_MARKUP"],
        "Q2": ["TEXT_NO_LETTER"],
        "Q3": ["TEXT_TOO_LONG"],
    }
    assert out.rows_deduplicated == 1  # Q0 and Q4 share the credit code
    _reconciles(out)


def test_text_limit_can_be_set_per_column() -> None:
    ctx = NormaliseContext(business_date=DS, options={"max_length": 5})
    assert normalise_text(pa.array(["12345", "123456"]), ctx).issues.to_pylist() == [
        None,
        "TEXT_TOO_LONG",
    ]
    assert normalise_enterprise_name(pa.array(["某" * 100]), CTX).issues.null_count == 1


def _enterprises(rows: list[tuple[str, str | None, str]]) -> pa.Table:
    raw = pa.table(
        {
            "qyid": [r[0] for r in rows],
            "tyshxydm": pa.array([r[1] for r in rows], pa.string()),
            "qymc": [r[2] for r in rows],
            "gxsj": ["2026-11-01 08:00:00"] * len(rows),
        }
    )
    for col in ("qylx", "fddbr", "fddbr_sfzh", "zczb", "clrq", "djzt", "zs"):
        raw = raw.append_column(col, pa.nulls(len(rows), pa.string()))
    return raw


def test_an_enterprise_without_credit_code_or_registration_number_is_key_missing(
    scjg: Department,
) -> None:
    code = "91350100M000100Y4" + credit_code_check_char("91350100M000100Y4")
    reg = "33010600001234" + reg_number_check_digit("33010600001234")
    raw = _enterprises(
        [
            ("Q1", code, "甲公司"),
            ("Q2", reg, "乙厂"),  # a legacy registration number is a key
            ("Q3", None, "丙厂"),  # no key at all
            ("Q4", "  ", "丁厂"),  # blank
            ("Q5", "D2143569-X", "戊厂"),  # only a 9-character organisation code: no key
            ("Q6", code[:-1] + "0", "己厂"),  # a wrong credit code: its own rule says more
            ("Q7", None, "庚厂"),  # two keyless rows are not duplicates of each other
        ]
    )
    out = normalise_table(raw, scjg, scjg.table("qyjbxx"), DS)
    reasons = _reasons(out)
    assert reasons["Q3"] == reasons["Q4"] == reasons["Q5"] == reasons["Q7"] == ["KEY_MISSING"]
    assert reasons["Q6"] == ["CC_CHECK_CHAR"]
    assert sorted(out.accepted["_source_pk"].to_pylist()) == ["Q1", "Q2"]
    assert out.rows_deduplicated == 0
    _reconciles(out)


def test_a_person_without_an_id_number_is_key_missing(gongan: Department) -> None:
    raw = _people(["甲", "乙", "丙"])
    ids = raw["gmsfhm"].to_pylist()
    raw = raw.set_column(1, "gmsfhm", pa.array([ids[0], None, " "], pa.string()))
    out = normalise_table(raw, gongan, gongan.table("czrk"), DS)
    assert _reasons(out) == {"RK1": ["KEY_MISSING"], "RK2": ["KEY_MISSING"]}
    _reconciles(out)


def _csv(tmp: Path, text: str) -> Path:
    p = tmp / "in.csv"
    p.write_text(text, encoding="utf-8")
    return p


def test_datacloud_normalise_rejects_records_without_a_key(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    code = "91350100M000100Y4" + credit_code_check_char("91350100M000100Y4")
    src = _csv(tmp_path, f"credit_code,name\n{code},甲公司\n,乙厂\n,<b></b>\n")
    out = normalise_csv("enterprise", src, tmp_path / "e", DS)
    assert (out.rows_in, out.rows_valid, out.rows_rejected) == (3, 1, 2)
    rejected = pq.read_table(out.rejected).to_pylist()
    assert [r["reject_reasons"] for r in rejected] == [
        ["KEY_MISSING"],
        ["TEXT_MARKUP", "KEY_MISSING"],
    ]
    person = _csv(tmp_path, f"id_number,name\n{_id(1)},张三\n,李四\n")
    out = normalise_csv("person", person, tmp_path / "p", DS)
    assert (out.rows_in, out.rows_valid, out.rows_rejected) == (2, 1, 1)
    assert pq.read_table(out.rejected)["reject_reasons"].to_pylist() == [["KEY_MISSING"]]


def test_a_repeated_csv_column_is_a_header_error_naming_file_and_column(tmp_path: Path) -> None:
    src = _csv(tmp_path, f"id_number,name,note,name\n{_id(1)},张三,x,李四\n")
    with pytest.raises(CsvHeaderError) as e:
        normalise_csv("person", src, tmp_path / "o", DS)
    assert str(src) in str(e.value) and "'name'" in str(e.value)
    assert "columns 2 and 4" in str(e.value)
    assert isinstance(e.value, ValueError) and isinstance(e.value, InputError)
    assert not (tmp_path / "o").exists()


def test_rejected_csv_shows_hostile_values_escaped(gongan: Department, tmp_path: Path) -> None:
    raw = _people(["李四", "张\x00三", "张\u202e三", "王五", "张" * TEN_MB])
    formula = "=cmd|' /C calc'!A0"
    ids = raw["gmsfhm"].to_pylist()
    raw = raw.set_column(1, "gmsfhm", pa.array([*ids[:3], formula, ids[4]], pa.string()))
    out = normalise_table(raw, gongan, gongan.table("czrk"), DS)
    _reconciles(out)
    path = tmp_path / "rejected.csv"
    rejects = out.issues.filter(pc.equal(out.issues["severity"], "reject"))
    lines = _write_rejected_csv(gongan, {"czrk": rejects}, path)
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    assert lines == len(rows) == out.rows_rejected == 4
    by_pk = {r[0]: r for r in rows}
    assert by_pk["czrk:RK1"][3] == "张\\x00三"
    assert by_pk["czrk:RK2"][3] == "张\\u202e三"
    assert by_pk["czrk:RK3"][3] == "'" + formula  # shown as text, never evaluated
    long = by_pk["czrk:RK4"][3]
    assert len(long) <= 32_767 and long.endswith(f"…[截断 truncated, {TEN_MB} chars]")


def test_pass_through_text_columns_are_checked_too(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    src = tmp_path / "in.csv"
    rows = [(_id(1), "张三", "fine"), (_id(2), "李四", "a\x00b"), (_id(3), "王五", "\u202eab")]
    rows.append((_id(4), "赵六", "\ufffd\\xFF"))
    with src.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([("id_number", "name", "note"), *rows])
    out = normalise_csv("person", src, tmp_path / "o", DS)
    assert (out.rows_in, out.rows_valid, out.rows_rejected) == (4, 1, 3)
    assert pq.read_table(out.valid)["note"].to_pylist() == ["fine"]
    assert pq.read_table(out.rejected)["reject_reasons"].to_pylist() == [
        ["TEXT_CONTROL_CHAR"],
        ["TEXT_BIDI_CHAR"],
        ["ENCODING_INVALID"],
    ]

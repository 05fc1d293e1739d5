"""Person names, free text and enterprise names."""

from __future__ import annotations

import datetime

import pyarrow as pa
import pytest

from transforms.names import normalise_enterprise_name, normalise_person_name, normalise_text
from transforms.result import NormaliseContext

CTX = NormaliseContext(business_date=datetime.date(2026, 11, 20))


def person(values: list[str | None]) -> list[tuple[object, object]]:
    result = normalise_person_name(pa.array(values, pa.string()), CTX)
    return list(zip(result.values.to_pylist(), result.issues.to_pylist(), strict=True))


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("张三", "张三"),
        (" 张三 ", "张三"),
        ("张 三", "张三"),
        ("  张  三  丰 ", "张三丰"),
        ("张\u3000三", "张三"),  # ideographic space
        ("张\t三", "张三"),
        ("ＬＩ　Ｍｉｎｇ", "LI Ming"),  # full-width Latin
        ("John   Smith", "John Smith"),
        ("Mary\tAnn  O'Neil", "Mary Ann O'Neil"),
        ("王 Tom", "王 Tom"),  # a space next to a Latin letter is kept
        ("J. Smith", "J. Smith"),
    ],
)
def test_whitespace(raw: str, clean: str) -> None:
    assert person([raw]) == [(clean, None)]


@pytest.mark.parametrize(
    "dot",
    ["\u00b7", "\u2022", "\u2027", "\u30fb", "\uff65", ".", "\u2219", "\u22c5", "\uff0e", "\u0387"],
)
def test_middle_dot_variants(dot: str) -> None:
    assert person([f"阿依古丽{dot}买买提"]) == [("阿依古丽·买买提", None)]
    assert person([f"阿依古丽 {dot} 买买提"]) == [("阿依古丽·买买提", None)]


def test_several_dots_in_one_name() -> None:
    assert person(["爱新觉罗•溥•仪", "爱新觉罗 . 溥 ・ 仪"]) == [("爱新觉罗·溥·仪", None)] * 2


def test_dots_not_between_cjk_are_kept() -> None:
    assert person(["J.R. Smith", "张.Tom", "Tom•张"]) == [
        ("J.R. Smith", None),
        ("张.Tom", None),
        ("Tom•张", None),
    ]


def test_empty_names_are_rejected() -> None:
    assert person(["", "   ", "\u3000", "·", "-"]) == [(None, "NAME_EMPTY")] * 5


def test_names_with_digits_are_rejected() -> None:
    assert person(["张三1", "１２３", "3301061990"]) == [(None, "NAME_CHARS")] * 3


def test_null_stays_null_without_issue() -> None:
    assert person([None]) == [(None, None)]


def test_text() -> None:
    raw = ["  杭州市  西湖区\t文三路 ９０号 ", "", "   ", None, "a\nb"]
    result = normalise_text(pa.array(raw), CTX)
    assert result.values.to_pylist() == ["杭州市 西湖区 文三路 90号", None, None, None, "a b"]
    assert result.issues.null_count == len(raw)


def test_enterprise_name_turns_full_width_brackets_into_ascii() -> None:
    result = normalise_enterprise_name(pa.array(["杭州某某（集团） 有限公司 "]), CTX)
    assert result.values.to_pylist() == ["杭州某某(集团) 有限公司"]
    assert result.issues.to_pylist() == [None]

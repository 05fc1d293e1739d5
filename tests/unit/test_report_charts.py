"""Inline SVG charts: well-formed, accessible, one bar per rule, gaps for missing nights."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest

from datacloud.charts import Bar, Series, axis_top, bar_chart, fmt, line_chart

SVG = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def _nights(n: int) -> list[date]:
    return [date(2026, 11, 20) - timedelta(days=k) for k in range(n - 1, -1, -1)]


def test_bar_chart_has_one_bar_per_rule_scaled_to_its_count() -> None:
    bars = [
        Bar("身份证号码校验码不符", "ID_CHECK_DIGIT", 1200),
        Bar("日期不存在", "DATE_IMPOSSIBLE", 600),
        Bar("姓名为空", "NAME_EMPTY", 3),
    ]
    root = _parse(bar_chart("c1", "拒收原因", "三条规则", bars))
    assert root.get("role") == "img"
    assert root.find(f"{SVG}title").text == "拒收原因"  # type: ignore[union-attr]
    assert root.find(f"{SVG}desc").text == "三条规则"  # type: ignore[union-attr]
    assert root.get("aria-labelledby") == "c1-title c1-desc"
    rects = root.findall(f".//{SVG}rect")
    assert len(rects) == 3
    widths = [float(r.get("width", 0)) for r in rects]
    assert widths[0] == pytest.approx(2 * widths[1], rel=0.01)
    assert all(w > 0 for w in widths)  # even a tiny count stays visible
    texts = [t.text for t in root.iter(f"{SVG}text")]
    for b in bars:
        assert b.label in texts and b.code in texts
    assert "1,200" in texts  # thousands separator
    tooltips = [t.text for t in root.iter(f"{SVG}title")][1:]
    assert any("ID_CHECK_DIGIT" in (t or "") for t in tooltips)


def test_bar_chart_escapes_labels() -> None:
    svg = bar_chart("c", "<t>", "d & d", [Bar("<script>alert(1)</script>", "X&Y", 1)])
    assert "<script>" not in svg
    _parse(svg)


def test_line_chart_draws_each_series_with_gaps_for_missing_nights() -> None:
    nights = _nights(6)
    values_in: list[int | None] = [100, 110, None, 120, 130, None]
    values_ok: list[int | None] = [90, 100, None, 115, 125, None]
    root = _parse(
        line_chart(
            "c2",
            "最近6晚",
            "说明",
            nights,
            [Series("进入", "#00f", values_in), Series("接收", "#0a0", values_ok, "6 4")],
        )
    )
    paths = root.findall(f".//{SVG}path[@class='series']")
    # each series: nights 1-2 and 4-5 are runs of two points; the gaps split them
    assert len(paths) == 4
    for p in paths:
        assert len(re.findall(r"-?\d+\.\d+,-?\d+\.\d+", p.get("d", ""))) == 2
    circles = root.findall(f".//{SVG}circle")
    assert len(circles) == 8  # one dot per value present
    xs = sorted({float(c.get("cx", 0)) for c in circles})
    assert len(xs) == 4 and xs == sorted(xs)
    titles = [c.find(f"{SVG}title").text for c in circles]  # type: ignore[union-attr]
    assert "2026-11-15 进入：100" in titles


def test_line_chart_single_night_and_empty_history() -> None:
    one = _parse(line_chart("c3", "t", "d", _nights(1), [Series("拒收", "#c00", [5])]))
    assert len(one.findall(f".//{SVG}circle")) == 1
    empty = _parse(line_chart("c4", "t", "d", _nights(30), [Series("拒收", "#c00", [None] * 30)]))
    assert not empty.findall(f".//{SVG}circle") and not empty.findall(f".//{SVG}path")


def test_higher_values_are_drawn_higher() -> None:
    root = _parse(line_chart("c5", "t", "d", _nights(2), [Series("s", "#000", [10, 1000])]))
    low, high = root.findall(f".//{SVG}circle")
    assert float(high.get("cy", 0)) < float(low.get("cy", 0))


@pytest.mark.parametrize(
    ("value", "top"), [(0, 4), (3, 4), (5, 8), (99, 100), (304, 400), (1234, 2000), (9000, 10000)]
)
def test_axis_top(value: int, top: int) -> None:
    assert axis_top(value) == top
    assert top >= value and top % 4 == 0


def test_fmt_uses_thousands_separators() -> None:
    assert fmt(1234567) == "1,234,567" and fmt(0) == "0"

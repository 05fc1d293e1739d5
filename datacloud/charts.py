"""Charts as inline SVG strings: no script, no font, no file, nothing fetched.

``bar_chart`` draws horizontal bars (one per rule, labelled with a Chinese message and the
rule code); ``line_chart`` draws series over consecutive nights, a missing night (``None``)
leaving a gap in the line. Every chart carries ``<title>`` and ``<desc>`` for screen readers
and a ``<title>`` per bar or point as its tooltip. Text is escaped; the page's font applies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from markupsafe import Markup, escape

FONT_PX = 13
AXIS = "#5f6b7a"
GRID = "#e3e7ec"
BAR = "#c0392b"


@dataclass(frozen=True)
class Bar:
    label: str  # the Chinese message, shown first
    code: str  # the rule code, shown under it
    value: int
    tooltip: str = ""


@dataclass(frozen=True)
class Series:
    name: str
    color: str
    values: Sequence[int | None]  # one per night; None: no report that night
    dash: str = ""  # SVG stroke-dasharray, so series differ by more than colour


def fmt(n: int | float) -> str:
    """A count with thousands separators (1,234,567)."""
    return f"{n:,.0f}"


def text_width(text: str, px: int = FONT_PX) -> float:
    """Rough rendered width: CJK and full-width characters 1 em, others 0.6 em."""
    return sum(px if ord(c) > 0x2E7F else px * 0.6 for c in text)


def axis_top(value: float, ticks: int = 4) -> int:
    """The top of a count axis with ``ticks`` equal whole steps of 1, 2, 2.5 or 5 × 10^k."""
    need = max(value, 1) / ticks
    power = 1
    while True:
        for m in (1, 2, 2.5, 5):
            step = m * power
            if step >= need and step == int(step):
                return int(step) * ticks
        power *= 10


def _open(chart_id: str, width: float, height: float, title: str, desc: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{escape(chart_id)}" '
        f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'role="img" aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc">'
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>'
        f'<desc id="{escape(chart_id)}-desc">{escape(desc)}</desc>'
    )


def bar_chart(
    chart_id: str, title: str, desc: str, bars: Sequence[Bar], width: int = 760
) -> Markup:
    """Horizontal bars, largest first as given; value printed at the end of each bar."""
    row, top, gap = 44, 8, 12
    label_w = max(
        [text_width(b.label) for b in bars] + [text_width(b.code, 11) for b in bars] + [80]
    )
    label_w = min(label_w, width * 0.5) + gap + 8  # 8: left margin
    value_w = max([text_width(fmt(b.value)) for b in bars] + [20]) + gap
    plot_w = width - label_w - value_w
    top_value = max([b.value for b in bars] + [1])
    height = top + row * len(bars) + 8
    out = [_open(chart_id, width, height, title, desc)]
    out.append(
        f'<line x1="{label_w:.1f}" y1="{top}" x2="{label_w:.1f}" y2="{height - 8}" '
        f'stroke="{AXIS}" stroke-width="1"/>'
    )
    for i, b in enumerate(bars):
        y = top + i * row
        w = max(plot_w * b.value / top_value, 2.0 if b.value else 0.0)
        tip = b.tooltip or f"{b.label}（{b.code}）：{fmt(b.value)}"
        out.append(
            f'<g class="bar"><title>{escape(tip)}</title>'
            f'<text x="{label_w - gap:.1f}" y="{y + 18}" text-anchor="end" font-size="{FONT_PX}" '
            f'fill="#1f2933">{escape(b.label)}</text>'
            f'<text x="{label_w - gap:.1f}" y="{y + 34}" text-anchor="end" font-size="11" '
            f'fill="{AXIS}" font-family="monospace">{escape(b.code)}</text>'
            f'<rect x="{label_w:.1f}" y="{y + 8}" width="{w:.1f}" height="26" rx="2" fill="{BAR}"/>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 26}" font-size="{FONT_PX}" fill="#1f2933">'
            f"{fmt(b.value)}</text></g>"
        )
    out.append("</svg>")
    return Markup("".join(out))


def _segments(points: Sequence[tuple[float, float] | None]) -> list[list[tuple[float, float]]]:
    runs: list[list[tuple[float, float]]] = [[]]
    for p in points:
        if p is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append(p)
    return [r for r in runs if r]


def line_chart(
    chart_id: str,
    title: str,
    desc: str,
    nights: Sequence[date],
    series: Sequence[Series],
    width: int = 980,
    height: int = 260,
) -> Markup:
    """Series over consecutive nights; a gap where a value is None, a dot on every value."""
    left = max(text_width(fmt(_top(series))) + 14, 48)
    right, top, bottom = 16, 34, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    y_max = _top(series)
    step = plot_w / max(len(nights) - 1, 1)

    def x(i: int) -> float:
        return left + (i * step if len(nights) > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h - plot_h * v / y_max

    out = [_open(chart_id, width, height, title, desc)]
    for k in range(5):  # horizontal grid and y labels
        level = y_max * k / 4
        out.append(
            f'<line x1="{left}" y1="{y(level):.1f}" x2="{width - right}" y2="{y(level):.1f}" '
            f'stroke="{GRID if k else AXIS}" stroke-width="1"/>'
            f'<text x="{left - 6}" y="{y(level) + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="{AXIS}">{fmt(level)}</text>'
        )
    every = max(1, math.ceil(len(nights) / 8))
    for i, night in enumerate(nights):  # x labels: about eight, always the last night
        if i % every == 0 or i == len(nights) - 1:
            if i != len(nights) - 1 and len(nights) - 1 - i < every / 2:
                continue  # too close to the last label
            out.append(
                f'<text x="{x(i):.1f}" y="{height - bottom + 18}" text-anchor="middle" '
                f'font-size="11" fill="{AXIS}">{night.month:02d}-{night.day:02d}</text>'
            )
    lx = left
    for s in series:  # legend
        out.append(
            f'<line x1="{lx}" y1="14" x2="{lx + 22}" y2="14" stroke="{escape(s.color)}" '
            f'stroke-width="2.5" stroke-dasharray="{escape(s.dash)}"/>'
            f'<text x="{lx + 28}" y="18" font-size="12" fill="#1f2933">{escape(s.name)}</text>'
        )
        lx += 40 + text_width(s.name, 12) + 16
    for s in series:
        pts = [None if v is None else (x(i), y(v)) for i, v in enumerate(s.values)]
        for run in _segments(pts):
            if len(run) > 1:
                d = "M" + " L".join(f"{px:.1f},{py:.1f}" for px, py in run)
                out.append(
                    f'<path class="series" d="{d}" fill="none" stroke="{escape(s.color)}" '
                    f'stroke-width="2" stroke-dasharray="{escape(s.dash)}"/>'
                )
        for i, v in enumerate(s.values):
            if v is not None:
                out.append(
                    f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{escape(s.color)}">'
                    f"<title>{nights[i].isoformat()} {escape(s.name)}：{fmt(v)}</title></circle>"
                )
    out.append("</svg>")
    return Markup("".join(out))


def _top(series: Sequence[Series]) -> int:
    return axis_top(max([v for s in series for v in s.values if v is not None] + [0]))

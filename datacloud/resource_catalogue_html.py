"""The resource catalogue's page (资源目录, ``catalogue/index.html``), in Chinese.

Renders ``datacloud/templates/catalogue.html`` with Jinja2, autoescaping on, from the typed
catalogue (``datacloud.resource_catalogue``). Like the load reports, the page loads nothing:
no script, stylesheet, font or image outside the file, so it opens from disk.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from datacloud.resource_catalogue import SHARING_CLASS, Catalogue

TEMPLATES = Path(__file__).parent / "templates"
GATE_CLASS = {
    "passed": "s-success",
    "warning": "s-action_needed",
    "failed": "s-failed",
    "not_checked": "s-none",
    "no_suite": "s-none",
}


def _when(iso: str | None) -> str:
    """``2026-11-21T05:31:02+08:00`` -> ``2026-11-21 05:31:02``; ``—`` for none."""
    if not iso:
        return "—"
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S")


def _num(n: int | None) -> str:
    return "—" if n is None else f"{n:,}"


@cache
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"], default_for_string=True, default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["num"] = _num
    return env


def render(catalogue: Catalogue) -> str:
    """The HTML of the catalogue."""
    names = {d.code: d.name for t in catalogue.tables for d in t.departments}
    return (
        _environment()
        .get_template("catalogue.html")
        .render(
            c=catalogue,
            dept_names=names,
            sharing_class=SHARING_CLASS,
            gate_class=GATE_CLASS,
            fields_total=sum(len(t.fields) for t in catalogue.tables),
            published_total=sum(1 for t in catalogue.tables if t.published),
        )
    )

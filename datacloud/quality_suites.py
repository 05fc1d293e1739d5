"""The Great Expectations suites in ``expectations/``, read as plain JSON (no GE import).

One suite per raw kind (``raw_<kind>.json``) and per curated table (``curated_<table>.json``).
Every expectation carries ``meta.check``, the name thresholds and severity overrides use
(``volume``, ``required_columns``, ``<column>.present``, ``<column>.valid``, ...), and its
``severity`` (``critical``: a failure stops the table; ``warning``: published and reported).
Thresholds are GE suite parameters (``{"$PARAMETER": "id_number__min_valid"}``) filled from
the department YAML at validation time.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from typing import Any

from datacloud.paths import EXPECTATIONS_DIR


@lru_cache(maxsize=32)
def _load(name: str) -> dict[str, Any]:
    path = EXPECTATIONS_DIR / f"{name}.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if data.get("name") != name:
        raise ValueError(f"{path}: suite name {data.get('name')!r} must equal the file name")
    for i, e in enumerate(data["expectations"]):
        if not (e.get("meta") or {}).get("check") or e.get("severity") not in (
            "critical",
            "warning",
        ):
            raise ValueError(f"{path}: expectations[{i}] needs meta.check and a severity")
    return data


def load_suite(name: str) -> dict[str, Any]:
    """A fresh copy of the suite ``expectations/<name>.json``."""
    return copy.deepcopy(_load(name))


def raw_suite_name(kind: str) -> str:
    return f"raw_{kind}"


def curated_suite_name(table: str) -> str:
    return f"curated_{table}"


def checks(suite: dict[str, Any]) -> list[str]:
    """The check names of a suite, in order."""
    return [e["meta"]["check"] for e in suite["expectations"]]


def columns(suite: dict[str, Any]) -> list[str]:
    """The profile columns the suite's expectations read, in first-use order."""
    out: list[str] = []
    for e in suite["expectations"]:
        kw = e["kwargs"]
        for c in [kw.get("column"), *(kw.get("column_set") or [])]:
            if c and c not in out:
                out.append(c)
    return out


def parameters(suite: dict[str, Any]) -> list[str]:
    """The names of the suite parameters the expectations use."""
    out: list[str] = []
    for e in suite["expectations"]:
        for v in e["kwargs"].values():
            if isinstance(v, dict) and "$PARAMETER" in v and v["$PARAMETER"] not in out:
                out.append(v["$PARAMETER"])
    return out

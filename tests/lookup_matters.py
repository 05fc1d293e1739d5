"""A matters catalogue for the lookup suites that test something else than matters (masking,
paging, limits, audit, serving): the shipped catalogue (dags/matters.yaml) plus one test-only
matter, ``review_all``, whose items read every published column of every table each lookup
answers from, so those suites see whole answers. It is a test fixture, not a matter a
deployment has: what a real matter may read is tested in tests/unit/test_matter_answers.py
against the shipped catalogue.

Use ``catalogue()`` for a ``LookupService`` built in the test, ``write(path)`` and the
``DATACLOUD_MATTERS`` environment variable for a server or CLI in its own process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from datacloud.curated_tables import TABLES
from datacloud.matters import (
    ENDPOINT_TABLES,
    MATTERS_ENV,
    DataItem,
    Matter,
    MatterCatalogue,
    RequestingDepartment,
    catalogue_problems,
    load_matters,
)

ALL = "review_all"  # the test-only matter that reads everything
CASE = "TEST-2026-0001"  # a case number
DEPARTMENTS = ("gjj", "bdc", "scjg", "mz", "gongan")
ENV = MATTERS_ENV


def _doc() -> dict[str, Any]:
    shipped = load_matters()
    items = [i.model_dump(mode="json") for i in shipped.items.values()]
    matters = [m.model_dump(mode="json") for m in shipped.matters.values()]
    mine = []
    for endpoint, tables in ENDPOINT_TABLES.items():
        for table in tables:
            columns = [c for c in TABLES[table].published() if not c.startswith("_")]
            mine.append(
                {
                    "id": f"all_{endpoint}_{table}",
                    "name_zh": f"全部字段（测试用）{endpoint}/{table}",
                    "endpoint": endpoint,
                    "table": table,
                    "fields": columns,
                }
            )
    matters.append(
        {
            "code": ALL,
            "name_zh": "复核（测试用，全部数据项）",
            "items": [i["id"] for i in mine],
            "departments": list(DEPARTMENTS),
        }
    )
    requesting = [d.model_dump(mode="json") for d in shipped.requesting_departments.values()]
    return {"items": items + mine, "matters": matters, "requesting_departments": requesting}


def write(path: Path) -> Path:
    """The catalogue as a YAML file at ``path`` (set ``DATACLOUD_MATTERS`` to it)."""
    path.write_text(yaml.safe_dump(_doc(), allow_unicode=True, sort_keys=False), "utf-8")
    return path


def catalogue() -> MatterCatalogue:
    """The catalogue in memory, checked as ``load_matters`` checks a file."""
    doc = _doc()
    cat = MatterCatalogue(
        items={i["id"]: DataItem(**i) for i in doc["items"]},
        matters={m["code"]: Matter(**m) for m in doc["matters"]},
        requesting_departments={
            d["code"]: RequestingDepartment(**d) for d in doc["requesting_departments"]
        },
    )
    assert catalogue_problems(cat, DEPARTMENTS) == []
    return cat


def body(**extra: Any) -> dict[str, Any]:
    """A lookup body's matter and case number (the test matter), with ``extra``."""
    return {"matter": ALL, "case_no": CASE, **extra}


def cli(matter: str = ALL) -> list[str]:
    """The CLI options naming the matter and case number."""
    return ["--matter", matter, "--case-no", CASE]


class FakeSigner:
    """Stands for the platform's proof signer (datacloud.lookup.proofs, another module's
    job): ``sign`` returns a compact-JWS-shaped string of the claims (no signature) and keeps
    the claims it was given, so a test can read what a proof would sign."""

    def __init__(self) -> None:
        self.signed: list[dict[str, Any]] = []

    def sign(self, claims: dict[str, Any]) -> str:
        import base64
        import json

        self.signed.append(claims)
        payload = json.dumps(claims, ensure_ascii=False, sort_keys=True).encode("utf-8")
        return "e30." + base64.urlsafe_b64encode(payload).decode().rstrip("=") + ".unsigned"

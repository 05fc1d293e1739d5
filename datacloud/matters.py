"""The matters catalogue (事项目录): which data items each government matter may read.

A lookup is authorised by the matter (事项) being handled, not by the role alone: a housing-fund
withdrawal (住房公积金提取) may read whether the applicant owns property, nothing else. The
catalogue, ``dags/matters.yaml`` (``DATACLOUD_MATTERS`` names another file), declares

- **data items** (``items``): one piece of an answer, e.g. ``property_status`` (the
  property-status lookup) or ``person_name_address`` (a person's name and registered address),
  each answered by one lookup ``endpoint`` from one curated ``table`` (the registry in
  ``datacloud.curated_tables``) and its ``fields`` (columns of that table);
- **matters** (``matters``): a code, the Chinese name, the items it may read and the requesting
  departments that handle it (an API key's ``department``);
- **requesting-only departments** (``requesting_departments``, optional): departments that
  handle matters and hold lookup keys but provide no data, so have no YAML in
  ``dags/departments/`` (e.g. 税务 ``tax``, 人社 ``rs``): a code and the Chinese name. A
  matter's department must be a providing department or one of these.

``load_matters`` reads it strictly (UTF-8, no repeated key, no unknown field) and checks every
reference (an item a matter names, a table, a field, a table the endpoint cannot answer from);
``catalogue_problems`` gives those checks one line each, and with the departments' codes also
checks each matter's departments (``datacloud validate``). Pure Python and pydantic, no pyarrow:
the lookup service, the resource catalogue and ``validate`` read it alike. docs/lookup.md#matters
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from datacloud.config import ConfigError, read_yaml, validated
from datacloud.curated_tables import TABLES
from datacloud.paths import DAGS_DIR
from transforms.id_number import is_valid_id_number

MATTERS_ENV = "DATACLOUD_MATTERS"
Endpoint = Literal["person", "enterprise", "property_status"]
ENDPOINTS: tuple[Endpoint, ...] = ("person", "enterprise", "property_status")

# the curated tables each lookup's answer is built from (datacloud.lookup.answers)
ENDPOINT_TABLES: dict[str, tuple[str, ...]] = {
    "person": ("person", "property_right", "housing_fund_account", "marriage", "enterprise_role"),
    "enterprise": ("enterprise", "enterprise_role"),
    "property_status": ("property_right",),
}
CODE_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
# a case number (办件编号) as a lookup names it: 1-64 of A-Z a-z 0-9 - _ /
CASE_NO_PATTERN = r"^[A-Za-z0-9_/-]{1,64}$"
# what a case number must not hold: it is audited, signed into proofs and shown by the data
# tracker unmasked, so a clerk typing the person's ID number or phone into it is refused
CASE_NO_PERSONAL = (
    "case_no: holds an ID number or a mobile number; give the case number (办件编号), not the "
    "person's number"
)
_MOBILE = re.compile(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])")
_EIGHTEEN = re.compile(r"(?=([0-9]{17}[0-9Xx]))")


def case_no_holds_personal_data(case_no: str) -> bool:
    """True when ``case_no`` holds a valid 18-character ID number (check character, province
    and birth date right: an all-digit case number of 18 characters rarely is one) or a
    mainland mobile number standing alone among its digits."""
    if _MOBILE.search(case_no):
        return True
    return any(is_valid_id_number(m.group(1)) for m in _EIGHTEEN.finditer(case_no))


class DataItem(BaseModel):
    """One piece of an answer: ``fields`` (columns) of curated ``table`` as ``endpoint`` answers."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=CODE_PATTERN)
    name_zh: str = Field(min_length=1, max_length=100)
    endpoint: Endpoint
    table: str
    fields: tuple[str, ...] = Field(min_length=1)


class Matter(BaseModel):
    """A government matter (事项): the items it may read and the departments that handle it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    code: str = Field(pattern=CODE_PATTERN)
    name_zh: str = Field(min_length=1, max_length=100)
    items: tuple[str, ...] = Field(min_length=1)
    departments: tuple[str, ...] = Field(min_length=1)


class RequestingDepartment(BaseModel):
    """A department that handles matters (holds lookup keys) but provides no data: no YAML in
    ``dags/departments/``. ``code`` as an API key's ``department`` names it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    code: str = Field(pattern=CODE_PATTERN)
    name_zh: str = Field(min_length=1, max_length=100)


class MatterCatalogue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    items: dict[str, DataItem]
    matters: dict[str, Matter]
    requesting_departments: dict[str, RequestingDepartment] = Field(default_factory=dict)

    def department_names(self) -> dict[str, str]:
        """Code -> Chinese name of the requesting-only departments."""
        return {d.code: d.name_zh for d in self.requesting_departments.values()}

    def matters_reading(self, table: str, field: str) -> list[Matter]:
        """The matters (in catalogue order) with an item that exposes ``field`` of ``table``."""
        items = {i.id for i in self.items.values() if i.table == table and field in i.fields}
        return [m for m in self.matters.values() if items.intersection(m.items)]

    def items_for(self, matter: str, endpoint: str) -> list[DataItem]:
        """The data items of ``matter`` that ``endpoint`` answers (empty: none, or no such matter)."""
        found = self.matters.get(matter)
        if found is None:
            return []
        return [
            self.items[i]
            for i in found.items
            if i in self.items and self.items[i].endpoint == endpoint
        ]


class _File(BaseModel):
    """The file as written: two lists, each entry naming its id / code."""

    model_config = ConfigDict(extra="forbid")
    items: list[DataItem] = Field(min_length=1)
    matters: list[Matter] = Field(min_length=1)
    requesting_departments: list[RequestingDepartment] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> _File:
        for what, ids in (
            ("items", [i.id for i in self.items]),
            ("matters", [m.code for m in self.matters]),
            ("requesting_departments", [d.code for d in self.requesting_departments]),
        ):
            repeated = sorted({x for x in ids if ids.count(x) > 1})
            if repeated:
                raise ValueError(f"{what}: {', '.join(repeated)} declared more than once")
        return self


def matters_path() -> Path:
    return Path(os.environ.get(MATTERS_ENV) or DAGS_DIR / "matters.yaml")


def read_matters(path: Path | None = None) -> MatterCatalogue:
    """The catalogue as written (strict YAML, every field typed); references not checked.
    ``ConfigError`` naming the file and the entry."""
    path = path or matters_path()
    data: Any = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with 'items' and 'matters'")
    parsed = validated(_File, data, path)
    return MatterCatalogue(
        items={i.id: i for i in parsed.items},
        matters={m.code: m for m in parsed.matters},
        requesting_departments={d.code: d for d in parsed.requesting_departments},
    )


def catalogue_problems(
    catalogue: MatterCatalogue, departments: Collection[str] | None = None
) -> list[str]:
    """One line per broken reference: an item a matter names that is not declared, an item's
    table that is not a curated table (or not one its endpoint answers from), a field that is
    not a column of the table, and, when ``departments`` (the providing departments' codes) are
    given, a matter's department that is neither one of them nor a declared requesting-only
    department. Empty: the catalogue is sound."""
    problems: list[str] = []
    if departments is not None:
        # a requesting-only department that has since been onboarded as a provider (its YAML
        # now exists, e.g. 人社 `rs` in docs/configuration.md's walk) stays valid: onboarding
        # must not break the matters it handles; its YAML's name is the one shown
        departments = set(departments) | set(catalogue.requesting_departments)
    for item in catalogue.items.values():
        where = f"item {item.id!r}"
        if item.table not in TABLES:
            problems.append(
                f"{where}: unknown curated table {item.table!r} (known: {', '.join(TABLES)})"
            )
            continue
        if item.table not in ENDPOINT_TABLES[item.endpoint]:
            problems.append(
                f"{where}: the {item.endpoint} lookup does not answer from table {item.table!r} "
                f"(it answers from {', '.join(ENDPOINT_TABLES[item.endpoint])})"
            )
        columns = [c for c in TABLES[item.table].published() if not c.startswith("_")]
        for f in item.fields:
            if f not in columns:
                problems.append(
                    f"{where}: unknown field {f!r} of curated table {item.table!r} "
                    f"(columns: {', '.join(columns)})"
                )
    for matter in catalogue.matters.values():
        where = f"matter {matter.code!r} ({matter.name_zh})"
        for i in matter.items:
            if i not in catalogue.items:
                problems.append(f"{where}: unknown data item {i!r}")
        if departments is not None:
            for d in matter.departments:
                if d not in departments:
                    problems.append(
                        f"{where}: unknown department code {d!r} (known: "
                        f"{', '.join(sorted(departments))}; a department that provides no data "
                        f"goes in requesting_departments)"
                    )
    return problems


def load_matters(path: Path | None = None) -> MatterCatalogue:
    """The checked catalogue (default ``dags/matters.yaml``, ``DATACLOUD_MATTERS`` overrides);
    ``ConfigError`` naming the file, with one line per problem."""
    path = path or matters_path()
    catalogue = read_matters(path)
    problems = catalogue_problems(catalogue)
    if problems:
        raise ConfigError("\n".join(f"{path}: {p}" for p in problems))
    return catalogue

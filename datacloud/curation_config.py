"""Curation configuration: ``dags/curation.yaml``, validated by a typed model.

Survivorship per golden field (一数一源), history retention and compaction of the curated
tables, the cutoff at which curation runs with whatever has landed, and each curated table's
sharing type and update cycle for the resource catalogue (资源目录, ``catalogue:``). Pure Python
and pydantic (no pyarrow), so the curation DAG reads the cutoff at parse time.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from datacloud.config import CODE, ConfigError, Department, read_yaml, validated
from datacloud.curated_tables import ENTERPRISE, PERSON, TABLES
from datacloud.paths import DAGS_DIR

# golden field -> the authority field a department YAML names for it (一数一源), in the order
# of the curated columns (the registry, datacloud.curated_tables)
PERSON_FIELDS: dict[str, str | None] = {f.name: f.authority for f in PERSON.fields}
ENTERPRISE_FIELDS: dict[str, str | None] = {f.name: f.authority for f in ENTERPRISE.fields}
# a golden field that yields several columns, all from the same source row (the first decides
# whether a row has a value); every other field yields its own column
FIELD_COLUMNS: dict[str, tuple[str, ...]] = {
    f.name: f.columns for t in (PERSON, ENTERPRISE) for f in t.fields if f.columns
}

DeptCode = Annotated[str, Field(pattern=CODE.pattern)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Authority(_Model):
    """The listed departments win, in order, where they have a value; else the latest non-null."""

    authority: list[DeptCode] = Field(min_length=1)


Rule = Authority | Literal["latest"]


def _known_fields(kind: str, fields: dict[str, str | None], v: Any) -> Any:
    """Refuse unknown field names before their rules are parsed (a clearer error)."""
    if isinstance(v, dict):
        bad = [f for f in v if f not in fields]
        if bad:
            raise ValueError(f"unknown golden {kind} fields {bad}; expected some of {list(fields)}")
    return v


class Survivorship(_Model):
    person: dict[str, Rule] = Field(default_factory=dict)
    enterprise: dict[str, Rule] = Field(default_factory=dict)

    @field_validator("person", mode="before")
    @classmethod
    def _person_fields(cls, v: Any) -> Any:
        return _known_fields("person", PERSON_FIELDS, v)

    @field_validator("enterprise", mode="before")
    @classmethod
    def _enterprise_fields(cls, v: Any) -> Any:
        if v == "latest" or (isinstance(v, dict) and "authority" in v):
            raise ValueError(
                "enterprises survive per field: give a rule per golden enterprise field, e.g. "
                "{name: {authority: [scjg]}, address: latest}; fields: "
                f"{list(ENTERPRISE_FIELDS)}"
            )
        return _known_fields("enterprise", ENTERPRISE_FIELDS, v)


class Publishing(_Model):
    retention_days: int = Field(default=30, ge=1, le=3650)
    compact_when_files_over: int = Field(default=32, ge=2, le=100_000)
    # incremental nights mark replaced rows deleted instead of rewriting files (local
    # storage); readers must apply deletion vectors (docs/curation.md, "Reading")
    deletion_vectors: bool = True


class FullBuild(_Model):
    """A full golden build (first night, survivorship change, rebuild) spread over key ranges,
    one mapped Airflow task each (docs/curation.md, "A full build over key ranges")."""

    # the number of range tasks; null: one per ``rows_per_range`` staged rows (at most
    # ``max_ranges``), from the staged tables' row counts in their Delta logs
    ranges: int | None = Field(default=None, ge=1, le=4096)
    rows_per_range: int = Field(default=4_000_000, ge=1_000)
    max_ranges: int = Field(default=64, ge=1, le=4096)

    def count(self, staged_rows: int) -> int:
        """The number of ranges for ``staged_rows`` rows in all staged tables."""
        if self.ranges is not None:
            return self.ranges
        return max(1, min(self.max_ranges, -(-staged_rows // self.rows_per_range)))


# the sharing types of the national catalogue rules (政务信息资源共享管理暂行办法): shared with any
# government user, shared on conditions (a matter that grants it), not shared
SHARING_TYPES: tuple[str, ...] = ("无条件共享", "有条件共享", "不予共享")
SharingType = Literal["无条件共享", "有条件共享", "不予共享"]
UPDATE_CYCLES: tuple[str, ...] = ("实时", "每日", "每周", "每月", "每季度", "每年", "不定期")
UpdateCycle = Literal["实时", "每日", "每周", "每月", "每季度", "每年", "不定期"]
# a curated table the catalogue section leaves out: not shared until someone decides otherwise
UNLISTED_SHARING: SharingType = "不予共享"


class CatalogueEntry(_Model):
    """A curated table in the resource catalogue (资源目录): its sharing type and update cycle."""

    sharing: SharingType
    cycle: UpdateCycle = "每日"
    conditions: str | None = Field(default=None, max_length=200)  # 有条件共享: on what terms


class CurationConfig(_Model):
    cutoff: str = "30 5 * * *"
    timezone: Literal["Asia/Shanghai"] = "Asia/Shanghai"
    survivorship: Survivorship = Field(default_factory=Survivorship)
    publishing: Publishing = Field(default_factory=Publishing)
    full_build: FullBuild = Field(default_factory=FullBuild)
    catalogue: dict[str, CatalogueEntry] = Field(default_factory=dict)

    @field_validator("catalogue", mode="before")
    @classmethod
    def _catalogue_tables(cls, v: Any) -> Any:
        """Refuse a table the registry (datacloud.curated_tables) does not have."""
        if isinstance(v, dict):
            bad = [t for t in v if t not in TABLES]
            if bad:
                raise ValueError(f"unknown curated tables {bad}; expected some of {list(TABLES)}")
        return v

    def sharing(self, table: str) -> CatalogueEntry:
        """The catalogue entry of ``table``; a table not listed is 不予共享, updated 每日."""
        return self.catalogue.get(table) or CatalogueEntry(sharing=UNLISTED_SHARING)

    @field_validator("cutoff")
    @classmethod
    def _cron(cls, v: str) -> str:
        if len(v.split()) != 5:
            raise ValueError("expected a five-field cron expression, e.g. '30 5 * * *'")
        return v

    def person_rules(self, depts: list[Department]) -> dict[str, list[str]]:
        """Golden person field -> authority departments in priority order ([] = latest non-null).

        A field this file leaves out takes the departments whose YAML lists it under
        ``authority:``; a department YAML that contradicts this file is an error.
        """
        return _rules("person", PERSON_FIELDS, self.survivorship.person, depts)

    def enterprise_rules(self, depts: list[Department]) -> dict[str, list[str]]:
        """Golden enterprise field -> authority departments in priority order, as for persons
        (``enterprise_name``, ``enterprise_status`` and ``legal_representative`` in a department
        YAML declare authority for ``name``, ``status`` and ``legal_representative``)."""
        return _rules("enterprise", ENTERPRISE_FIELDS, self.survivorship.enterprise, depts)

    def fingerprint(self, depts: list[Department]) -> str:
        """A digest of the effective survivorship: a change forces a full rebuild."""
        doc = {"person": self.person_rules(depts), "enterprise": self.enterprise_rules(depts)}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def _rules(
    kind: str, fields: dict[str, str | None], rules: dict[str, Rule], depts: list[Department]
) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for field, authority_field in fields.items():
        declared = [d.code for d in depts if authority_field and authority_field in d.authority]
        out[field] = _resolve(rules.get(field), declared, f"{kind}.{field}", authority_field)
    return out


def _resolve(
    rule: Rule | None, declared: list[str], field: str, authority: str | None
) -> list[str]:
    if rule is None:
        return declared
    listed = [] if rule == "latest" else list(rule.authority)
    stray = [d for d in declared if d not in listed]
    if stray:
        raise ConfigError(
            f"{config_path()}: field survivorship.{field}: departments {stray} declare "
            f"authority for {authority!r} in their YAML, but the rule here is {listed or 'latest'}"
        )
    return listed


def config_path() -> Path:
    """``DATACLOUD_CURATION_CONFIG`` overrides ``dags/curation.yaml`` (for tests)."""
    return Path(os.environ.get("DATACLOUD_CURATION_CONFIG", DAGS_DIR / "curation.yaml"))


def load_curation_config(path: Path | None = None) -> CurationConfig:
    """Load and validate the curation YAML; raise ConfigError naming file and field."""
    path = path or config_path()
    return validated(CurationConfig, read_yaml(path) or {}, path)

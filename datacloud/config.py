"""Department configuration: one YAML per department, validated by a typed model.

A department is data. ``dags/departments/<code>.yaml`` names the connection, the schedule,
and per source table the extraction mode, keys and the mapping of source columns to the
canonical schema, each column through a named normaliser from ``transforms.registry``.
Errors name the file, the field and what was expected. A YAML file is read as UTF-8 text
(UTF-16, binary content or a repeated mapping key is a ConfigError naming file and line, never a
silently different configuration).
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from datacloud.canonical import ADAPTER_NAMES, AUTHORITY_FIELDS, NORMALISER_NAMES, kinds
from datacloud.paths import departments_dir, sql_dir
from datacloud.quality_suites import checks, load_suite, raw_suite_name

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
CODE = re.compile(r"^[a-z][a-z0-9_]{1,30}$")

Identifier = Annotated[str, Field(pattern=IDENTIFIER.pattern)]


M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A department YAML is invalid; the message names file, field and expectation."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnSpec(_Model):
    """How one canonical column is filled from the source table."""

    source: Identifier | None = None
    constant: str | None = None
    normalise: str = "text"
    adapters: list[str] = Field(
        default_factory=list, description="named quirk adapters applied before the normaliser"
    )
    required: bool = False
    options: dict[str, Any] = Field(default_factory=dict)
    extras: dict[str, Identifier] = Field(
        default_factory=dict,
        description="normaliser extra output -> canonical column name",
    )

    @field_validator("normalise")
    @classmethod
    def _known_normaliser(cls, v: str) -> str:
        if v not in NORMALISER_NAMES:
            raise ValueError(
                f"unknown normaliser {v!r}; expected one of {sorted(NORMALISER_NAMES)}"
            )
        return v

    @field_validator("adapters")
    @classmethod
    def _known_adapters(cls, v: list[str]) -> list[str]:
        bad = [a for a in v if a not in ADAPTER_NAMES]
        if bad:
            raise ValueError(f"unknown adapter(s) {bad}; expected some of {sorted(ADAPTER_NAMES)}")
        return v

    @model_validator(mode="after")
    def _source_or_constant(self) -> ColumnSpec:
        if (self.source is None) == (self.constant is None):
            raise ValueError("give exactly one of 'source' (a source column) or 'constant'")
        return self


Ratio = Annotated[float, Field(ge=0.0, le=1.0)]


class VolumeSpec(_Model):
    """Tonight's row count against the median of the recent successful nights."""

    nights: int = Field(default=7, ge=1, le=60, description="how many earlier nights to look at")
    min_ratio: float = Field(default=0.5, gt=0.0, le=1.0, description="fail below median × this")
    max_ratio: float = Field(default=3.0, ge=1.0, description="fail above median × this")


class ColumnQuality(_Model):
    """Thresholds of one canonical column (unset: the table's)."""

    min_present: Ratio | None = None
    min_valid: Ratio | None = None
    warn_valid: Ratio | None = None


class QualitySpec(_Model):
    """Thresholds of the raw quality gate of one table (docs/quality.md)."""

    volume: VolumeSpec = Field(default_factory=VolumeSpec)
    min_present: Ratio = Field(default=0.95, description="critical: share of rows with a value")
    min_valid: Ratio = Field(default=0.90, description="critical: share of values passing rules")
    warn_valid: Ratio = Field(default=0.995, description="warning: share of values passing rules")
    min_rows_for_ratios: int = Field(
        default=100, ge=0, description="smaller batches: ratio checks only warn"
    )
    columns: dict[Identifier, ColumnQuality] = Field(default_factory=dict)
    severity: dict[str, Literal["critical", "warning"]] = Field(
        default_factory=dict, description="check name (meta.check in the suite) -> severity"
    )

    @model_validator(mode="after")
    def _ordered(self) -> QualitySpec:
        if self.min_valid > self.warn_valid:
            raise ValueError(
                f"min_valid {self.min_valid} must not exceed warn_valid {self.warn_valid}"
            )
        for name, col in self.columns.items():
            low = self.min_valid if col.min_valid is None else col.min_valid
            high = self.warn_valid if col.warn_valid is None else col.warn_valid
            if low > high:
                raise ValueError(
                    f"columns.{name}: min_valid {low} must not exceed warn_valid {high}"
                )
        return self

    def threshold(self, column: str, name: str) -> float:
        """``min_present``, ``min_valid`` or ``warn_valid`` of a column (its own, else the table's)."""
        own = getattr(self.columns[column], name) if column in self.columns else None
        return float(getattr(self, name) if own is None else own)


class TableSpec(_Model):
    """One source table of a department."""

    name: Identifier
    kind: str = Field(
        description="canonical kind: a built-in one or one added by its raw suite (canonical.kinds)"
    )
    description: str = ""
    mode: Literal["full", "incremental"] = "full"
    primary_key: list[Identifier] = Field(min_length=1)
    cursor: Identifier | None = None
    overlap_minutes: int = Field(
        default=60,
        ge=0,
        le=7 * 24 * 60,
        description="incremental: re-read this much before the day",
    )
    null_cursor: Literal["include", "exclude"] = Field(
        default="include", description="incremental: rows whose cursor is NULL are read every night"
    )
    reader: Literal["auto", "native", "sqlalchemy"] = "auto"
    batch_rows: int = Field(default=50_000, ge=100, le=5_000_000)
    chunks: int = Field(
        default=1, ge=1, le=256, description="split into this many key ranges, one mapped task each"
    )
    chunk_key: Identifier | None = Field(
        default=None, description="column the ranges are cut on (default: the primary key)"
    )
    dedupe_on: list[Identifier] = Field(default_factory=list)
    columns: dict[Identifier, ColumnSpec]
    quality: QualitySpec = Field(default_factory=QualitySpec)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        known = kinds()
        if v not in known:
            hint = f"raw_{v}.json" if IDENTIFIER.fullmatch(v) else "raw_<kind>.json"
            raise ValueError(
                f"unknown kind {v!r}; expected one of {sorted(known)}; a new kind is added by "
                f'writing its raw suite expectations/{hint} (docs/configuration.md, "Kinds")'
            )
        return v

    @model_validator(mode="after")
    def _check(self) -> TableSpec:
        required = kinds()[self.kind]
        missing = [c for c in required if c not in self.columns]
        if missing:
            raise ValueError(
                f"a {self.kind} table must map the canonical columns {list(required)}; "
                f"missing {missing}"
            )
        if self.chunks > 1 and self.chunk_key is None and len(self.primary_key) > 1:
            raise ValueError("a composite primary key needs a 'chunk_key' to cut chunks on")
        if self.mode == "incremental" and self.cursor is None:
            raise ValueError("mode 'incremental' needs a 'cursor' column")
        produced = set(self.columns) | {e for c in self.columns.values() for e in c.extras.values()}
        unknown = [c for c in self.dedupe_on if c not in produced]
        if unknown:
            raise ValueError(
                f"dedupe_on names {unknown}, which are not canonical columns of this table"
            )
        strange = [c for c in self.quality.columns if c not in produced]
        if strange:
            raise ValueError(
                f"quality.columns names {strange}, which are not canonical columns of this table"
            )
        known = checks(load_suite(raw_suite_name(self.kind)))
        bad = [c for c in self.quality.severity if c not in known]
        if bad:
            raise ValueError(
                f"quality.severity names unknown check(s) {bad}; the {self.kind} suite "
                f"expectations/{raw_suite_name(self.kind)}.json has {known}"
            )
        return self

    @property
    def source_columns(self) -> list[str]:
        """Source columns the extraction query must return (keys first, no duplicates)."""
        cols: list[str] = list(self.primary_key)
        for spec in self.columns.values():
            if spec.source and spec.source not in cols:
                cols.append(spec.source)
        if self.cursor and self.cursor not in cols:
            cols.append(self.cursor)
        return cols

    @property
    def business_key(self) -> list[str]:
        """Canonical columns that identify the same record across rows (for deduplication)."""
        return self.dedupe_on or [kinds()[self.kind][0]]


class Department(_Model):
    """A data-providing department (数据提供部门)."""

    code: Annotated[str, Field(pattern=CODE.pattern)]
    name: str = Field(min_length=1)
    connection_id: Identifier
    schedule: str = "0 2 * * *"
    timezone: Literal["Asia/Shanghai"] = "Asia/Shanghai"
    retries: int = Field(default=3, ge=0, le=10)
    retry_delay_minutes: int = Field(default=5, ge=1, le=120)
    execution_timeout_minutes: int = Field(default=120, ge=1, le=24 * 60)
    authority: list[str] = Field(default_factory=list)
    owner: str = "datacloud"
    source_encoding: str = Field(
        default="utf-8",
        description="encoding of the text bytes a SQL_ASCII PostgreSQL or SQLite source holds",
    )
    tables: list[TableSpec] = Field(min_length=1)
    problem_due_working_days: int = Field(
        default=5,
        ge=1,
        le=60,
        description="working days a problem of this department's data has to be fixed in "
        "(问题整改期限, docs/problems.md)",
    )

    @field_validator("source_encoding")
    @classmethod
    def _encoding(cls, v: str) -> str:
        import codecs

        try:
            return codecs.lookup(v).name
        except LookupError:
            raise ValueError(f"unknown encoding {v!r}; e.g. utf-8, gbk, gb18030") from None

    @field_validator("authority")
    @classmethod
    def _authority(cls, v: list[str]) -> list[str]:
        bad = [f for f in v if f not in AUTHORITY_FIELDS]
        if bad:
            raise ValueError(
                f"unknown authority fields {bad}; expected some of {sorted(AUTHORITY_FIELDS)}"
            )
        return v

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str) -> str:
        if len(v.split()) != 5:
            raise ValueError("expected a five-field cron expression, e.g. '0 2 * * *'")
        return v

    @model_validator(mode="after")
    def _unique_tables(self) -> Department:
        names = [t.name for t in self.tables]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"table names must be unique; repeated: {dup}")
        return self

    def table(self, name: str) -> TableSpec:
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(f"department {self.code} has no table {name!r}")

    def sql_path(self, table: str) -> Path:
        return sql_dir() / self.code / f"{table}.sql"


def _loc(loc: tuple[Any, ...], data: Any) -> str:
    """Render a pydantic error location as a YAML path: tables[0] (czrk).columns.id_number."""
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            label = ""
            if isinstance(node, list) and part < len(node) and isinstance(node[part], dict):
                label = f" ({node[part].get('name', '')})" if node[part].get("name") else ""
            out += f"[{part}]{label}"
            node = node[part] if isinstance(node, list) and part < len(node) else None
        else:
            out += ("." if out else "") + str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out or "(top level)"


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that repeats a key (PyYAML keeps the last one
    silently: a repeated ``mode:`` or ``columns:`` would change a department without a word)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # '<<' merges may override, as YAML intends
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:
                continue  # an unhashable key: the base class says what is wrong with it
            if first is not key_node:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"repeated key {key!r} (first on line {first.start_mark.line + 1})",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


# byte-order marks of the encodings people save YAML in by mistake (longest first)
_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


def yaml_text(data: bytes, path: Path) -> str:
    """The text of a YAML file's bytes: UTF-8 (a UTF-8 byte-order mark is allowed); a
    ConfigError naming the file for UTF-16/32, binary content or bytes that are not UTF-8."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            raise ConfigError(f"{path}: the file is {name} text; save it as UTF-8")
    if b"\x00" in data:
        raise ConfigError(
            f"{path}: not a YAML text file (it holds NUL bytes; UTF-16 without a byte-order "
            "mark, or a binary file); save it as UTF-8 text"
        )
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{data[e.start]:02x} on line {line}); save it as UTF-8"
        ) from None


def parse_yaml(text: str, path: Path) -> Any:
    """YAML text as Python data (safe types only, no repeated keys); ConfigError naming the file."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: safe types only
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = " ".join(x for x in (e.context, e.problem) if x) or "unreadable"
        raise ConfigError(f"{path}: not valid YAML: {where}{what}") from None
    except yaml.reader.ReaderError as e:
        line = text[: e.position].count("\n") + 1
        raise ConfigError(
            f"{path}: not valid YAML: line {line}: character #x{e.character:04x} is not allowed"
        ) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None


def read_yaml(path: Path) -> Any:
    """A YAML file's content; ConfigError naming the file when it is unreadable, not UTF-8
    text, or not YAML (including a mapping that repeats a key)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    return parse_yaml(yaml_text(data, path), path)


def validated(model: type[M], data: Any, path: Path) -> M:
    """``data`` as ``model``; one ConfigError line per problem, naming file and field."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        lines = [
            f"{path}: field {_loc(tuple(err['loc']), data)}: "
            + err["msg"].removeprefix("Value error, ")
            for err in e.errors()
        ]
        raise ConfigError("\n".join(lines)) from None


def load_department(path: Path) -> Department:
    """Load and validate one department YAML; raise ConfigError naming file and field."""
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with 'code', 'name', 'tables', …")
    dept = validated(Department, data, path)
    if path.stem != dept.code:
        raise ConfigError(
            f"{path}: field code: {dept.code!r} must equal the file name {path.stem!r}"
        )
    return dept


def load_departments(folder: Path | None = None) -> list[Department]:
    """All departments, in a stable order (by file name)."""
    folder = folder or departments_dir()
    return [load_department(p) for p in sorted(folder.glob("*.yaml"))]


# The household register: the person tables of the departments authoritative for this field
# (gongan). Only the persons it holds enter curated/person; consistency's unregistered_*
# findings are made against it (docs/curation.md, "Who enters curated/person").
REGISTER_FIELD = "name"


def register_departments(depts: list[Department]) -> list[str]:
    """The codes of the departments whose person tables are the household register."""
    return [d.code for d in depts if REGISTER_FIELD in d.authority]


class HolidayFallback(_Model):
    """The holiday calendar for a year the holiday library does not cover yet
    (``datacloud.working_days``): weekends are days off, except the listed make-up working
    days (调休上班); the listed holidays are days off too."""

    holidays: list[date] = Field(default_factory=list, description="days off besides weekends")
    workdays: list[date] = Field(
        default_factory=list, description="make-up working days (调休) on a weekend"
    )

    @model_validator(mode="after")
    def _disjoint(self) -> HolidayFallback:
        both = sorted(set(self.holidays) & set(self.workdays))
        if both:
            raise ValueError(f"dates listed both as holiday and as working day: {both}")
        return self


HOLIDAYS_FILE = "holidays.yaml"


def holidays_path() -> Path:
    """``dags/holidays.yaml`` beside the department folder (``DATACLOUD_HOLIDAYS`` overrides)."""
    env = os.environ.get("DATACLOUD_HOLIDAYS")
    return Path(env) if env else departments_dir().parent / HOLIDAYS_FILE


def load_holiday_fallback(path: Path | None = None) -> HolidayFallback:
    """The fallback holiday list; an empty one (weekends only) when the file does not exist."""
    path = path or holidays_path()
    if not path.is_file():
        return HolidayFallback()
    data = read_yaml(path)
    return validated(HolidayFallback, data if data is not None else {}, path)


def check_sql(dept: Department) -> list[str]:
    """Problems with the department's extraction queries (missing files); empty when fine."""
    problems = []
    for t in dept.tables:
        p = dept.sql_path(t.name)
        if not p.is_file():
            problems.append(f"{dept.code}.{t.name}: extraction query {p} is missing")
    return problems

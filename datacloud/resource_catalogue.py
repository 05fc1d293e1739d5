"""The resource catalogue (资源目录): every curated table as platform users look for it.

Pure: the registry of curated tables (``datacloud.curated_tables``), the departments and the
curation config (authority 一数一源, sharing type, update cycle), the matters catalogue (which
matters may read a field) and the facts of the night (each table's last publish as its Delta
log says, the curated quality gate) go in; a typed ``Catalogue`` comes out. Reading those
facts and writing ``catalogue.json`` and ``index.html`` is ``datacloud.catalogue_night``; the
page is ``datacloud.resource_catalogue_html``. docs/catalogue.md describes the result.

Every published column has a Chinese name here (``COLUMN_ZH``, per table; a golden field's
``<field>_source`` and ``<field>_as_of`` are named from the field's own name). A registry
column without one is a ``CatalogueError`` naming table and column: a new column cannot reach
the catalogue unnamed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from datacloud.config import Department
from datacloud.curated_tables import KEY, TABLES, CuratedTable
from datacloud.curation_config import CurationConfig

SCHEMA_VERSION: Final = 1


class CatalogueError(ValueError):
    """The catalogue cannot be built as declared (e.g. a column without a Chinese name)."""


# --- Chinese names ----------------------------------------------------------------------------

TABLE_ZH: Final[dict[str, str]] = {
    "person": "人口基础信息（一人一档）",
    "enterprise": "法人基础信息（一企一档）",
    "property_right": "不动产权利",
    "housing_fund_account": "住房公积金账户",
    "marriage": "婚姻登记",
    "enterprise_role": "企业人员（法定代表人、股东）",
    "consistency": "跨部门比对结果",
}
TABLE_DESCRIPTION_ZH: Final[dict[str, str]] = {
    "person": "户籍登记在册的每个人一行；每个字段按一数一源取权威部门的值，并注明来源部门和数据日期。",
    "enterprise": "每个统一社会信用代码一行（未换照的老注册号单独一行）；每个字段注明来源部门和数据日期。",
    "property_right": "每本不动产权证书的每个权利人一行。",
    "housing_fund_account": "每个住房公积金个人账户一行。",
    "marriage": "每次结婚、离婚登记一行。",
    "enterprise_role": "企业的法定代表人和股东，每人每企业每种身份一行。",
    "consistency": "各部门数据与权威部门不一致之处，供平台运维人员核对，不对外共享。",
}
# golden tables: lead columns, value columns and field names (for <field>_source/_as_of);
# relations: their columns. ``source``, ``as_of`` and ``_key`` are named in COMMON_ZH.
COLUMN_ZH: Final[dict[str, dict[str, str]]] = {
    "person": {
        "id_number": "公民身份号码",
        "name": "姓名",
        "sex": "性别",
        "birth_date": "出生日期",
        "ethnicity": "民族",
        "registered_address": "户籍地址",
        "phone": "联系电话",
        "marital_status": "婚姻状况",
    },
    "enterprise": {
        "credit_code": "统一社会信用代码",
        "reg_number": "注册号",
        "org_code": "组织机构代码",
        "name": "企业名称",
        "enterprise_type": "企业类型",
        "status": "登记状态",
        "legal_representative": "法定代表人",
        "legal_rep_id_number": "法定代表人身份号码",
        "legal_rep_name": "法定代表人姓名",
        "registered_capital": "注册资本（万元）",
        "established_date": "成立日期",
        "address": "住所",
    },
    "property_right": {
        "certificate_no": "不动产权证书号",
        "owner_id_number": "权利人身份号码",
        "owner_name": "权利人姓名",
        "unit_no": "不动产单元号",
        "location": "坐落",
        "floor_area_m2": "建筑面积（平方米）",
        "registered_date": "登记日期",
        "status": "权属状态",
    },
    "housing_fund_account": {
        "account_no": "公积金个人账号",
        "id_number": "公民身份号码",
        "employer_name": "单位名称",
        "employer_credit_code": "单位统一社会信用代码",
        "employer_reg_number": "单位注册号",
        "opened_date": "开户日期",
        "status": "账户状态",
        "monthly_contribution": "月缴存额（元）",
    },
    "marriage": {
        "registration_id": "婚姻登记编号",
        "registration_type": "登记类型（结婚/离婚）",
        "husband_id_number": "男方身份号码",
        "wife_id_number": "女方身份号码",
        "registered_date": "登记日期",
        "office": "登记机关",
    },
    "enterprise_role": {
        "credit_code": "统一社会信用代码",
        "reg_number": "注册号",
        "id_number": "人员身份号码",
        "name": "人员姓名",
        "role": "身份（法定代表人/股东）",
        "subscribed_capital": "认缴出资额（万元）",
        "share_ratio": "出资比例",
    },
    "consistency": {
        "finding": "比对结果代码",
        "finding_zh": "比对结果",
        "department": "数据不一致的部门",
        "authoritative_department": "权威部门",
        "field": "不一致的字段",
        "record_kinds": "出现该人的记录种类",
        "id_number": "公民身份号码",
        "business_date": "比对日期",
    },
}
COMMON_ZH: Final[dict[str, str]] = {
    "source": "来源部门",
    "as_of": "数据日期",
    KEY: "合并主键（平台生成）",
}
# a relation's authority field in the department YAMLs (一数一源: who may say a row exists)
RELATION_AUTHORITY: Final[dict[str, str]] = {
    "property_right": "property_ownership",
    "housing_fund_account": "housing_fund_account",
    "marriage": "marital_status",
    "enterprise_role": "legal_representative",
}
SHARING_CLASS: Final[dict[str, str]] = {
    "无条件共享": "open",
    "有条件共享": "conditional",
    "不予共享": "closed",
}
GATE_ZH: Final[dict[str, str]] = {
    "passed": "通过",
    "warning": "通过（有提醒）",
    "failed": "未通过（本晚未发布）",
    "not_checked": "本晚未检查",
    "no_suite": "不设质量检查",
}


# --- inputs -----------------------------------------------------------------------------------


class MatterLike(Protocol):
    code: str
    name_zh: str


class MattersReading(Protocol):
    """What the catalogue needs of ``datacloud.matters.MatterCatalogue``."""

    def matters_reading(self, table: str, field: str) -> Sequence[MatterLike]: ...


@dataclass(frozen=True)
class PublishFacts:
    """A curated table's current version, as its Delta log says."""

    version: int
    published_at: datetime | None  # the commit time of that version
    business_date: str | None  # the ``datacloud.ds`` of that commit
    rows: int  # live rows: the log's record counts less deletion vectors
    schema: Mapping[str, str]  # column -> Delta type, in table order


@dataclass(frozen=True)
class GateFacts:
    """A curated table's quality gate on the night (``quality/curated/<date>/<table>.json``)."""

    status: Literal["passed", "warning", "failed", "not_checked", "no_suite"]
    suite: str | None = None
    failed_expectations: int = 0
    checked: int = 0


# --- the model (catalogue.json; JSON Schema: datacloud/schemas/catalogue.schema.json) ---------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DepartmentRef(_Model):
    code: str
    name: str


class MatterRef(_Model):
    code: str
    name_zh: str


class CatalogueField(_Model):
    name: str = Field(description="the column name in the Delta table")
    name_zh: str = Field(min_length=1)
    type: str = Field(description="the column's Delta type as published (else as declared)")
    declared_type: str = Field(description="the registry's type; 'source' keeps the source's")
    key: bool = Field(description="part of the table's key")
    golden_field: str | None = Field(description="the survivorship field it belongs to")
    sources: list[str] = Field(description="department codes that provide it")
    authority: list[str] = Field(description="authority departments (一数一源), in priority order")
    rule_zh: str = Field(description="how the value is chosen, in Chinese")
    matters: list[MatterRef] = Field(description="the matters (事项) that may read it")


class QualityGate(_Model):
    status: Literal["passed", "warning", "failed", "not_checked", "no_suite"]
    status_zh: str
    suite: str | None
    failed_expectations: int
    checked: int


class CatalogueTable(_Model):
    name: str
    name_zh: str
    description_zh: str
    path: str = Field(description="the Delta table's path under the data root")
    sharing: Literal["无条件共享", "有条件共享", "不予共享"]
    sharing_configured: bool = Field(description="false: not listed in dags/curation.yaml")
    conditions: str | None
    update_cycle: str
    departments: list[DepartmentRef] = Field(description="the source departments")
    authority: list[str] = Field(description="departments authoritative for any of its fields")
    published: bool
    version: int | None
    published_at: str | None = Field(description="ISO time (Asia/Shanghai) of that version")
    business_date: str | None
    rows: int | None
    quality_gate: QualityGate
    fields: list[CatalogueField]


class Catalogue(_Model):
    schema_version: Literal[1] = SCHEMA_VERSION
    generated_at: str
    business_date: str | None = Field(description="the curation night the gate results are of")
    tables: list[CatalogueTable]


# --- building ---------------------------------------------------------------------------------


def column_names_zh(t: CuratedTable) -> dict[str, str]:
    """Every published column of ``t`` -> its Chinese name; CatalogueError for one without."""
    names = COLUMN_ZH.get(t.name, {})
    out: dict[str, str] = {}
    missing: list[str] = []

    def named(column: str) -> str:
        zh = names.get(column) or COMMON_ZH.get(column)
        if not zh:
            missing.append(column)
        return zh or ""

    golden = {f.name for f in t.fields}
    for f in t.fields:  # a golden field's own name (its _source/_as_of columns take it)
        named(f.name)
    for column in t.published():
        about = _lineage_of(column, golden)
        if about is not None and column not in names:
            field, kind = about
            out[column] = f"{names[field]}{kind}" if field in names else ""
        else:
            out[column] = named(column)
    if t.name not in TABLE_ZH:
        missing.append("(the table's own name, TABLE_ZH)")
    if missing:
        raise CatalogueError(
            f"curated table {t.name!r}: no Chinese name for {sorted(set(missing))} "
            "(datacloud/resource_catalogue.py, COLUMN_ZH)"
        )
    return out


def _lineage_of(column: str, golden: set[str]) -> tuple[str, str] | None:
    """``name_source`` -> (``name``, 来源部门), ``name_as_of`` -> (``name``, 数据日期) for a
    golden field's lineage columns; None for any other column."""
    for suffix, kind in (("_source", "来源部门"), ("_as_of", "数据日期")):
        if column.endswith(suffix) and column.removesuffix(suffix) in golden:
            return column.removesuffix(suffix), kind
    return None


def build(
    depts: Sequence[Department],
    config: CurationConfig,
    matters: MattersReading | None,
    facts: Mapping[str, PublishFacts | None],
    gates: Mapping[str, GateFacts | None],
    *,
    business_date: str | None,
    generated_at: datetime,
    paths: Mapping[str, str] | None = None,
    tables: Sequence[CuratedTable] | None = None,
) -> Catalogue:
    """The catalogue of every curated table of the registry (``tables``: for tests)."""
    golden = {
        "person": config.person_rules(list(depts)),
        "enterprise": config.enterprise_rules(list(depts)),
    }
    out = []
    for t in tables if tables is not None else TABLES.values():
        out.append(
            _table(
                t,
                depts,
                config,
                matters,
                facts.get(t.name),
                gates.get(t.name),
                golden.get(t.name, {}),
                (paths or {}).get(t.name, f"curated/{t.name}"),
            )
        )
    return Catalogue(
        generated_at=generated_at.isoformat(timespec="seconds"),
        business_date=business_date,
        tables=out,
    )


def _table(
    t: CuratedTable,
    depts: Sequence[Department],
    config: CurationConfig,
    matters: MattersReading | None,
    facts: PublishFacts | None,
    gate: GateFacts | None,
    rules: Mapping[str, list[str]],
    path: str,
) -> CatalogueTable:
    names = column_names_zh(t)
    providers = [d for d in depts if any(s.kind in t.sources for s in d.tables)]
    mapped = _mapped_columns(providers, t)
    owner = {c: f for f in t.fields for c in f.value_columns}
    for f in t.fields:
        owner[f"{f.name}_source"] = owner[f"{f.name}_as_of"] = f
    relation_authority = _relation_authority(t, depts, config)
    dept_zh = {d.code: d.name for d in depts}
    entry = config.sharing(t.name)
    fields = []
    for column, declared in t.published().items():
        golden = owner.get(column)
        sources: list[str]
        authority: list[str]
        if t.name == "consistency":
            sources, authority, rule = [], [], "平台比对各部门数据生成"
        elif column == KEY:
            sources, authority, rule = [], [], "平台由主键字段拼接生成"
        elif golden is not None:
            authority = list(rules.get(golden.name, []))
            sources = _once(authority + mapped.get(golden.value_columns[0], []))
            if column.endswith(("_source", "_as_of")) and column not in golden.value_columns:
                rule = f"记录“{COLUMN_ZH[t.name][golden.name]}”取自哪个部门、哪一天的数据"
            elif authority:
                rule = f"一数一源：以{_zh(authority, dept_zh)}为准，无值时取最新的非空值"
            else:
                rule = "无权威部门：取各来源中最新的非空值"
        else:
            authority = relation_authority
            sources = _once(mapped.get(column, []) or [d.code for d in providers])
            if column in t.key or column in {c.name for c in t.lead}:
                rule = "主键字段"
            elif t.name == "enterprise_role" and authority:
                rule = (
                    f"同一人员同一身份：法定代表人以{_zh(authority, dept_zh)}为准，"
                    "其余取数据日期最新的一条"
                )
            else:
                rule = "同一主键有多个来源时，取数据日期最新的一条"
        fields.append(
            CatalogueField(
                name=column,
                name_zh=names[column],
                type=(facts.schema.get(column) if facts else None) or declared,
                declared_type=declared,
                key=column in t.key or column == t.merge_key,
                golden_field=golden.name if golden is not None else None,
                sources=sources,
                authority=authority,
                rule_zh=rule,
                matters=_matters(matters, t.name, column),
            )
        )
    table_authority = _once(
        [d for f in fields for d in f.authority] if t.golden else relation_authority
    )
    return CatalogueTable(
        name=t.name,
        name_zh=TABLE_ZH[t.name],
        description_zh=TABLE_DESCRIPTION_ZH.get(t.name, ""),
        path=path,
        sharing=entry.sharing,
        sharing_configured=t.name in config.catalogue,
        conditions=entry.conditions,
        update_cycle=entry.cycle,
        departments=[DepartmentRef(code=d.code, name=d.name) for d in providers],
        authority=table_authority,
        published=facts is not None,
        version=facts.version if facts else None,
        published_at=(
            facts.published_at.isoformat(timespec="seconds")
            if facts and facts.published_at
            else None
        ),
        business_date=facts.business_date if facts else None,
        rows=facts.rows if facts else None,
        quality_gate=_gate(t, gate),
        fields=fields,
    )


def _mapped_columns(providers: Sequence[Department], t: CuratedTable) -> dict[str, list[str]]:
    """Canonical column -> codes of the departments whose tables of ``t``'s kinds fill it."""
    out: dict[str, list[str]] = {}
    for d in providers:
        for s in d.tables:
            if s.kind not in t.sources:
                continue
            filled = set(s.columns) | {e for c in s.columns.values() for e in c.extras.values()}
            for column in filled:
                if d.code not in out.setdefault(column, []):
                    out[column].append(d.code)
    return out


def _relation_authority(
    t: CuratedTable, depts: Sequence[Department], config: CurationConfig
) -> list[str]:
    if t.name == "enterprise_role":
        return list(config.enterprise_rules(list(depts))["legal_representative"])
    field = RELATION_AUTHORITY.get(t.name)
    return [d.code for d in depts if field and field in d.authority]


def _zh(codes: Sequence[str], names: Mapping[str, str]) -> str:
    """Department codes as their Chinese names, joined by 、."""
    return "、".join(names.get(c, c) for c in codes)


def _once(codes: Sequence[str]) -> list[str]:
    """``codes`` once each, in their first order."""
    return list(dict.fromkeys(codes))


def _matters(matters: MattersReading | None, table: str, column: str) -> list[MatterRef]:
    if matters is None:
        return []
    found = matters.matters_reading(table, column)
    return [MatterRef(code=m.code, name_zh=m.name_zh) for m in sorted(found, key=lambda m: m.code)]


def _gate(t: CuratedTable, gate: GateFacts | None) -> QualityGate:
    if t.suite is None:
        gate = GateFacts("no_suite")
    elif gate is None:
        gate = GateFacts("not_checked", t.suite)
    return QualityGate(
        status=gate.status,
        status_zh=GATE_ZH[gate.status],
        suite=gate.suite or t.suite,
        failed_expectations=gate.failed_expectations,
        checked=gate.checked,
    )


def gate_facts(entry: Mapping[str, Any]) -> GateFacts:
    """A curated table's gate from its entry of gate.json (``quality.GateResult.entry``)."""
    failed = entry.get("failed_expectations") or []
    critical = any(f.get("severity") == "critical" for f in failed)
    status: Literal["passed", "warning", "failed"] = (
        "passed" if entry.get("success") else "failed" if critical else "warning"
    )
    return GateFacts(status, entry.get("suite"), len(failed), int(entry.get("evaluated") or 0))


def json_schema() -> dict[str, Any]:
    """The JSON Schema of catalogue.json (kept as datacloud/schemas/catalogue.schema.json)."""
    schema = Catalogue.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "datacloud resource catalogue (资源目录), catalogue.json"
    return schema

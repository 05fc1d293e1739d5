"""The headline of a department night and what the department must do, from every part of it.

``status`` in report.json says how many tables loaded; it alone made the page say a green 成功
above a quality gate that said 未通过 and 33 cross-department conflicts. The **headline** is
decided from everything the report holds (load status, every table's failure and whose side it
is on, rejected rows, the quality gate, the findings, schema changes, freshness, the
reconciliation) and the **to-do list** names each problem, who has to act, and where to look:

- ``failed`` 失败: no table loaded; ``partial`` 部分成功: some did;
- ``action_needed`` 已加载，需处理: every table loaded and something is left to do;
- ``success`` 成功: every table loaded and nothing is left to do, the only green headline.

So the headline is green exactly when the to-do list is empty.

**Whose side a failure is on.** A failure kind (``datacloud.failures``, recorded in the run
state where the failure happened) is the department's when its database could not be reached,
its table's structure changed, or its data failed the quality gate; any other kind (a platform
error, such as a YAML mapping a column the query does not select, or a table whose tasks never
reached it, such as a missing connection) is the platform's: the page says so plainly
(平台原因，运维人员正在处理) and shows the masked cause, and the department is asked for nothing.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from datacloud import failures

Side = Literal["department", "platform"]
DEPARTMENT_KINDS: Final = frozenset(
    {failures.SOURCE_UNREACHABLE, failures.SCHEMA_CHANGE, failures.QUALITY_GATE}
)
PLATFORM_ZH: Final = "平台原因，运维人员正在处理"

HEADLINES: Final[dict[str, str]] = {
    "success": "成功",
    "action_needed": "已加载，需处理",
    "partial": "部分成功",
    "failed": "失败",
}
HEADLINE_HELP: Final[dict[str, str]] = {
    "success": "所有表都已加载，本晚没有需要贵单位处理的问题。",
    "action_needed": "所有表都已加载，但有需要处理的问题（见“需要您做什么”）。",
    "partial": "有的表没有加载成功；没加载的表在平台上仍是上一次成功加载的数据。",
    "failed": "没有一张表加载成功；平台上仍是上一次成功加载的数据。",
}

# fix hints of the cross-department findings (datacloud.consistency.FINDINGS codes)
FINDING_HINTS: Final[dict[str, str]] = {
    "name_conflict": "请对照户籍登记核对姓名并在贵单位系统中更正；如认为户籍登记有误，请联系平台。",
    "sex_conflict": "请对照户籍登记核对性别并在贵单位系统中更正；如认为户籍登记有误，请联系平台。",
    "unregistered_owner": "请核对权利人的身份证号码是否录错；号码无误（如外省户籍）可不处理。",
    "unregistered_legal_rep": "请核对法定代表人的身份证号码是否录错；号码无误（如外省户籍）可不处理。",
    "unregistered_shareholder": "请核对股东的身份证号码是否录错；号码无误（如外省户籍）可不处理。",
    "unregistered_person": "请核对该人员的身份证号码是否录错；号码无误（如外省户籍）可不处理。",
    "marital_conflict": "请核对该人的婚姻登记记录，补录缺失的离婚登记或更正录错的身份证号码。",
    "divorce_without_marriage": "请核对该离婚登记对应的结婚登记，补录缺失的结婚登记或更正录错的号码。",
}
FINDING_HINT_DEFAULT: Final = "请以权威部门的数据为准核对更正；如认为权威部门有误，请联系平台。"


def side(kind: str | None) -> Side:
    """Whose side a failure kind is on: the department's (its source, its table's structure,
    its data) or the platform's (everything else, a table that never ran included)."""
    return "department" if kind in DEPARTMENT_KINDS else "platform"


def finding_hint(code: str) -> str:
    return FINDING_HINTS.get(code, FINDING_HINT_DEFAULT)


def _item(kind: str, who: Side, text_zh: str, anchor: str, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "who": who, "text_zh": text_zh, "anchor": anchor, **extra}


def _unreadable_item(section: str, what_zh: str) -> dict[str, Any]:
    """The platform's item for a report section (``quality``, ``findings``) it could not read."""
    return _item(
        f"{section}_unreadable", "platform", f"{what_zh}无法读取：{PLATFORM_ZH}。", f"#{section}"
    )


def _failed_item(t: dict[str, Any]) -> dict[str, Any]:
    kind = str(t.get("failure_kind") or failures.ERROR)
    name = t["table"]
    if side(kind) == "platform":
        return _item(
            "platform_fault",
            "platform",
            f"{name} 本晚没有加载（{t.get('failure_kind_zh', '')}）：{PLATFORM_ZH}，"
            "无需贵单位处理；恢复后平台会重新加载。",
            "#reasons",
            table=name,
            failure_kind=kind,
        )
    words = {
        failures.SOURCE_UNREACHABLE: "平台无法连接贵单位的数据库，请检查数据库服务、网络和对接账号",
        failures.SCHEMA_CHANGE: "源表结构变化，请恢复原表结构，或通知平台同步更新对接配置",
        failures.QUALITY_GATE: "这批数据未通过质量检查、本晚没有发布，请按“质量检查”中未通过的项目核对数据",
    }[kind]
    return _item(
        "table_failed",
        "department",
        f"{name} 本晚没有加载：{words}。",
        "#reasons",
        table=name,
        failure_kind=kind,
    )


def todo(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every problem of the night, who has to act on it and where the page shows it.

    Each item: ``kind`` (``rejected_rows``, ``table_failed``, ``platform_fault``,
    ``quality_gate``, ``findings``, ``problems_overdue``, ``schema_change``, ``stale``,
    ``unreconciled``, ``quality_unreadable``, ``findings_unreadable``,
    ``problems_unreadable``), ``who`` (``department`` or ``platform``),
    ``text_zh``, ``anchor`` (the section of index.html), and ``table``, ``count``,
    ``file`` where they apply.
    """
    items: list[dict[str, Any]] = []
    tables = report.get("tables") or []
    totals = report.get("totals") or {}
    failed = [t for t in tables if t.get("status") == "failed"]
    for t in failed:
        items.append(_failed_item(t))
    rejected = int(totals.get("rows_rejected") or 0)
    if rejected:
        lines = int(report.get("rejected_csv_lines") or 0)
        items.append(
            _item(
                "rejected_rows",
                "department",
                f"{rejected:,} 行数据有误被拒收（{lines:,} 处问题）：下载 rejected.csv，按“修改建议”"
                "在贵单位系统中更正，下一晚会自动重新加载。",
                "#rejections",
                count=rejected,
                file="rejected.csv",
            )
        )
    quality = report.get("quality") or {}
    if quality.get("available") and quality.get("error"):
        items.append(_unreadable_item("quality", "质量检查结果"))
    elif quality.get("available"):
        stopped = {t["table"] for t in failed if t.get("failure_kind") == failures.QUALITY_GATE}
        open_suites = [
            s
            for s in quality.get("suites") or []
            if not s.get("success") and s.get("table") not in stopped
        ]
        if open_suites:
            checks = sum(len(s.get("failed_expectations") or []) for s in open_suites)
            items.append(
                _item(
                    "quality_gate",
                    "department",
                    f"质量检查有 {len(open_suites)} 组未通过（{checks} 项检查）：请按“质量检查”"
                    "中的说明核对数据。",
                    "#quality",
                    count=len(open_suites),
                )
            )
    findings = report.get("findings") or {}
    if findings.get("available") and findings.get("error"):
        items.append(_unreadable_item("findings", "跨部门比对结果"))
    elif int(findings.get("total") or 0):
        n = int(findings["total"])
        items.append(
            _item(
                "findings",
                "department",
                f"{n:,} 条数据与权威部门的数据不一致：下载 findings.csv（全部 {n:,} 条，"
                "身份证号码已脱敏），按“处理建议”核对更正。",
                "#findings",
                count=n,
                file="findings.csv",
            )
        )
    problems = report.get("problems") or {}
    if problems.get("available") and problems.get("error"):
        items.append(_unreadable_item("problems", "问题台账"))
    elif int(problems.get("overdue") or 0) or int(problems.get("fix_failed") or 0):
        n, failed_fixes = int(problems.get("overdue") or 0), int(problems.get("fix_failed") or 0)
        words = [f"{n:,} 个问题已超过整改期限"] if n else []
        if failed_fixes:
            words.append(f"{failed_fixes:,} 个答复“已整改”的问题次日仍然存在")
        workbook = "下载问题数据反馈表 problems.xlsx，" if report.get("workbook_problems") else ""
        items.append(
            _item(
                "problems_overdue",
                "department",
                f"{'，'.join(words)}：请尽快在源系统中整改；{workbook}对每个问题填写答复"
                "（已整改 / 有异议 / 无法整改）后交回平台。",
                "#problems",
                count=n + failed_fixes,
                **({"file": "problems.xlsx"} if workbook else {}),
            )
        )
    changed = [t for t in tables if t.get("schema_changes")]
    if changed:
        n = sum(len(t["schema_changes"]) for t in changed)
        items.append(
            _item(
                "schema_change",
                "department",
                f"源表有 {n} 处字段变化（{'、'.join(t['table'] for t in changed)}）：如是有意调整，"
                "请通知平台同步更新对接配置；如不是，请恢复原表结构。",
                "#schema-changes",
                count=n,
            )
        )
    stale = [t for t in tables if t.get("stale")]
    if stale:
        items.append(
            _item(
                "stale",
                "department",
                f"{len(stale)} 张表的数据更新时间偏旧（{'、'.join(t['table'] for t in stale)}）："
                "请确认数据是否按时同步。",
                "#freshness",
                count=len(stale),
            )
        )
    loaded = [t for t in tables if t.get("status") == "success"]
    if any(not t.get("reconciled", True) for t in loaded):
        items.append(
            _item(
                "unreconciled",
                "platform",
                f"数量核对不一致：{PLATFORM_ZH}。",
                "#tables",
            )
        )
    return items


def headline(report: dict[str, Any], items: list[dict[str, Any]]) -> str:
    """``failed`` / ``partial`` from the load status; a night that loaded every table is
    ``success`` only when ``items`` (its to-do list) is empty, else ``action_needed``."""
    status = report.get("status")
    if status in ("failed", "partial"):
        return str(status)
    return "action_needed" if items else "success"


def verdict(report: dict[str, Any]) -> dict[str, Any]:
    """The keys report.json gains: ``headline``, ``headline_zh``, ``platform_fault`` (the
    platform is at fault for some of the night) and ``todo``."""
    items = todo(report)
    code = headline(report, items)
    platform = any(i["who"] == "platform" for i in items)
    text = HEADLINES[code]
    if (
        code in ("failed", "partial")
        and platform
        and not any(i["kind"] == "table_failed" for i in items)
    ):
        text += "（平台原因）"
    return {"headline": code, "headline_zh": text, "platform_fault": platform, "todo": items}

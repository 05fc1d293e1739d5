"""The HTML of the reports: a department's night (``index.html``) and the operators' overview.

Turns report.json facts into what the page shows (Chinese labels, charts as inline SVG) and
renders ``datacloud/templates`` with Jinja2, autoescaping on. No raw value of a rejected row
reaches the page: only counts, rule codes, masked examples and masked error messages.
The pages load nothing: no script, stylesheet, font or image outside the file.
"""

from __future__ import annotations

import posixpath
import re
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from datacloud import charts, failures, report_verdict
from datacloud.audit_anchors import latest_anchors
from datacloud.business_day import SHANGHAI
from datacloud.config import ConfigError, Department, load_departments
from datacloud.consistency import FINDINGS
from datacloud.masking import mask_text
from datacloud.paths import StorageRoot
from datacloud.problems import RESPONSE_ZH
from datacloud.problems import STATUS_ZH as PROBLEM_STATUS_ZH
from datacloud.quality_words import FIELD_ZH
from datacloud.report_sources import night_range, read_report
from transforms.rules import RULES

TEMPLATES = Path(__file__).parent / "templates"
HISTORY_NIGHTS = 30
SHORT_ZH_MAX = 24
COLORS = {"in": "#1f5fa8", "accepted": "#2e7d4f", "rejected": "#c0392b", "new": "#8e5b00"}
CHANGE_ZH = {"added": "新增字段", "dropped": "删除字段", "type_changed": "字段类型变化"}
PLATFORM = report_verdict.PLATFORM_ZH
KIND_ADVICE = {
    "source_unreachable": "平台无法连接贵单位的数据库。请检查数据库服务、网络和对接账号是否正常；"
    "恢复后，平台会在下一晚自动重新抽取。",
    "schema_change": "源表的字段与约定的不一致（新增、删除或改变了类型）。如是有意调整，"
    "请联系平台同步更新对接配置；如不是，请恢复原表结构。",
    "quality_gate": "这批数据整体未通过质量检查（例如行数骤减、有效率过低），本晚没有发布。"
    "请查看下方“质量检查”中未通过的项目。",
    "error": f"平台处理这张表时出错（例如平台的对接配置有误或程序故障）：{PLATFORM}，"
    "无需贵单位处理；修复后平台会重新加载。",
    "not_run": f"平台的任务没有执行到这张表（例如平台缺少连接配置或前面的步骤出错）：{PLATFORM}，"
    "无需贵单位处理；修复后平台会重新加载。",
}
GLYPHS = {"success": "✓", "action_needed": "△", "partial": "!", "failed": "✗"}


def short_zh(code: str) -> str:
    """A rule's Chinese message cut to its first clause, without parentheses (for chart labels)."""
    r = RULES.get(code)
    if r is None:
        return code
    text = re.split("[：，。；]", re.sub("（[^）]*）", "", r.zh))[0]
    return text if len(text) <= SHORT_ZH_MAX else text[: SHORT_ZH_MAX - 1] + "…"


def description_zh(text: str) -> str:
    """The Chinese part of a table description ("常住人口 residents" -> "常住人口")."""
    head = re.match(r"[^A-Za-z]*", text)
    return (head.group(0).strip() if head else "") or text


def _rule_rows(counts: dict[str, int]) -> list[dict[str, Any]]:
    rows = []
    for code, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        r = RULES.get(code)
        rows.append(
            {
                "code": code,
                "short": short_zh(code),
                "zh": r.zh if r else code,
                "hint": r.hint_zh if r else "",
                "count": n,
            }
        )
    return rows


def _summed(tables: list[dict[str, Any]], key: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in tables:
        for code, n in (t.get(key) or {}).items():
            out[code] = out.get(code, 0) + int(n)
    return out


def _date_zh(d: date) -> str:
    return f"{d.year}年{d.month}月{d.day}日"


def _generated_zh(iso: str) -> str:
    """A timestamp with offset as Beijing time, in Chinese."""
    t = datetime.fromisoformat(iso)
    if t.tzinfo is not None:
        t = t.astimezone(SHANGHAI)
    return f"{t.year}年{t.month}月{t.day}日 {t:%H:%M}（北京时间）"


def _time_zh(iso: str | None) -> str:
    try:
        t = datetime.fromisoformat(iso) if iso else None
    except ValueError:
        return str(iso)
    if t is None:
        return "—"
    return f"{t.year}年{t.month}月{t.day}日 {t:%H:%M}"


def _headline(rep: dict[str, Any] | None) -> tuple[str | None, str]:
    """A night's headline and its words; a report written before headlines existed shows its
    load status."""
    if rep is None:
        return None, "无报告"
    if rep.get("headline") in report_verdict.HEADLINES:
        return str(rep["headline"]), str(rep.get("headline_zh") or "")
    return rep.get("status"), str(rep.get("status_zh", ""))


def _history(
    root: StorageRoot, dept: str, ds: date, current: dict[str, Any]
) -> list[dict[str, Any]]:
    rows = []
    for night in night_range(ds, HISTORY_NIGHTS):
        rep = current if night == ds else read_report(root, dept, night)
        loaded = rep is not None and rep.get("status") in ("success", "partial")
        totals = (rep or {}).get("totals") or {}
        status, status_zh = _headline(rep)
        tracked = (
            ((rep or {}).get("problems") or {}) if night != ds else (current.get("problems") or {})
        )
        # a night's problem figures: those of its own tracking night only (the department
        # DAG's report, written before tracking, shows the night before: a gap here)
        tracked = tracked if tracked.get("tracked_night") == night.isoformat() else {}
        rows.append(
            {
                "night": night,
                "status": status,
                "status_zh": status_zh,
                "problems_open": tracked.get("open"),
                "problems_overdue": tracked.get("overdue"),
                "problems_new": tracked.get("new_tonight"),
                "problems_fixed": tracked.get("fixed_tonight"),
                "rows_in": totals.get("rows_in") if loaded else None,
                "rows_accepted": totals.get("rows_accepted") if loaded else None,
                "rows_rejected": totals.get("rows_rejected") if loaded else None,
                "href": _report_href(root, dept, night, "../../") if night != ds else None,
            }
        )
    return rows


def _report_href(root: StorageRoot, dept: str, night: date, base: str) -> str | None:
    """Link to a department night's report, relative to ``base`` (the reports/ folder)."""
    folder = root.report_dir(dept, night)
    for name in ("index.html", "report.json"):
        if (folder / name).is_file():
            return f"{base}{dept}/{night.isoformat()}/{name}"
    return None


def _charts(report: dict[str, Any], history: list[dict[str, Any]]) -> dict[str, Markup | None]:
    rejections = _rule_rows(_summed(report["tables"], "rejections_by_rule"))
    bars = [
        charts.Bar(
            r["short"], r["code"], r["count"], f"{r['code']}：{r['zh']} 共 {r['count']:,} 处"
        )
        for r in rejections
    ]
    nights = [h["night"] for h in history]
    first, last = _date_zh(nights[0]), _date_zh(nights[-1])
    volume = charts.line_chart(
        "chart-volume",
        f"最近{len(nights)}晚每晚进入和接收的行数",
        f"{first}至{last}，每晚从源库读取（进入）和通过检查（接收）的行数；"
        "没有报告或加载失败的夜晚留空。",
        nights,
        [
            charts.Series("进入", COLORS["in"], [h["rows_in"] for h in history]),
            charts.Series("接收", COLORS["accepted"], [h["rows_accepted"] for h in history], "6 4"),
        ],
    )
    rejected = charts.line_chart(
        "chart-rejected",
        f"最近{len(nights)}晚每晚拒收的行数",
        f"{first}至{last}，每晚因数据有误被拒收的行数；没有报告或加载失败的夜晚留空。",
        nights,
        [charts.Series("拒收", COLORS["rejected"], [h["rows_rejected"] for h in history])],
        height=200,
    )
    bar = (
        charts.bar_chart(
            "chart-rejections",
            "本晚拒收原因（按规则统计问题数）",
            "；".join(f"{b.label}（{b.code}）{b.value:,} 处" for b in bars),
            bars,
        )
        if bars
        else None
    )
    problems = charts.line_chart(
        "chart-problems",
        f"最近{len(nights)}晚的问题整改情况",
        f"{first}至{last}，每晚未整改（含重新出现）、逾期、新发现和已整改的问题数；"
        "当晚没有问题台账的夜晚留空。",
        nights,
        [
            charts.Series("未整改", COLORS["in"], [h["problems_open"] for h in history]),
            charts.Series("逾期", COLORS["rejected"], [h["problems_overdue"] for h in history]),
            charts.Series("新发现", COLORS["new"], [h["problems_new"] for h in history], "6 4"),
            charts.Series(
                "已整改", COLORS["accepted"], [h["problems_fixed"] for h in history], "2 3"
            ),
        ],
        height=220,
    )
    return {
        "rejections": bar,
        "volume": volume,
        "rejected": rejected,
        "problems": problems if (report.get("problems") or {}).get("available") else None,
    }


def _data_docs_href(data_docs: str | None) -> str | None:
    """A path relative to the storage root, as a link from reports/<dept>/<date>/index.html."""
    return None if not data_docs else quote(posixpath.join("../../..", data_docs))


def _tables_view(report: dict[str, Any]) -> list[dict[str, Any]]:
    ds = date.fromisoformat(report["business_date"])
    out = []
    for t in report["tables"]:
        view = dict(t)
        view["difference"] = (
            t["rows_in"] - t["rows_accepted"] - t["rows_rejected"] - t["rows_deduplicated"]
        )
        view["latest_zh"] = _time_zh(t.get("latest_source_update"))
        view["advice"] = KIND_ADVICE.get(t.get("failure_kind", ""), "")
        view["platform"] = (
            t.get("status") == "failed" and report_verdict.side(t.get("failure_kind")) == "platform"
        )
        view["error"] = mask_text(t["error"]) if t.get("error") else None
        view["business_date_zh"] = _date_zh(ds)
        view["description"] = description_zh(t.get("description") or "")
        out.append(view)
    return out


def _masked_output(value: Any) -> Any:
    """Every value the templates print passes here: ID and mobile numbers masked, last line of defence."""
    if isinstance(value, Markup):
        return Markup(mask_text(str(value)))
    return mask_text(value) if isinstance(value, str) else value


@cache
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"], default_for_string=True, default=True),
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_masked_output,
    )
    env.filters["num"] = lambda n: "—" if n is None else charts.fmt(n)
    env.filters["field_zh"] = lambda f: FIELD_ZH.get(f, f) if isinstance(f, str) else f
    env.filters["date_zh"] = _date_zh
    env.filters["generated_zh"] = _generated_zh
    env.filters["mmdd"] = lambda d: f"{d.month:02d}-{d.day:02d}"
    return env


def department_names() -> dict[str, str]:
    try:
        return {d.code: d.name for d in load_departments()}
    except (ConfigError, OSError):
        return {}


def render_department(root: StorageRoot, report: dict[str, Any]) -> str:
    """The HTML of one department night from its report.json facts."""
    ds = date.fromisoformat(report["business_date"])
    history = _history(root, report["department"], ds, report)
    quality = dict(report.get("quality") or {"available": False})
    for suite in quality.get("suites") or []:
        suite["href"] = _data_docs_href(suite.get("data_docs"))
    tables = _tables_view(report)
    return (
        _environment()
        .get_template("report.html")
        .render(
            r=report,
            ds=ds,
            tables=tables,
            failed=[t for t in tables if t["status"] == "failed"],
            rejections=_rule_rows(_summed(report["tables"], "rejections_by_rule")),
            warnings=_rule_rows(_summed(report["tables"], "warnings_by_rule")),
            issue_total=sum(_summed(report["tables"], "rejections_by_rule").values()),
            by_field=[
                {**f, "table": t["table"], "short": short_zh(f["rule_code"])}
                for t in report["tables"]
                for f in t.get("rejections_by_field") or []
            ],
            schema_changes=[
                {**c, "table": t["table"], "change_zh": CHANGE_ZH.get(c.get("change", ""), "变化")}
                for t in report["tables"]
                for c in t.get("schema_changes") or []
            ],
            stale=[t for t in tables if t.get("stale")],
            charts=_charts(report, history),
            history=history,
            quality=quality,
            findings=report.get("findings") or {"available": False},
            problems=_problems_view(report),
            dept_names=department_names(),
            rules=RULES,
            todo=report.get("todo") or [],
            glyphs=GLYPHS,
            help=_help(),
        )
    )


# the 表 column of a problem: a cross-department finding's "table" is the comparison itself
PROBLEM_TABLE_ZH = {"consistency": "跨部门比对"}
WEEKDAYS_ZH = "一二三四五六日"


def _problem_short(code: str) -> str:
    """A problem's rule in a clerk's words: the rule's short label, a finding's message."""
    if code in RULES:
        return short_zh(code)
    finding = FINDINGS.get(code)
    return finding.zh if finding is not None else code


def _weekday_date_zh(d: date) -> str:
    """2026年11月27日（星期五）: a deadline with its weekday (make-up Saturdays are worked)."""
    return f"{_date_zh(d)}（星期{WEEKDAYS_ZH[d.weekday()]}）"


def _problems_view(report: dict[str, Any]) -> dict[str, Any]:
    """The 问题整改 section's facts with Chinese words for statuses and responses."""
    view = dict(report.get("problems") or {"available": False})
    if not view.get("available") or view.get("error"):
        return view
    for key in ("overdue_list", "disputed_list", "fix_failed_list"):
        view[key] = [
            {
                **item,
                "status_zh": PROBLEM_STATUS_ZH.get(item["status"], item["status"]),
                "response_zh": RESPONSE_ZH.get(item.get("response") or "", "—"),
                "short": _problem_short(item["rule"]),
                "table_zh": PROBLEM_TABLE_ZH.get(item["table"], item["table"]),
            }
            for item in view.get(key) or []
        ]
    rate = view.get("closure_rate")
    view["closure_rate_zh"] = "—" if rate is None else f"{rate * 100:.1f}%"
    age = view.get("median_age_days")
    view["median_age_zh"] = "—" if age is None else f"{age:g} 天"
    view["tracked_night_date"] = date.fromisoformat(view["tracked_night"])
    view["due_next_zh"] = [
        {"due_zh": _weekday_date_zh(date.fromisoformat(d["due"])), "count": d["count"]}
        for d in view.get("due_next") or []
    ]
    view["fallback_years_zh"] = "、".join(f"{y} 年" for y in view["calendar"]["fallback_years"])
    return view


def _help() -> dict[str, Any]:
    """What the 说明 section explains: headlines, failure kinds and whose they are, findings
    and rules with their fix hints."""
    return {
        "headlines": list(report_verdict.HEADLINES.items()),
        "headline_help": report_verdict.HEADLINE_HELP,
        "kinds": [
            {
                "kind": k,
                "zh": zh,
                "side": report_verdict.side(k),
                "advice": KIND_ADVICE.get(k, ""),
            }
            for k, zh in failures.KINDS.items()
        ],
        "findings": [
            {"code": f.code, "zh": f.zh, "hint": report_verdict.finding_hint(f.code)}
            for f in FINDINGS.values()
        ],
        "rules": list(RULES.values()),
    }


def problem_ranking(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The departments ranked by tonight's overdue problems (then open problems, then code):
    the overview's 逾期问题排名. A department without a problem table tonight comes last."""
    ranked = []
    for row in rows:
        p = row["tonight"]["problems"]
        tracked = bool(p.get("available")) and not p.get("error")
        ranked.append(
            {
                "code": row["code"],
                "name": row["name"],
                "href": row["tonight"]["href"],
                "tracked": tracked,
                **{
                    k: p.get(k) if tracked else None
                    for k in ("overdue", "open", "disputed", "fix_failed", "closure_rate")
                },
            }
        )
    ranked.sort(
        key=lambda r: (not r["tracked"], -(r["overdue"] or 0), -(r["open"] or 0), r["code"])
    )
    return ranked


def render_overview(root: StorageRoot, depts: list[Department], ds: date, nights: int) -> str:
    """The HTML of the operators' overview: departments × nights, each cell a link."""
    dates = night_range(ds, nights)
    rows: list[dict[str, Any]] = []
    for dept in depts:
        cells: list[dict[str, Any]] = []
        for night in dates:
            rep = read_report(root, dept.code, night)
            totals = (rep or {}).get("totals") or {}
            status, status_zh = _headline(rep)
            cells.append(
                {
                    "night": night,
                    "status": status,
                    "status_zh": status_zh,
                    "href": _report_href(root, dept.code, night, ""),
                    "rows_in": totals.get("rows_in"),
                    "rows_rejected": totals.get("rows_rejected"),
                    "problems": (rep or {}).get("problems") or {},
                }
            )
        rows.append({"code": dept.code, "name": dept.name, "cells": cells, "tonight": cells[-1]})
    counts = {
        s: sum(1 for r in rows if r["tonight"]["status"] == s)
        for s in ("success", "action_needed", "partial", "failed", None)
    }
    return (
        _environment()
        .get_template("overview.html")
        .render(
            ds=ds,
            dates=dates,
            rows=rows,
            ranking=problem_ranking(rows),
            counts=counts,
            anchors=latest_anchors(root),
            generated_at=datetime.now().astimezone().isoformat(timespec="seconds"),
        )
    )

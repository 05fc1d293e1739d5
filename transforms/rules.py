"""Every rule code a normaliser or the pipeline can emit, with messages for departments."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal

Severity = Literal["reject", "warn"]


@dataclass(frozen=True)
class Rule:
    """One data-quality rule: a stable code, its severity and what to tell the department."""

    code: str
    severity: Severity
    field_kind: str
    zh: str
    en: str
    hint_zh: str


FIELD_KINDS: dict[str, str] = {
    "id_number": "公民身份号码 ID number",
    "credit_code": "统一社会信用代码 Unified social credit code",
    "name": "姓名 Person name",
    "sex": "性别 Sex",
    "date": "日期 Date",
    "phone": "电话 Phone",
    "capital": "注册资本 Registered capital",
    "code": "代码 Code tables",
    "text": "文本 Text (any text column)",
    "row": "整行 Whole row",
}

_RULES: tuple[Rule, ...] = (
    # 公民身份号码 GB 11643-1999
    Rule(
        "ID_LENGTH",
        "reject",
        "id_number",
        "身份证号码位数不对：应为18位（或15位旧号码）。",
        "The ID number has the wrong length: it must have 18 characters "
        "(or 15 digits for an old-style number).",
        "请对照身份证原件核对号码，补全或删去多录的字符。",
    ),
    Rule(
        "ID_CHARS",
        "reject",
        "id_number",
        "身份证号码含有不允许的字符：前17位只能是数字，最后一位只能是数字或X。",
        "The ID number contains invalid characters: the first 17 must be digits, "
        "the last a digit or X.",
        "请检查是否误录了字母、汉字或其他符号，按身份证原件更正。",
    ),
    Rule(
        "ID_CHECK_DIGIT",
        "reject",
        "id_number",
        "身份证号码最后一位校验码与前17位不符，号码中很可能有录错的数字。",
        "The check character does not match the first 17 digits: most likely a digit was mistyped.",
        "请对照身份证原件逐位核对号码并更正。",
    ),
    Rule(
        "ID_BIRTH_DATE",
        "reject",
        "id_number",
        "身份证号码中的出生日期（第7至14位）不存在、早于1900年或晚于业务日期。",
        "The birth date inside the ID number (digits 7-14) does not exist, "
        "is before 1900 or after the business date.",
        "请对照身份证原件核对第7至14位（出生年月日）并更正。",
    ),
    Rule(
        "ID_PROVINCE",
        "reject",
        "id_number",
        "身份证号码前两位不是有效的省级行政区划代码。",
        "The first two digits are not a valid province code (GB/T 2260).",
        "请对照身份证原件核对号码前两位并更正。",
    ),
    Rule(
        "ID_LEGACY_15",
        "warn",
        "id_number",
        "这是15位旧身份证号码，已按国家标准自动升级为18位。",
        "An old 15-digit ID number; it was upgraded to the 18-digit form.",
        "请在业务系统中把该人员的身份证号码更新为18位号码。",
    ),
    Rule(
        "ID_COUNTY_HISTORICAL",
        "warn",
        "id_number",
        "身份证号码前6位地址码不在现行行政区划代码表中（多为已撤并的县区），号码本身有效。",
        "The address code (first six digits) is not in the current division table, "
        "usually a county merged since; the number itself is valid.",
        "无需修改：身份证号码终身不变，此条仅供核对。",
    ),
    # 统一社会信用代码 GB 32100-2015
    Rule(
        "CC_LENGTH",
        "reject",
        "credit_code",
        "统一社会信用代码位数不对：应为18位。",
        "The credit code has the wrong length: it must have 18 characters.",
        "请对照营业执照或登记证书核对代码，补全或删去多录的字符。",
    ),
    Rule(
        "CC_CHARS",
        "reject",
        "credit_code",
        "统一社会信用代码含有不允许的字符：只能是数字和大写字母（不含I、O、S、V、Z）。",
        "The credit code contains invalid characters: only digits and capital letters "
        "except I, O, S, V, Z are allowed.",
        "请检查是否把数字0、1、5、2误录成字母O、I、S、Z，按证照更正。",
    ),
    Rule(
        "CC_AUTHORITY_TYPE",
        "reject",
        "credit_code",
        "统一社会信用代码第1位（登记管理部门）和第2位（机构类别）不是标准规定的组合。",
        "The first two characters (registration authority and entity type) "
        "are not a combination the standard defines.",
        "请对照证照核对代码前两位并更正。",
    ),
    Rule(
        "CC_DIVISION",
        "reject",
        "credit_code",
        "统一社会信用代码第3至8位不是有效的行政区划代码。",
        "Characters 3-8 are not a valid administrative division code.",
        "请对照证照核对代码第3至8位并更正。",
    ),
    Rule(
        "CC_ORG_CODE",
        "reject",
        "credit_code",
        "组织机构代码（统一社会信用代码第9至17位，或9位旧组织机构代码）校验不通过。",
        "The organisation code (characters 9-17, or an old 9-character organisation code) "
        "fails its GB 11714 check.",
        "请对照证照核对组织机构代码部分并更正。",
    ),
    Rule(
        "CC_CHECK_CHAR",
        "reject",
        "credit_code",
        "统一社会信用代码最后一位校验码与前17位不符，代码中很可能有录错的字符。",
        "The check character does not match the first 17 characters: "
        "most likely a character was mistyped.",
        "请对照营业执照或登记证书逐位核对代码并更正。",
    ),
    Rule(
        "CC_REG_NUMBER_CHECK",
        "reject",
        "credit_code",
        "15位工商注册号的校验位不符，号码中很可能有录错的数字。",
        "The 15-digit business registration number fails its check digit: "
        "most likely a digit was mistyped.",
        "请核对注册号，或直接改填该主体的18位统一社会信用代码。",
    ),
    Rule(
        "CC_NOT_REG_NUMBER",
        "reject",
        "credit_code",
        "此处应填写15位工商注册号，填写的不是注册号（位数或字符不对，或填的是统一社会信用代码）。",
        "A 15-digit business registration number (注册号) is expected here; the value is not "
        "one (wrong length or characters, or a credit code).",
        "请核对该主体换照前的15位工商注册号并更正。",
    ),
    Rule(
        "CC_LEGACY_REG_NUMBER",
        "warn",
        "credit_code",
        "填写的是15位旧工商注册号，不是统一社会信用代码；已作为注册号保留。",
        "A 15-digit business registration number was given instead of a credit code; "
        "it is kept as the registration number.",
        "请在业务系统中补录该主体的18位统一社会信用代码。",
    ),
    Rule(
        "CC_LEGACY_ORG_CODE",
        "warn",
        "credit_code",
        "填写的是9位旧组织机构代码，不是统一社会信用代码；已作为组织机构代码保留。",
        "A 9-character organisation code was given instead of a credit code; "
        "it is kept as the organisation code.",
        "请在业务系统中补录该主体的18位统一社会信用代码。",
    ),
    # 姓名
    Rule(
        "NAME_EMPTY",
        "reject",
        "name",
        "姓名为空：去掉空格和符号后没有内容。",
        "The name is empty after removing spaces and punctuation.",
        "请按证件补录姓名。",
    ),
    Rule(
        "NAME_CHARS",
        "reject",
        "name",
        "姓名中含有数字。",
        "The name contains digits.",
        "请检查是否把其他字段（如证件号、电话）录进了姓名栏，按证件更正。",
    ),
    # 性别 GB/T 2261.1
    Rule(
        "SEX_UNKNOWN_VALUE",
        "warn",
        "sex",
        "性别取值无法识别，已置空（应为男、女或GB/T 2261.1代码0、1、2、9）。",
        "The sex value is not recognised and was set empty "
        "(expected 男/女 or the GB/T 2261.1 codes 0, 1, 2, 9).",
        "请在源系统中使用GB/T 2261.1代码或“男”“女”。",
    ),
    Rule(
        "SEX_ID_MISMATCH",
        "warn",
        "sex",
        "性别与身份证号码第17位（奇数为男、偶数为女）不一致。",
        "The sex does not match the 17th digit of the ID number (odd male, even female).",
        "请对照身份证原件核对性别或身份证号码。",
    ),
    # 日期
    Rule(
        "DATE_SENTINEL",
        "warn",
        "date",
        "日期是占位值（如0000-00-00、1900-01-01、9999-12-31），已视为空。",
        "The date is a placeholder (0000-00-00, 1900-01-01, 9999-12-31) and was set empty.",
        "日期未知时请在源系统中留空，不要填占位日期。",
    ),
    Rule(
        "DATE_UNPARSEABLE",
        "reject",
        "date",
        "日期格式无法识别。",
        "The date cannot be read.",
        "请使用“年-月-日”格式，例如1990-01-01。",
    ),
    Rule(
        "DATE_IMPOSSIBLE",
        "reject",
        "date",
        "日期不存在（例如2月30日、13月）。",
        "The date does not exist (e.g. 30 February or month 13).",
        "请对照原始材料更正日期。",
    ),
    Rule(
        "DATE_IN_FUTURE",
        "reject",
        "date",
        "日期晚于本次数据的业务日期。",
        "The date is after the business date of this load.",
        "请核对日期，常见原因是年份录错。",
    ),
    # 电话
    Rule(
        "PHONE_INVALID",
        "warn",
        "phone",
        "电话号码无效，已置空：手机应为1开头的11位数字，固定电话应为区号加7至8位号码。",
        "The phone number is invalid and was set empty: a mobile has 11 digits starting "
        "with 1, a landline an area code and 7-8 digits.",
        "请核对号码；固定电话请带区号，例如0571-88888888。",
    ),
    # 注册资本
    Rule(
        "CAPITAL_CURRENCY",
        "warn",
        "capital",
        "注册资本不是人民币，未作换算，已置空。",
        "The registered capital is not in CNY; it was not converted and was set empty.",
        "无需修改；如有人民币金额，请另行提供。",
    ),
    Rule(
        "CAPITAL_UNPARSEABLE",
        "warn",
        "capital",
        "注册资本无法识别为金额，已置空（应为数字加单位，如“500万元”）。",
        "The registered capital cannot be read as an amount and was set empty "
        "(expected a number with a unit, e.g. 500万元).",
        "请填写数字加单位，例如“500万元”或“300000元”。",
    ),
    # 代码表
    Rule(
        "ETHNICITY_UNKNOWN",
        "warn",
        "code",
        "民族无法识别，已置空（应为GB/T 3304的民族名称或两位代码）。",
        "The ethnicity is not recognised and was set empty "
        "(expected a GB/T 3304 name or two-digit code).",
        "请使用GB/T 3304民族代码，例如01（汉族）。",
    ),
    Rule(
        "DIVISION_UNKNOWN",
        "warn",
        "code",
        "行政区划代码不在现行GB/T 2260代码表中（可能已撤销，或录错）。",
        "The division code is not in the current GB/T 2260 table (retired, or mistyped).",
        "请核对代码，并改用现行行政区划代码。",
    ),
    # 文本：任何文本字段（姓名、名称、地址等）中的异常值
    Rule(
        "ENCODING_INVALID",
        "reject",
        "text",
        "内容含有按源库声明的字符编码无法解读的字节；问题清单中这些字节显示为“\\xNN”（前有�标记）。",
        "The value holds bytes that are not valid in the source's declared character encoding; "
        "the problem list shows each such byte as \\xNN after a � mark.",
        "请在源系统中按问题清单找到该记录，按原始材料重新录入该字段；"
        "如整库编码与声明不符，请告知数据平台更正声明的编码。",
    ),
    Rule(
        "TEXT_CONTROL_CHAR",
        "reject",
        "text",
        "内容含有不可见的控制字符（如NUL、其他C0/C1控制字符、零宽字符、BOM），"
        "问题清单中显示为“\\x00”“\\u200b”等形式。",
        "The value contains invisible control characters (NUL, other C0/C1 controls, "
        "zero-width characters, the BOM); the problem list shows them as \\x00, \\u200b, etc.",
        "请在源系统中删除这些不可见字符（常见于从网页或其他软件复制粘贴），再重新提供。",
    ),
    Rule(
        "TEXT_BIDI_CHAR",
        "reject",
        "text",
        "内容含有改变文字显示方向的控制字符（U+202A至U+202E、U+2066至U+2069），"
        "显示出来的内容可能与实际内容不同。",
        "The value contains bidirectional control characters (U+202A-U+202E, U+2066-U+2069): "
        "what is displayed may differ from what is stored.",
        "请在源系统中删除这些字符，按原始材料重新录入。",
    ),
    Rule(
        "TEXT_TOO_LONG",
        "reject",
        "text",
        "内容超过该字段允许的最大长度（姓名50字，企业名称100字，地址等其他文本200字）。",
        "The value is longer than the field allows (person name 50 characters, enterprise "
        "name 100, addresses and other text 200).",
        "请检查是否把多个字段或多条记录录进了同一栏，按原始材料更正。",
    ),
    Rule(
        "TEXT_MARKUP",
        "reject",
        "text",
        "姓名或名称中含有网页标记或脚本（如<script>、<b>、&lt;），不是真实的姓名或名称。",
        "The person or enterprise name contains markup or script (e.g. <script>, <b>, &lt;); "
        "it is not a real name.",
        "请按证件或证照重新录入姓名或名称。",
    ),
    Rule(
        "TEXT_NO_LETTER",
        "reject",
        "text",
        "企业名称中没有任何文字（汉字或字母），只有数字或符号。",
        "The enterprise name has no letter at all (no Chinese character or Latin letter), "
        "only digits or symbols.",
        "请按营业执照或登记证书补录名称。",
    ),
    # 整行
    Rule(
        "KEY_MISSING",
        "reject",
        "row",
        "记录没有业务主键，无法归集：自然人缺少公民身份号码，或企业既无统一社会信用代码也无注册号。",
        "The record has no business key and cannot be matched: a person without an ID "
        "number, or an enterprise with neither a credit code nor a registration number.",
        "请补录公民身份号码，或统一社会信用代码（无代码的老企业填15位注册号）。",
    ),
    Rule(
        "REQUIRED_MISSING",
        "reject",
        "row",
        "必填字段为空。",
        "A required field is empty.",
        "请在源系统中补录该字段。",
    ),
    Rule(
        "DUPLICATE_KEY",
        "warn",
        "row",
        "与另一行的业务主键相同，已去重，只保留一行。",
        "Another row has the same business key; the duplicates were merged into one row.",
        "请在源系统中检查并合并重复记录。",
    ),
)

RULES: dict[str, Rule] = {r.code: r for r in _RULES}

_SEVERITY_ZH = {"reject": "reject 拒收", "warn": "warn 警告"}


def rule(code: str) -> Rule:
    """Return the rule with this code; KeyError naming close matches when it is unknown."""
    try:
        return RULES[code]
    except KeyError:
        close = difflib.get_close_matches(code, list(RULES), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise KeyError(
            f"unknown rule code {code!r}.{hint} Known codes: {', '.join(sorted(RULES))}"
        ) from None


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


NOTES: tuple[str, ...] = (
    "- **长度上限 Length limits** (`TEXT_TOO_LONG`, characters after cleaning; a column's "
    "`options: {max_length: N}` overrides): person name 50 — issue 14's limit for 姓名, above "
    "real names (transliterated names with · rarely exceed 20 characters) and within the "
    "sources' name columns (`VARCHAR(64)` in `sql/sample/*.sql`); enterprise name 100 — issue "
    "14's limit, above real names with their branch (rarely over 60) though the sources "
    "declare `VARCHAR(200)`; other text (addresses, 坐落, 登记机关 …) 200 — the widest text "
    "column the sources declare (`hjdz`, `zs`, `zl`, `dwmc` are `VARCHAR(200)`).",
    "- **控制字符 Control characters** (`TEXT_CONTROL_CHAR`): every C0 character left after "
    "cleaning (cleaning turns tabs and line breaks into a space), DEL, C1 (U+0080-U+009F), "
    "U+200B-U+200F, U+2028, U+2029, U+2060-U+2064 and the BOM U+FEFF. **Bidi** "
    "(`TEXT_BIDI_CHAR`): U+061C, U+202A-U+202E, U+2066-U+2069. Checked in person names, "
    "enterprise names and text columns, and in `keep` columns holding text (not cleaned, so "
    "there a tab or line break counts too).",
    "- **标记 Markup** (`TEXT_MARKUP`): a person or enterprise name with `<`, `>` (full-width "
    "＜＞ included) or an HTML character reference such as `&lt;`. A person name with no letter "
    "at all is `NAME_EMPTY`; an enterprise name with none is `TEXT_NO_LETTER`.",
    "- **编码 Encoding** (`ENCODING_INVALID`): a byte the source's declared encoding "
    "(`source_encoding`, default UTF-8) cannot decode is kept as U+FFFD then `\\xNN` "
    "(e.g. `张�\\xFF`), so the row loads as rejected instead of failing the table; a value "
    "that already holds U+FFFD (bytes lost before it reached us) is rejected the same way.",
    "- **主键 Keys** (`KEY_MISSING`): a person needs `id_number`; an enterprise `credit_code` "
    "or `reg_number`. Rejected only when no key column has a rejection of its own.",
    "- 问题清单 rejected.csv 中，不可见字符显示为 `\\x00`、`\\u202e` 等；以 = + - @ 等开头的"
    "内容前加单引号 `'`，防止表格软件当作公式执行；超过32767字的内容被截断并注明原长度。 "
    "In rejected.csv invisible characters are shown escaped, a cell starting like a formula "
    "gets a leading `'`, and a cell over 32,767 characters is cut with a marker.",
)


def rules_markdown() -> str:
    """Render every rule as Markdown (the content of docs/rules.md), one table per field kind."""
    lines = [
        "# 数据质量规则 Data-quality rules",
        "",
        "本文件由 `transforms.rules.rules_markdown()` 生成，请勿手工修改。",
        "Generated from `transforms.rules.RULES`; do not edit by hand.",
        "",
        "- **reject 拒收**: 该行不入库，进入问题数据清单，请部门在源系统更正后重新提供。"
        " The row is quarantined.",
        "- **warn 警告**: 该行照常入库，相关字段可能被置空，请部门核对。"
        " The row is kept; the value may be emptied.",
    ]
    kinds = list(FIELD_KINDS) + sorted({r.field_kind for r in _RULES} - set(FIELD_KINDS))
    for kind in kinds:
        rules = [r for r in _RULES if r.field_kind == kind]
        if not rules:
            continue
        lines += [
            "",
            f"## {FIELD_KINDS.get(kind, kind)} (`{kind}`)",
            "",
            "| 代码 Code | 级别 Severity | 中文说明 | English | 修改建议 |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| `{r.code}` | {_SEVERITY_ZH[r.severity]} | {_cell(r.zh)} | {_cell(r.en)} "
            f"| {_cell(r.hint_zh)} |"
            for r in rules
        ]
    lines += ["", "## 说明 Notes", "", *NOTES]
    return "\n".join(lines) + "\n"

"""The department's problem feedback workbook (问题数据反馈表, ``.xlsx``).

``write_workbook(path, problems, dept)`` writes the department's open and reopened problems of
the problem table (docs/problems.md) as an Excel workbook next to rejected.csv: a first sheet
填写说明 (how to answer), then one sheet per table, one row per problem. The columns 问题编号,
表, 源主键（已脱敏）, 字段, 规则, 问题说明, 首次发现, 整改期限 and 状态 are locked (sheet
protection, the workbook's structure locked too); 答复 (a drop-down: 已整改 / 有异议 /
无法整改) and 说明 are the only cells a department can type in.

Personal information is masked as the report masks it (``datacloud.masking``): the person's ID
number (``person_key``) wherever it appears in the source key or the message, then every ID or
mobile number left in them (``mask_text``); every cell is then made safe as a rejected.csv
cell is (``sheet_cell``: ``datacloud.cells.safe_cell``): a formula start gets a leading
``'``, invisible characters are escaped, at most 32,767 characters; and it is written as
text, never as a formula.

A very hidden sheet ``_meta`` (not shown by Excel or LibreOffice, which cannot unhide it without
a macro) records the department, when the workbook was written, and the due date and status
each problem had then, so that ``datacloud.problem_responses`` can tell a column the department
edited from one the platform has changed since (a due date or status of a later night).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font, PatternFill, Protection
from openpyxl.utils import get_column_letter
from openpyxl.workbook.protection import WorkbookProtection
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from datacloud.atomic import replace_with
from datacloud.cells import safe_cell
from datacloud.masking import mask_id_number, mask_text

FORMAT = "datacloud-problems-1"
META_SHEET = "_meta"
HELP_SHEET = "填写说明"
# (problem table column or a derived key, header) of the locked columns, in sheet order
LOCKED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("problem_id", "问题编号"),
    ("table", "表"),
    ("source_key", "源主键（已脱敏）"),
    ("field", "字段"),
    ("rule", "规则"),
    ("message_zh", "问题说明"),
    ("first_seen", "首次发现"),
    ("due", "整改期限"),
    ("status", "状态"),
)
RESPONSE_HEADER = "答复"
NOTE_HEADER = "说明"
HEADERS: tuple[str, ...] = (*(h for _, h in LOCKED_COLUMNS), RESPONSE_HEADER, NOTE_HEADER)
RESPONSE_COLUMN = len(LOCKED_COLUMNS) + 1  # 1-based
NOTE_COLUMN = RESPONSE_COLUMN + 1
# the columns the platform may change after the workbook was written (a later night)
CHANGING_COLUMNS = frozenset({"due", "status"})
RESPONSES: dict[str, str] = {"已整改": "fixed", "有异议": "disputed", "无法整改": "cannot_fix"}
RESPONSE_LABELS: dict[str, str] = {v: k for k, v in RESPONSES.items()}
STATUS_ZH: dict[str, str] = {"open": "待整改", "reopened": "重新出现", "fixed": "已消除"}
OPEN_STATUSES = frozenset({"open", "reopened"})
_WIDTHS = (18, 22, 30, 16, 16, 48, 12, 12, 10, 12, 48)
_HEADER_FILL = PatternFill("solid", fgColor="DDDDDD")
_INPUT_FILL = PatternFill("solid", fgColor="FFF2CC")
_HELP = (
    "问题数据反馈表：请逐行在“答复”列选择 已整改 / 有异议 / 无法整改，并在“说明”列填写情况。",
    "已整改：已在源系统改正，平台当晚核对；仍不正确的将重新打开，并标注“答复已整改但仍存在”。",
    "有异议：认为数据本身正确，请在“说明”中写明理由（必填）；异议期间相关查询会提示该事实有争议。",
    "无法整改：请在“说明”中写明原因。",
    "灰色表头的列已锁定，请勿修改；不要增删工作表，不要在任何单元格中写公式。",
    "填好后交回平台：放入本部门的问题反馈收件箱文件夹，或通过平台的问题数据上传接口提交。文件名可以改；格式不对或改动了锁定列的表会整份退回并说明原因。",
    "个人信息已脱敏，只显示身份证号码前6位和后4位。",
)


# rejected.csv's rule (datacloud.cells), for the workbook's cells
sheet_cell = safe_cell


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _masked(value: Any, person_key: str | None, seen: dict[str, str] | None = None) -> str:
    """The text masked (``mask_text``) after the person's ID number; ``seen``: texts already
    masked in this workbook, for a column whose texts repeat (a rule's message)."""
    text = _text(value)
    if person_key and person_key.strip():
        text = text.replace(person_key.strip(), mask_id_number(person_key))
    if seen is None:
        return mask_text(text)
    masked = seen.get(text)
    if masked is None:
        masked = seen[text] = mask_text(text)
    return masked


def cells(row: Mapping[str, Any], messages: dict[str, str] | None = None) -> dict[str, str]:
    """The locked cells of one problem (a problem table row) exactly as the workbook shows them:
    masked where the report masks, each through ``sheet_cell``. ``messages``: the messages
    masked so far for this workbook (a few rule texts repeat over every problem; ``mask_text``
    is a pure function of the text, so a repeat is looked up instead of masked again)."""
    person_key = row.get("person_key")
    out: dict[str, str] = {}
    for column, _ in LOCKED_COLUMNS:
        value = row.get(column)
        if column == "message_zh":
            text = _masked(value, person_key, messages)
        elif column == "source_key":
            text = _masked(value, person_key)
        elif column == "status":
            text = STATUS_ZH.get(_text(value), _text(value))
        else:  # IDs, codes and dates: no personal data (a hex ID may look like a phone)
            text = _text(value)
        out[column] = sheet_cell(text)
    return out


def sheet_name(table: str) -> str:
    """The sheet of one table: its name, cut to Excel's 31 characters."""
    return table[:31]


def _protect(ws: Worksheet) -> None:
    ws.protection.sheet = True
    # the department may still widen columns and rows to read long messages
    ws.protection.formatColumns = False
    ws.protection.formatRows = False


WRITE_BATCH_ROWS = 8_192  # problems made Python objects (and cells) at a time when writing


def _open_sorted(problems: pa.Table, dept: str) -> pa.Table:
    """``dept``'s open and reopened problems as Arrow (the columns the workbook uses), by table,
    due date (none first), problem ID."""
    used = {"dept", "status", "person_key", *(column for column, _ in LOCKED_COLUMNS)}
    problems = problems.select([c for c in problems.column_names if c in used])
    if "dept" not in problems.column_names or "status" not in problems.column_names:
        return problems.slice(0, 0)
    chosen = pc.and_(
        pc.equal(problems["dept"], dept),
        pc.is_in(problems["status"], value_set=pa.array(sorted(OPEN_STATUSES), pa.string())),
    )
    rows = problems.filter(pc.fill_null(chosen, False))
    if not rows.num_rows:
        return rows
    # (str(table), _text(due), problem_id): a date's text sorts as the date, "" (null) first
    keys = pa.table(
        {
            "t": pc.cast(rows["table"], pa.string()),
            "d": pc.fill_null(pc.cast(rows["due"], pa.string()), ""),
            "p": rows["problem_id"],
        }
    )
    order = pc.sort_indices(
        keys, sort_keys=[("t", "ascending"), ("d", "ascending"), ("p", "ascending")]
    )
    return rows.take(order)


def _dimension(ws: Any, ref: str) -> None:
    """The ``<dimension>`` a write-only sheet does not know to write (its rows are yet to
    come): the one the in-memory sheet's cells give, as ``WorksheetWriter`` asks for it."""
    ws.calculate_dimension = lambda: ref


def _skip_empty_rows(ws: Any) -> None:
    """An empty row appended to a write-only sheet written as the in-memory sheet writes it:
    not at all (openpyxl writes ``<row r="n"></row>``). Call before the first append."""
    ws._get_writer()  # writes the sheet's top: the widths and dimension are set by now
    writer = ws._writer
    write_row = writer.write_row

    def write(xf: Any, row: Iterable[Any], row_idx: int) -> None:
        cells = list(row)
        if cells:
            write_row(xf, cells, row_idx)

    writer.write_row = write


def _styled(ws: Any, value: Any, **style: Any) -> Any:
    cell = WriteOnlyCell(ws, value=value)
    for name, v in style.items():
        setattr(cell, name, v)
    return cell


def _stream(path: Path, problems: pa.Table, dept: str) -> int:
    """The workbook written with openpyxl's write-only worksheets, a batch of problems at a
    time: the cells of every problem are never held together. Its saved parts are those of
    the same workbook built with ordinary worksheets (tests/workbook_in_memory.py)."""
    rows = _open_sorted(problems, dept)
    tables = (
        [str(t) for t in pc.cast(rows["table"], pa.string()).to_pylist()] if rows.num_rows else []
    )
    counts: dict[str, int] = {}
    for t in tables:
        counts[t] = counts.get(t, 0) + 1
    del tables
    names = [sheet_name(t) for t in counts]
    if len(set(names)) != len(names) or HELP_SHEET in names or META_SHEET in names:
        raise ValueError(f"department {dept}: table names do not give distinct sheet names")
    wb = Workbook(write_only=True)
    help_ws = wb.create_sheet(HELP_SHEET)
    _help_stream(help_ws, dept, counts)
    sheets = {t: wb.create_sheet(sheet_name(t)) for t in counts}
    meta = wb.create_sheet(META_SHEET)
    _dimension(meta, f"A1:C{rows.num_rows + 4}")
    for t, ws in sheets.items():
        _table_top(ws, counts[t])
    for line in (
        ["format", FORMAT],
        ["dept", dept],
        ["written_at", _now()],
        ["problem_id", "due", "status"],
    ):
        meta.append(line)
    messages: dict[str, str] = {}
    for batch in rows.to_batches(max_chunksize=WRITE_BATCH_ROWS):
        for row in batch.to_pylist():
            shown = cells(row, messages)
            ws = sheets[str(row["table"])]
            locked = [WriteOnlyCell(ws, value=shown[c]) for c, _ in LOCKED_COLUMNS]
            for c in locked:
                c.data_type = "s"
            response = _styled(ws, None, protection=Protection(locked=False), fill=_INPUT_FILL)
            note = _styled(
                ws,
                None,
                protection=Protection(locked=False),
                fill=_INPUT_FILL,
                alignment=Alignment(wrap_text=True),
            )
            ws.append([*locked, response, note])
            meta.append([shown["problem_id"], shown["due"], shown["status"]])
    meta.sheet_state = "veryHidden"
    _protect(meta)
    wb.security = WorkbookProtection(lockStructure=True)
    wb.active = 1 if counts else 0
    replace_with(path, lambda tmp: wb.save(tmp))
    return rows.num_rows


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _help_stream(ws: Any, dept: str, counts: dict[str, int]) -> None:
    """The 填写说明 sheet: the help text, then the number of open problems per table's sheet."""
    _dimension(ws, f"A1:A{len(_HELP) + 3 + max(1, len(counts))}")
    ws.column_dimensions["A"].width = 100
    _skip_empty_rows(ws)
    ws.append([_styled(ws, f"部门 {dept} 问题数据反馈表", font=Font(bold=True, size=14))])
    ws.append([])
    for line in _HELP:
        ws.append([line])
    ws.append([])
    if not counts:
        ws.append(["目前没有待整改的问题。"])
    for table, n in sorted(counts.items()):
        ws.append([f"工作表 {sheet_name(table)}：{n} 个待整改问题"])
    _protect(ws)


def _table_top(ws: Any, n: int) -> None:
    """A write-only table sheet's header, widths, frozen panes, drop-down and protection
    (before its rows: a write-only sheet writes them as it goes)."""
    _dimension(ws, f"A1:{get_column_letter(len(HEADERS))}{n + 1}")
    for col, width in enumerate(_WIDTHS, start=1):
        ws.column_dimensions[get_column_letter(col)].width = width
    ws.freeze_panes = "B2"
    ws.append(
        [
            _styled(
                ws,
                title,
                font=Font(bold=True),
                fill=_HEADER_FILL if col < RESPONSE_COLUMN else _INPUT_FILL,
                alignment=Alignment(vertical="center"),
            )
            for col, title in enumerate(HEADERS, start=1)
        ]
    )
    if n:
        letter = get_column_letter(RESPONSE_COLUMN)
        dv = DataValidation(
            type="list",
            formula1='"' + ",".join(RESPONSES) + '"',
            allow_blank=True,
            showDropDown=False,
            showErrorMessage=True,
            errorTitle="答复无效",
            error="请从列表中选择：" + " / ".join(RESPONSES),
            promptTitle="答复",
            prompt="已整改 / 有异议 / 无法整改",
            showInputMessage=True,
        )
        dv.add(f"{letter}2:{letter}{n + 1}")
        ws.data_validations.append(dv)
    _protect(ws)


def write_workbook(path: Path, problems: pa.Table, dept: str) -> int:
    """Write ``dept``'s feedback workbook to ``path`` (replaced atomically); returns the number
    of problems it lists (``_stream``)."""
    return _stream(path, problems, dept)

"""The department's feedback workbook built in memory with openpyxl's ordinary worksheets: the
way ``datacloud.problem_workbook`` wrote it before it streamed the workbook (write-only
sheets). Kept here, in the tests only, as the oracle the streamed workbook is compared with
part for part (``test_problem_workbook_streamed``, ``test_report_problems_columnwise``)."""

from __future__ import annotations

from collections.abc import Iterable
from copy import copy
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, Protection
from openpyxl.styles.cell_style import StyleArray
from openpyxl.utils import get_column_letter
from openpyxl.workbook.protection import WorkbookProtection
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from datacloud.problem_workbook import (
    _HEADER_FILL,
    _HELP,
    _INPUT_FILL,
    _WIDTHS,
    FORMAT,
    HEADERS,
    HELP_SHEET,
    LOCKED_COLUMNS,
    META_SHEET,
    NOTE_COLUMN,
    OPEN_STATUSES,
    RESPONSE_COLUMN,
    RESPONSES,
    _protect,
    _text,
    cells,
    sheet_name,
)


def open_problems(problems: pa.Table, dept: str) -> list[dict[str, Any]]:
    """The department's open and reopened problems, ordered by table, due date and ID (the
    rows chosen column-wise first: a fixed problem or another department's never becomes a
    Python object)."""
    if "dept" not in problems.column_names or "status" not in problems.column_names:
        return []
    chosen = pc.and_(
        pc.equal(problems["dept"], dept),
        pc.is_in(problems["status"], value_set=pa.array(sorted(OPEN_STATUSES), pa.string())),
    )
    rows = problems.filter(pc.fill_null(chosen, False)).to_pylist()
    return sorted(rows, key=lambda r: (str(r["table"]), _text(r.get("due")), r["problem_id"]))


def _header(ws: Worksheet) -> None:
    for col, title in enumerate(HEADERS, start=1):
        c = ws.cell(row=1, column=col, value=title)
        c.font = Font(bold=True)
        c.fill = _HEADER_FILL if col < RESPONSE_COLUMN else _INPUT_FILL
        c.alignment = Alignment(vertical="center")
    for col, width in enumerate(_WIDTHS, start=1):
        ws.column_dimensions[get_column_letter(col)].width = width
    ws.freeze_panes = "B2"


def _text_cell(ws: Worksheet, row: int, col: int, value: str) -> None:
    c = ws.cell(row=row, column=col)
    c.value = value
    c.data_type = "s"  # text, even when it starts with "=" (csv_cell has neutralised it anyway)


def _table_sheet(ws: Worksheet, shown_rows: Iterable[dict[str, str]]) -> int:
    """One table's sheet from its problems' locked cells (``cells``), in order. The first
    row's 答复 and 说明 cells are styled through openpyxl's style descriptors (unlocked, input
    fill; 说明 wrapped); every later row gets a copy of their style arrays: the same style IDs,
    without hashing the style objects again per cell."""
    _header(ws)
    styles: tuple[StyleArray, StyleArray] | None = None
    n = 0
    for n, shown in enumerate(shown_rows, start=1):
        for col, (column, _) in enumerate(LOCKED_COLUMNS, start=1):
            _text_cell(ws, n + 1, col, shown[column])
        response: Any = ws.cell(row=n + 1, column=RESPONSE_COLUMN)
        note: Any = ws.cell(row=n + 1, column=NOTE_COLUMN)
        if styles is None:
            for c in (response, note):
                c.protection = Protection(locked=False)
                c.fill = _INPUT_FILL
            note.alignment = Alignment(wrap_text=True)
            styles = (copy(response._style), copy(note._style))
        else:
            response._style = copy(styles[0])
            note._style = copy(styles[1])
    if n:
        letter = get_column_letter(RESPONSE_COLUMN)
        dv = DataValidation(
            type="list",
            formula1='"' + ",".join(RESPONSES) + '"',
            allow_blank=True,
            showDropDown=False,  # False shows the in-cell arrow (the attribute's name is inverted)
            showErrorMessage=True,
            errorTitle="答复无效",
            error="请从列表中选择：" + " / ".join(RESPONSES),
            promptTitle="答复",
            prompt="已整改 / 有异议 / 无法整改",
            showInputMessage=True,
        )
        dv.add(f"{letter}2:{letter}{n + 1}")
        ws.add_data_validation(dv)
    _protect(ws)
    return n


def _help_sheet(ws: Worksheet, dept: str, counts: dict[str, int]) -> None:
    ws.column_dimensions["A"].width = 100
    ws.cell(row=1, column=1, value=f"部门 {dept} 问题数据反馈表").font = Font(bold=True, size=14)
    for i, line in enumerate(_HELP, start=3):
        ws.cell(row=i, column=1, value=line)
    row = len(_HELP) + 4
    if not counts:
        ws.cell(row=row, column=1, value="目前没有待整改的问题。")
    for table, n in sorted(counts.items()):
        ws.cell(row=row, column=1, value=f"工作表 {sheet_name(table)}：{n} 个待整改问题")
        row += 1
    _protect(ws)


def _meta_sheet(ws: Worksheet, dept: str, shown_rows: list[dict[str, str]]) -> None:
    ws.append(["format", FORMAT])
    ws.append(["dept", dept])
    ws.append(["written_at", datetime.now(UTC).isoformat(timespec="seconds")])
    ws.append(["problem_id", "due", "status"])
    for shown in shown_rows:
        ws.append([shown["problem_id"], shown["due"], shown["status"]])
    ws.sheet_state = "veryHidden"
    _protect(ws)


def build_workbook(problems: pa.Table, dept: str) -> Workbook:
    """The workbook of ``dept``'s open problems (see the module's docstring)."""
    return _build(problems, dept)[0]


def _build(problems: pa.Table, dept: str) -> tuple[Workbook, int]:
    """``build_workbook``'s workbook and the number of problems it lists."""
    used = {"dept", "status", "person_key", *(column for column, _ in LOCKED_COLUMNS)}
    rows = open_problems(problems.select([c for c in problems.column_names if c in used]), dept)
    messages: dict[str, str] = {}
    shown_rows = [cells(row, messages) for row in rows]  # each problem once, for both sheets
    by_table: dict[str, list[dict[str, str]]] = {}
    for row, shown in zip(rows, shown_rows, strict=True):
        by_table.setdefault(str(row["table"]), []).append(shown)
    names = [sheet_name(t) for t in by_table]
    if len(set(names)) != len(names) or HELP_SHEET in names or META_SHEET in names:
        raise ValueError(f"department {dept}: table names do not give distinct sheet names")
    wb = Workbook()
    help_ws = wb.active
    assert help_ws is not None  # a new workbook has its first sheet
    help_ws.title = HELP_SHEET
    _help_sheet(help_ws, dept, {t: len(r) for t, r in by_table.items()})
    for table, table_rows in by_table.items():
        _table_sheet(wb.create_sheet(sheet_name(table)), table_rows)
    _meta_sheet(wb.create_sheet(META_SHEET), dept, shown_rows)
    wb.security = WorkbookProtection(lockStructure=True)
    wb.active = 1 if by_table else 0
    return wb, len(rows)

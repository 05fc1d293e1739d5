"""The departments' inbox and ``datacloud problems`` over a real problem table (a Delta table
written by datacloud.problem_store): accepted files to done/, refused ones to rejected/ with
their .error.txt, the log exactly the answers; the commands' exit codes in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from openpyxl import load_workbook
from problem_rows import ID_A, sample_rows, table

from datacloud.paths import StorageRoot
from datacloud.problem_inbox import process_inbox
from datacloud.problem_responses import read_log
from datacloud.problem_store import write_problems
from datacloud.problem_workbook import write_workbook

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def root(tmp_path: Path) -> StorageRoot:
    root = StorageRoot(tmp_path / "state")
    write_problems(root, table(sample_rows()), date(2026, 12, 4), "test-night")
    return root


def answered(folder: Path, name: str, dept: str = "gjj", **cells: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    write_workbook(path, table(sample_rows()), dept)
    wb = load_workbook(path)
    for ref, value in cells.items():
        sheet, cell = ref.split("__")
        wb[sheet][cell] = value
    wb.save(path)
    return path


def test_inbox_moves_and_records(root: StorageRoot, tmp_path: Path) -> None:
    inbox = root.problem_inbox("gjj")
    answered(inbox, "a.xlsx", gjj_account__J2="已整改", person__J2="有异议", person__K2="户籍有误")
    answered(inbox, "b.xlsx", gjj_account__J2="随便")
    (inbox / "notes.csv").write_text("a,b\n", encoding="utf-8")
    (inbox / "~$a.xlsx").write_bytes(b"lock")  # Excel's lock file: left alone

    outcomes = {o.file: o for o in process_inbox(root, min_age_seconds=0)}
    assert {k: o.outcome for k, o in outcomes.items()} == {
        "a.xlsx": "accepted",
        "b.xlsx": "rejected",
        "notes.csv": "rejected",
    }
    assert [r["response"] for r in read_log(root, "gjj")] == ["fixed", "disputed"]
    assert {r["channel"] for r in read_log(root, "gjj")} == {"inbox"}
    assert all(r["by"].startswith("os:") for r in read_log(root, "gjj"))
    done = list((inbox / "done").iterdir())
    assert [p.name.endswith("-a.xlsx") for p in done] == [True]
    rejected = sorted(p.name for p in (inbox / "rejected").iterdir())
    assert len(rejected) == 4 and sum(n.endswith(".error.txt") for n in rejected) == 2
    error = next((inbox / "rejected").glob("*b.xlsx.error.txt")).read_text(encoding="utf-8")
    assert error.startswith("部门 gjj，文件 b.xlsx，工作表 gjj_account，第 2 行，列 J（答复）")
    assert (inbox / "~$a.xlsx").exists() and not (inbox / "a.xlsx").exists()

    # the same file dropped again: moved to done/, nothing recorded twice
    again = answered(
        inbox, "a.xlsx", gjj_account__J2="已整改", person__J2="有异议", person__K2="户籍有误"
    )
    again.write_bytes(done[0].read_bytes())
    (o,) = process_inbox(root, "gjj", min_age_seconds=0)
    assert o.outcome == "already_imported" and len(read_log(root, "gjj")) == 2


def test_a_file_being_copied_waits(root: StorageRoot) -> None:
    inbox = root.problem_inbox("gjj")
    answered(inbox, "fresh.xlsx", gjj_account__J2="已整改")
    assert process_inbox(root, min_age_seconds=3600) == []
    assert (inbox / "fresh.xlsx").exists()


def cli(root: StorageRoot, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATACLOUD_ROOT": str(root.root)}
    env.pop("DATACLOUD_STATE_ROOT", None)
    return subprocess.run(
        [sys.executable, "-m", "datacloud.cli_problems", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
        check=False,
    )


def test_cli_import_inbox_and_exit_codes(root: StorageRoot, tmp_path: Path) -> None:
    good = answered(tmp_path / "in", "good.xlsx", gjj_account__J3="无法整改")
    run = cli(root, "import", str(good), "--dept", "gjj", "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["recorded"] == 1
    run = cli(root, "import", str(good), "--dept", "gjj")
    assert run.returncode == 0 and "already imported" in run.stdout

    bad = answered(tmp_path / "in", "bad.xlsx", gjj_account__C2=ID_A)
    run = cli(root, "import", str(bad), "--dept", "gjj")
    assert run.returncode == 2
    assert "部门 gjj，文件 bad.xlsx，工作表 gjj_account，第 2 行" in run.stderr
    assert ID_A not in run.stderr + run.stdout
    assert cli(root, "import", str(good), "--dept", "bdc").returncode == 2  # another's workbook
    assert cli(root, "import", str(good), "--dept", "../x").returncode == 2

    answered(root.problem_inbox("gjj"), "x.xlsx", gjj_account__J2="不知道")
    run = cli(root, "inbox", "--min-age", "0")
    assert run.returncode == 1 and "refused" in run.stdout
    assert cli(root, "inbox", "--min-age", "0").returncode == 0  # nothing left

    out = tmp_path / "gjj.xlsx"
    assert cli(root, "workbook", "--dept", "gjj", "--out", str(out)).returncode == 0
    assert load_workbook(out).sheetnames[1] == "gjj_account"
    assert cli(root, "workbook", "--dept", "gjj", "--out", str(out)).returncode == 2  # exists

    empty = StorageRoot(tmp_path / "empty")
    run = cli(empty, "import", str(good), "--dept", "gjj")
    assert run.returncode == 3 and "no problem table yet" in run.stderr


def test_a_file_named_with_an_id_number_is_shown_masked_and_a_link_never_followed(
    root: StorageRoot, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = root.problem_inbox("gjj")
    answered(inbox, f"张三_{ID_A}.xlsx", gjj_account__J2="随便")  # refused: a bad response
    secret = tmp_path / "elsewhere.xlsx"  # another department's workbook, say
    answered(tmp_path, "elsewhere.xlsx", gjj_account__J2="已整改")
    (inbox / "link.xlsx").symlink_to(secret)

    with caplog.at_level("INFO"):
        outcomes = process_inbox(root, min_age_seconds=0)
    (o,) = outcomes  # the link is left alone, not read
    assert o.outcome == "rejected" and ID_A not in o.file and ID_A not in (o.error or "")
    names = [p.name for p in (inbox / "rejected").iterdir()]
    assert names and not [n for n in names if ID_A in n]
    assert ID_A not in (
        inbox / "rejected" / next(n for n in names if n.endswith(".txt"))
    ).read_text(encoding="utf-8")
    assert ID_A not in caplog.text
    assert (inbox / "link.xlsx").is_symlink() and read_log(root, "gjj") == []
    # and import_file refuses a link outright, naming no file content
    from datacloud.problem_responses import ResponseFileError, import_file

    with pytest.raises(ResponseFileError, match="不是普通文件"):
        import_file(root, "gjj", inbox / "link.xlsx")

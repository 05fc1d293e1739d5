"""CLI manners: every command has --help; bad input ends with a clear error, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXE = str(Path(sys.executable).with_name("datacloud"))
COMMANDS = ["sample", "validate", "report", "docs", "demo"]


def run(*args: str, **kw) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=120, **kw)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    out = run(command, "--help")
    assert out.returncode == 0
    assert "Usage" in out.stdout and "--help" in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sample", "--persons", "3"], "--persons"),
        (["sample", "--date", "2026-13-01"], "--date: expected YYYY-MM-DD"),
        (["sample", "--dirt", "id_typo=0.1"], "id_typo"),
        (["sample", "--dirt", "id_legacy_15=2"], "id_legacy_15"),
        (["report", "--dept", "nowhere", "--date", "2026-11-20"], "no department 'nowhere'"),
        (["frobnicate"], "No such command"),
    ],
)
def test_bad_input_is_one_clear_error(args: list[str], message: str) -> None:
    out = run(*args)
    assert out.returncode != 0
    assert message in out.stderr + out.stdout
    assert "Traceback" not in out.stderr + out.stdout


def test_validate_names_file_and_field_of_a_bad_yaml(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "code: bad\nname: x\nconnection_id: c\ntables: []\n", "utf-8"
    )
    out = run("validate", "--folder", str(tmp_path))
    assert out.returncode == 2
    assert f"{tmp_path / 'bad.yaml'}: field tables" in out.stderr
    assert "Traceback" not in out.stderr


def test_validate_checks_the_survivorship_rules_against_the_departments(tmp_path: Path) -> None:
    ok = run("validate")
    assert ok.returncode == 0 and "survivorship" in ok.stdout, ok.stderr
    path = tmp_path / "curation.yaml"
    path.write_text("survivorship:\n  enterprise:\n    status: latest\n", "utf-8")
    out = run("validate", env={**os.environ, "DATACLOUD_CURATION_CONFIG": str(path)})
    assert out.returncode == 2
    assert f"{path}: field survivorship.enterprise.status: departments ['scjg']" in out.stderr
    assert "Traceback" not in out.stderr


def test_sample_writes_the_five_departments(tmp_path: Path) -> None:
    out = run("sample", "--persons", "50", "--seed", "3", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in tmp_path.glob("*.db")) == [
        "bdc.db",
        "gjj.db",
        "gongan.db",
        "mz.db",
        "scjg.db",
    ]
    assert (tmp_path / "ground_truth.parquet").is_file()


def test_the_os_user_is_the_real_uids_name_not_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pwd

    from datacloud.lookup.cli import os_user

    monkeypatch.setenv("USER", "someone-else")
    monkeypatch.setenv("LOGNAME", "someone-else")
    assert os_user() == pwd.getpwuid(os.getuid()).pw_name != "someone-else"


def test_a_uid_without_a_passwd_entry_is_named_by_number(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mocked: a uid without a passwd entry cannot run this venv's interpreter here (it lives
    under /root, mode 0700), so pwd.getpwuid stands in for a passwd database that lacks it."""
    import pwd

    from datacloud.lookup.cli import os_user

    def missing(uid: int) -> pwd.struct_passwd:
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.setattr(pwd, "getpwuid", missing)
    monkeypatch.setenv("USER", "someone-else")
    assert os_user() == f"uid:{os.getuid()}"


def test_run_returns_the_code_typer_hands_back() -> None:
    """standalone_mode=False returns typer.Exit's code instead of raising: run() passes it on."""
    from datacloud.cli import run as cli_run

    assert cli_run(["lookup", "new-key", "--holder", "x", "--role", "root"]) == 2
    assert cli_run(["lookup", "new-key", "--holder", "x"]) == 0
    assert cli_run(["--help"]) == 0
    assert cli_run(["no-such-command"]) == 2

"""Every documented exit code of every ``datacloud`` command, as a shell sees it.

Each case runs the console script ``datacloud`` in a real subprocess (``CliRunner`` reads the
code typer hands back, not what ``datacloud.cli.main`` passes to the shell: that is how lookups
exited 0 whatever happened). The lookups run over curated Delta tables built by the real
pipeline (sample generator → extract → stage → curate) in a module fixture; audit records are
the real JSON-lines files. Nothing is mocked. Not run here: ``docs`` writing docs/rules.md (it
writes into the checkout; its usage errors are checked) and a whole ``demo`` night (tests/e2e).
docs/operations.md "Command-line exit codes" is the table these tests hold true.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from datacloud.delta import read_table
from datacloud.paths import DEPARTMENTS_DIR, StorageRoot
from transforms.credit_code import credit_code_check_char, org_code_check_char
from transforms.id_number import id_check_char

EXE = str(Path(sys.executable).with_name("datacloud"))
DS = date(2026, 11, 20)
AUDIT_KEY = "exit-code-test-audit-key-0123"
MARKUP = "[/][bold]x[/bold]"  # rich markup: must neither crash nor vanish from a message


def _env(**extra: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATACLOUD_")}
    env["COLUMNS"] = "200"
    for k, v in extra.items():
        if v is not None:
            env[k] = v
    return env


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [EXE, *args], capture_output=True, text=True, timeout=300, env=env or _env(), check=False
    )
    assert "Traceback" not in out.stderr + out.stdout, out.stderr
    return out


# --- a small curated dataset -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorageRoot]:
    from datacloud import nightly
    from datacloud.curation_night import curate_all
    from datacloud.demo import departments as sample_departments
    from datacloud.sample import generate, write_sqlite

    folder = tmp_path_factory.mktemp("cli-exit") / "root"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATACLOUD_ROOT", str(folder))
        r = StorageRoot.from_env()
        write_sqlite(generate(200, 20261120, DS), r.samples())
        depts = sample_departments()  # those with a sample database
        for dept in depts:
            for table in dept.tables:
                url = f"sqlite:///{r.samples() / (dept.code + '.db')}"
                nightly.extract(StorageRoot.from_env(), dept, table.name, DS, url)
                nightly.stage(
                    StorageRoot.from_env(),
                    dept,
                    table.name,
                    DS,
                    "exit-codes",
                )
        curate_all(r, depts, DS, "exit-codes")
        yield r


@pytest.fixture(scope="module")
def keys(root: StorageRoot) -> dict[str, str]:
    person = read_table(root.curated("person"))["id_number"].to_pylist()
    owner = read_table(root.curated("property_right"))["owner_id_number"].to_pylist()
    credit = read_table(root.curated("enterprise"))["credit_code"].to_pylist()
    first17 = "11010119900307775"  # Beijing: a valid number the sample does not use
    org8 = "MA000010"
    code17 = "913301" + "02" + org8 + org_code_check_char(org8)
    return {
        "person": person[0],
        "owner": next(o for o in owner if o in set(person)),
        "credit_code": next(c for c in credit if c),
        "stranger": first17 + id_check_char(first17),
        "unknown_code": code17 + credit_code_check_char(code17),
    }


# each lookup names a matter of dags/matters.yaml that reads something it answers
MATTER = {
    "person": "property_registration",
    "property-status": "gjj_withdrawal",
    "enterprise": "enterprise_registration",
}
CASE = "CLI-2026-0001"


def m(command: str) -> list[str]:
    """The options naming a matter (one that reads ``command``'s answer) and a case number."""
    return ["--matter", MATTER[command], "--case-no", CASE]


def lookup_env(root: StorageRoot, **extra: str | None) -> dict[str, str]:
    return _env(DATACLOUD_ROOT=str(root.root), DATACLOUD_AUDIT_KEY=AUDIT_KEY, **extra)


def audit_records(state: Path) -> list[dict[str, Any]]:
    """The trail's JSON lines; other fields (a hash chain, kinds) are ignored, not required."""
    return [
        json.loads(line)
        for f in sorted((state / "audit").glob("lookups-*.jsonl"))
        for line in f.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


# --- lookups ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "key", "code", "stderr"),
    [
        ("person", "person", 0, ""),
        ("property-status", "owner", 0, ""),
        # unknown to every register: no answer, never "owns none" (docs/lookup.md)
        ("property-status", "stranger", 4, "household register does not know"),
        ("enterprise", "credit_code", 0, ""),
        ("person", "stranger", 1, "no curated person record"),
        ("enterprise", "unknown_code", 1, "no curated enterprise record"),
        ("person", "110101199003077750", 2, "rule ID_CHECK_DIGIT"),
        ("property-status", "123", 2, "rule ID_LENGTH"),
        ("enterprise", "91330102MA27U8F08", 2, "rule"),
    ],
)
def test_lookup_outcomes(
    root: StorageRoot, keys: dict[str, str], command: str, key: str, code: int, stderr: str
) -> None:
    value = keys.get(key, key)
    out = run("lookup", command, value, *m(command), "--purpose", "复核", env=lookup_env(root))
    assert out.returncode == code, out.stderr
    assert stderr in out.stderr
    if code == 0:
        assert "audit id: " in out.stdout
    assert value not in out.stderr  # an error never repeats the number


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "root"], "--role: expected one of clerk, auditor, got 'root'"),
        (["--role", MARKUP], f"--role: expected one of clerk, auditor, got '{MARKUP}'"),
        (["--as-of", "2026-13-01"], "--as-of: expected YYYY-MM-DD"),
        (["--as-of", MARKUP], f"--as-of: expected YYYY-MM-DD, got '{MARKUP}'"),
        (["--purpose", "  "], "--purpose: blank"),
        (["--case-no", "第1号"], "--case-no: expected 1 to 64 characters"),
        (["--matter", "Gjj Withdrawal"], "--matter: expected a matter code"),
        (["--department", "../gjj"], "--department: expected a department code"),
        (["--role", "citizen"], "--role: expected one of clerk, auditor, got 'citizen'"),
        (["--colour"], "No such option: --colour"),
    ],
)
def test_lookup_bad_options_are_exit_2(
    root: StorageRoot, keys: dict[str, str], args: list[str], message: str
) -> None:
    base = ["lookup", "person", keys["person"]]
    purpose = [] if "--purpose" in args else ["--purpose", "复核"]
    # a later --matter or --case-no overrides the first (click keeps the last)
    out = run(*base, *m("person"), *purpose, *args, env=lookup_env(root))
    assert out.returncode == 2 and message in out.stderr, out.stderr


@pytest.mark.parametrize("missing", ["--matter", "--case-no"])
def test_lookup_without_matter_or_case_is_a_usage_error(
    root: StorageRoot, keys: dict[str, str], missing: str
) -> None:
    given = {"--matter": MATTER["person"], "--case-no": CASE}
    given.pop(missing)
    args = [x for kv in given.items() for x in kv]
    out = run("lookup", "person", keys["person"], *args, env=lookup_env(root))
    assert out.returncode == 2 and missing in out.stderr, out.stderr


def test_lookup_without_purpose_is_answered(root: StorageRoot, keys: dict[str, str]) -> None:
    out = run("lookup", "person", keys["person"], *m("person"), env=lookup_env(root))
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize(
    ("command", "options", "message"),
    [
        # 公积金提取 reads the property status only, never the person record
        ("person", ["--matter", "gjj_withdrawal"], "reads no data item of the person lookup"),
        ("enterprise", ["--matter", "property_registration"], "reads no data item"),
        (
            "person",
            ["--matter", "property_registration", "--department", "gjj"],
            "department 'gjj' does not handle matter 'property_registration'",
        ),
        ("property-status", ["--matter", "no_such_matter"], "not in the matters catalogue"),
    ],
)
def test_lookup_outside_the_matter_is_exit_5_and_audited(
    root: StorageRoot,
    keys: dict[str, str],
    tmp_path: Path,
    command: str,
    options: list[str],
    message: str,
) -> None:
    state = tmp_path / "state"
    key = keys["credit_code" if command == "enterprise" else "owner"]
    env = lookup_env(root, DATACLOUD_STATE_ROOT=str(state))
    out = run("lookup", command, key, *options, "--case-no", CASE, "--json", env=env)
    assert out.returncode == 5, out.stderr
    assert message in out.stderr and "MATTER" not in out.stdout and out.stdout == ""
    assert key not in out.stderr
    (record,) = audit_records(state)
    assert (record["outcome"], record["matter"], record["case_no"]) == (
        "matter_not_granted",
        options[1],
        CASE,
    )
    assert record["department"] == (options[3] if "--department" in options else None)


def test_lookup_answers_only_the_matters_items(root: StorageRoot, keys: dict[str, str]) -> None:
    """不动产登记 reads a person's name and registered address: nothing else is printed."""
    out = run(
        "lookup", "person", keys["owner"], *m("person"), "--role", "auditor", "--json",
        env=lookup_env(root),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    # contested facts (problems.md) come with a person answer, of the matter's fields only
    assert set(body) - {"disputed", "disputes"} == {"id_number", "fields", "curated", "audit_id"}
    assert set(body["fields"]) <= {"name", "registered_address"}
    assert {d["field"] for d in body.get("disputes", [])} <= {"name", "registered_address"}


@pytest.mark.parametrize(
    ("audit_key", "message"),
    [(None, "set DATACLOUD_AUDIT_KEY"), ("short", "at least 16 bytes")],
)
def test_lookup_without_an_audit_key_is_exit_3(
    root: StorageRoot, keys: dict[str, str], audit_key: str | None, message: str
) -> None:
    env = _env(DATACLOUD_ROOT=str(root.root), DATACLOUD_AUDIT_KEY=audit_key)
    out = run("lookup", "person", keys["person"], *m("person"), "--purpose", "复核", env=env)
    assert out.returncode == 3 and message in out.stderr, out.stderr
    assert out.stdout == ""  # nothing answered


def test_lookup_with_the_audit_trail_unavailable_is_exit_3_and_answers_nothing(
    root: StorageRoot, keys: dict[str, str], tmp_path: Path
) -> None:
    """The audit folder is a regular file (as root, a read-only folder would not stop us)."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "audit").write_text("not a folder", encoding="utf-8")
    env = lookup_env(root, DATACLOUD_STATE_ROOT=str(state))
    for command, key in (("person", "person"), ("property-status", "owner")):
        out = run("lookup", command, keys[key], *m(command), "--purpose", "复核", env=env)
        assert out.returncode == 3 and "audit" in out.stderr, out.stderr
        assert out.stdout == ""


def test_lookup_with_no_curated_data_is_exit_3(
    root: StorageRoot, keys: dict[str, str], tmp_path: Path
) -> None:
    empty = _env(DATACLOUD_ROOT=str(tmp_path / "empty"), DATACLOUD_AUDIT_KEY=AUDIT_KEY)
    out = run("lookup", "person", keys["person"], *m("person"), "--purpose", "复核", env=empty)
    assert out.returncode == 3 and "no curated data" in out.stderr, out.stderr
    state = tmp_path / "state"
    before = run(
        "lookup",
        "person",
        keys["person"],
        *m("person"),
        "--purpose",
        "复核",
        "--as-of",
        "2026-01-01",
        env=lookup_env(root, DATACLOUD_STATE_ROOT=str(state)),
    )
    assert before.returncode == 3, before.stderr


def test_the_audit_names_the_real_user_not_the_environment(
    root: StorageRoot, keys: dict[str, str], tmp_path: Path
) -> None:
    """$USER and $LOGNAME are whatever the caller sets; the audit takes the real uid's name."""
    state = tmp_path / "state"
    env = lookup_env(
        root, DATACLOUD_STATE_ROOT=str(state), USER="someone-else", LOGNAME="someone-else"
    )
    out = run(
        "lookup",
        "property-status",
        keys["owner"],
        *m("property-status"),
        "--purpose",
        "复核",
        env=env,
    )
    assert out.returncode == 0, out.stderr
    (record,) = audit_records(state)
    assert record["who"] == f"os:{pwd.getpwuid(os.getuid()).pw_name}" != "os:someone-else"
    assert record["channel"] == "cli" and record["outcome"] == "found"


# --- lookup serve and new-key ----------------------------------------------------------------------


def _keys_file(folder: Path) -> Path:
    path = folder / "keys.yaml"
    path.write_text(
        yaml.safe_dump({"keys": [{"holder": "窗口", "role": "clerk", "sha256": "ab" * 32}]}),
        encoding="utf-8",
    )
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("keys_file", "code", "message"),
    [
        ("absent", 2, "does not exist"),
        ("binary", 2, "save it as UTF-8"),
        ("folder", 2, "cannot read"),
        ("malformed", 2, "keys file"),
        ("unset", 2, "DATACLOUD_API_KEYS"),
        ("good-without-audit-key", 3, "DATACLOUD_AUDIT_KEY"),
    ],
)
def test_serve_refuses_to_start(
    root: StorageRoot, tmp_path: Path, keys_file: str, code: int, message: str
) -> None:
    path = tmp_path / "keys.yaml"
    env = lookup_env(root)
    if keys_file == "binary":
        path.write_bytes(b"\xff\xfe" + "keys: []".encode("utf-16-le"))
    elif keys_file == "folder":
        path.mkdir()
    elif keys_file == "malformed":
        path.write_text("keys:\n  - holder: x\n    role: root\n", encoding="utf-8")
    elif keys_file == "good-without-audit-key":
        path = _keys_file(tmp_path)
        env = _env(DATACLOUD_ROOT=str(root.root))
    args = ["lookup", "serve", "--port", str(_free_port())]
    if keys_file != "unset":
        args += ["--keys", str(path)]
    out = run(*args, env=env)
    assert out.returncode == code, out.stderr
    assert message in out.stderr
    if keys_file not in ("unset", "good-without-audit-key"):
        assert str(path) in out.stderr


def test_serve_on_a_port_in_use_is_exit_3(root: StorageRoot, tmp_path: Path) -> None:
    """uvicorn's own startup failure (its message, its code 3: the port is unavailable)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = run(
            "lookup",
            "serve",
            "--keys",
            str(_keys_file(tmp_path)),
            "--port",
            str(port),
            env=lookup_env(root, DATACLOUD_STATE_ROOT=str(tmp_path / "state")),
        )
    assert out.returncode == 3 and "address already in use" in out.stderr, out.stderr


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 0), (signal.SIGTERM, -15)])
def test_serve_runs_until_stopped(
    root: StorageRoot, tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    """Ctrl-C: uvicorn shuts down gracefully, exit 0. SIGTERM: it shuts down gracefully, then
    re-raises the signal, so the process ends by SIGTERM (a shell shows 143)."""
    port = _free_port()
    args = [EXE, "lookup", "serve", "--keys", str(_keys_file(tmp_path)), "--port", str(port)]
    env = lookup_env(root, DATACLOUD_STATE_ROOT=str(tmp_path / "state"))
    with subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True) as proc:
        try:
            for _ in range(600):  # up to 60 s for the snapshot to load
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.1)
            else:
                pytest.fail("the server did not listen")
            proc.send_signal(sig)
            assert proc.wait(timeout=60) == code
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def test_new_key(tmp_path: Path) -> None:
    ok = run("lookup", "new-key", "--holder", MARKUP, "--role", "auditor")
    assert ok.returncode == 0 and f'holder: "{MARKUP}"' in ok.stdout
    bad = run("lookup", "new-key", "--holder", "x", "--role", MARKUP)
    assert bad.returncode == 2 and f"got '{MARKUP}'" in bad.stderr
    assert run("lookup", "new-key").returncode == 2  # --holder is required


def test_new_key_with_department_matters_and_subject(tmp_path: Path) -> None:
    from datacloud.lookup.auth import ApiKeys, hash_key

    clerk = run(
        "lookup", "new-key", "--holder", "公积金窗口", "--department", "gjj",
        "--matter", "gjj_withdrawal", "--matter", "property_registration",
    )  # fmt: skip
    assert clerk.returncode == 0, clerk.stderr
    path = tmp_path / "keys.yaml"
    path.write_text(clerk.stdout, encoding="utf-8")
    key = clerk.stderr.strip().rsplit(" ", 1)[-1]
    who = ApiKeys.from_file(path, ["gjj_withdrawal", "property_registration"]).authenticate(key)
    assert who is not None and who.department == "gjj"
    assert who.matters == {"gjj_withdrawal", "property_registration"}
    number = "11010519491231002X"
    env = _env(DATACLOUD_AUDIT_KEY=AUDIT_KEY)
    citizen = subprocess.run(
        [EXE, "lookup", "new-key", "--holder", "市民门户", "--role", "citizen", "--subject", "-"],
        input=number.lower() + "\n", capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert citizen.returncode == 0, citizen.stderr
    assert number not in citizen.stdout + citizen.stderr
    expected = hmac.new(AUDIT_KEY.encode(), number.encode(), hashlib.sha256).hexdigest()
    assert f"subject_hmac: {expected}" in citizen.stdout
    path.write_text(citizen.stdout, encoding="utf-8")
    assert ApiKeys.from_file(path)._entries[0].sha256 == hash_key(
        citizen.stderr.strip().rsplit(" ", 1)[-1]
    )
    for args, message in (
        (["--matter", "no_such"], "--matter: no_such not in the matters catalogue"),
        (["--matter", "gjj_withdrawal"], "--role: a clerk key needs its department"),
        (["--department", "G J"], "--department: String should match pattern"),
        (["--role", "citizen"], "--role: a citizen key needs subject_hmac"),
        (["--role", "citizen", "--subject", "123"], "--subject: rule ID_LENGTH"),
    ):
        out = run("lookup", "new-key", "--holder", "x", *args, env=env)
        assert out.returncode == 2 and message in out.stderr, (args, out.stderr)
    no_audit_key = run(
        "lookup", "new-key", "--holder", "x", "--role", "citizen", "--subject", number
    )
    assert no_audit_key.returncode == 3 and number not in no_audit_key.stderr


def test_audit_verify(root: StorageRoot, keys: dict[str, str], tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = lookup_env(root, DATACLOUD_STATE_ROOT=str(state))
    for _ in range(2):
        assert (
            run(
                "lookup", "person", keys["person"], *m("person"), "--purpose", "复核", env=env
            ).returncode
            == 0
        )
    assert run("audit", "verify", env=env).returncode == 0
    (day,) = (state / "audit").glob("lookups-*.jsonl")
    first, second = day.read_text(encoding="utf-8").splitlines()
    record = json.loads(first)
    record["purpose"] = "改过"
    day.write_text(json.dumps(record, ensure_ascii=False) + "\n" + second + "\n", "utf-8")
    assert run("audit", "verify", env=env).returncode == 1
    assert run("audit", "verify", "--day", MARKUP, env=env).returncode == 2
    missing = run("audit", "verify", "--folder", str(tmp_path / "nowhere"), env=env)
    assert missing.returncode == 2 and "is not a folder" in missing.stderr


# --- the other commands ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ([], 2, "Usage"),
        (["--help"], 0, "Usage"),
        (["lookup"], 2, "Usage"),
        ([MARKUP], 2, f"No such command '{MARKUP}'"),
        (["sample", "--persons", "3"], 2, "--persons"),
        (["sample", "--date", MARKUP], 2, f"--date: expected YYYY-MM-DD, got '{MARKUP}'"),
        (["sample", "--dirt", "nonsense=0.1"], 2, "--dirt"),
        (["normalise", MARKUP, "x.csv", "--out", "o"], 2, f"got '{MARKUP}'"),
        (["normalise", "person", "x.csv"], 2, "--out"),
        (["report", "--dept", "gongan", "--date", "2026-11-31"], 2, "--date: expected YYYY-MM-DD"),
        (["report", "--dept", "nowhere", "--date", "2026-11-20"], 2, "no department 'nowhere'"),
        (["history", MARKUP], 2, f"got '{MARKUP}'"),
        (["history", "person", "--limit", "0"], 2, "--limit"),
        (["curated", "nope"], 2, "TABLE: expected one of"),
        (["docs", "extra"], 2, "unexpected extra argument"),
        (["demo", "--date", "2026-02-30"], 2, "--date: expected YYYY-MM-DD"),
        (["demo", "--persons", "3"], 2, "--persons"),
        (["validate", "--folder", "/nonexistent-folder"], 2, "/nonexistent-folder is not a folder"),
    ],
)
def test_usage_and_input_errors(tmp_path: Path, args: list[str], code: int, message: str) -> None:
    out = run(*args, env=_env(DATACLOUD_ROOT=str(tmp_path / "root")))
    assert out.returncode == code, out.stderr
    assert message in out.stdout + out.stderr


@pytest.mark.parametrize("dept", ["../gongan", "/etc", "a/b", "gongan/../gongan", MARKUP, "Gongan"])
def test_report_dept_is_a_code_never_a_path(tmp_path: Path, dept: str) -> None:
    out = run(
        "report", "--dept", dept, "--date", "2026-11-20", env=_env(DATACLOUD_ROOT=str(tmp_path))
    )
    assert out.returncode == 2
    assert "--dept: expected a department code" in out.stderr and f"got '{dept}'" in out.stderr
    assert not (tmp_path / "reports").exists()


def test_report_writes_a_report_exit_0(tmp_path: Path) -> None:
    out = run(
        "report", "--dept", "gongan", "--date", "2026-11-20", env=_env(DATACLOUD_ROOT=str(tmp_path))
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "reports" / "gongan" / "2026-11-20" / "report.json").is_file()


def test_sample_exit_codes(tmp_path: Path) -> None:
    ok = run("sample", "--persons", "10", "--out", str(tmp_path / f"s{MARKUP}"))
    assert ok.returncode == 0, ok.stderr
    assert f"ground truth: {tmp_path / f's{MARKUP}' / 'ground_truth.parquet'}" in ok.stdout
    (tmp_path / "file").write_text("x", encoding="utf-8")
    bad = run("sample", "--persons", "10", "--out", str(tmp_path / "file"))
    assert bad.returncode == 2 and f"--out: {tmp_path / 'file'} is a file" in bad.stderr


def _csv(folder: Path, text: str, name: str = "in.csv") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_normalise_exit_codes_and_an_existing_out(tmp_path: Path) -> None:
    good = _csv(tmp_path, "id_number,name\n11010519491231002X,张三\n")
    out_dir = tmp_path / f"o{MARKUP}"
    first = run("normalise", "person", str(good), "--out", str(out_dir), "--date", "2026-11-20")
    assert first.returncode == 0, first.stderr
    assert f"-> {out_dir / 'valid.parquet'}" in first.stdout  # the path verbatim
    again = run("normalise", "person", str(good), "--out", str(out_dir))
    assert again.returncode == 2
    assert f"--out: {out_dir / 'valid.parquet'} exists; give --force" in again.stderr
    forced = run("normalise", "person", str(good), "--out", str(out_dir), "--force")
    assert forced.returncode == 0, forced.stderr
    absent = run("normalise", "person", str(tmp_path / "absent.csv"), "--out", str(tmp_path / "n"))
    assert absent.returncode == 2 and "cannot read" in absent.stderr
    onto_file = run("normalise", "person", str(good), "--out", str(good))
    assert onto_file.returncode == 2 and f"--out: {good} is a file" in onto_file.stderr


def test_normalise_a_repeated_csv_column_is_one_user_error(tmp_path: Path) -> None:
    dup = _csv(tmp_path, "id_number,name,name\n11010519491231002X,张三,李四\n", "dup.csv")
    out = run("normalise", "person", str(dup), "--out", str(tmp_path / "o"))
    assert out.returncode == 2, out.stderr
    assert str(dup) in out.stderr and "name" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (lambda t: t.encode("utf-16"), "is UTF-16 text; save it as UTF-8"),
        (lambda t: bytes(range(256)), "holds NUL bytes"),
        (
            lambda t: t.replace("    mode: full\n", "    mode: full\n    mode: full\n", 1).encode(),
            "repeated key 'mode'",
        ),
        (
            lambda t: t.replace("name: 公安厅（户籍）", f"name: '{MARKUP}'\nname: x", 1).encode(),
            "repeated key 'name'",
        ),
    ],
    ids=["utf16", "binary", "repeated-key", "repeated-key-markup"],
)
def test_validate_a_bad_yaml_is_one_message_naming_the_file(
    tmp_path: Path, content: Any, message: str
) -> None:
    path = tmp_path / "gongan.yaml"
    path.write_bytes(content((DEPARTMENTS_DIR / "gongan.yaml").read_text(encoding="utf-8")))
    out = run("validate", "--folder", str(tmp_path))
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith(f"error: {path}: ") and message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_validate_prints_names_verbatim(tmp_path: Path) -> None:
    for other in DEPARTMENTS_DIR.glob("*.yaml"):  # the matters name every department
        (tmp_path / other.name).write_bytes(other.read_bytes())
    text = (DEPARTMENTS_DIR / "gongan.yaml").read_text(encoding="utf-8")
    (tmp_path / "gongan.yaml").write_text(
        text.replace("name: 公安厅（户籍）", f"name: '{MARKUP}'", 1), encoding="utf-8"
    )
    out = run("validate", "--folder", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert f"ok gongan: {MARKUP}, " in out.stdout


def test_validate_checks_the_matters_catalogue(tmp_path: Path) -> None:
    """Each unknown table, field, data item or department code of dags/matters.yaml: one line."""
    from datacloud.paths import DAGS_DIR

    doc = yaml.safe_load((DAGS_DIR / "matters.yaml").read_text(encoding="utf-8"))
    doc["items"][0]["table"] = "no_table"
    doc["items"][1]["fields"] = ["name", "blood_type"]
    doc["matters"][0]["items"] = [*doc["matters"][0]["items"], "no_item"]
    doc["matters"][1]["departments"] = ["bdc", "nowhere"]
    path = tmp_path / "matters.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    out = run("validate", env=_env(DATACLOUD_MATTERS=str(path)))
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 4 and all(str(path) in x for x in lines), out.stderr
    for expected in (
        "unknown curated table 'no_table'",
        "unknown field 'blood_type' of curated table 'person'",
        "unknown data item 'no_item'",
        "unknown department code 'nowhere'",
    ):
        assert sum(expected in x for x in lines) == 1, expected
    good = run("validate")
    assert good.returncode == 0 and "ok matters: " in good.stdout, good.stderr
    path.write_text("items: []\nmatters: []\n", encoding="utf-8")
    empty = run("validate", env=_env(DATACLOUD_MATTERS=str(path)))
    assert empty.returncode == 2 and f"error: {path}: field items" in empty.stderr


def test_validate_a_repeated_key_in_the_curation_yaml(tmp_path: Path) -> None:
    path = tmp_path / "curation.yaml"
    path.write_text("survivorship: {}\nsurvivorship: {}\n", encoding="utf-8")
    out = run("validate", env=_env(DATACLOUD_CURATION_CONFIG=str(path)))
    assert out.returncode == 2
    assert f"error: {path}: not valid YAML: line 2, column 1: repeated key" in out.stderr


def test_history_and_curated(root: StorageRoot, tmp_path: Path) -> None:
    env = _env(DATACLOUD_ROOT=str(root.root))
    assert run("history", "person", env=env).returncode == 0
    now = run("curated", "person", env=env)
    assert now.returncode == 0 and "curated/person version" in now.stdout
    out = tmp_path / f"p{MARKUP}.parquet"
    first = run("curated", "person", "--out", str(out), env=env)
    assert first.returncode == 0 and f"wrote {out}" in first.stdout, first.stderr
    again = run("curated", "person", "--out", str(out), env=env)
    assert again.returncode == 2 and f"--out: {out} exists; give --force" in again.stderr
    assert run("curated", "person", "--out", str(out), "--overwrite", env=env).returncode == 0
    assert run("curated", "person", "--out", str(tmp_path), env=env).returncode == 2  # a folder
    both = run("curated", "person", "--as-of", "2026-11-20", "--version", "0", env=env)
    assert both.returncode == 2 and "not both" in both.stderr
    early = run("curated", "person", "--as-of", "2026-01-01", env=env)
    assert early.returncode == 3 and "no version published on or before" in early.stderr
    empty = _env(DATACLOUD_ROOT=str(tmp_path / "empty"))
    for command in ("history", "curated"):
        out3 = run(command, "person", env=empty)
        assert out3.returncode == 3 and "has not been published yet" in out3.stderr


def test_an_internal_error_is_exit_70_in_one_line(tmp_path: Path) -> None:
    """A curated table whose log is garbage: not the user's mistake, a failure of the system."""
    log = tmp_path / "curated" / "person" / "_delta_log"
    log.mkdir(parents=True)
    (log / "00000000000000000000.json").write_text("{not json\n", encoding="utf-8")
    out = run("history", "person", env=_env(DATACLOUD_ROOT=str(tmp_path)))
    assert out.returncode == 70, out.stderr
    assert out.stderr.startswith("error: internal error: ")
    assert "DATACLOUD_DEBUG=1" in out.stderr
    debug = subprocess.run(
        [EXE, "history", "person"],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(DATACLOUD_ROOT=str(tmp_path), DATACLOUD_DEBUG="1"),
        check=False,
    )
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_an_id_number_typed_into_an_argument_is_masked_in_the_message(tmp_path: Path) -> None:
    number = "11010519491231002X"
    for args in (
        ["report", "--dept", number, "--date", "2026-11-20"],
        ["lookup", "person", "x", *m("person"), "--purpose", "p", "--role", number],
    ):
        out = run(*args, env=_env(DATACLOUD_ROOT=str(tmp_path), DATACLOUD_LOOKUP_DEV="1"))
        assert out.returncode == 2, out.stderr
        assert number not in out.stderr and "110105********002X" in out.stderr

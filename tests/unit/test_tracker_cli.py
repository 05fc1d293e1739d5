"""``datacloud tracker`` as a shell sees it: the console script in a real subprocess over a
real audit trail in a temporary storage root (written by the real ``AuditLog``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from datacloud.lookup.audit import AuditLog, FileSink
from datacloud.lookup.auth import Principal
from datacloud.paths import StorageRoot
from transforms.id_number import id_check_char

EXE = str(Path(sys.executable).with_name("datacloud"))
AUDIT_KEY = "tracker-cli-audit-key-0123456789"
ALICE = "11010119800101001" + id_check_char("11010119800101001")
BOB = "11010219750505002" + id_check_char("11010219750505002")


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [EXE, "tracker", *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert "Traceback" not in out.stdout + out.stderr, out.stderr
    return out


def test_tracker_lists_one_persons_lookups_and_its_exit_codes(tmp_path: Path) -> None:
    root = StorageRoot(tmp_path / "root")
    audit = AuditLog([FileSink(root.audit())], AUDIT_KEY.encode())
    clerk = Principal("窗口 张三", "clerk", "api", "k1", department="gjj")
    for number, case_no in ((ALICE, "GJJ-1"), (BOB, "GJJ-2"), (ALICE, "GJJ-3")):
        audit.record(clerk, "property_status", "", number, "found",
                     matter="gjj_withdrawal", case_no=case_no)  # fmt: skip
    base = {k: v for k, v in os.environ.items() if not k.startswith("DATACLOUD_")}
    env = {**base, "DATACLOUD_ROOT": str(root.root), "DATACLOUD_AUDIT_KEY": AUDIT_KEY}

    listed = run(ALICE, "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    entries = json.loads(listed.stdout)["entries"]
    assert [e["case_no"] for e in entries if e["endpoint"] != "tracker"] == ["GJJ-3", "GJJ-1"]
    assert "张三" not in listed.stdout and ALICE not in listed.stdout
    text = run(BOB, env=env)
    assert text.returncode == 0 and "住房公积金提取" in text.stdout and "GJJ-2" in text.stdout
    newest = sorted(root.audit().glob("lookups-*.jsonl"))[-1]
    last = json.loads(newest.read_text(encoding="utf-8").splitlines()[-1])
    assert (last["endpoint"], last["channel"], last["role"]) == ("tracker", "cli", "auditor")

    assert run(ALICE[:-1] + ("0" if ALICE[-1] != "0" else "1"), env=env).returncode == 2
    assert run(ALICE, "--limit", "0", env=env).returncode == 2
    no_key = run(ALICE, env={**base, "DATACLOUD_ROOT": str(root.root)})
    assert no_key.returncode == 3 and "DATACLOUD_AUDIT_KEY" in no_key.stderr
    # a matters catalogue that cannot be read: the deployment's configuration, as `lookup`
    (tmp_path / "matters.yaml").write_text("items: [\n", encoding="utf-8")
    broken = run(ALICE, env={**env, "DATACLOUD_MATTERS": str(tmp_path / "matters.yaml")})
    assert broken.returncode == 3 and "matters.yaml" in broken.stderr

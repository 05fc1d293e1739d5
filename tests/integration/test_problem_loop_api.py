"""The problem loop through the real lookup app: a sample night, its real problem table (the
tracking night), a department's feedback workbook uploaded to ``POST /v1/problems/{dept}/
responses`` (every bad file a 4xx with its message, another department's key 403), the next
tracking night applying the dispute, and the person lookup (API and CLI) saying so."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import lookup_matters
import pytest
from fastapi.testclient import TestClient
from helpers import built_night_root, full_id_numbers
from lookup_matters import ALL, CASE
from openpyxl import load_workbook

from datacloud.business_day import SHANGHAI
from datacloud.delta import read_table
from datacloud.demo import departments
from datacloud.lookup.api import create_app
from datacloud.lookup.audit import AuditLog, FileSink
from datacloud.lookup.auth import ApiKeyEntry, ApiKeys, hash_key
from datacloud.lookup.service import LookupService
from datacloud.lookup.store import CuratedStore
from datacloud.paths import StorageRoot
from datacloud.problem_disputes import DisputeIndex
from datacloud.problem_responses import read_log
from datacloud.problem_store import read_problems
from datacloud.problem_workbook import write_workbook
from datacloud.problems_night import track_night

DS = date(2026, 11, 20)
AUDIT_KEY = b"test-audit-key-0123456789"
KEY = {
    "mz": "test-dept-mz-0001",
    "gjj": "test-dept-gjj-0001",
    "clerk": "test-clerk-key-0001",
}
KEYS = ApiKeys(
    [
        ApiKeyEntry(
            holder="民政局数据科", role="department", department="mz", sha256=hash_key(KEY["mz"])
        ),
        ApiKeyEntry(
            holder="公积金中心数据科",
            role="department",
            department="gjj",
            sha256=hash_key(KEY["gjj"]),
        ),
        ApiKeyEntry(
            holder="城东窗口3号",
            role="clerk",
            department="gjj",
            matters=(ALL,),
            sha256=hash_key(KEY["clerk"]),
        ),
    ]
)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorageRoot]:
    with built_night_root(tmp_path_factory, "problems", 200, DS, "problems-test") as r:
        track_night(r, departments(), DS, "track-1")
        yield r


@pytest.fixture(scope="module")
def client(root: StorageRoot) -> TestClient:
    service = LookupService(
        CuratedStore(root),
        AuditLog([FileSink(root.audit())], AUDIT_KEY),
        catalogue=lookup_matters.catalogue(),
        disputes=DisputeIndex(root, check_seconds=0).disputes_for,
    )
    return TestClient(create_app(service, KEYS, problems_root=root))


def finding(root: StorageRoot, dept: str, rule: str) -> dict[str, Any]:
    rows = read_problems(root, dept).to_pylist()
    return next(r for r in rows if r["kind"] == "finding" and r["rule"] == rule)


def workbook(root: StorageRoot, tmp_path: Path, dept: str, answers: dict[str, tuple]) -> Path:
    """The department's workbook with ``answers`` (problem_id -> (response, note)) filled in."""
    path = tmp_path / f"{dept}.xlsx"
    write_workbook(path, read_problems(root), dept)
    wb = load_workbook(path)
    for ws in wb.worksheets[1:-1]:
        for row in range(2, ws.max_row + 1):
            pid = ws.cell(row=row, column=1).value
            if pid in answers:
                ws.cell(row=row, column=10, value=answers[pid][0])
                ws.cell(row=row, column=11, value=answers[pid][1])
    wb.save(path)
    return path


def upload(client: TestClient, dept: str, key: str, name: str, data: bytes) -> Any:
    return client.post(
        f"/v1/problems/{dept}/responses",
        headers={"X-API-Key": KEY[key]},
        files={"file": (name, data, "application/octet-stream")},
    )


def lookup(client: TestClient, number: str) -> dict[str, Any]:
    r = client.post(
        "/v1/lookup/person",
        headers={"X-API-Key": KEY["clerk"]},
        json={"id_number": number, "matter": ALL, "case_no": CASE},
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_bad_files_each_refused_with_its_message(
    client: TestClient, root: StorageRoot, tmp_path: Path
) -> None:
    conflict = finding(root, "mz", "name_conflict")
    good = workbook(root, tmp_path, "mz", {conflict["problem_id"]: ("有异议", "婚姻登记核对无误")})
    data = good.read_bytes()

    def refused(data: bytes, name: str = "mz.xlsx", dept: str = "mz", key: str = "mz") -> Any:
        r = upload(client, dept, key, name, data)
        assert 400 <= r.status_code < 500, r.text
        return r

    r = refused(b"id,name\n1,x\n", name="mz.csv")
    assert r.status_code == 415, r.text
    assert r.json()["error"]["rule"] == "PROBLEM_RESPONSES_WRONG_TYPE"
    r = refused(b"id,name\n1,x\n")  # a CSV renamed .xlsx
    assert r.status_code == 415 and "改了扩展名的 CSV" in r.json()["error"]["message"]
    r = refused(data, name="mz.xlsm")
    assert r.status_code == 415 and "宏" in r.json()["error"]["message"]
    gjj = workbook(root, tmp_path, "gjj", {})
    r = refused(gjj.read_bytes())
    assert r.status_code == 422 and "部门 gjj 的反馈表" in r.json()["error"]["message"]
    wb = load_workbook(good)
    wb["consistency"]["J2"] = "同意"
    wb.save(tmp_path / "bad.xlsx")
    r = refused((tmp_path / "bad.xlsx").read_bytes(), name="bad.xlsx")
    body = r.json()["error"]
    assert r.status_code == 422 and body["rule"] == "PROBLEM_RESPONSES_BAD_RESPONSE"
    assert body["message"].startswith("部门 mz，文件 bad.xlsx，工作表 consistency，第 2 行")
    assert (body["sheet"], body["row"], body["column"]) == ("consistency", 2, "J（答复）")
    wb = load_workbook(good)
    wb["consistency"]["F2"] = "=1+1"
    wb.save(tmp_path / "f.xlsx")
    r = refused((tmp_path / "f.xlsx").read_bytes())
    assert r.json()["error"]["rule"] == "PROBLEM_RESPONSES_FORMULA"
    wb = load_workbook(good)
    wb["consistency"]["A2"] = "0" * 16
    wb.save(tmp_path / "u.xlsx")
    assert refused((tmp_path / "u.xlsx").read_bytes()).json()["error"]["rule"] == (
        "PROBLEM_RESPONSES_UNKNOWN_PROBLEM"
    )
    # the gate's body cap (16 KB by default) is the workbook's own cap for a department's
    # upload: a 100 KB non-workbook reaches the check, over 5 MB is the gate's 413
    r = refused(os.urandom(100_000))
    assert r.status_code == 415 and "不是有效的 .xlsx" in r.json()["error"]["message"]
    r = refused(os.urandom(100_000), key="clerk")
    assert r.status_code == 413 and r.json()["error"]["rule"] == "BODY_TOO_LARGE"
    # another department's key keeps the small cap: its large body is never read
    r = refused(os.urandom(100_000), key="gjj")
    assert r.status_code == 413 and r.json()["error"]["rule"] == "BODY_TOO_LARGE"
    r = refused(b"\0" * (6 * 1024 * 1024))
    assert r.status_code == 413 and r.json()["error"]["rule"] == "BODY_TOO_LARGE"
    # a key of another department, a clerk: 403 before the file is read
    assert refused(data, key="gjj").status_code == 403
    assert refused(data, dept="gjj", key="mz").status_code == 403
    assert refused(data, key="clerk").status_code == 403
    assert not root.problem_responses("mz").exists()  # nothing recorded by any of them
    spec = client.get("/openapi.json").json()["paths"]["/v1/problems/{dept}/responses"]["post"]
    assert "multipart/form-data" in spec["requestBody"]["content"]


def test_upload_dispute_reaches_the_lookup(
    client: TestClient, root: StorageRoot, tmp_path: Path
) -> None:
    conflict = finding(root, "mz", "name_conflict")
    person = conflict["person_key"]
    before = lookup(client, person)
    assert before["disputed"] is True  # an open finding is contested already
    assert [(d["field"], d["status"]) for d in before["disputes"]] == [("name", "open")]
    path = workbook(root, tmp_path, "mz", {conflict["problem_id"]: ("有异议", "婚姻登记核对无误")})
    r = upload(client, "mz", "mz", "mz-returned.xlsx", path.read_bytes())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["recorded"] == 1 and body["by_response"] == {"disputed": 1}
    assert body["file_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    (record,) = read_log(root, "mz")
    assert record["channel"] == "api" and record["by"].startswith("key:民政局数据科")
    events = [
        json.loads(line)
        for f in sorted(root.audit().glob("*"))
        if f.is_file()
        for line in f.read_text(encoding="utf-8").splitlines()
        if '"problem_responses"' in line
    ]
    accepted = [e for e in events if e["detail"]["outcome"] == "accepted"]
    assert [(e["who"], e["role"], e["detail"]["recorded"]) for e in accepted] == [
        ("民政局数据科", "department", 1)
    ]
    again = upload(client, "mz", "mz", "mz-returned.xlsx", path.read_bytes())
    assert again.status_code == 200 and again.json()["already_imported"] is True
    assert len(read_log(root, "mz")) == 1

    # the next tracking night (today, when the response was made) applies the dispute
    today = datetime.now(SHANGHAI).date()
    track_night(root, departments(), today, "track-2")
    after = lookup(client, person)
    assert after["disputed"] is True
    (d,) = after["disputes"]
    assert d == {
        "field": "name",
        "since": today.isoformat(),
        "status": "disputed",
        "table": "consistency",
    }
    assert not full_id_numbers(json.dumps(after, ensure_ascii=False))  # the clerk's masked view


def test_person_without_findings_is_not_disputed(client: TestClient, root: StorageRoot) -> None:
    contested = {r["person_key"] for r in read_problems(root).to_pylist() if r["person_key"]}
    number = next(
        p["id_number"]
        for p in read_table(root.curated("person")).to_pylist()
        if p["id_number"] not in contested
    )
    body = lookup(client, number)
    assert body["disputed"] is False and body["disputes"] == []


def test_cli_lookup_shows_the_dispute(root: StorageRoot) -> None:
    conflict = finding(root, "mz", "name_conflict")
    env = {
        **os.environ,
        "DATACLOUD_ROOT": str(root.root),
        "DATACLOUD_AUDIT_KEY": AUDIT_KEY.decode(),
    }
    env.pop("DATACLOUD_STATE_ROOT", None)
    run = subprocess.run(
        [
            str(Path(sys.executable).with_name("datacloud")),
            "lookup",
            "person",
            conflict["person_key"],
            "--matter",
            "marriage_registration",
            "--case-no",
            CASE,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "disputed" in run.stdout and "name" in run.stdout
    assert conflict["person_key"] not in run.stdout

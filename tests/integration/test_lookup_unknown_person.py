"""Unknown person ≠ no property (issue 22), in the service, the HTTP API and the CLI; a
pasteable ``lookup new-key``; ``REQUEST_SCHEMA`` errors in Chinese too.

The curated tables are small real Delta tables written by the curated writer
(``datacloud.delta.overwrite``); the CLI runs as the console script in a real subprocess, so
its exit codes are what a shell sees. Nothing is mocked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import lookup_matters
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from datacloud.delta import overwrite
from datacloud.lookup.api import create_app
from datacloud.lookup.audit import AuditLog
from datacloud.lookup.auth import ApiKeyEntry, ApiKeys, Principal, hash_key
from datacloud.lookup.limits import LookupLimits, NotFoundAlert
from datacloud.lookup.pointview import DeltaPointSource
from datacloud.lookup.service import LookupService, NotFound, PersonUnknown
from datacloud.lookup.store import CuratedStore, NoCuratedData
from datacloud.paths import StorageRoot
from transforms.id_number import id_check_char

EXE = str(Path(sys.executable).with_name("datacloud"))
DS = "2026-11-20"
AUDIT_KEY = "unknown-person-test-audit-key-01"
CLERK_KEY = "unknown-person-clerk-key-0001"
# a housing-fund window: 公积金提取 (the property status), and the test-only review_all for a
# person lookup (tests/lookup_matters.py)
MATTERS = lookup_matters.catalogue()
GRANTED = ("gjj_withdrawal", lookup_matters.ALL)
KEYS = ApiKeys(
    [
        ApiKeyEntry(
            holder="城东窗口3号",
            role="clerk",
            department="gjj",
            matters=GRANTED,
            sha256=hash_key(CLERK_KEY),
        )
    ]
)
CLERK = Principal("窗口1", "clerk", "api", department="gjj", matters=frozenset(GRANTED))
CASE = "GJJ-2026-0815"
CLI_MATTER = ["--matter", "gjj_withdrawal", "--case-no", CASE]


def _id(first17: str) -> str:
    return first17 + id_check_char(first17)


OWNER = _id("33010619800101001")  # registered, owns a current property
FORMER = _id("33010219900202002")  # registered, only a historical right: owns nothing
OUTSIDER = _id("11010119850505003")  # not registered, owns a current property here
STRANGER = _id("11010119900307775")  # valid, no register knows the number


class ListSink:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def write(self, record: dict[str, Any]) -> None:
        self.records.append(record)


def publish(root: StorageRoot, with_person: bool = True) -> None:
    if with_person:
        ids = [OWNER, FORMER]
        person = pa.table(
            {
                "id_number": ids,
                "name": ["张三", "李四"],
                "name_source": ["gongan"] * 2,
                "name_as_of": pa.array([date(2026, 11, 1)] * 2, pa.date32()),
            }
        )
        overwrite(root.curated("person"), person, ["id_number"], "run-1", DS)
    rights = pa.table(
        {
            "certificate_no": ["浙(2020)第0000001号", "浙(2010)第0000002号", "浙(2021)第0000003号"],
            "owner_id_number": [OWNER, FORMER, OUTSIDER],
            "owner_name": ["张三", "李四", "王五"],
            "location": ["杭州市西湖区文三路1号", "杭州市西湖区文三路2号", "杭州市上城区1号"],
            "status": ["现势", "历史", "现势"],
            "source": ["bdc"] * 3,
            "as_of": pa.array([date(2026, 11, 1)] * 3, pa.date32()),
        }
    )
    overwrite(root.curated("property_right"), rights, ["owner_id_number"], "run-1", DS)


@pytest.fixture
def root(storage_root: StorageRoot) -> StorageRoot:
    publish(storage_root)
    return storage_root


# --- the service, over the snapshot and over the CLI's point view ---------------------------------


@pytest.mark.parametrize("source", [CuratedStore, DeltaPointSource])
def test_property_status_never_says_no_for_a_person_the_register_does_not_know(
    root: StorageRoot, source: Any
) -> None:
    sink = ListSink()
    svc = LookupService(source(root), AuditLog([sink], b"k" * 16), catalogue=MATTERS)
    owner = svc.lookup(CLERK, "property_status", OWNER, "gjj_withdrawal", CASE, "公积金提取").body
    assert (owner["person_known"], owner["owns_property"], owner["property_count"]) == (
        True,
        True,
        1,
    )
    former = svc.lookup(CLERK, "property_status", FORMER, "gjj_withdrawal", CASE, "公积金提取").body
    assert (former["person_known"], former["owns_property"]) == (True, False)
    # not registered but owning a current right here: a true "yes", which no certificate
    # of owning nothing can come from
    outsider = svc.lookup(
        CLERK, "property_status", OUTSIDER, "gjj_withdrawal", CASE, "公积金提取"
    ).body
    assert (outsider["person_known"], outsider["owns_property"]) == (False, True)
    with pytest.raises(PersonUnknown) as e:
        svc.lookup(CLERK, "property_status", STRANGER, "gjj_withdrawal", CASE, "公积金提取")
    assert isinstance(e.value, NotFound) and STRANGER not in str(e.value)
    assert [r["outcome"] for r in sink.records] == ["found"] * 3 + ["person_unknown"]


def test_no_household_register_published_is_no_answer(storage_root: StorageRoot) -> None:
    publish(storage_root, with_person=False)
    sink = ListSink()
    svc = LookupService(CuratedStore(storage_root), AuditLog([sink], b"k" * 16), catalogue=MATTERS)
    with pytest.raises(NoCuratedData, match="person"):
        svc.lookup(CLERK, "property_status", FORMER, "gjj_withdrawal", CASE, "公积金提取")
    assert [r["outcome"] for r in sink.records] == ["no_data"]


# --- HTTP ----------------------------------------------------------------------------------------


def _client(root: StorageRoot) -> TestClient:
    svc = LookupService(CuratedStore(root), AuditLog([ListSink()], b"k" * 16), catalogue=MATTERS)
    return TestClient(create_app(svc, KEYS))


def _matter(path: str) -> dict[str, str]:
    matter = "gjj_withdrawal" if path == "property-status" else lookup_matters.ALL
    return {"matter": matter, "case_no": CASE}


def _post(client: TestClient, path: str, body: dict[str, Any]) -> Any:
    return client.post(
        f"/v1/lookup/{path}",
        json={"purpose": "公积金提取", **_matter(path), **body},
        headers={"X-API-Key": CLERK_KEY},
    )


def test_api_answers_an_unknown_person_with_404_person_unknown(root: StorageRoot) -> None:
    client = _client(root)
    r = _post(client, "property-status", {"id_number": STRANGER})
    assert r.status_code == 404, r.text
    error = r.json()["error"]
    assert error["rule"] == "PERSON_UNKNOWN" and error["field"] == "id_number"
    assert error["person_known"] is False and "户籍" in error["message_zh"]
    assert "owns_property" not in r.text and STRANGER not in r.text
    known = _post(client, "property-status", {"id_number": FORMER})
    assert known.status_code == 200
    assert (known.json()["person_known"], known.json()["owns_property"]) == (True, False)
    assert _post(client, "person", {"id_number": STRANGER}).json()["error"]["rule"] == "NOT_FOUND"
    spec = client.get("/openapi.json").json()
    assert "person_known" in spec["components"]["schemas"]["PropertyStatus"]["properties"]
    assert "person_known" in spec["components"]["schemas"]["ErrorBody"]["properties"]


def test_walking_unknown_numbers_through_property_status_raises_the_not_found_alert(
    root: StorageRoot,
) -> None:
    """Before, an unknown number was a 200 "no": an enumeration through property-status never
    reached the not-found alert. PERSON_UNKNOWN is a 404 the alert counts."""
    sink = ListSink()
    svc = LookupService(CuratedStore(root), AuditLog([sink], b"k" * 16), catalogue=MATTERS)
    limits = LookupLimits(not_found_alert=NotFoundAlert(count=2, per_seconds=600))
    client = TestClient(create_app(svc, KEYS, limits=limits))
    for k in range(2):
        number = _id(f"1101011990030777{k}")
        assert _post(client, "property-status", {"id_number": number}).status_code == 404
    alerts = [r for r in sink.records if r.get("kind") == "alert_not_found_burst"]
    assert len(alerts) == 1


def test_request_schema_errors_carry_message_zh(root: StorageRoot) -> None:
    client = _client(root)
    for body in ({"id_number": FORMER}, {"id_number": FORMER, "purpose": "x", "extra": 1}):
        r = client.post("/v1/lookup/property-status", json=body, headers={"X-API-Key": CLERK_KEY})
        error = r.json()["error"]
        assert r.status_code == 422 and error["rule"] == "REQUEST_SCHEMA", r.text
        assert error["message_zh"] and error["field"]
        assert FORMER not in r.text


# --- the CLI, as a shell sees it -----------------------------------------------------------------


def _env(root: StorageRoot, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATACLOUD_")}
    env.update(DATACLOUD_ROOT=str(root.root), DATACLOUD_AUDIT_KEY=AUDIT_KEY, COLUMNS="200")
    env.update(extra)
    return env


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [EXE, *args], capture_output=True, text=True, timeout=300, env=env, check=False
    )
    assert "Traceback" not in out.stderr + out.stdout, out.stderr
    return out


@pytest.mark.parametrize("as_json", [False, True])
def test_cli_exit_code_4_for_a_person_the_register_does_not_know(
    root: StorageRoot, as_json: bool
) -> None:
    flags = ["--json"] if as_json else []
    env = _env(root)
    out = _run(
        "lookup", "property-status", STRANGER, *CLI_MATTER, "--purpose", "复核", *flags, env=env
    )
    assert out.returncode == 4, out.stderr
    assert out.stdout == "" and "household register" in out.stderr and STRANGER not in out.stderr
    known = _run(
        "lookup", "property-status", FORMER, *CLI_MATTER, "--purpose", "复核", *flags, env=env
    )
    assert known.returncode == 0, known.stderr
    if as_json:
        body = json.loads(known.stdout)
        assert (body["person_known"], body["owns_property"]) == (True, False)
    else:
        assert "owns property in the province: no" in known.stdout
    outsider = _run("lookup", "property-status", OUTSIDER, *CLI_MATTER, env=env)
    assert outsider.returncode == 0 and "not in the household register" in outsider.stdout


# --- new-key: a keys file on its own -------------------------------------------------------------


@pytest.mark.parametrize(
    "holder",
    ["公积金中心 城东窗口3号", 'a: "b" # c', "x\ny: 1", "- [/][bold]x[/bold]", "'", "@&*!|>%"],
)
def test_new_key_prints_a_keys_file_that_loads(tmp_path: Path, holder: str) -> None:
    out = _run("lookup", "new-key", "--holder", holder, "--role", "auditor", env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    path = tmp_path / "keys.yaml"
    path.write_text(out.stdout, encoding="utf-8")
    keys = ApiKeys.from_file(path)
    key = next(w for w in out.stderr.split() if w.startswith("dck_"))
    assert key not in out.stdout  # the file holds the hash only
    who = keys.authenticate(key)
    assert who is not None and (who.holder, who.role) == (holder, "auditor")


def test_new_key_refuses_a_holder_the_keys_file_would_refuse() -> None:
    out = _run("lookup", "new-key", "--holder", "x" * 201, env=dict(os.environ))
    assert out.returncode == 2 and "--holder" in out.stderr and out.stdout == ""

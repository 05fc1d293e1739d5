"""Lookups authorised by the matter (事项): over a real sample night and the shipped catalogue
(dags/matters.yaml), through the HTTP API.

For every matter × role × lookup, the answer holds exactly the matter's data items for that
lookup (masked for a clerk, full for an auditor), or is refused: 403 ``FORBIDDEN`` for a role
that may not look up, 403 ``MATTER_NOT_GRANTED`` (audited) for a matter with no item for the
lookup, a key without the matter, or a department that does not handle it. The expected key
sets are computed here from the catalogue's items and the registry, not by
``answers.restrict``. Nothing is mocked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import built_night_root

from datacloud.curated_tables import TABLES
from datacloud.delta import read_table
from datacloud.lookup.api import create_app
from datacloud.lookup.audit import AuditLog, FileSink
from datacloud.lookup.auth import ApiKeyEntry, ApiKeys, hash_key
from datacloud.lookup.service import LookupService
from datacloud.lookup.store import CuratedStore
from datacloud.masking import mask_id_number, mask_name
from datacloud.matters import MatterCatalogue, load_matters
from datacloud.paths import StorageRoot

DS = date(2026, 11, 20)
AUDIT_KEY = b"test-audit-key-matters-0123"
CATALOGUE: MatterCatalogue = load_matters()  # the shipped catalogue
ROLES = ("clerk", "auditor", "citizen", "department")
ENDPOINTS = {"person": "person", "enterprise": "enterprise", "property_status": "property-status"}
CASE = "GJJ-2026/11-000123"
PROVENANCE = {"source", "as_of"}
PERSON_PARTS = {
    "property_rights": "property_right",
    "housing_fund_accounts": "housing_fund_account",
    "marriages": "marriage",
    "enterprise_roles": "enterprise_role",
}


def _key(matter: str, role: str) -> str:
    return f"matters-test-key-{matter}-{role}"


def _entries() -> list[ApiKeyEntry]:
    out = []
    for code, m in CATALOGUE.matters.items():
        for role in ROLES:
            extra: dict[str, Any] = {"department": m.departments[0]}
            if role in ("clerk", "auditor"):
                extra["matters"] = (code,)
            if role == "citizen":
                extra = {"subject_hmac": "0" * 64}
            out.append(
                ApiKeyEntry(
                    holder=f"{code}/{role}", role=role, sha256=hash_key(_key(code, role)), **extra
                )
            )
    # a clerk of gjj granted only marriage registration; one of gjj mis-granted a bdc matter
    out.append(
        ApiKeyEntry(
            holder="gjj 只有婚姻登记",
            role="clerk",
            department="gjj",
            matters=("marriage_registration",),
            sha256=hash_key("matters-test-key-other-matter"),
        )
    )
    out.append(
        ApiKeyEntry(
            holder="gjj 误授不动产登记",
            role="clerk",
            department="gjj",
            matters=("property_registration", "gjj_withdrawal"),
            sha256=hash_key("matters-test-key-wrong-department"),
        )
    )
    return out


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorageRoot]:
    with built_night_root(tmp_path_factory, "matters", 400, DS, "matters-test") as r:
        yield r


@pytest.fixture(scope="module")
def curated(root: StorageRoot) -> dict[str, list[dict[str, Any]]]:
    return {n: read_table(root.curated(n)).to_pylist() for n in TABLES if n != "consistency"}


@pytest.fixture(scope="module")
def client(root: StorageRoot) -> TestClient:
    service = LookupService(
        CuratedStore(root),
        AuditLog([FileSink(root.root / "audit")], AUDIT_KEY),
        catalogue=CATALOGUE,
    )
    return TestClient(create_app(service, ApiKeys(_entries())))


@pytest.fixture(scope="module")
def subjects(curated: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """A person with every kind of linked fact there is, and an enterprise with shareholders."""
    linked: dict[str, int] = {}
    for table, column in (
        ("property_right", "owner_id_number"),
        ("housing_fund_account", "id_number"),
        ("marriage", "husband_id_number"),
        ("marriage", "wife_id_number"),
        ("enterprise_role", "id_number"),
    ):
        for r in curated[table]:
            linked.setdefault(r[column], 0)
            linked[r[column]] += 1 << len(table)  # kinds weigh more than counts
    persons = {p["id_number"] for p in curated["person"]}
    owners = {r["owner_id_number"] for r in curated["property_right"] if r["status"] == "现势"}
    person = max((p for p in linked if p in persons and p in owners), key=lambda p: linked[p])
    code = next(
        r["credit_code"]
        for r in curated["enterprise_role"]
        if r["role"] == "shareholder" and r["credit_code"]
    )
    return {"person": person, "property_status": person, "enterprise": code}


def _audit_lines(root: StorageRoot) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for f in sorted((root.root / "audit").glob("lookups-*.jsonl"))
        for line in f.read_text(encoding="utf-8").splitlines()
    ]


def _columns(matter: str, endpoint: str) -> dict[str, set[str]]:
    """Per table, the columns the matter's items for the endpoint name, with provenance."""
    out: dict[str, set[str]] = {}
    for item_id in CATALOGUE.matters[matter].items:
        item = CATALOGUE.items[item_id]
        if item.endpoint == endpoint:
            out.setdefault(item.table, set()).update(item.fields)
    for table, cols in out.items():
        for f in TABLES[table].fields:
            if cols & set(f.value_columns):
                cols |= {f"{f.name}_source", f"{f.name}_as_of"}
        if TABLES[table].columns:
            cols |= PROVENANCE
    return out


def _post(client: TestClient, endpoint: str, key: str, subject: str, matter: str) -> Any:
    field = "code" if endpoint == "enterprise" else "id_number"
    body = {field: subject, "matter": matter, "case_no": CASE}
    return client.post(f"/v1/lookup/{ENDPOINTS[endpoint]}", json=body, headers={"X-API-Key": key})


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("matter", list(CATALOGUE.matters))
def test_a_matters_answer_holds_exactly_its_items(
    client, root, curated, subjects, matter: str, role: str, endpoint: str
) -> None:
    r = _post(client, endpoint, _key(matter, role), subjects[endpoint], matter)
    last = _audit_lines(root)[-1]
    assert (last["matter"], last["case_no"], last["endpoint"]) == (matter, CASE, endpoint)
    department = None if role == "citizen" else CATALOGUE.matters[matter].departments[0]
    assert last["department"] == department
    if role in ("citizen", "department"):
        assert r.status_code == 403 and r.json()["error"]["rule"] == "FORBIDDEN"
        assert last["outcome"] == "forbidden"
        return
    columns = _columns(matter, endpoint)
    if not columns:
        assert r.status_code == 403, r.text
        assert r.json()["error"]["rule"] == "MATTER_NOT_GRANTED"
        assert r.json()["error"]["message_zh"]
        assert last["outcome"] == "matter_not_granted"
        return
    assert r.status_code == 200, r.text
    assert last["outcome"] == "found" and last["id"] == r.json()["audit_id"]
    body = r.json()
    clerk = role == "clerk"

    def seen(table: str, cols: set[str]) -> set[str]:
        return cols & set(TABLES[table].clerk) if clerk else cols

    assert set(body["curated"]) == set(columns)
    if endpoint == "property_status":
        assert set(body) == {
            "id_number", "person_known", "owns_property", "property_count",
            "as_of", "sources", "curated", "audit_id",
        }  # fmt: skip
        assert body["owns_property"] is True and body["sources"] == ["bdc"]
        return
    if endpoint == "person":
        parts = {p for p, t in PERSON_PARTS.items() if t in columns}
        assert set(body) == {"id_number", "curated", "audit_id"} | parts | (
            {"fields"} if "person" in columns else set()
        )
        person = next(p for p in curated["person"] if p["id_number"] == subjects["person"])
        if "person" in columns:
            names = {f.name for f in TABLES["person"].fields} & columns["person"]
            assert set(body["fields"]) == seen("person", names)
            for name, value in body["fields"].items():
                full = person[name]
                shown = mask_name(full) if clerk and name == "name" else full
                if not clerk or name in ("name", "marital_status"):
                    assert value["value"] == (
                        full.isoformat() if hasattr(full, "isoformat") else shown
                    )
        for part in parts:
            table = PERSON_PARTS[part]
            assert body[part], part  # the subject has such facts
            for row in body[part]:
                assert set(row) == seen(table, columns[table]), part
        if "fields" not in body or "name" not in body["fields"]:
            assert person["name"] not in r.text  # a matter without the name never shows it
        assert (mask_id_number(subjects["person"]) if clerk else subjects["person"]) == body[
            "id_number"
        ]
    else:
        ent = next(e for e in curated["enterprise"] if e["credit_code"] == subjects["enterprise"])
        rep = bool(columns.get("enterprise", set()) & {"legal_rep_id_number", "legal_rep_name"})
        assert set(body) == {"key", "curated", "audit_id"} | (
            {"record"} if "enterprise" in columns else set()
        ) | ({"legal_representative"} if rep else set()) | (
            {"shareholders"} if "enterprise_role" in columns else set()
        )
        if "enterprise" in columns:
            assert set(body["record"]) == seen("enterprise", columns["enterprise"])
            assert body["record"]["name"] == ent["name"]  # not a personal name: never masked
        if rep:
            assert set(body["legal_representative"]) == {"id_number", "name", "source", "as_of"}
            shown = body["legal_representative"]["id_number"]
            full = ent["legal_rep_id_number"]
            assert shown == (mask_id_number(full) if clerk else full)
            if clerk:
                assert full not in r.text


def test_a_key_without_the_matter_gets_403_and_an_audit_record(client, root, subjects) -> None:
    owner = subjects["property_status"]
    r = _post(client, "property_status", "matters-test-key-other-matter", owner, "gjj_withdrawal")
    assert r.status_code == 403
    error = r.json()["error"]
    assert error["rule"] == "MATTER_NOT_GRANTED" and error["field"] == "matter"
    assert "not granted to this key" in error["message"] and owner not in r.text
    assert "owns_property" not in r.text
    rec = _audit_lines(root)[-1]
    assert (rec["outcome"], rec["matter"], rec["case_no"], rec["department"], rec["who"]) == (
        "matter_not_granted",
        "gjj_withdrawal",
        CASE,
        "gjj",
        "gjj 只有婚姻登记",
    )
    assert owner not in json.dumps(rec, ensure_ascii=False)


def test_a_department_not_handling_the_matter_gets_403(client, root, subjects) -> None:
    """A gjj key granted 不动产登记 by mistake still cannot look up for it: gjj does not handle
    it (dags/matters.yaml names bdc); its own 公积金提取 works."""
    owner = subjects["person"]
    key = "matters-test-key-wrong-department"
    r = _post(client, "person", key, owner, "property_registration")
    assert r.status_code == 403 and r.json()["error"]["rule"] == "MATTER_NOT_GRANTED"
    assert "does not handle" in r.json()["error"]["message"]
    assert _audit_lines(root)[-1]["outcome"] == "matter_not_granted"
    assert _post(client, "property_status", key, owner, "gjj_withdrawal").status_code == 200


def test_an_unknown_matter_gets_403(client, root, subjects) -> None:
    r = _post(
        client, "property_status", _key("gjj_withdrawal", "clerk"), subjects["person"], "no_such"
    )
    assert r.status_code == 403 and r.json()["error"]["rule"] == "MATTER_NOT_GRANTED"
    assert _audit_lines(root)[-1]["outcome"] == "matter_not_granted"

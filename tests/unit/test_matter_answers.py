"""Matters in the lookup service without a server: ``answers.restrict`` (pure), the matter
check and its audit record, the proof hook with a fake signer, keys with department, matters
and subject_hmac.

The proof signer is faked (``lookup_matters.FakeSigner``): the real one is
``datacloud.lookup.proofs``, tested on its own; here only what the service hands it is tested.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
from pathlib import Path
from typing import Any

import lookup_matters
import pyarrow as pa
import pytest
import yaml

from datacloud.delta import overwrite
from datacloud.lookup import answers
from datacloud.lookup.audit import AuditLog
from datacloud.lookup.auth import ApiKeys, KeysFileError, Principal, hash_key
from datacloud.lookup.service import (
    Forbidden,
    LookupService,
    MatterNotGranted,
    ProofUnavailable,
)
from datacloud.lookup.store import CuratedStore
from datacloud.matters import load_matters
from datacloud.paths import StorageRoot
from transforms.id_number import id_check_char

A = "33010619800101001" + id_check_char("33010619800101001")
CASE = "BDC-2026-0042"
SHIPPED = load_matters()

PERSON_ANSWER: dict[str, Any] = {
    "id_number": A,
    "fields": {
        f: {"value": f"v-{f}", "source": "gongan", "as_of": "2026-11-20"}
        for f in ("name", "sex", "registered_address", "phone", "marital_status")
    },
    "property_rights": [
        {"certificate_no": "浙2026-1", "owner_id_number": A, "status": "现势", "source": "bdc"}
    ],
    "housing_fund_accounts": [{"account_no": "GJJ1", "id_number": A, "source": "gjj"}],
    "marriages": [
        {"registration_id": "J1", "husband_id_number": A, "office": "西湖区", "source": "mz"}
    ],
    "enterprise_roles": [{"credit_code": "X", "id_number": A, "role": "shareholder"}],
    "curated": {
        t: {"version": 1, "as_of": "2026-11-20"}
        for t in ("person", "property_right", "housing_fund_account", "marriage", "enterprise_role")
    },
}


def test_restrict_keeps_only_the_matters_items() -> None:
    before = copy.deepcopy(PERSON_ANSWER)
    out = answers.restrict("person", PERSON_ANSWER, "property_registration", SHIPPED)
    assert before == PERSON_ANSWER  # pure: the answer given is not changed
    assert set(out) == {"id_number", "fields", "curated"}
    assert set(out["fields"]) == {"name", "registered_address"}
    assert out["fields"]["name"] == PERSON_ANSWER["fields"]["name"]  # with source and as-of
    assert set(out["curated"]) == {"person"}
    marriage = answers.restrict("person", PERSON_ANSWER, "marriage_registration", SHIPPED)
    assert set(marriage) == {"id_number", "fields", "marriages", "curated"}
    assert set(marriage["fields"]) == {"name", "marital_status"}
    assert marriage["marriages"] == [
        {"registration_id": "J1", "husband_id_number": A, "office": "西湖区", "source": "mz"}
    ]
    with pytest.raises(answers.MatterHasNoItem):
        answers.restrict("person", PERSON_ANSWER, "gjj_withdrawal", SHIPPED)
    with pytest.raises(answers.MatterHasNoItem):
        answers.restrict("person", PERSON_ANSWER, "no_such_matter", SHIPPED)


def test_restrict_an_enterprise_answer() -> None:
    answer = {
        "key": {"kind": "credit_code", "value": "X"},
        "record": {
            "credit_code": "X",
            "name": "某公司",
            "name_source": "scjg",
            "name_as_of": "2026-11-20",
            "legal_rep_id_number": A,
            "legal_rep_name": "张三",
            "legal_representative_source": "scjg",
            "legal_representative_as_of": "2026-11-20",
        },
        "legal_representative": {"id_number": A, "name": "张三", "source": "scjg", "as_of": "d"},
        "shareholders": [{"id_number": A, "role": "shareholder"}],
        "curated": {"enterprise": {}, "enterprise_role": {}},
    }
    out = answers.restrict("enterprise", answer, "enterprise_registration", SHIPPED)
    assert set(out) == {"key", "record", "legal_representative", "curated"}  # no shareholders
    assert out["record"] == answer["record"]
    assert out["legal_representative"] == answer["legal_representative"]
    assert answers.sources("enterprise", out) == ["scjg"]


def _publish(root: StorageRoot) -> None:
    person = pa.table(
        {
            "id_number": [A],
            "name": ["张三"],
            "name_source": ["gongan"],
            "name_as_of": ["2026-11-20"],
            "registered_address": ["浙江省杭州市西湖区文三路1号"],
            "registered_address_source": ["gongan"],
            "registered_address_as_of": ["2026-11-20"],
            "phone": ["13812345678"],
            "phone_source": ["gjj"],
            "phone_as_of": ["2026-11-20"],
        }
    )
    rights = pa.table(
        {
            "_key": ["c1|" + A],
            "certificate_no": ["浙(2026)杭州市不动产权第0000001号"],
            "owner_id_number": [A],
            "owner_name": ["张三"],
            "location": ["杭州市西湖区文三路1号"],
            "status": ["现势"],
            "source": ["bdc"],
            "as_of": ["2026-11-20"],
        }
    )
    overwrite(root.curated("person"), person, ["id_number"], "r", "2026-11-20")
    overwrite(root.curated("property_right"), rights, ["owner_id_number"], "r", "2026-11-20")


class _ListSink:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def write(self, record: dict[str, Any]) -> None:
        self.records.append(record)


def _bdc(role: str = "clerk", matters: tuple[str, ...] = ("property_registration",)) -> Principal:
    return Principal("不动产窗口", role, "api", department="bdc", matters=frozenset(matters))  # type: ignore[arg-type]


def test_the_service_answers_the_matter_and_audits_it(storage_root: StorageRoot) -> None:
    _publish(storage_root)
    sink = _ListSink()
    svc = LookupService(CuratedStore(storage_root), AuditLog([sink], b"k" * 16), catalogue=SHIPPED)
    clerk = svc.lookup(_bdc(), "person", A, "property_registration", CASE).body
    assert set(clerk["fields"]) == {"name", "registered_address"}
    assert clerk["fields"]["name"]["value"] == "张*"  # a clerk: masked
    assert clerk["fields"]["registered_address"]["value"] == "浙江省杭州市西湖区****"
    assert "property_rights" not in clerk and "13812345678" not in str(clerk)
    auditor = svc.lookup(_bdc("auditor"), "person", A, "property_registration", CASE).body
    assert auditor["fields"]["name"]["value"] == "张三"  # an auditor: full, same items
    assert set(auditor) == set(clerk)
    rec = sink.records[-1]
    assert (rec["matter"], rec["case_no"], rec["department"], rec["purpose"]) == (
        "property_registration",
        CASE,
        "bdc",
        "",
    )
    with pytest.raises(MatterNotGranted, match="not granted"):
        svc.lookup(_bdc(), "property_status", A, "gjj_withdrawal", CASE)
    with pytest.raises(MatterNotGranted, match="does not handle"):
        svc.lookup(_bdc(matters=("gjj_withdrawal",)), "property_status", A, "gjj_withdrawal", CASE)
    with pytest.raises(MatterNotGranted, match="reads no data item of the enterprise lookup"):
        svc.lookup(_bdc(), "enterprise", "X", "property_registration", CASE)
    assert [r["outcome"] for r in sink.records[-3:]] == ["matter_not_granted"] * 3
    key_hash = hmac.new(b"k" * 16, A.encode(), hashlib.sha256).hexdigest()
    assert sink.records[-3]["key_hmac"] == key_hash  # never in clear
    # typed with full-width digits: hashed as normalised, so the person's tracker finds it
    wide = A.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    with pytest.raises(MatterNotGranted):
        svc.lookup(_bdc(), "property_status", wide, "gjj_withdrawal", CASE)
    assert sink.records[-1]["key_hmac"] == key_hash
    citizen = Principal("市民", "citizen", "api", subject_hmac=key_hash)
    with pytest.raises(Forbidden) as e:
        svc.lookup(citizen, "person", A, "property_registration", CASE)
    assert not isinstance(e.value, MatterNotGranted)
    with pytest.raises(ValueError, match="case_no"):
        svc.lookup(_bdc(), "person", A, "property_registration", "第1号")
    assert sink.records[-1]["outcome"] == "forbidden"  # the bad case number: nothing written


def test_the_proof_hook_signs_the_answer_as_returned(storage_root: StorageRoot) -> None:
    _publish(storage_root)
    sink, signer = _ListSink(), lookup_matters.FakeSigner()
    svc = LookupService(
        CuratedStore(storage_root), AuditLog([sink], b"k" * 16), catalogue=SHIPPED, signer=signer
    )
    gjj = Principal(
        "公积金窗口", "clerk", "api", department="gjj", matters=frozenset({"gjj_withdrawal"})
    )
    plain = svc.lookup(gjj, "property_status", A, "gjj_withdrawal", CASE)
    assert "proof" not in plain.body and signer.signed == []
    answer = svc.lookup(gjj, "property_status", A, "gjj_withdrawal", CASE, proof=True)
    assert answer.body["proof"].startswith("e30.")
    (claims,) = signer.signed
    assert set(claims) == {"answer", "matter", "case_no", "as_of", "sources", "audit_id", "iat"}
    assert claims["answer"] == {k: v for k, v in answer.body.items() if k != "proof"}
    assert claims["answer"]["id_number"] == A[:6] + "********" + A[-4:]  # masked as returned
    assert (claims["matter"], claims["case_no"], claims["sources"]) == (
        "gjj_withdrawal",
        CASE,
        ["bdc"],
    )
    assert claims["as_of"] == {"property_right": {"version": 0, "as_of": "2026-11-20"}}
    assert claims["audit_id"] == answer.audit_id == sink.records[-1]["id"]
    assert isinstance(claims["iat"], int)
    # a person answer's proof carries only the matter's items, and its sources
    bdc = svc.lookup(_bdc(), "person", A, "property_registration", CASE, proof=True)
    assert set(signer.signed[-1]["answer"]["fields"]) == {"name", "registered_address"}
    assert signer.signed[-1]["sources"] == ["gongan"] and "13812345678" not in bdc.body["proof"]
    # no signer: refused before anything is looked up or written
    unsigned = LookupService(
        CuratedStore(storage_root), AuditLog([sink], b"k" * 16), catalogue=SHIPPED
    )
    n = len(sink.records)
    with pytest.raises(ProofUnavailable):
        unsigned.lookup(gjj, "property_status", A, "gjj_withdrawal", CASE, proof=True)
    assert len(sink.records) == n


def _keys(tmp_path: Path, *entries: dict[str, Any]) -> Path:
    path = tmp_path / "keys.yaml"
    path.write_text(yaml.safe_dump({"keys": list(entries)}, allow_unicode=True), "utf-8")
    return path


def test_keys_carry_department_matters_and_subject(tmp_path: Path) -> None:
    hmac_hex = "ab" * 32
    path = _keys(
        tmp_path,
        {
            "holder": "公积金窗口",
            "role": "clerk",
            "department": "gjj",
            "matters": ["gjj_withdrawal"],
            "sha256": hash_key("k1" * 20),
        },
        {
            "holder": "市民门户",
            "role": "citizen",
            "subject_hmac": hmac_hex,
            "sha256": hash_key("k2" * 20),
        },
        {
            "holder": "民政局",
            "role": "department",
            "department": "mz",
            "sha256": hash_key("k3" * 20),
        },
    )
    keys = ApiKeys.from_file(path, list(SHIPPED.matters))
    clerk = keys.authenticate("k1" * 20)
    assert clerk is not None
    assert (clerk.department, clerk.matters) == ("gjj", frozenset({"gjj_withdrawal"}))
    citizen = keys.authenticate("k2" * 20)
    assert citizen is not None and citizen.subject_hmac == hmac_hex
    assert not citizen.may("person") and citizen.may("tracker")
    dept = keys.authenticate("k3" * 20)
    assert dept is not None and dept.department == "mz" and not dept.may("property_status")


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"role": "citizen"}, "needs subject_hmac"),
        ({"role": "clerk", "subject_hmac": "ab" * 32}, "citizen keys only"),
        ({"role": "clerk", "matters": ["gjj_withdrawal"]}, "needs its department"),
        ({"role": "department"}, "needs its department"),
        ({"role": "department", "department": "mz", "matters": ["gjj_withdrawal"]}, "no matters"),
        ({"role": "clerk", "department": "gjj", "matters": ["nope"]}, "unknown matter(s) nope"),
        ({"role": "clerk", "department": "GJJ"}, "department"),
    ],
)
def test_a_bad_key_entry_is_named(tmp_path: Path, entry: dict[str, Any], expected: str) -> None:
    path = _keys(tmp_path, {"holder": "窗口", "sha256": hash_key("k" * 30), **entry})
    with pytest.raises(KeysFileError) as e:
        ApiKeys.from_file(path, list(SHIPPED.matters))
    assert str(path) in str(e.value) and expected in str(e.value)


def test_disputes_are_those_of_the_fields_the_matter_reads(storage_root: StorageRoot) -> None:
    """A contested fact the matter does not read (the person's phone, for 不动产登记) is not in
    its answer either; one it reads (the name) is. The disputes are given by a plain function
    here (the real index over the problem table: tests/integration/test_problem_loop_api.py)."""
    from datetime import date

    from datacloud.problem_disputes import Dispute

    _publish(storage_root)

    def disputes(number: str) -> list[Dispute]:
        assert number == A
        return [
            Dispute("name", date(2026, 11, 1), "a" * 16, "czrk", "gongan", "disputed"),
            Dispute("phone", date(2026, 11, 2), "b" * 16, "grzh", "gjj", "open"),
        ]

    svc = LookupService(
        CuratedStore(storage_root),
        AuditLog([_ListSink()], b"k" * 16),
        catalogue=SHIPPED,
        disputes=disputes,
    )
    bdc = svc.lookup(_bdc(), "person", A, "property_registration", CASE).body
    assert bdc["disputed"] is True and [d["field"] for d in bdc["disputes"]] == ["name"]
    gjj = Principal(
        "公积金窗口", "clerk", "api", department="gjj", matters=frozenset({"gjj_withdrawal"})
    )
    status = svc.lookup(gjj, "property_status", A, "gjj_withdrawal", CASE).body
    assert status["disputed"] is False and status["disputes"] == []

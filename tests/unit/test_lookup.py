"""Lookup building blocks without a server: keys, indexes, snapshots, masking, keys file, audit."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import lookup_matters
import pyarrow as pa
import pytest
from lookup_matters import ALL, CASE

from datacloud.delta import overwrite
from datacloud.lookup import answers
from datacloud.lookup.audit import (
    AuditKeyMissing,
    AuditLog,
    AuditUnavailable,
    FileSink,
    audit_key_from_env,
)
from datacloud.lookup.auth import ApiKeys, KeysFileError, Principal, hash_key, new_key
from datacloud.lookup.keys import EnterpriseKey, MalformedKey, enterprise_key, person_key
from datacloud.lookup.service import Forbidden, LookupService, NotFound
from datacloud.lookup.snapshot import KeyIndex
from datacloud.lookup.store import CuratedStore, NoCuratedData
from datacloud.paths import StorageRoot
from transforms.credit_code import credit_code_check_char, org_code_check_char
from transforms.id_number import id_check_char


def _id(first17: str) -> str:
    return first17 + id_check_char(first17)


A = _id("33010619800101001")  # a man born 1980-01-01
B = _id("33010619900202002")
X_ID = next(
    _id(f"3301061975123100{i}") for i in range(10) if id_check_char(f"3301061975123100{i}") == "X"
)
MATTERS = lookup_matters.catalogue()  # the shipped matters and review_all, which reads everything
CLERK = Principal("窗口1", "clerk", "api", department="gjj", matters=frozenset({ALL}))
AUDITOR = Principal("审计1", "auditor", "api", matters=frozenset({ALL}))


# --- keys ----------------------------------------------------------------------------------------


def test_person_key_takes_the_pipeline_cleaning() -> None:
    assert person_key(X_ID.lower()) == X_ID
    assert person_key(A.translate(str.maketrans("0123456789", "０１２３４５６７８９"))) == A
    assert person_key(f" {A[:6]}-{A[6:14]} {A[14:]}") == A
    legacy = A[:6] + A[8:17]
    assert len(legacy) == 15 and person_key(legacy) == A


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        ("", "ID_LENGTH"),
        ("12345", "ID_LENGTH"),
        (A[:-1] + ("0" if A[-1] != "0" else "1"), "ID_CHECK_DIGIT"),
        (_id("99010619800101001"), "ID_PROVINCE"),
        (_id("33010630000101001"), "ID_BIRTH_DATE"),
        ("3" * 65, "KEY_TOO_LONG"),
    ],
)
def test_malformed_person_key_names_its_rule(raw: str, rule: str) -> None:
    with pytest.raises(MalformedKey) as e:
        person_key(raw, today=date(2026, 11, 20))
    assert e.value.code == rule and f"rule {rule}" in str(e.value) and e.value.message_zh
    assert raw[:10] not in str(e.value) or not raw


def test_enterprise_key_kinds() -> None:
    org8 = "MA0000A1"
    first17 = "91330102" + org8 + org_code_check_char(org8)
    code = first17 + credit_code_check_char(first17)
    assert enterprise_key(code.lower()) == enterprise_key(code)
    assert enterprise_key(code).kind == "credit_code"
    org9 = org8 + org_code_check_char(org8)
    assert enterprise_key(org9[:8] + "-" + org9[8]).kind == "org_code"
    with pytest.raises(MalformedKey) as e:
        enterprise_key(code[:-1] + ("0" if code[-1] != "0" else "1"))
    assert e.value.code == "CC_CHECK_CHAR" and e.value.field == "code"


# --- the index -----------------------------------------------------------------------------------


def test_key_index_finds_every_row_of_a_key_in_unsorted_variable_width_keys() -> None:
    keys = pa.array(["B2", None, "A", "B2", "C333", "A", None, "B"], pa.string())
    index = KeyIndex(keys)
    assert sorted(index.find("A").tolist()) == [2, 5]
    assert sorted(index.find("B2").tolist()) == [0, 3]
    assert index.find("B").tolist() == [7]
    assert index.find("C333").tolist() == [4]
    assert index.find("C").tolist() == [] and index.find("C3334").tolist() == []
    assert index.find("").tolist() == []


# --- a store over small real Delta tables --------------------------------------------------------


def _person_table(names: dict[str, str]) -> pa.Table:
    ids = sorted(names)
    n = len(ids)
    cols: dict[str, Any] = {"id_number": ids}
    for f, values in (("name", [names[i] for i in ids]), ("phone", ["13812345678"] * n)):
        cols[f] = values
        cols[f"{f}_source"] = ["gongan"] * n
        cols[f"{f}_as_of"] = pa.array([date(2026, 11, 1)] * n, pa.date32())
    return pa.table(cols)


def _publish(root: StorageRoot, names: dict[str, str], ds: str) -> None:
    overwrite(root.curated("person"), _person_table(names), ["id_number"], f"run-{ds}", ds)
    rights = pa.table(
        {
            "certificate_no": [
                "浙(2020)杭州市不动产权第0000001号",
                "浙(2010)杭州市不动产权第0000002号",
            ],
            "owner_id_number": [A, B],
            "owner_name": [names[A], names[B]],
            "location": ["杭州市西湖区文三路1号", "杭州市西湖区文三路2号"],
            "status": ["现势", "历史"],
            "source": ["bdc", "bdc"],
            "as_of": pa.array([date(2026, 11, 1)] * 2, pa.date32()),
        }
    )
    overwrite(root.curated("property_right"), rights, ["owner_id_number"], f"run-{ds}", ds)


class _ListSink:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def write(self, record: dict[str, Any]) -> None:
        self.records.append(record)


def test_store_swaps_in_a_new_publish_and_keeps_earlier_dates(storage_root: StorageRoot) -> None:
    with pytest.raises(NoCuratedData):
        CuratedStore(storage_root).current()
    _publish(storage_root, {A: "张三", B: "李四"}, "2026-11-20")
    store = CuratedStore(storage_root)
    first = store.current()
    assert first.rows("person", "id_number", A)[0]["name"] == "张三"
    assert store.refresh() is False  # nothing new
    _publish(storage_root, {A: "张三丰", B: "李四"}, "2026-11-21")
    assert store.current() is first  # until refreshed: the old snapshot, whole
    assert store.refresh() is True
    assert store.current().rows("person", "id_number", A)[0]["name"] == "张三丰"
    assert store.as_of("2026-11-20").rows("person", "id_number", A)[0]["name"] == "张三"
    assert store.as_of("2026-11-25") is store.current()
    with pytest.raises(NoCuratedData):
        store.as_of("2026-11-19")


def test_as_of_past_the_kept_history_is_no_data_not_an_error(storage_root: StorageRoot) -> None:
    from deltalake import DeltaTable

    _publish(storage_root, {A: "张三", B: "李四"}, "2026-11-20")
    _publish(storage_root, {A: "张三丰", B: "李四"}, "2026-11-21")
    for name in ("person", "property_right"):  # vacuum keeps no history at all
        DeltaTable(str(storage_root.curated(name))).vacuum(
            retention_hours=0, enforce_retention_duration=False, dry_run=False
        )
    store = CuratedStore(storage_root)
    assert store.current().rows("person", "id_number", A)[0]["name"] == "张三丰"
    with pytest.raises(NoCuratedData, match="can no longer be read"):
        store.as_of("2026-11-20")


def test_service_masks_for_a_clerk_and_audits_every_outcome(storage_root: StorageRoot) -> None:
    _publish(storage_root, {A: "张三", B: "李四"}, "2026-11-20")
    sink = _ListSink()
    svc = LookupService(CuratedStore(storage_root), AuditLog([sink], b"k" * 16), catalogue=MATTERS)
    full = svc.lookup(AUDITOR, "person", A.lower(), ALL, CASE, "复核").body
    assert full["fields"]["name"]["value"] == "张三" and full["id_number"] == A
    masked = svc.lookup(CLERK, "person", A, ALL, CASE, "窗口").body
    assert masked["id_number"] == A[:6] + "********" + A[-4:]
    assert masked["fields"]["name"]["value"] == "张*"
    assert masked["fields"]["phone"]["value"] == "138****5678"
    assert masked["property_rights"][0]["location"] == "杭州市西湖区****"
    assert A not in json.dumps(masked, ensure_ascii=False)
    status = svc.lookup(CLERK, "property_status", B, ALL, CASE, "公积金提取").body
    assert (status["owns_property"], status["property_count"], status["as_of"]) == (
        False,
        0,
        "2026-11-20",
    )
    with pytest.raises(MalformedKey):
        svc.lookup(CLERK, "person", "123", ALL, CASE, "窗口")
    with pytest.raises(NotFound):
        svc.lookup(CLERK, "person", _id("11010119900307775"), ALL, CASE, "窗口")
    with pytest.raises(Forbidden):
        svc.search_audit(CLERK, "看看", None, 10)
    outcomes = [r["outcome"] for r in sink.records]
    assert outcomes == ["found", "found", "found", "malformed:ID_LENGTH", "not_found", "forbidden"]
    key_hash = hmac.new(b"k" * 16, A.encode(), hashlib.sha256).hexdigest()
    assert sink.records[0]["key_hmac"] == key_hash == sink.records[1]["key_hmac"]


def test_no_property_register_is_no_answer_not_a_false_no(storage_root: StorageRoot) -> None:
    """Person published, property_right not (first night, or held back by its gate): the
    property check refuses to answer instead of saying "owns no property"."""
    overwrite(
        storage_root.curated("person"), _person_table({A: "张三"}), ["id_number"], "r", "2026-11-20"
    )
    sink = _ListSink()
    svc = LookupService(CuratedStore(storage_root), AuditLog([sink], b"k" * 16), catalogue=MATTERS)
    with pytest.raises(NoCuratedData, match="property register"):
        svc.lookup(CLERK, "property_status", A, ALL, CASE, "公积金提取")
    assert [r["outcome"] for r in sink.records] == ["no_data"]


def test_shareholders_sort_by_decimal_share_ratio() -> None:
    """MariaDB and PostgreSQL give DECIMAL share ratios (strings once cleaned for JSON)."""
    credit = "91330106MA2B1C3D4X"

    class View:
        def rows(self, table: str, column: str, key: str) -> list[dict[str, Any]]:
            if table == "enterprise":
                return [{"credit_code": credit, "reg_number": None, "name": "某公司"}]
            if table == "enterprise_role" and column == "credit_code":
                return [
                    {"id_number": A, "role": "shareholder", "share_ratio": Decimal("0.2500")},
                    {"id_number": B, "role": "shareholder", "share_ratio": Decimal("0.7500")},
                ]
            return []

        def version(self, table: str) -> int | None:
            return 0

        def ds(self, table: str) -> str | None:
            return "2026-11-20"

        def distinct(self, table: str, column: str) -> list[str]:
            return []

    out = answers.enterprise(View(), EnterpriseKey("credit_code", credit))
    assert [s["id_number"] for s in out["shareholders"]] == [B, A]


def test_a_failing_sink_stops_the_answer(storage_root: StorageRoot) -> None:
    class Broken:
        def write(self, record: dict[str, Any]) -> None:
            raise PermissionError("read-only file system")

    _publish(storage_root, {A: "张三", B: "李四"}, "2026-11-20")
    svc = LookupService(
        CuratedStore(storage_root), AuditLog([_ListSink(), Broken()], b"k" * 16), catalogue=MATTERS
    )
    with pytest.raises(AuditUnavailable):
        svc.lookup(AUDITOR, "property_status", A, ALL, CASE, "复核")


# --- masking -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "masked"),
    [
        ("浙江省宁波市北仑区魏路340号", "浙江省宁波市北仑区****"),
        ("宁波市北仑区邵路285号7幢2单元2303室", "宁波市北仑区****"),
        ("杭州市文三路1号", "杭州市****"),
        ("文三路1号", "文三路****"),
    ],
)
def test_mask_address_keeps_the_division_only(address: str, masked: str) -> None:
    assert answers.mask_address(address) == masked


# --- keys file and audit key ---------------------------------------------------------------------


def test_keys_file_authenticates_by_hash(tmp_path: Path) -> None:
    key = new_key()
    path = tmp_path / "keys.yaml"
    path.write_text(
        f"keys:\n  - holder: 窗口\n    role: clerk\n    sha256: {hash_key(key)}\n", encoding="utf-8"
    )
    keys = ApiKeys.from_file(path)
    assert keys.authenticate(key) == Principal("窗口", "clerk", "api")
    assert keys.authenticate(key + "x") is None and keys.authenticate(None) is None
    path.write_text("keys:\n  - holder: 窗口\n    role: admin\n    sha256: abc\n", encoding="utf-8")
    with pytest.raises(KeysFileError, match=r"keys\.yaml"):
        ApiKeys.from_file(path)


def test_the_example_keys_file_is_refused() -> None:
    """deploy/lookup-keys.example.yaml holds the hash of a public key: a deployment that
    forgot to replace it must not start."""
    example = Path(__file__).parents[2] / "deploy" / "lookup-keys.example.yaml"
    with pytest.raises(KeysFileError, match="public example key"):
        ApiKeys.from_file(example)


def test_audit_key_is_required_outside_dev_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATACLOUD_AUDIT_KEY", raising=False)
    monkeypatch.delenv("DATACLOUD_LOOKUP_DEV", raising=False)
    with pytest.raises(AuditKeyMissing):
        audit_key_from_env()
    monkeypatch.setenv("DATACLOUD_AUDIT_KEY", "short")
    with pytest.raises(AuditKeyMissing):
        audit_key_from_env()
    monkeypatch.setenv("DATACLOUD_AUDIT_KEY", "change-audit-hmac-key")  # .env.example's
    with pytest.raises(AuditKeyMissing, match="placeholder"):
        audit_key_from_env()
    monkeypatch.setenv("DATACLOUD_AUDIT_KEY", "a-long-enough-secret")
    assert audit_key_from_env() == (b"a-long-enough-secret", False)
    monkeypatch.delenv("DATACLOUD_AUDIT_KEY")
    monkeypatch.setenv("DATACLOUD_LOOKUP_DEV", "1")
    assert audit_key_from_env()[1] is True


def test_file_sink_appends_and_masks_numbers_typed_into_the_purpose(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "audit")
    log = AuditLog([sink], b"k" * 16)
    log.record(CLERK, "person", "核对 " + A, A, "found")
    log.record(CLERK, "person", "再次\u2028核\x85对", A, "found")  # line breaks for splitlines()
    sink.close()
    lines = [
        json.loads(x)
        for f in (tmp_path / "audit").glob("*.jsonl")
        for x in f.read_text(encoding="utf-8").splitlines()
    ]
    assert [x["purpose"] for x in lines] == [
        "核对 " + A[:6] + "********" + A[-4:],
        "再次\u2028核\x85对",
    ]
    assert A not in "".join(f.read_text() for f in (tmp_path / "audit").glob("*.jsonl"))

"""Curation on real Delta tables: survivorship rules, incremental == full, reruns, deletions.

Staged tables are written the way ``nightly.stage`` writes them (``delta.merge_by_key`` by
``_source_pk`` with full-snapshot deletions and lineage columns), from hand-built rows.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from datacloud import curate, curation_night, delta
from datacloud.config import load_departments
from datacloud.curated_tables import PERSON
from datacloud.curation_config import CurationConfig, load_curation_config
from datacloud.paths import StorageRoot
from transforms.credit_code import (
    credit_code_check_char,
    org_code_check_char,
    reg_number_check_digit,
)
from transforms.id_number import id_check_char


def _id(first17: str) -> str:
    return first17 + id_check_char(first17)


A, B, C, D = (_id(f"3301061980010{i}00{i}") for i in range(1, 5))
_ORG = "MA2B1C3D" + org_code_check_char("MA2B1C3D")
CC = "91330106" + _ORG + credit_code_check_char("91330106" + _ORG)  # valid, as staged codes are


def _cc(org8: str) -> str:
    body = "91330106" + org8 + org_code_check_char(org8)
    return body + credit_code_check_char(body)


def _reg(first14: str) -> str:
    return first14 + reg_number_check_digit(first14)


CC2, CC3 = _cc("MA2B1C4E"), _cc("MA2B1C5F")
REG2, REG3 = _reg("33010600001234"), _reg("33010600005678")
DEPTS = load_departments()
# the golden person columns the comparisons read (the marital status is checked on its own)
PERSON_COMPARE = ["id_number", *(f.name for f in PERSON.fields if f.name != "marital_status")]


@pytest.fixture(params=["adaptive", "deletion_vectors"])
def publish_way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Curate the small nights as shipped (a few keys are most of a table: copy-on-write), or
    with every incremental publish taking the deletion-vector way, as 1% of a large table does."""
    if request.param == "deletion_vectors":
        monkeypatch.setattr(delta, "DELETION_VECTORS_UNDER", 1.0)
    return str(request.param)


def stage(root: StorageRoot, dept: str, table: str, rows: list[dict[str, Any]], ds: date) -> None:
    """One night of a full-snapshot staged table: merge by _source_pk, delete vanished keys."""
    path = root.staged(dept, table)
    cols = sorted({k for r in rows for k in r})
    t = pa.Table.from_pylist(rows)
    n = t.num_rows
    t = (
        t.append_column("_source", pa.array([f"{dept}.{table}"] * n))
        .append_column("_ds", pa.array([ds] * n, pa.date32()))
        .append_column("_run_id", pa.array([f"run-{ds}"] * n))
    )
    existing = delta.open_table(path)
    deleted = None
    if existing is not None:
        keys = delta.read_table(path, ["_source_pk"])["_source_pk"]
        deleted = keys.filter(pc.invert(pc.is_in(keys, value_set=t["_source_pk"])))
    compare = [c for c in cols if c != "_source_pk"]
    delta.merge_by_key(path, t, "_source_pk", compare, deleted, f"run-{ds}", ds.isoformat())


def person(pk: str, id_number: str, name: str | None, when: str, **kw: Any) -> dict[str, Any]:
    row = {
        "_source_pk": pk,
        "id_number": id_number,
        "name": name,
        "sex": kw.get("sex", "1"),
        "birth_date": date(1980, 1, 1),
        "ethnicity": kw.get("ethnicity", "01"),
        "registered_address": kw.get("address", "杭州市西湖区"),
        "phone": kw.get("phone"),
        "_source_updated_at": datetime.fromisoformat(when),
    }
    return row


def fund(pk: str, id_number: str, name: str | None, when: str, phone: str | None) -> dict[str, Any]:
    return {
        "_source_pk": pk,
        "account_no": pk,
        "id_number": id_number,
        "name": name,
        "sex": "1",
        "phone": phone,
        "employer_name": "杭州某某有限公司",
        "status": "正常",
        "_source_updated_at": datetime.fromisoformat(when),
    }


def marriage(pk: str, kind: str, husband: str, wife: str, on: date) -> dict[str, Any]:
    return {
        "_source_pk": pk,
        "registration_id": pk,
        "registration_type": kind,
        "husband_id_number": husband,
        "wife_id_number": wife,
        "registered_date": on,
        "office": "西湖区民政局",
        "_source_updated_at": datetime.combine(on, datetime.min.time()),
    }


def enterprise(
    pk: str,
    code: str | None,
    reg: str | None,
    name: str,
    rep: str,
    *,
    status: str = "存续",
    address: str | None = None,
    when: datetime = datetime(2026, 11, 1),
) -> dict[str, Any]:
    return {
        "_source_pk": pk,
        "credit_code": code,
        "reg_number": reg,
        "name": name,
        "status": status,
        "address": address,
        "legal_rep_id_number": rep,
        "legal_rep_name": "张三",
        "_source_updated_at": when,
    }


def shareholder(pk: str, code: str | None, reg: str | None, id_number: str) -> dict[str, Any]:
    return {
        "_source_pk": pk,
        "credit_code": code,
        "reg_number": reg,
        "id_number": id_number,
        "name": "李四",
        "role": "shareholder",
        "share_ratio": 0.5,
        "_source_updated_at": datetime(2026, 10, 1),
    }


def employee(pk: str, id_number: str, employer_reg: str) -> dict[str, Any]:
    """A fund account whose employer is written as its legacy 注册号."""
    row = fund(pk, id_number, None, "2026-06-01 08:00", None)
    return {**row, "employer_credit_code": None, "employer_reg_number": employer_reg}


def relicensed(pk: str, reg: str, code: str) -> dict[str, Any]:
    """A crosswalk row (换照): the 注册号 and the credit code that replaced it."""
    return {
        "_source_pk": pk,
        "reg_number": reg,
        "credit_code": code,
        "_source_updated_at": datetime(2016, 3, 1),
    }


def golden(root: StorageRoot, table: str = "person") -> dict[str, dict[str, Any]]:
    key = "id_number" if table == "person" else "_key"
    return {r[key]: r for r in delta.read_table(root.curated(table)).to_pylist()}


def content(root: StorageRoot) -> dict[str, pa.Table]:
    out = {}
    for name, (key, _) in curate.LAYOUT.items():
        t = delta.read_table(root.curated(name))
        out[name] = t.sort_by([(key, "ascending")])
    return out


def run(root: StorageRoot, ds: date, **kw: Any) -> dict[str, Any]:
    return curation_night.curate_all(root, DEPTS, ds, f"cur-{ds}", **kw)


D1, D2, D3 = date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20)


def night_one(root: StorageRoot) -> None:
    stage(
        root,
        "gongan",
        "czrk",
        [
            person("RK1", A, "张三", "2026-01-01 08:00", phone="13800000001"),
            person("RK2", B, "李四", "2026-01-01 08:00", phone=None),
            person("RK3", C, "王五", "2026-01-01 08:00", ethnicity=None),
        ],
        D1,
    )
    stage(
        root,
        "gjj",
        "grzh",
        [
            fund("G1", A, "张叁", "2026-06-01 08:00", "13900000001"),  # later, not authority
            fund("G2", B, "李四", "2026-06-01 08:00", "13900000002"),
        ],
        D1,
    )
    stage(root, "mz", "hydj", [marriage("M1", "结婚", A, B, date(2010, 5, 1))], D1)
    stage(
        root,
        "scjg",
        "qyjbxx",
        [
            enterprise("E1", CC, None, "杭州甲有限公司", A),
            enterprise("E2", None, REG2, "杭州乙商行", C),
        ],
        D1,
    )
    stage(
        root,
        "bdc",
        "bdc_qlr",
        [
            {
                "_source_pk": "Q1",
                "certificate_no": "浙(2020)1号",
                "owner_id_number": A,
                "_source_updated_at": datetime(2026, 1, 1),
            }
        ],
        D1,
    )


def test_survivorship_rules(storage_root: StorageRoot) -> None:
    night_one(storage_root)
    out = run(storage_root, D1)
    assert out["person"]["full"] is True
    g = golden(storage_root)
    assert set(g) == {A, B, C}  # the household register decides who is a person
    # authority wins over a later non-authority value
    assert (g[A]["name"], g[A]["name_source"]) == ("张三", "gongan")
    # latest non-null for the phone: gjj's later number
    assert (g[A]["phone"], g[A]["phone_source"]) == ("13900000001", "gjj")
    assert g[A]["phone_as_of"] == date(2026, 6, 1)
    # authority null -> the phone falls back to the only source that has one
    assert (g[B]["phone"], g[B]["phone_source"]) == ("13900000002", "gjj")
    # no source has a value: null with null source
    assert g[C]["ethnicity"] is None and g[C]["ethnicity_source"] is None
    # marital status from mz, both spouses, as of the registration
    assert (g[A]["marital_status"], g[B]["marital_status"]) == ("20", "20")
    assert g[A]["marital_status_source"] == "mz"
    assert g[A]["marital_status_as_of"] == date(2010, 5, 1)
    assert g[C]["marital_status"] is None  # no registration
    ents = golden(storage_root, "enterprise")
    assert set(ents) == {CC, f"REG:{REG2}"}  # legacy number kept as its own row
    roles = delta.read_table(storage_root.curated("enterprise_role")).to_pylist()
    assert {(r["id_number"], r["role"]) for r in roles} == {
        (A, "legal_representative"),
        (C, "legal_representative"),
    }


def test_latest_registration_wins_and_authority_beats_later_values(
    storage_root: StorageRoot,
) -> None:
    night_one(storage_root)
    run(storage_root, D1)
    stage(
        storage_root,
        "mz",
        "hydj",
        [
            marriage("M1", "结婚", A, B, date(2010, 5, 1)),
            marriage("M2", "离婚", A, B, date(2020, 3, 1)),
        ],
        D2,
    )
    out = run(storage_root, D2)
    assert out["person"]["full"] is False and out["person"]["rows_built"] == 2
    g = golden(storage_root)
    assert g[A]["marital_status"] == g[B]["marital_status"] == "40"
    assert g[A]["name"] == "张三"  # gjj's 张叁 is later but gongan is the authority


def test_authority_order_is_configurable(storage_root: StorageRoot) -> None:
    night_one(storage_root)
    cfg = load_curation_config().model_copy(deep=True)
    person = dict(cfg.survivorship.person)
    person["phone"] = CurationConfig.model_validate(
        {"survivorship": {"person": {"phone": {"authority": ["gongan"]}}}}
    ).survivorship.person["phone"]
    cfg = CurationConfig.model_validate(
        {"survivorship": {"person": person, "enterprise": cfg.survivorship.enterprise}}
    )
    run(storage_root, D1, config=cfg)
    g = golden(storage_root)
    assert (g[A]["phone"], g[A]["phone_source"]) == ("13800000001", "gongan")
    assert (g[B]["phone"], g[B]["phone_source"]) == ("13900000002", "gjj")  # authority null


def test_a_department_yaml_contradicting_the_rule_is_an_error() -> None:
    from datacloud.config import ConfigError

    cfg = CurationConfig.model_validate({"survivorship": {"person": {"name": "latest"}}})
    with pytest.raises(ConfigError, match=r"survivorship.person.name: departments \['gongan'\]"):
        cfg.person_rules(DEPTS)


def nights(root: StorageRoot) -> None:
    """Three nights: updates, a person deleted from a full snapshot, a new person."""
    night_one(root)
    run(root, D1)
    stage(
        root,
        "gongan",
        "czrk",
        [
            person("RK1", A, "张三", "2026-01-01 08:00", phone="13800000001"),
            person("RK2", B, "李四", "2026-11-19 08:00", address="杭州市上城区"),
            # RK3 (C) vanished from tonight's snapshot
        ],
        D2,
    )
    stage(root, "gjj", "grzh", [fund("G1", A, "张叁", "2026-06-01 08:00", "13900000001")], D2)
    run(root, D2)
    stage(
        root,
        "gongan",
        "czrk",
        [
            person("RK1", A, "张三", "2026-01-01 08:00", phone="13800000001"),
            person("RK2", B, "李四", "2026-11-19 08:00", address="杭州市上城区"),
            person("RK4", D, "赵六", "2026-11-20 08:00"),
        ],
        D3,
    )
    stage(
        root,
        "scjg",
        "qyjbxx",
        [enterprise("E1", CC, None, "杭州甲有限公司", B)],  # new legal rep; E2 closed
        D3,
    )
    run(root, D3)


def test_a_deleted_snapshot_row_leaves_staged_and_golden_right(storage_root: StorageRoot) -> None:
    nights(storage_root)
    staged = delta.read_table(storage_root.staged("gongan", "czrk"))
    assert sorted(staged["_source_pk"].to_pylist()) == ["RK1", "RK2", "RK4"]
    g = golden(storage_root)
    assert set(g) == {A, B, D}
    assert g[B]["registered_address"] == "杭州市上城区"
    assert g[B]["phone"] is None  # gjj's account G2 is gone, and gongan never had one
    roles = delta.read_table(storage_root.curated("enterprise_role")).to_pylist()
    assert {(r["id_number"], r["role"]) for r in roles} == {(B, "legal_representative")}
    assert set(golden(storage_root, "enterprise")) == {CC}


def crosswalk_nights(root: StorageRoot) -> None:
    """Three nights of crosswalk changes: REG3 mapped to CC from the start; REG2 mapped to
    CC2 on the second night; on the third REG3's mapping is withdrawn, REG2's corrected to
    CC3, and CC gets another legal representative."""
    crosswalk_night_one(root)
    run(root, D1)
    stage(root, "scjg", "qydmdz", [relicensed("M1", REG3, CC), relicensed("M2", REG2, CC2)], D2)
    run(root, D2)
    stage(root, "scjg", "qydmdz", [relicensed("M2", REG2, CC3)], D3)
    stage(
        root,
        "scjg",
        "qyjbxx",
        [*crosswalk_enterprises()[1:], enterprise("E1", CC, None, "杭州甲有限公司", D)],
        D3,
    )
    run(root, D3)


@pytest.mark.parametrize("history", [nights, crosswalk_nights])
def test_incremental_equals_full(storage_root: StorageRoot, history: Any, publish_way: str) -> None:
    history(storage_root)
    if publish_way == "deletion_vectors":
        commits = [c for n in curate.LAYOUT for c in delta.load(storage_root.curated(n)).history()]
        assert any(c.get("datacloud.publish") == "deletion_vectors" for c in commits)
    incremental = content(storage_root)
    out = run(storage_root, D3, full=True)  # rebuild in full over the same staged versions
    tables = [out[n] for n in curate.LAYOUT]
    assert all(v["full"] for v in tables)
    assert all(v["inserted"] == v["updated"] == v["deleted"] == 0 for v in tables)
    full = content(storage_root)
    for name in curate.LAYOUT:
        assert full[name].equals(incremental[name]), name


@pytest.mark.parametrize("history", [nights, crosswalk_nights])
def test_three_reruns_change_nothing(
    storage_root: StorageRoot, history: Any, publish_way: str
) -> None:
    history(storage_root)
    before = content(storage_root)
    names = [*curate.LAYOUT, "consistency"]
    versions = {n: delta.open_table(storage_root.curated(n)).version() for n in names}
    for _ in range(3):
        out = run(storage_root, D3)
        tables = [out[n] for n in curate.LAYOUT]
        assert all(v["inserted"] == v["updated"] == v["deleted"] == 0 for v in tables)
        assert out["consistency"]["version"] == versions["consistency"]
    after = content(storage_root)
    assert {n: delta.open_table(storage_root.curated(n)).version() for n in names} == versions
    for name, (key, _) in curate.LAYOUT.items():
        assert after[name].equals(before[name])
        keys = after[name][key]
        assert pc.count_distinct(keys).as_py() == len(keys)


def test_history_and_as_of_read(storage_root: StorageRoot) -> None:
    nights(storage_root)
    path = storage_root.curated("person")
    hist = delta.history(path)
    assert [h["ds"] for h in hist][:3] == ["2026-11-20", "2026-11-19", "2026-11-18"]
    v = delta.version_as_of(path, "2026-11-18")
    assert C in delta.read_table(path, ["id_number"], version=v)["id_number"].to_pylist()
    assert C not in delta.read_table(path, ["id_number"])["id_number"].to_pylist()


def test_the_curated_quality_gate_keeps_a_failing_table_unpublished(
    storage_root: StorageRoot,
) -> None:
    """The real gate (GE, expectations/curated_person.json) on a person build doctored to
    repeat a key: person keeps its version, the other tables publish, the state is kept for
    the next run, and gate.json says which expectation failed."""
    import json

    from datacloud.quality import QualityGateError

    night_one(storage_root)
    gate = curation_night.quality_gate(storage_root, D1)

    def doctored(name: str, rows: pa.Table) -> None:
        gate(name, pa.concat_tables([rows, rows.slice(0, 1)]) if name == "person" else rows)

    with pytest.raises(QualityGateError, match="person"):
        run(storage_root, D1, check=doctored)
    assert delta.open_table(storage_root.curated("person")) is None
    assert delta.open_table(storage_root.curated("enterprise")) is not None
    assert curation_night.read_state(storage_root) is None
    gate_json = json.loads(
        (storage_root.quality() / "curated" / D1.isoformat() / "gate.json").read_text("utf-8")
    )
    person_suite = next(s for s in gate_json["suites"] if s["table"] == "person")
    assert not person_suite["success"]
    assert any(
        f["expectation"] == "expect_column_values_to_be_unique"
        for f in person_suite["failed_expectations"]
    )
    out = run(storage_root, D1, check=gate)  # the undoctored gate passes and publishes
    assert out["person"]["inserted"] == len(golden(storage_root))
    assert curation_night.read_state(storage_root) is not None


# --- enterprises: the crosswalk of legacy registration numbers ------------------------------


def crosswalk_enterprises() -> list[dict[str, Any]]:
    return [
        enterprise("E1", CC, None, "杭州甲有限公司", A),
        enterprise("E2", None, REG2, "杭州乙商行", C),
        enterprise(  # CC's record before 换照, older; the only one with an address
            "E3",
            None,
            REG3,
            "杭州甲公司",
            B,
            status="注销",
            address="杭州市西湖区文三路1号",
            when=datetime(2015, 6, 1),
        ),
    ]


def crosswalk_night_one(root: StorageRoot) -> None:
    """Persons A-D; enterprise CC with its record from before 换照 (REG3, which the crosswalk
    maps to CC) and a legacy enterprise REG2 that it does not map; a shareholder of each
    legacy number; a fund account whose employer is written as REG2."""
    people = [(A, "张三"), (B, "李四"), (C, "王五"), (D, "赵六")]
    register = [person(f"RK{i}", p, n, "2026-01-01 08:00") for i, (p, n) in enumerate(people)]
    stage(root, "gongan", "czrk", register, D1)
    stage(root, "scjg", "qyjbxx", crosswalk_enterprises(), D1)
    stage(
        root,
        "scjg",
        "qygd",
        [shareholder("S1", None, REG2, D), shareholder("S2", None, REG3, C)],
        D1,
    )
    stage(root, "scjg", "qydmdz", [relicensed("M1", REG3, CC)], D1)
    stage(root, "gjj", "grzh", [employee("G1", A, REG2)], D1)
    stage(root, "mz", "hydj", [marriage("H1", "结婚", A, B, date(2010, 5, 1))], D1)
    right = {"_source_pk": "Q1", "certificate_no": "浙(2020)1号", "owner_id_number": A}
    stage(root, "bdc", "bdc_qlr", [{**right, "_source_updated_at": datetime(2026, 1, 1)}], D1)


def roles(root: StorageRoot) -> set[tuple[Any, ...]]:
    rows = delta.read_table(root.curated("enterprise_role")).to_pylist()
    return {(r["id_number"], r["credit_code"], r["reg_number"], r["role"]) for r in rows}


def test_a_mapped_legacy_row_merges_into_its_credit_codes_golden_record(
    storage_root: StorageRoot,
) -> None:
    crosswalk_night_one(storage_root)
    run(storage_root, D1)
    ents = golden(storage_root, "enterprise")
    assert set(ents) == {CC, f"REG:{REG2}"}  # REG3 merged into CC; REG2 unmapped stays
    g = ents[CC]
    assert (g["credit_code"], g["reg_number"]) == (CC, REG3)  # a lookup by REG3 finds it
    # per field across both records: the later credit-code record for what both have ...
    assert (g["name"], g["status"], g["status_as_of"]) == (
        "杭州甲有限公司",
        "存续",
        date(2026, 11, 1),
    )
    assert (g["legal_rep_id_number"], g["legal_representative_source"]) == (A, "scjg")
    # ... the legacy record where only it has a value
    assert (g["address"], g["address_as_of"]) == ("杭州市西湖区文三路1号", date(2015, 6, 1))
    legacy = ents[f"REG:{REG2}"]
    assert (legacy["credit_code"], legacy["reg_number"], legacy["name"]) == (
        None,
        REG2,
        "杭州乙商行",
    )
    assert roles(storage_root) == {
        (A, CC, REG3, "legal_representative"),  # CC's golden one; not B of the older record
        (C, CC, REG3, "shareholder"),  # written with REG3, mapped
        (C, None, REG2, "legal_representative"),
        (D, None, REG2, "shareholder"),  # unmapped: stays with its 注册号
    }
    account = golden(storage_root, "housing_fund_account")["G1"]
    assert (account["employer_credit_code"], account["employer_reg_number"]) == (None, REG2)


def test_a_crosswalk_change_remaps_enterprises_roles_and_employers(
    storage_root: StorageRoot,
) -> None:
    crosswalk_night_one(storage_root)
    run(storage_root, D1)
    stage(
        storage_root,
        "scjg",
        "qydmdz",
        [relicensed("M1", REG3, CC), relicensed("M2", REG2, CC2)],
        D2,
    )
    out = run(storage_root, D2)
    assert not out["enterprise"]["full"] and not out["enterprise_role"]["full"]
    assert out["enterprise"]["deleted"] == 1 and out["enterprise"]["inserted"] == 1
    ents = golden(storage_root, "enterprise")
    assert set(ents) == {CC, CC2}
    assert (ents[CC2]["reg_number"], ents[CC2]["name"]) == (REG2, "杭州乙商行")
    assert roles(storage_root) == {
        (A, CC, REG3, "legal_representative"),
        (C, CC, REG3, "shareholder"),
        (C, CC2, REG2, "legal_representative"),
        (D, CC2, REG2, "shareholder"),
    }
    account = golden(storage_root, "housing_fund_account")["G1"]
    assert (account["employer_credit_code"], account["employer_reg_number"]) == (CC2, REG2)


def test_incremental_equals_full_night_by_night(
    storage_root: StorageRoot, tmp_path: Path, publish_way: str
) -> None:
    """The crosswalk nights, each one curated incrementally in one root and in full in another
    over the same staged rows: equal after every night."""
    other = StorageRoot(tmp_path / "full")
    steps = [
        (D1, lambda r: crosswalk_night_one(r)),
        (
            D2,
            lambda r: stage(
                r, "scjg", "qydmdz", [relicensed("M1", REG3, CC), relicensed("M2", REG2, CC2)], D2
            ),
        ),
        (D3, lambda r: stage(r, "scjg", "qydmdz", [relicensed("M2", REG2, CC3)], D3)),
    ]
    for ds, step in steps:
        for root in (storage_root, other):
            step(root)
        run(storage_root, ds)
        run(other, ds, full=True)
        incremental, full = content(storage_root), content(other)
        for name in curate.LAYOUT:
            assert full[name].equals(incremental[name]), (ds, name)


def test_a_lookup_by_a_mapped_registration_number_finds_the_golden_record(
    storage_root: StorageRoot,
) -> None:
    from datacloud.lookup import answers
    from datacloud.lookup.keys import enterprise_key
    from datacloud.lookup.pointview import DeltaPointSource

    crosswalk_night_one(storage_root)
    run(storage_root, D1)
    view = DeltaPointSource(storage_root).current()
    body = answers.enterprise(view, enterprise_key(REG3))
    assert body is not None and body["key"] == {"kind": "reg_number", "value": REG3}
    assert body["record"]["credit_code"] == CC
    assert body["legal_representative"] == {
        "id_number": A,
        "name": "张三",
        "source": "scjg",
        "as_of": "2026-11-01",
    }
    assert [s["id_number"] for s in body["shareholders"]] == [C]
    unmapped = answers.enterprise(view, enterprise_key(REG2))
    assert unmapped is not None and unmapped["record"]["reg_number"] == REG2
    assert unmapped["record"]["credit_code"] is None
    clerk = answers.masked("enterprise", body)
    assert clerk["record"]["name_source"] == "scjg" and "address_as_of" in clerk["record"]
    assert clerk["legal_representative"]["source"] == "scjg"
    assert A not in str(clerk)

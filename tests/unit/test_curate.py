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

from datacloud import curate, delta
from datacloud.config import load_departments
from datacloud.curation_config import CurationConfig, load_curation_config
from datacloud.paths import StorageRoot
from transforms.credit_code import credit_code_check_char, org_code_check_char
from transforms.id_number import id_check_char


def _id(first17: str) -> str:
    return first17 + id_check_char(first17)


A, B, C, D = (_id(f"3301061980010{i}00{i}") for i in range(1, 5))
_ORG = "MA2B1C3D" + org_code_check_char("MA2B1C3D")
CC = "91330106" + _ORG + credit_code_check_char("91330106" + _ORG)  # valid, as staged codes are
DEPTS = load_departments()
PERSON_COMPARE = [
    "id_number",
    "name",
    "sex",
    "birth_date",
    "ethnicity",
    "registered_address",
    "phone",
]


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


def enterprise(pk: str, code: str | None, reg: str | None, name: str, rep: str) -> dict[str, Any]:
    return {
        "_source_pk": pk,
        "credit_code": code,
        "reg_number": reg,
        "name": name,
        "status": "存续",
        "legal_rep_id_number": rep,
        "legal_rep_name": "张三",
        "_source_updated_at": datetime(2026, 11, 1),
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
    return curate.curate_all(root, DEPTS, ds, f"cur-{ds}", **kw)


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
            enterprise("E2", None, "330106000012345", "杭州乙商行", C),
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
    assert set(ents) == {CC, "REG:330106000012345"}  # legacy number kept as its own row
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


def test_incremental_equals_full(storage_root: StorageRoot, tmp_path: Path) -> None:
    nights(storage_root)
    incremental = content(storage_root)
    out = run(storage_root, D3, full=True)  # rebuild in full over the same staged versions
    tables = [out[n] for n in curate.LAYOUT]
    assert all(v["full"] for v in tables)
    assert all(v["inserted"] == v["updated"] == v["deleted"] == 0 for v in tables)
    full = content(storage_root)
    for name in curate.LAYOUT:
        assert full[name].equals(incremental[name]), name


def test_three_reruns_change_nothing(storage_root: StorageRoot) -> None:
    nights(storage_root)
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
    gate = curate.quality_gate(storage_root, D1)

    def doctored(name: str, rows: pa.Table) -> None:
        gate(name, pa.concat_tables([rows, rows.slice(0, 1)]) if name == "person" else rows)

    with pytest.raises(QualityGateError, match="person"):
        run(storage_root, D1, check=doctored)
    assert delta.open_table(storage_root.curated("person")) is None
    assert delta.open_table(storage_root.curated("enterprise")) is not None
    assert curate.read_state(storage_root) is None
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
    assert curate.read_state(storage_root) is not None

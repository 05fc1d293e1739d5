"""Who enters curated/person: only the persons the household register knows (gongan, the
departments authoritative for ``name``). A person known only to another department's person
table stays out, and is a consistency finding ``unregistered_person`` of that department;
its values still count for persons the register knows (survivorship).

Real Delta tables, staged as ``nightly.stage`` writes them (merge by ``_source_pk``).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pyarrow as pa
import pytest
from helpers import department_spec, person_columns

from datacloud import curation_night, delta
from datacloud.config import Department, load_departments, register_departments
from datacloud.paths import StorageRoot
from transforms.id_number import id_check_char

DS = date(2026, 11, 20)


def _id(first17: str) -> str:
    return first17 + id_check_char(first17)


A, B, E = (_id(f"3301061980010{i}00{i}") for i in (1, 2, 5))

RS = Department.model_validate(
    department_spec(
        name="人社厅（社保）",
        columns={**person_columns(), "phone": {"source": "lxdh", "normalise": "phone"}},
    )
)


def _stage(root: StorageRoot, dept: str, table: str, rows: list[dict[str, Any]]) -> None:
    t = pa.Table.from_pylist(rows)
    n = t.num_rows
    t = (
        t.append_column("_source", pa.array([f"{dept}.{table}"] * n))
        .append_column("_ds", pa.array([DS] * n, pa.date32()))
        .append_column("_run_id", pa.array(["run-1"] * n))
    )
    compare = [c for c in t.column_names if c != "_source_pk"]
    delta.merge_by_key(root.staged(dept, table), t, "_source_pk", compare, None, "run-1", str(DS))


def _person(pk: str, number: str, name: str, when: str, phone: str | None = None) -> dict:
    return {
        "_source_pk": pk,
        "id_number": number,
        "name": name,
        "sex": "1",
        "birth_date": date(1980, 1, 1),
        "ethnicity": "01",
        "registered_address": "杭州市西湖区",
        "phone": phone,
        "_source_updated_at": datetime.fromisoformat(when),
    }


def _insured(pk: str, number: str, name: str, phone: str) -> dict:
    return {
        "_source_pk": pk,
        "id_number": number,
        "name": name,
        "phone": phone,
        "_source_updated_at": datetime(2026, 11, 20, 9),
    }


@pytest.fixture
def night(tmp_path) -> StorageRoot:  # type: ignore[no-untyped-def]
    root = StorageRoot(tmp_path / "root")
    _stage(
        root,
        "gongan",
        "czrk",
        [_person("RK1", A, "张三", "2026-01-01 08:00"), _person("RK2", B, "李四", "2026-01-01")],
    )
    # rs knows B (registered) and E (the register does not know E)
    _stage(
        root,
        "rs",
        "cbry",
        [_insured("1", B, "李四", "13900000002"), _insured("2", E, "赵六", "13900000005")],
    )
    curation_night.curate_all(root, [*load_departments(), RS], DS, "cur-1")
    return root


def test_the_register_is_the_departments_authoritative_for_name() -> None:
    assert register_departments([*load_departments(), RS]) == ["gongan"]


def test_only_registered_persons_enter_curated_person(night: StorageRoot) -> None:
    rows = {r["id_number"]: r for r in delta.read_table(night.curated("person")).to_pylist()}
    assert set(rows) == {A, B}  # E is known to rs only
    assert rows[B]["phone"] == "13900000002"  # rs's value still survives for a registered person


def test_a_person_unknown_to_the_register_is_a_finding_of_its_department(
    night: StorageRoot,
) -> None:
    findings = delta.read_table(night.curated("consistency")).to_pylist()
    unregistered = [r for r in findings if r["finding"] == "unregistered_person"]
    assert [(r["id_number"], r["department"]) for r in unregistered] == [(E, "rs")]
    assert unregistered[0]["authoritative_department"] == "gongan"


def test_an_incremental_night_keeps_the_rule(night: StorageRoot) -> None:
    """A new night where rs adds another unknown person and gongan registers E."""
    _stage(
        night,
        "rs",
        "cbry",
        [_insured("3", _id("33010619800106006"), "孙七", "13900000006")],
    )
    _stage(night, "gongan", "czrk", [_person("RK5", E, "赵六", "2026-11-20 10:00")])
    curation_night.curate_all(night, [*load_departments(), RS], DS, "cur-2")
    ids = set(delta.read_table(night.curated("person"), ["id_number"])["id_number"].to_pylist())
    assert ids == {A, B, E}

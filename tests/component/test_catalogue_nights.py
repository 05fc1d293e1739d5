"""The resource catalogue (资源目录) of two real sample nights, held against deltalake's own
reading of each curated table (``DeltaTable.scan()``, which applies deletion vectors), not
against the numbers our writer reported.

Night one: the five sample departments (SQLite) through ``nightly.extract``/``stage`` and
``curation_night.curate_night`` (the real curated gate, Great Expectations). Night two: the
household register changes (names renamed, residents removed), a marriage registration is
corrected, and every incremental publish
takes the deletion-vector way, so person's row count must subtract deleted rows; the marriage
build is doctored to repeat a key, so the real gate keeps that table back and the catalogue
must say so (the doctoring wraps the real gate, as tests/component/test_curate.py does).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from datacloud import catalogue_night, curation_night, delta, nightly
from datacloud.curated_tables import TABLES
from datacloud.demo import departments as sample_departments
from datacloud.paths import StorageRoot
from datacloud.quality import QualityGateError
from datacloud.resource_catalogue import COLUMN_ZH
from datacloud.sample import generate, write_sqlite
from datacloud.storage import uri

D1 = date(2026, 11, 20)
D2 = D1 + timedelta(days=1)
GATED = "marriage"
SCHEMA = Path(catalogue_night.__file__).parent / "schemas" / "catalogue.schema.json"


def _stage_all(root: StorageRoot, depts: list[Any], ds: date, run: str) -> None:
    for dept in depts:
        for table in dept.tables:
            url = f"sqlite:///{root.samples() / (dept.code + '.db')}"
            nightly.extract(root, dept, table.name, ds, url)
            nightly.stage(root, dept, table.name, ds, run)


def _change_the_register(db: Path, ds: date) -> None:
    """Five residents renamed tonight, three removed from the register."""
    with sqlite3.connect(db) as c:
        keys = [r[0] for r in c.execute("SELECT rkbh FROM czrk ORDER BY rkbh LIMIT 8")]
        for k in keys[:5]:
            c.execute(
                "UPDATE czrk SET xm = xm || '明', gxsj = ? WHERE rkbh = ?",
                (f"{ds.isoformat()} 09:00:00", k),
            )
        c.executemany("DELETE FROM czrk WHERE rkbh = ?", [(k,) for k in keys[5:]])


def _change_a_marriage(db: Path, ds: date) -> None:
    """One registration's office corrected tonight (marriage has a row to gate)."""
    with sqlite3.connect(db) as c:
        (key,) = c.execute("SELECT djxh FROM hydj ORDER BY djxh LIMIT 1").fetchone()
        c.execute(
            "UPDATE hydj SET djjg = djjg || '（更正）', gxsj = ? WHERE djxh = ?",
            (f"{ds.isoformat()} 09:00:00", key),
        )


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("catalogue") / "root"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATACLOUD_ROOT", str(folder))
        root = StorageRoot.from_env()
        write_sqlite(generate(300, 20261120, D1), root.samples())
        depts = sample_departments()
        _stage_all(root, depts, D1, "n1")
        curation_night.curate_night(root, depts, D1, "cur-1")
        first = json.loads((catalogue_night.catalogue_dir(root) / "catalogue.json").read_text())

        _change_the_register(root.samples() / "gongan.db", D2)
        _change_a_marriage(root.samples() / "mz.db", D2)
        _stage_all(root, depts, D2, "n2")
        mp.setattr(delta, "DELETION_VECTORS_UNDER", 1.0)  # every incremental publish: DVs
        real_gate = curation_night.quality_gate

        def doctored_gate(r: StorageRoot, ds: date) -> Any:
            gate = real_gate(r, ds)

            def check(name: str, rows: pa.Table) -> None:
                gate(name, pa.concat_tables([rows, rows.slice(0, 1)]) if name == GATED else rows)

            return check

        mp.setattr(curation_night, "quality_gate", doctored_gate)
        with pytest.raises(QualityGateError, match=GATED):
            curation_night.curate_night(root, depts, D2, "cur-2")
        yield {"root": root, "first": first}


def _doc(root: StorageRoot) -> dict[str, Any]:
    path = catalogue_night.catalogue_dir(root) / "catalogue.json"
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def _delta_name(t: pa.DataType) -> str:
    """An Arrow type as the Delta schema names it."""
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_date32(t):
        return "date"
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    return {pa.int64(): "long", pa.int32(): "integer", pa.float64(): "double"}[t]


def test_the_catalogue_agrees_with_deltalakes_reading_of_every_table(
    nights: dict[str, Any],
) -> None:
    root: StorageRoot = nights["root"]
    doc = _doc(root)
    assert [t["name"] for t in doc["tables"]] == list(TABLES)
    for entry in doc["tables"]:
        dt = DeltaTable(uri(root.curated(entry["name"])))
        scanned = pa.table(dt.scan())
        columns = [c for c in scanned.column_names if c != delta.ROW_HASH]
        assert [f["name"] for f in entry["fields"]] == columns, entry["name"]
        types = {f.name: _delta_name(f.type) for f in scanned.schema}
        assert {f["name"]: f["type"] for f in entry["fields"]} == {c: types[c] for c in columns}
        assert entry["rows"] == scanned.num_rows, entry["name"]
        assert entry["version"] == dt.version(), entry["name"]
        assert entry["published"] is True
        assert all(f["name_zh"] for f in entry["fields"])


def test_the_row_count_subtracts_rows_deleted_by_deletion_vectors(nights: dict[str, Any]) -> None:
    """The register lost three residents: person's files still hold them, marked deleted."""
    root: StorageRoot = nights["root"]
    dt = DeltaTable(uri(root.curated("person")))
    assert delta.has_deletion_vectors(dt)
    physical = int(
        pa.compute.sum(pa.table(dt.get_add_actions(flatten=True))["num_records"]).as_py()
    )
    (person,) = [t for t in _doc(root)["tables"] if t["name"] == "person"]
    first = next(t for t in nights["first"]["tables"] if t["name"] == "person")
    assert person["rows"] == pa.table(dt.scan()).num_rows == first["rows"] - 3 < physical
    assert person["business_date"] == D2.isoformat() and person["version"] > first["version"]


def test_the_nights_gate_is_shown_and_a_gated_table_keeps_its_version(
    nights: dict[str, Any],
) -> None:
    root: StorageRoot = nights["root"]
    doc = _doc(root)
    assert doc["business_date"] == D2.isoformat()
    gate = json.loads((root.quality() / "curated" / D2.isoformat() / "gate.json").read_text())
    by_table = {s["table"]: s for s in gate["suites"]}
    first = {t["name"]: t for t in nights["first"]["tables"]}
    for entry in doc["tables"]:
        shown = entry["quality_gate"]
        if TABLES[entry["name"]].suite is None:
            assert shown["status"] == "no_suite"
            continue
        suite = by_table[entry["name"]]
        assert shown["suite"] == suite["suite"]
        assert shown["failed_expectations"] == len(suite["failed_expectations"])
        assert (shown["status"] == "passed") is suite["success"]
    (gated,) = [t for t in doc["tables"] if t["name"] == GATED]
    assert gated["quality_gate"]["status"] == "failed"
    assert gated["quality_gate"]["status_zh"] == "未通过（本晚未发布）"
    assert gated["version"] == first[GATED]["version"]  # not published tonight
    assert gated["business_date"] == D1.isoformat()


def test_catalogue_json_follows_its_schema_and_config(nights: dict[str, Any]) -> None:
    doc = _doc(nights["root"])
    jsonschema.validate(doc, json.loads(SCHEMA.read_text(encoding="utf-8")))
    sharing = {t["name"]: t["sharing"] for t in doc["tables"]}
    assert sharing["consistency"] == "不予共享" and sharing["person"] == "有条件共享"
    (rights,) = [t for t in doc["tables"] if t["name"] == "property_right"]
    assert [d["code"] for d in rights["departments"]] == ["bdc"] and rights["authority"] == ["bdc"]
    status = next(f for f in rights["fields"] if f["name"] == "status")
    assert "gjj_withdrawal" in [m["code"] for m in status["matters"]]
    assert status["name_zh"] == COLUMN_ZH["property_right"]["status"]


def test_the_page_shows_every_table_and_field(nights: dict[str, Any]) -> None:
    folder = catalogue_night.catalogue_dir(nights["root"])
    html = (folder / "index.html").read_text(encoding="utf-8")
    for entry in _doc(nights["root"])["tables"]:
        assert f'id="t-{entry["name"]}"' in html and entry["name_zh"] in html
        for f in entry["fields"]:
            assert f'data-field="{f["name"]}"' in html
    assert "http://" not in html and "https://" not in html

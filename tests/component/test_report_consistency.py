"""The department report's 跨部门比对 section from real findings (no hand-written table).

A small sample with more conflicts than the defaults goes through the real night for gongan
(the register) and bdc (real SQLite source, real Delta tables), ``consistency_night.publish`` writes
``curated/consistency`` and ``nightly.report`` writes bdc's report, which must show the
findings counted as the table holds them, with masked examples and no full ID number.
"""

from __future__ import annotations

import json
import re
from datetime import date, timedelta

import pyarrow.compute as pc

from datacloud import consistency, consistency_night, nightly
from datacloud.config import load_departments
from datacloud.delta import read_table
from datacloud.paths import StorageRoot
from datacloud.sample import DirtRates, generate, write_sqlite
from transforms.id_number import is_valid_id_number

DS = date(2026, 11, 20)
RATES = ["unregistered_owner=0.05", "name_conflict=0.03", "sex_conflict=0.03"]


def full_id_numbers(text: str) -> set[str]:
    return {
        m
        for m in re.findall(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])", text)
        if is_valid_id_number(m.upper())
    }


def _night(root: StorageRoot, ds: date, persons: int) -> None:
    sample = generate(persons, 11, business_date=ds, dirt=DirtRates.parse(RATES))
    dbs = write_sqlite(sample, root.samples())
    for code, table in (("gongan", "czrk"), ("bdc", "bdc_qlr")):
        nightly.extract(
            StorageRoot.from_env(), nightly.department(code), table, ds, f"sqlite:///{dbs[code]}"
        )
        nightly.stage(StorageRoot.from_env(), nightly.department(code), table, ds, f"night-{ds}")
        nightly.report(
            StorageRoot.from_env(), nightly.department(code), ds
        )  # written before the findings exist: "not yet enabled"


def test_bdc_report_shows_the_nights_findings(storage_root: StorageRoot) -> None:
    depts = load_departments()
    _night(storage_root, DS, 500)
    before = json.loads(
        (storage_root.report_dir("bdc", DS) / "report.json").read_text(encoding="utf-8")
    )
    assert before["findings"] == {"available": False}

    published = consistency_night.publish(storage_root, depts, DS, "curation-1")
    counts = published["counts"]["bdc"]
    assert counts["unregistered_owner"] > 0 and counts["name_conflict"] > 0

    nightly.report(StorageRoot.from_env(), nightly.department("bdc"), DS)
    folder = storage_root.report_dir("bdc", DS)
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    f = report["findings"]
    assert f["available"] and f["business_date"] == DS.isoformat()
    assert f["total"] == sum(counts.values())
    by_code = {x["finding"]: x for x in f["by_finding"]}
    assert {k: v["count"] for k, v in by_code.items()} == counts
    owner = by_code["unregistered_owner"]
    assert owner["finding_zh"] == consistency.FINDINGS["unregistered_owner"].zh
    assert owner["authoritative_department"] == "gongan" and owner["field"] == "id_number"
    findings = read_table(storage_root.curated(consistency.TABLE))
    ids = sorted(
        findings.filter(pc.equal(findings["finding"], "unregistered_owner"))[
            "id_number"
        ].to_pylist()
    )
    assert owner["examples"] == [f"{i[:6]}********{i[-4:]}" for i in ids[:3]]
    html = (folder / "index.html").read_text(encoding="utf-8")
    assert "跨部门比对暂未启用" not in html and "不动产权利人在户籍登记中查无此人" in html
    assert "公安厅（户籍）" in html and owner["examples"][0] in html
    assert '身份证号码 <span class="muted code">id_number</span>' in html  # field in Chinese
    assert not full_id_numbers(html)

    gongan = json.loads(
        (storage_root.report_dir("gongan", DS) / "report.json").read_text(encoding="utf-8")
    )
    assert gongan["findings"] == {"available": False}  # written before publish
    nightly.report(StorageRoot.from_env(), nightly.department("gongan"), DS)
    gongan = json.loads(
        (storage_root.report_dir("gongan", DS) / "report.json").read_text(encoding="utf-8")
    )
    assert gongan["findings"]["total"] == 0  # the authority has nothing to disagree with


def test_an_earlier_nights_report_keeps_its_findings(storage_root: StorageRoot) -> None:
    """The table keeps earlier nights: regenerating the first night's report after the second
    night was published still shows the first night's findings."""
    depts = load_departments()
    first, second = DS - timedelta(days=1), DS
    _night(storage_root, first, 300)
    one = consistency_night.publish(storage_root, depts, first, "c-1")
    _night(storage_root, second, 400)
    consistency_night.publish(storage_root, depts, second, "c-2")
    nightly.report(StorageRoot.from_env(), nightly.department("bdc"), first)
    report = json.loads(
        (storage_root.report_dir("bdc", first) / "report.json").read_text(encoding="utf-8")
    )
    assert report["findings"]["business_date"] == first.isoformat()
    assert report["findings"]["total"] == sum(one["counts"]["bdc"].values())
    table = read_table(storage_root.curated(consistency.TABLE))
    assert set(table["business_date"].to_pylist()) == {first, second}

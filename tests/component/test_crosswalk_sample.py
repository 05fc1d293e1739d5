"""The sample's crosswalk (scjg.qydmdz) through the pipeline, against the generator's ground truth.

The shared sample night (``sample_night`` in conftest: 3,000 persons, every table extracted
and staged) is curated in memory (``curate.enterprise_records`` and ``curate.relation`` at the
pinned staged versions; nothing is published into the shared root). The ground truth says
which rows show an enterprise's 15-digit 注册号 instead of its credit code
(``legacy_reg_number``) and what that credit code is (``clean``). A legacy number that the
crosswalk holds (its row accepted) must end in the golden record of exactly that credit code;
one it does not hold stays its own ``REG:<注册号>`` row; a housing-fund employer written as a
注册号 gets the same credit code, or none.
"""

from __future__ import annotations

from typing import Any

import pytest

from datacloud import curate, staged_rows
from datacloud.curation_config import load_curation_config
from datacloud.delta import read_table


@pytest.fixture(scope="module")
def night(sample_night: dict[str, Any]) -> dict[str, Any]:
    root, sample, depts = sample_night["root"], sample_night["sample"], sample_night["depts"]
    versions = staged_rows.pin_versions(root, depts)
    built = curate.Night(root, depts, load_curation_config(), versions)
    enterprises = curate.enterprise_records(built)
    accounts = curate.relation(built, "housing_fund_account")
    assert enterprises is not None and accounts is not None
    truth = sample.ground_truth.to_pylist()
    legacy = {  # (table, pk) -> the true credit code of a row written with its 注册号
        (r["table"], r["pk"]): r["clean"] for r in truth if r["dirt"] == "legacy_reg_number"
    }
    fixes = {r["pk"]: r for r in truth if (r["table"], r["column"]) == ("qydmdz", "tyshxydm")}
    crosswalk = {  # 注册号 -> true credit code, of the crosswalk rows the pipeline accepts
        r["zch"]: fixes[pk]["clean"] if pk in fixes else r["tyshxydm"]
        for r in sample.tables["scjg"]["qydmdz"].to_pylist()
        if (pk := str(r["dzid"])) not in fixes or fixes[pk]["dirt"] != "credit_wrong_check"
    }
    return {
        "root": root,
        "legacy": legacy,
        "crosswalk": crosswalk,
        "golden": {r["_key"]: r for r in enterprises[0].to_pylist()},
        "accounts": accounts[0].to_pylist(),
    }


def test_the_crosswalk_maps_each_number_to_the_true_credit_code(night: dict[str, Any]) -> None:
    staged = read_table(night["root"].staged("scjg", "qydmdz")).to_pylist()
    assert staged and {r["reg_number"]: r["credit_code"] for r in staged} == night["crosswalk"]


def test_mapped_legacy_rows_merge_and_unmapped_ones_stay(night: dict[str, Any]) -> None:
    root, legacy, crosswalk = night["root"], night["legacy"], night["crosswalk"]
    golden = night["golden"]
    rows = read_table(root.staged("scjg", "qyjbxx")).to_pylist()
    shown = [r for r in rows if r["credit_code"] is None and r["reg_number"] is not None]
    mapped = [r for r in shown if r["reg_number"] in crosswalk]
    assert mapped and len(mapped) < len(shown)  # some legacy rows map, some do not
    for r in shown:
        code = legacy[("qyjbxx", r["_source_pk"])]
        if r["reg_number"] in crosswalk:  # the golden record of its true credit code
            assert crosswalk[r["reg_number"]] == code
            assert f"REG:{r['reg_number']}" not in golden
            assert (golden[code]["credit_code"], golden[code]["reg_number"]) == (
                code,
                r["reg_number"],
            )
        else:  # its own row (a copy showing the credit code may have one of its own)
            record = golden[f"REG:{r['reg_number']}"]
            assert (record["credit_code"], record["reg_number"]) == (None, r["reg_number"])


def test_fund_employers_written_as_a_number_get_its_credit_code(night: dict[str, Any]) -> None:
    legacy, crosswalk = night["legacy"], night["crosswalk"]
    written = [a for a in night["accounts"] if a["employer_reg_number"] is not None]
    assert written and any(a["employer_reg_number"] in crosswalk for a in written)
    for a in written:
        code = legacy[("grzh", a["account_no"])]
        expected = code if a["employer_reg_number"] in crosswalk else None
        assert a["employer_credit_code"] == expected, a["account_no"]

"""GB/T 2260 and GB/T 3304 tables, their loaders and normalisers."""

from __future__ import annotations

import datetime

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from transforms.codes import (
    HISTORICAL_COUNTY_CODES,
    PROVINCE_CODES,
    ZHEJIANG_COUNTY_CODES,
    division_table,
    ethnicity_table,
    is_known_division,
    normalise_division,
    normalise_ethnicity,
    retired_division_table,
)
from transforms.result import NormaliseContext

CTX = NormaliseContext(business_date=datetime.date(2026, 11, 20))

# Province-level code → capital city code (省会 / 首府; municipalities are their own capital).
CAPITALS = {
    "13": "130100", "14": "140100", "15": "150100", "21": "210100", "22": "220100",
    "23": "230100", "32": "320100", "33": "330100", "34": "340100", "35": "350100",
    "36": "360100", "37": "370100", "41": "410100", "42": "420100", "43": "430100",
    "44": "440100", "45": "450100", "46": "460100", "51": "510100", "52": "520100",
    "53": "530100", "54": "540100", "61": "610100", "62": "620100", "63": "630100",
    "64": "640100", "65": "650100",
}  # fmt: skip


def rows() -> dict[str, tuple[str, str]]:
    t = division_table().to_pydict()
    return {c: (n, lv) for c, n, lv in zip(t["code"], t["name"], t["level"], strict=True)}


def test_division_table_shape() -> None:
    table = division_table()
    assert table.schema.names == ["code", "name", "level"]
    assert all(t == pa.string() for t in table.schema.types)
    codes = table.column("code").to_pylist()
    assert codes == sorted(codes) and len(set(codes)) == len(codes)
    assert all(len(c) == 6 and c.isdigit() for c in codes)
    assert division_table() is table  # cached


def test_all_provinces_with_names() -> None:
    provinces = {c[:2]: n for c, (n, lv) in rows().items() if lv == "province"}
    assert set(provinces) == PROVINCE_CODES
    assert len(PROVINCE_CODES) == 34
    assert provinces["33"] == "浙江省"
    assert provinces["11"] == "北京市"
    assert provinces["65"] == "新疆维吾尔自治区"
    assert provinces["82"] == "澳门特别行政区"


def test_zhejiang_is_complete() -> None:
    zj = {c: v for c, v in rows().items() if c.startswith("33")}
    prefectures = {c: n for c, (n, lv) in zj.items() if lv == "prefecture"}
    assert prefectures == {
        "330100": "杭州市", "330200": "宁波市", "330300": "温州市", "330400": "嘉兴市",
        "330500": "湖州市", "330600": "绍兴市", "330700": "金华市", "330800": "衢州市",
        "330900": "舟山市", "331000": "台州市", "331100": "丽水市",
    }  # fmt: skip
    assert len(ZHEJIANG_COUNTY_CODES) == 90
    assert zj["330113"] == ("临平区", "county")
    assert zj["330114"] == ("钱塘区", "county")
    assert zj["330383"] == ("龙港市", "county")
    hangzhou = sorted(c for c in ZHEJIANG_COUNTY_CODES if c.startswith("3301"))
    assert hangzhou == [
        "330102", "330105", "330106", "330108", "330109", "330110", "330111",
        "330112", "330113", "330114", "330122", "330127", "330182",
    ]  # fmt: skip


@pytest.mark.parametrize(("province", "capital"), sorted(CAPITALS.items()))
def test_every_capital_and_its_districts(province: str, capital: str) -> None:
    table = rows()
    assert table[capital][1] == "prefecture"
    districts = [c for c, (_, lv) in table.items() if c[:4] == capital[:4] and lv == "county"]
    assert len(districts) >= 3


def test_municipalities_have_districts() -> None:
    table = rows()
    for prefix in ("11", "12", "31", "50"):
        assert sum(1 for c in table if c.startswith(prefix)) > 10


def test_historical_codes_are_retired_with_current_successors() -> None:
    table = rows()
    assert {"330103", "330104", "330183", "330185"} <= set(HISTORICAL_COUNTY_CODES)
    assert all(c.startswith("33") and c not in table for c in HISTORICAL_COUNTY_CODES)
    retired = retired_division_table().to_pydict()
    for code, successor in zip(retired["code"], retired["successor"], strict=True):
        assert code not in table
        assert table[successor][1] == "county"


def test_is_known_division() -> None:
    codes = pa.array(["330102", "330103", " 330106", "999999", None, "33010"])
    assert is_known_division(codes).to_pylist() == [True, False, True, False, False, False]


def test_normalise_division() -> None:
    result = normalise_division(pa.array(["330102", "330104", " 110101 ", None]), CTX)
    assert result.values.to_pylist() == ["330102", "330104", "110101", None]
    assert result.issues.to_pylist() == [None, "DIVISION_UNKNOWN", None, None]
    result = normalise_division(pa.array([330106, 330104], pa.int64()), CTX)
    assert result.values.to_pylist() == ["330106", "330104"]
    assert result.issues.to_pylist() == [None, "DIVISION_UNKNOWN"]


def test_ethnicity_table() -> None:
    table = ethnicity_table().to_pydict()
    assert len(table["code"]) == 58
    assert table["code"][:3] == ["01", "02", "03"] and table["code"][-2:] == ["97", "98"]
    names = dict(zip(table["code"], table["name"], strict=True))
    assert names["01"] == "汉族"
    assert names["05"] == "维吾尔族"
    assert names["22"] == "畲族"
    assert names["56"] == "基诺族"
    assert names["97"] == "其他未识别民族"
    assert names["98"] == "外国血统中国籍人士"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("汉族", "01"),
        ("汉", "01"),
        ("01", "01"),
        ("1", "01"),
        (" 1 ", "01"),
        ("畲族", "22"),
        ("畲", "22"),
        ("维吾尔", "05"),
        ("蒙古族", "02"),
        ("土族", "30"),
        ("土家族", "15"),
        ("毛难族", "36"),
        ("56", "56"),
        ("基诺族", "56"),
        ("其他", "97"),
        ("外国血统中国籍人士", "98"),
        ("98", "98"),
        ("汉 族", "01"),
    ],
)
def test_ethnicity_names_and_codes(raw: str, code: str) -> None:
    result = normalise_ethnicity(pa.array([raw]), CTX)
    assert result.values.to_pylist() == [code]
    assert result.issues.to_pylist() == [None]


def test_ethnicity_numbers_and_unknowns() -> None:
    result = normalise_ethnicity(pa.array([1, 22, 57, 0]), CTX)
    assert result.values.to_pylist() == ["01", "22", None, None]
    result = normalise_ethnicity(pa.array(["火星族", "99", "", None]), CTX)
    assert result.values.to_pylist() == [None, None, None, None]
    assert result.issues.to_pylist() == ["ETHNICITY_UNKNOWN", "ETHNICITY_UNKNOWN", None, None]
    assert pc.all(pc.equal(pc.utf8_length(ethnicity_table().column("code")), 2)).as_py()

"""Identifier standards the sample generator needs: check characters and division codes.

Private to the sample generator on purpose (the normalisers in ``transforms/`` validate
independently, so a shared bug cannot hide itself). Scalar helpers for tests and small
subsets; ``*_codes`` functions build whole columns with numpy.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"
CREDIT_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_ORG_VALUE = {c: int(c, 36) for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"}


class County(NamedTuple):
    code: str
    province: str
    city: str
    district: str


# Current Zhejiang county-level divisions (GB/T 2260): where residents live today.
ZHEJIANG: tuple[County, ...] = tuple(
    County(code, "浙江省", city, district)
    for code, city, district in (
        ("330102", "杭州市", "上城区"),
        ("330105", "杭州市", "拱墅区"),
        ("330106", "杭州市", "西湖区"),
        ("330108", "杭州市", "滨江区"),
        ("330109", "杭州市", "萧山区"),
        ("330110", "杭州市", "余杭区"),
        ("330111", "杭州市", "富阳区"),
        ("330112", "杭州市", "临安区"),
        ("330113", "杭州市", "临平区"),
        ("330114", "杭州市", "钱塘区"),
        ("330122", "杭州市", "桐庐县"),
        ("330127", "杭州市", "淳安县"),
        ("330182", "杭州市", "建德市"),
        ("330203", "宁波市", "海曙区"),
        ("330205", "宁波市", "江北区"),
        ("330206", "宁波市", "北仑区"),
        ("330211", "宁波市", "镇海区"),
        ("330212", "宁波市", "鄞州区"),
        ("330213", "宁波市", "奉化区"),
        ("330281", "宁波市", "余姚市"),
        ("330282", "宁波市", "慈溪市"),
        ("330302", "温州市", "鹿城区"),
        ("330303", "温州市", "龙湾区"),
        ("330304", "温州市", "瓯海区"),
        ("330381", "温州市", "瑞安市"),
        ("330382", "温州市", "乐清市"),
        ("330402", "嘉兴市", "南湖区"),
        ("330481", "嘉兴市", "海宁市"),
        ("330483", "嘉兴市", "桐乡市"),
        ("330502", "湖州市", "吴兴区"),
        ("330522", "湖州市", "长兴县"),
        ("330602", "绍兴市", "越城区"),
        ("330603", "绍兴市", "柯桥区"),
        ("330681", "绍兴市", "诸暨市"),
        ("330702", "金华市", "婺城区"),
        ("330782", "金华市", "义乌市"),
        ("330802", "衢州市", "柯城区"),
        ("330902", "舟山市", "定海区"),
        ("331002", "台州市", "椒江区"),
        ("331081", "台州市", "温岭市"),
        ("331102", "丽水市", "莲都区"),
    )
)

# Retired Zhejiang codes still carried by ID numbers, with the index of today's successor.
RETIRED: tuple[tuple[str, int], ...] = (
    ("330103", 1),  # 下城区 -> 拱墅区 (2021)
    ("330104", 0),  # 江干区 -> 上城区 and 钱塘区 (2021)
    ("330183", 6),  # 富阳市 -> 富阳区 (2014)
    ("330185", 7),  # 临安市 -> 临安区 (2017)
)

# Other provinces: numbers first issued elsewhere, holders now registered in Zhejiang.
OTHER_PROVINCES: tuple[str, ...] = (
    "110105",
    "310104",
    "320102",
    "340102",
    "360102",
    "410102",
    "510104",
)

CITY_SHORT = {c.city: c.city.removesuffix("市") for c in ZHEJIANG}


def id_check_char(body17: str) -> str:
    """GB 11643 check character (ISO 7064 MOD 11-2) of the first 17 digits."""
    total = sum(int(c) * w for c, w in zip(body17, ID_WEIGHTS, strict=True))
    return ID_CHECK[total % 11]


def id_numbers(county: np.ndarray, yyyymmdd: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """18-character ID numbers (object array of str) from county code, birth date and sequence."""
    base = county.astype(np.int64) * 10**11 + yyyymmdd.astype(np.int64) * 1000 + seq
    total = np.zeros(len(base), dtype=np.int64)
    rest = base.copy()
    for w in reversed(ID_WEIGHTS):
        total += (rest % 10) * w
        rest //= 10
    check = np.array(list(ID_CHECK), dtype=object)[total % 11]
    return base.astype("U17").astype(object) + check


def credit_check_char(body17: str) -> str:
    """GB 32100 check character of the first 17 characters of a credit code."""
    total = sum(CREDIT_ALPHABET.index(c) * w for c, w in zip(body17, CREDIT_WEIGHTS, strict=True))
    return CREDIT_ALPHABET[(31 - total % 31) % 31]


def org_check_char(body8: str) -> str:
    """GB 11714 organisation-code check character of the first 8 characters."""
    total = sum(_ORG_VALUE[c] * w for c, w in zip(body8, ORG_WEIGHTS, strict=True))
    c = 11 - total % 11
    return "X" if c == 10 else "0" if c == 11 else str(c)


def reg_check_digit(body14: str) -> str:
    """ISO 7064 MOD 11,10 check digit of a 15-digit business registration number (注册号)."""
    p = 10
    for ch in body14:
        s = (p + int(ch)) % 10 or 10
        p = (s * 2) % 11
    return str((11 - p) % 10)


def is_valid_id(value: str) -> bool:
    return (
        len(value) == 18
        and value[:17].isdigit()
        and value[:17].isascii()
        and id_check_char(value[:17]) == value[17]
    )


def is_valid_credit_code(value: str) -> bool:
    return (
        len(value) == 18
        and all(c in CREDIT_ALPHABET for c in value)
        and org_check_char(value[8:16]) == value[16]
        and credit_check_char(value[:17]) == value[17]
    )


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """(n, width) matrix of the decimal digits of non-negative integers."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return (values.astype(np.int64)[:, None] // powers) % 10


def credit_codes(rng: np.random.Generator, kind: np.ndarray, division: np.ndarray) -> np.ndarray:
    """Unique, valid credit codes: '9' + kind digit + division + organisation code + check.

    ``kind`` holds 1/2/3, ``division`` six-digit codes (integer arrays). About 40% of the
    organisation codes have the post-2015 'MA' form, the rest are eight digits.
    """
    n = len(kind)
    credit36 = np.array([_ORG_VALUE[c] for c in CREDIT_ALPHABET], dtype=np.int64)
    org = np.zeros((n, 8), dtype=np.int64)
    todo = np.arange(n)
    while len(todo):  # organisation codes are unique nationally: redraw the collisions
        m = len(todo)
        draw = rng.integers(0, 10, size=(m, 8))
        new_style = rng.random(m) < 0.4
        draw[new_style, 0] = _ORG_VALUE["M"]
        draw[new_style, 1] = _ORG_VALUE["A"]
        draw[new_style, 2:] = credit36[rng.integers(0, 31, size=(int(new_style.sum()), 6))]
        org[todo] = draw
        _, first = np.unique(org @ (36 ** np.arange(8, dtype=np.int64)), return_index=True)
        todo = np.setdiff1d(np.arange(n), first)
    c = 11 - (org @ np.array(ORG_WEIGHTS)) % 11
    org_check = np.where(c == 10, _ORG_VALUE["X"], np.where(c == 11, 0, c))
    to_credit = np.zeros(36, dtype=np.int64)
    to_credit[credit36] = np.arange(31)
    body = np.concatenate(
        [
            np.full((n, 1), 9),
            kind.astype(np.int64)[:, None],
            _digits(division, 6),
            to_credit[org],
            to_credit[org_check][:, None],
        ],
        axis=1,
    )
    check = (31 - (body @ np.array(CREDIT_WEIGHTS)) % 31) % 31
    chars = np.array(list(CREDIT_ALPHABET), dtype=object)[np.concatenate([body, check[:, None]], 1)]
    return np.array(["".join(row) for row in chars], dtype=object)


def reg_numbers(rng: np.random.Generator, division: np.ndarray) -> np.ndarray:
    """Unique 15-digit legacy registration numbers (注册号) for integer division codes."""
    n = len(division)
    serial = rng.permutation(np.cumsum(rng.integers(1, 50, size=n)) + 10**6)
    body = _digits(division, 6).tolist()
    serials = _digits(serial, 8).tolist()
    out = np.empty(n, dtype=object)
    for i in range(n):
        digits = "".join(map(str, body[i] + serials[i]))
        out[i] = digits + reg_check_digit(digits)
    return out

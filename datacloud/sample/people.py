"""The registered persons of the sample province: the clean truth every department draws from."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from datacloud.sample import codes
from datacloud.sample.fmt import DAY, age_on, day, mobiles, ymd
from datacloud.sample.pools import Pools, pick, street_addresses

# GB/T 3304 codes of the minorities (2% of persons) with their shares; 05 and 17 get
# two-part names joined by a middle dot.
_MINORITIES = {
    "22": 0.22, "15": 0.12, "06": 0.12, "03": 0.10, "08": 0.08, "05": 0.16,
    "17": 0.05, "11": 0.05, "12": 0.04, "02": 0.03, "09": 0.03,
}  # fmt: skip
_DOTTED_ETHNICITIES = ("05", "17")
_RETIRED_YEAR = {"330103": 2021, "330104": 2021, "330183": 2014, "330185": 2017}
DOT = "·"


@dataclass(frozen=True)
class Persons:
    """One row per person (index = person number), all values canonical."""

    id_number: np.ndarray  # 18 characters, uppercase X
    name: np.ndarray
    dotted: np.ndarray  # bool: a two-part name joined by DOT
    sex: np.ndarray  # 1 male, 2 female (GB/T 2261.1)
    birth: np.ndarray  # datetime64[D]
    age: np.ndarray  # completed years on the business date
    ethnicity: np.ndarray  # GB/T 3304 code
    county: np.ndarray  # index into codes.ZHEJIANG of the registered address
    address: np.ndarray  # registered address (户籍地址)
    phone: np.ndarray  # 11-digit mobile
    has_phone: np.ndarray  # bool: the register knows the phone

    def __len__(self) -> int:
        return len(self.id_number)


def _ages(rng: np.random.Generator, n: int) -> np.ndarray:
    ages = np.arange(96)
    weights = np.where(ages < 18, 0.85, 1.0)
    weights = np.where(ages >= 60, 1.0 - (ages - 60) / 38.0, weights)
    return rng.choice(96, size=n, p=weights / weights.sum())


def _id_counties(
    rng: np.random.Generator, home: np.ndarray, birth_year: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Issuing county code (int) of each ID number, and the county of residence (index)."""
    n = len(home)
    zj = np.array([int(c.code) for c in codes.ZHEJIANG])
    code = zj[home].copy()
    county = np.where(rng.random(n) < 0.85, home, rng.integers(0, len(codes.ZHEJIANG), n))
    u = rng.random(n)
    retired = np.flatnonzero(u < 0.01)
    which = rng.integers(0, len(codes.RETIRED), len(retired))
    for i, w in zip(retired.tolist(), which.tolist(), strict=True):
        retired_code, successor = codes.RETIRED[w]
        if birth_year[i] < _RETIRED_YEAR[retired_code]:
            code[i] = int(retired_code)
            county[i] = successor
    other = np.flatnonzero(u > 0.98)
    code[other] = np.array(codes.OTHER_PROVINCES, dtype=np.int64)[
        rng.integers(0, len(codes.OTHER_PROVINCES), len(other))
    ]
    return code, county


def _unique_sequences(rng: np.random.Generator, base: np.ndarray, sex: np.ndarray) -> np.ndarray:
    """3-digit sequence numbers (odd male, even female) making county+date+sequence unique."""
    seq = np.zeros(len(base), dtype=np.int64)
    todo = np.arange(len(base))
    while len(todo):
        k = rng.integers(1, 500, size=len(todo))
        seq[todo] = np.where(sex[todo] == 1, 2 * k - 1, 2 * k)
        key = base * 1000 + seq
        _, first = np.unique(key, return_index=True)
        dup = np.ones(len(key), dtype=bool)
        dup[first] = False
        todo = np.flatnonzero(dup)
    return seq


def generate_persons(
    rng: np.random.Generator, pools: Pools, n: int, business_date: dt.date
) -> Persons:
    """``n`` persons aged 0-95 on ``business_date``, about 51% male, with unique ID numbers."""
    bd = day(business_date)
    ages = _ages(rng, n)
    birth = bd - np.floor((ages + rng.random(n)) * 365.2425).astype(np.int64) * DAY
    birth = np.minimum(birth, bd - DAY)
    sex = np.where(rng.random(n) < 0.51, 1, 2).astype(np.int8)
    y, m, d = ymd(birth)
    home = rng.integers(0, len(codes.ZHEJIANG), n)
    code, county = _id_counties(rng, home, y)
    seq = _unique_sequences(rng, code * 10**8 + y * 10**4 + m * 100 + d, sex)
    id_number = codes.id_numbers(code, y * 10**4 + m * 100 + d, seq)

    minority = rng.random(n) < 0.02
    ethnicity = np.full(n, "01", dtype=object)
    shares = np.array(list(_MINORITIES.values()))
    ethnicity[minority] = np.array(list(_MINORITIES), dtype=object)[
        rng.choice(len(shares), size=int(minority.sum()), p=shares / shares.sum())
    ]
    dotted = np.isin(ethnicity, _DOTTED_ETHNICITIES)
    male = sex == 1
    name = pick(rng, pools.last_names, n) + np.where(
        male, pick(rng, pools.male_first, n), pick(rng, pools.female_first, n)
    )
    given = np.where(male, pick(rng, pools.dotted_male, n), pick(rng, pools.dotted_female, n))
    name = np.where(dotted, given + DOT + pick(rng, pools.dotted_male, n), name)

    places = codes.ZHEJIANG
    prefix = np.array([c.province + c.city + c.district for c in places], dtype=object)
    address = prefix[county] + street_addresses(rng, pools, n, rooms=0.6)
    age = age_on(birth, business_date)
    has_phone = rng.random(n) < np.where(age < 16, 0.1, 0.6)
    return Persons(
        id_number=id_number,
        name=name,
        dotted=dotted,
        sex=sex,
        birth=birth,
        age=age,
        ethnicity=ethnicity,
        county=county,
        address=address,
        phone=mobiles(rng, n),
        has_phone=has_phone,
    )

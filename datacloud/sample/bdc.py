"""bdc (不动产登记 real estate): property rights and their owners (bdc_qlr)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from datacloud.sample import codes
from datacloud.sample.conflicts import Conflicts, record_field, record_row
from datacloud.sample.ddl import to_table
from datacloud.sample.dirt import Dirt
from datacloud.sample.fmt import DAY, day, uniform_dates, update_times, years_after, ymd
from datacloud.sample.mz import Marriages
from datacloud.sample.people import Persons
from datacloud.sample.pools import Pools, numbers, street_addresses, zfill

DEPT = "bdc"
OWNER_RATE = 0.46  # with spouses as co-owners, about 55% of adults own property
UNIFIED_REGISTRATION = dt.date(2015, 3, 1)  # 不动产统一登记: certificates of this form


def build(
    persons: Persons,
    marriages: Marriages,
    pools: Pools,
    rng: np.random.Generator,
    dirt: Dirt,
    conflicts: Conflicts,
    business_date: dt.date,
) -> dict[str, pa.Table]:
    adults = np.flatnonzero(persons.age >= 18)
    owners = adults[rng.random(len(adults)) < OWNER_RATE]
    main = np.repeat(owners, rng.choice(3, size=len(owners), p=[0.72, 0.2, 0.08]) + 1)
    p = len(main)
    spouse = marriages.spouse[main]
    co = np.flatnonzero((spouse >= 0) & (rng.random(p) < 0.5))

    last = day(business_date) - DAY
    low = np.maximum(years_after(persons.birth[main], 18), day(UNIFIED_REGISTRATION))
    registered = uniform_dates(rng, np.minimum(low, last), np.full(p, last))
    county = np.where(
        rng.random(p) < 0.8, persons.county[main], rng.integers(0, len(codes.ZHEJIANG), p)
    )
    places = codes.ZHEJIANG
    province = np.array([c.province[0] for c in places], dtype=object)[county]
    city = np.array([c.city for c in places], dtype=object)[county]
    district = np.array([c.district for c in places], dtype=object)[county]
    code = np.array([c.code for c in places], dtype=object)[county]
    year = numbers(ymd(registered)[0])
    serial = rng.permutation(np.cumsum(rng.integers(1, 30, size=p)))
    certificate = province + "(" + year + ")" + city + "不动产权第" + zfill(serial, 7) + "号"
    unit = (
        code
        + zfill(rng.integers(1, 20, p), 3)
        + zfill(rng.integers(1, 40, p), 3)
        + "GB"
        + zfill(rng.integers(1, 99_999, p), 5)
        + "F"
        + zfill(rng.permutation(p) + 1, 8)
    )
    location = city + district + street_addresses(rng, pools, p, rooms=0.9)
    area = np.round(np.clip(rng.lognormal(np.log(95), 0.35, p), 25, 600) * 100).astype(np.int64)
    status = np.where(rng.random(p) < 0.92, "现势", "历史").astype(object)

    prop = np.sort(np.concatenate([np.arange(p), co]), kind="stable")
    is_co = np.zeros(len(prop), dtype=bool)
    is_co[1:] = prop[1:] == prop[:-1]
    person = np.where(is_co, spouse[prop], main[prop])
    row_serial = np.cumsum(rng.integers(1, 7, size=len(prop)))
    cols = {
        "ywh": year[prop] + zfill(row_serial, 10),
        "bdcqzh": certificate[prop],
        "bdcdyh": unit[prop],
        "qlrmc": persons.name[person],
        "zjzl": np.full(len(prop), "1", dtype=object),
        "zjh": persons.id_number[person],
        "xb": np.where(persons.sex[person] == 1, "男", "女").astype(object),
        "zl": location[prop],
        "jzmj": area[prop],
        "djsj": registered[prop],
        "qszt": status[prop],
        "gxsj": update_times(rng, registered[prop], business_date),
    }
    # conflicts with the register: an owner registered elsewhere, another name, another sex
    rows = len(prop)
    rates = conflicts.rates
    dotted = persons.dotted[person].copy()
    outside = conflicts.rows(rows, rates.unregistered_owner)
    idx = np.flatnonzero(outside)
    out = conflicts.outsiders(registered[prop][idx], persons.id_number)
    cols["qlrmc"][idx], cols["zjh"][idx], dotted[idx] = out.name, out.id_number, False
    cols["xb"][idx] = np.where(out.sex == 1, "男", "女")
    owner_id, true_name, true_sex = cols["zjh"].copy(), cols["qlrmc"].copy(), cols["xb"].copy()
    renamed = conflicts.rows(rows, rates.name_conflict, ~outside)
    cols["qlrmc"][renamed] = conflicts.other_names(true_name[renamed], persons.sex[person][renamed])
    resexed = conflicts.rows(rows, rates.sex_conflict, ~outside)
    cols["xb"][resexed] = np.where(true_sex[resexed] == "男", "女", "男")
    dirt.at(DEPT, "bdc_qlr")

    def flip(rows: np.ndarray) -> np.ndarray:
        return np.where(cols["qszt"][rows] == "现势", "历史", "现势").astype(object)

    changed = dirt.updates(cols, "ywh", {"qszt": flip})
    top = int(row_serial[-1]) if len(prop) else 0
    this_year = str(business_date.year)
    cols, origin = dirt.duplicates(
        cols,
        "ywh",
        lambda rows: this_year + zfill(top + np.arange(1, len(rows) + 1), 10),
        exclude=changed["qszt"],
    )
    pk = cols["ywh"]
    record_row(dirt, pk, origin, outside, "unregistered_owner", owner_id)
    renamed = record_field(
        dirt, pk, origin, renamed, "qlrmc", "name_conflict", cols["qlrmc"], true_name
    )
    record_field(dirt, pk, origin, resexed, "xb", "sex_conflict", cols["xb"], true_sex)
    cols["qlrmc"] = dirt.names(pk, "qlrmc", cols["qlrmc"], dotted[origin], exclude=renamed)
    cols["zjh"] = dirt.id_numbers(pk, "zjh", cols["zjh"])
    cols["djsj"] = dirt.dates(pk, "djsj", cols["djsj"], "cn")
    return {"bdc_qlr": to_table(DEPT, "bdc_qlr", cols)}

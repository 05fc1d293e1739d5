"""gjj (住房公积金 housing provident fund): personal accounts (grzh) with their employers."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from datacloud.sample.conflicts import Conflicts, record_field
from datacloud.sample.ddl import to_table
from datacloud.sample.dirt import Dirt, grow
from datacloud.sample.fmt import (
    DAY,
    day,
    mobile_styles,
    mobiles,
    uniform_dates,
    update_times,
    years_after,
)
from datacloud.sample.people import Persons
from datacloud.sample.pools import zfill
from datacloud.sample.scjg import Enterprises

DEPT = "gjj"
STATUSES = ("正常", "封存", "销户")


def build(
    persons: Persons,
    ents: Enterprises,
    rng: np.random.Generator,
    dirt: Dirt,
    conflicts: Conflicts,
    business_date: dt.date,
) -> dict[str, pa.Table]:
    working = np.flatnonzero((persons.age >= 18) & (persons.age <= 60))
    holder = working[rng.random(len(working)) < 0.5] if len(ents) else working[:0]
    n = len(holder)
    active = np.flatnonzero(ents.active)
    pool = active if len(active) else np.arange(len(ents))
    employer = pool[rng.integers(0, max(len(pool), 1), n)] if n else np.zeros(0, np.int64)

    last = day(business_date) - DAY
    low = np.maximum(years_after(persons.birth[holder], 18), ents.established[employer])
    low = np.maximum(low, np.datetime64("1999-01-01"))
    opened = uniform_dates(rng, np.minimum(low, last), np.full(n, last))
    salary = np.clip(rng.lognormal(np.log(7000), 0.5, n), 2500, 40000)
    contribution = np.round(salary * rng.choice([0.05, 0.08, 0.1, 0.12], n) * 2 * 100)
    status = np.array(STATUSES, dtype=object)[rng.choice(3, size=n, p=[0.8, 0.15, 0.05])]
    serial = 330_100_000_000 + np.cumsum(rng.integers(1, 40, size=n))
    cols = {
        "grzh": zfill(serial, 12),
        "xingming": persons.name[holder],
        "zjhm": persons.id_number[holder],
        "xingbie": np.where(persons.sex[holder] == 1, "M", "F").astype(object),
        "csny": persons.birth[holder],
        "dwmc": ents.name[employer],
        "dwtyshxydm": ents.credit_code[employer],
        "khrq": opened,
        "zhzt": status,
        "yjce": contribution.astype(np.int64),
        "sjhm": persons.phone[holder],
        "gxsj": update_times(rng, opened, business_date),
    }
    # conflicts with the register: another name, another sex
    rates = conflicts.rates
    true_name, true_sex = cols["xingming"].copy(), cols["xingbie"].copy()
    renamed = conflicts.rows(n, rates.name_conflict)
    cols["xingming"][renamed] = conflicts.other_names(
        true_name[renamed], persons.sex[holder][renamed]
    )
    resexed = conflicts.rows(n, rates.sex_conflict)
    cols["xingbie"][resexed] = np.where(true_sex[resexed] == "M", "F", "M")
    dirt.at(DEPT, "grzh")

    def new_phone(rows: np.ndarray) -> np.ndarray:
        fresh = mobiles(rng, len(rows))
        return np.where(fresh == cols["sjhm"][rows], fresh[::-1], fresh)

    def new_status(rows: np.ndarray) -> np.ndarray:
        index = np.array([STATUSES.index(s) for s in cols["zhzt"][rows]], dtype=np.int64)
        return np.array(STATUSES, dtype=object)[(index + rng.integers(1, 3, len(rows))) % 3]

    changed = dirt.updates(cols, "grzh", {"sjhm": new_phone, "zhzt": new_status})
    top = int(serial[-1]) if n else 330_100_000_000
    cols, origin = dirt.duplicates(
        cols,
        "grzh",
        lambda rows: zfill(top + np.cumsum(rng.integers(1, 40, size=len(rows))), 12),
        exclude=changed["sjhm"] | changed["zhzt"],
    )
    changed = grow(changed, len(origin))
    pk = cols["grzh"]
    rows = len(origin)
    renamed = record_field(
        dirt, pk, origin, renamed, "xingming", "name_conflict", cols["xingming"], true_name
    )
    record_field(dirt, pk, origin, resexed, "xingbie", "sex_conflict", cols["xingbie"], true_sex)
    dotted = persons.dotted[holder[origin]]
    cols["xingming"] = dirt.names(pk, "xingming", cols["xingming"], dotted, exclude=renamed)
    cols["zjhm"] = dirt.id_numbers(pk, "zjhm", cols["zjhm"])
    suffix = np.where(rng.random(rows) < 0.3, " 00:00:00", "").astype(object)
    cols["csny"] = dirt.dates(pk, "csny", cols["csny"], "iso", suffix=suffix)
    cols["dwtyshxydm"] = dirt.credit_codes(
        pk,
        "dwtyshxydm",
        cols["dwtyshxydm"],
        ents.reg_number[employer[origin]],
        ents.legacy[employer[origin]],
    )
    cols["khrq"] = dirt.dates(pk, "khrq", cols["khrq"], "iso")
    phones = cols["sjhm"]
    styled = mobile_styles(phones, rng.choice(3, size=rows, p=[0.6, 0.2, 0.2]))
    cols["sjhm"] = dirt.nulls(pk, "sjhm", styled, canonical=phones, exclude=changed["sjhm"])
    return {"grzh": to_table(DEPT, "grzh", cols)}

"""scjg (市场监管 market regulation): enterprises (qyjbxx), their shareholders (qygd) and the
crosswalk of legacy registration numbers to the credit codes that replaced them (qydmdz)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from datacloud.sample import codes
from datacloud.sample.conflicts import Conflicts, record_field, record_row
from datacloud.sample.ddl import to_table
from datacloud.sample.dirt import Dirt, grow
from datacloud.sample.fmt import capital_text, day, uniform_dates, update_times, years_after
from datacloud.sample.people import Persons
from datacloud.sample.pools import INDUSTRIES, SUFFIXES, Pools, pick, street_addresses

DEPT = "scjg"
KINDS = ("有限责任公司", "股份有限公司", "个人独资企业", "合伙企业")
STATUSES = ("存续", "在业", "吊销", "注销", "迁出")
LEGACY_BEFORE = dt.date(2015, 10, 1)  # credit codes replaced registration numbers
RELICENSED = 0.8  # share of the legacy enterprises whose 换照 record is in the crosswalk
_CAPITAL_WAN = np.array([3, 5, 10, 20, 30, 50, 100, 200, 300, 500, 800, 1000, 2000, 5000, 12000])
_CAPITAL_P = np.array([3, 5, 12, 8, 10, 14, 16, 9, 7, 6, 3, 3, 2, 1, 1], dtype=float)


@dataclass(frozen=True)
class Enterprises:
    """One row per enterprise (clean truth), plus the shareholder rows."""

    qyid: np.ndarray  # scjg's primary key
    credit_code: np.ndarray
    reg_number: np.ndarray  # 15-digit 注册号 (legacy), every enterprise has one
    legacy: np.ndarray  # bool: established before 2015-10-01, may still show the 注册号
    name: np.ndarray
    kind: np.ndarray
    county: np.ndarray  # index into codes.ZHEJIANG
    established: np.ndarray  # datetime64[D]
    status: np.ndarray
    capital: np.ndarray  # yuan
    legal_rep: np.ndarray  # person index
    address: np.ndarray
    holder_enterprise: np.ndarray  # per shareholder row: enterprise index
    holder_person: np.ndarray  # per shareholder row: person index
    holder_ratio: np.ndarray  # per shareholder row: share in units of 1/10000

    def __len__(self) -> int:
        return len(self.credit_code)

    @property
    def active(self) -> np.ndarray:
        return np.isin(self.status, ("存续", "在业"))


def _shareholders(
    rng: np.random.Generator, kind: np.ndarray, rep: np.ndarray, adults: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(kind)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    count = rng.choice(4, size=n, p=[0.35, 0.35, 0.2, 0.1]) + 1
    count[kind == "个人独资企业"] = 1
    count = np.minimum(count, len(adults))  # distinct shareholders, even in a tiny sample
    ent = np.repeat(np.arange(n), count)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    person = adults[rng.integers(0, len(adults), len(ent))]
    first = np.zeros(len(ent), dtype=bool)
    first[start] = True
    sole = kind[ent] == "个人独资企业"
    rep_holds = first & ((np.repeat(rng.random(n), count) < 0.7) | sole)
    person[rep_holds] = rep[ent[rep_holds]]
    while True:  # one person holds at most one share of an enterprise
        _, keep = np.unique(ent.astype(np.int64) * 10**9 + person, return_index=True)
        dup = np.setdiff1d(np.arange(len(ent)), keep)
        if not len(dup):
            break
        person[dup] = adults[rng.integers(0, len(adults), len(dup))]
    weight = rng.random(len(ent)) + 0.2
    total = np.add.reduceat(weight, start)
    units = np.floor(weight / total[ent] * 10_000).astype(np.int64)
    units[start] += 10000 - np.add.reduceat(units, start)
    return ent, person, units


def generate_enterprises(
    rng: np.random.Generator, pools: Pools, persons: Persons, business_date: dt.date
) -> Enterprises:
    """About one enterprise per ten persons; legal representatives and shareholders are adults."""
    adults = np.flatnonzero((persons.age >= 20) & (persons.age <= 75))
    n = len(persons) // 10 if len(adults) else 0
    rep = adults[rng.integers(0, max(len(adults), 1), n)] if n else np.zeros(0, dtype=np.int64)
    kind = np.array(KINDS, dtype=object)[rng.choice(4, size=n, p=[0.72, 0.05, 0.13, 0.10])]
    county = np.where(
        rng.random(n) < 0.8, persons.county[rep], rng.integers(0, len(codes.ZHEJIANG), n)
    )
    division = np.array([int(c.code) for c in codes.ZHEJIANG])[county]
    credit_kind = rng.choice(3, size=n, p=[0.96, 0.03, 0.01]) + 1
    bd = day(business_date)
    low = np.maximum(years_after(persons.birth[rep], 18), np.datetime64("1993-01-01"))
    established = uniform_dates(rng, low, np.full(n, bd - np.timedelta64(1, "D")))

    wan = _CAPITAL_WAN[rng.choice(len(_CAPITAL_WAN), size=n, p=_CAPITAL_P / _CAPITAL_P.sum())]
    wan = np.where(kind == "股份有限公司", np.maximum(wan, 500), wan)
    capital = (wan * np.where(rng.random(n) < 0.1, 1.25, 1.0) * 10_000).astype(np.int64)

    city = np.array([codes.CITY_SHORT[c.city] for c in codes.ZHEJIANG], dtype=object)[county]
    suffix = np.array(
        [SUFFIXES[k][i] for k, i in zip(kind, rng.integers(0, 3, n), strict=True)], dtype=object
    )
    name = city + pick(rng, pools.company_words, n) + pick(rng, INDUSTRIES, n) + suffix
    places = np.array([c.province + c.city + c.district for c in codes.ZHEJIANG], dtype=object)
    ent, person, units = _shareholders(rng, kind, rep, adults)
    status = np.array(STATUSES, dtype=object)[
        rng.choice(5, size=n, p=[0.55, 0.25, 0.08, 0.10, 0.02])
    ]
    return Enterprises(
        qyid=100_000 + np.cumsum(rng.integers(1, 5, size=n)),
        credit_code=codes.credit_codes(rng, credit_kind, division),
        reg_number=codes.reg_numbers(rng, division),
        legacy=established < day(LEGACY_BEFORE),
        name=name.astype(object),
        kind=kind,
        county=county,
        established=established,
        status=status,
        capital=capital,
        legal_rep=rep,
        address=places[county] + street_addresses(rng, pools, n, rooms=0.3),
        holder_enterprise=ent,
        holder_person=person,
        holder_ratio=units,
    )


def build(
    ents: Enterprises,
    persons: Persons,
    pools: Pools,
    rng: np.random.Generator,
    dirt: Dirt,
    conflicts: Conflicts,
    business_date: dt.date,
    crosswalk: tuple[np.random.Generator, Dirt],
) -> dict[str, pa.Table]:
    """The three tables; ``crosswalk`` is the random stream and dirt of qydmdz (its own, so
    the other two tables are what they were before it existed)."""
    return {
        "qyjbxx": _qyjbxx(ents, persons, pools, rng, dirt, conflicts, business_date),
        "qygd": _qygd(ents, persons, rng, dirt, conflicts, business_date),
        "qydmdz": _qydmdz(ents, *crosswalk, business_date),
    }


def _register_conflicts(
    conflicts: Conflicts,
    persons: Persons,
    who: np.ndarray,
    adult_by: np.ndarray,
    names: np.ndarray,
    ids: np.ndarray,
    rate: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Persons the register does not know (at ``rate``), then other names, in place.

    Returns the rows given an outsider, the rows given another name, the ID numbers and the
    true names (both as written before the conflict), and whether each name is dotted."""
    n = len(who)
    dotted = persons.dotted[who].copy()
    outside = conflicts.rows(n, rate)
    idx = np.flatnonzero(outside)
    out = conflicts.outsiders(adult_by[idx], persons.id_number)
    names[idx], ids[idx], dotted[idx] = out.name, out.id_number, False
    true_name = names.copy()
    renamed = conflicts.rows(n, conflicts.rates.name_conflict, ~outside)
    names[renamed] = conflicts.other_names(true_name[renamed], persons.sex[who][renamed])
    return outside, renamed, ids.copy(), true_name, dotted


def _qyjbxx(
    ents: Enterprises,
    persons: Persons,
    pools: Pools,
    rng: np.random.Generator,
    dirt: Dirt,
    conflicts: Conflicts,
    business_date: dt.date,
) -> pa.Table:
    n = len(ents)
    rep = ents.legal_rep
    cols = {
        "qyid": ents.qyid.copy(),
        "tyshxydm": ents.credit_code.copy(),
        "qymc": ents.name.copy(),
        "qylx": ents.kind.copy(),
        "fddbr": persons.name[rep],
        "fddbr_sfzh": persons.id_number[rep],
        "zczb": capital_text(ents.capital, rng.choice(4, size=n, p=[0.55, 0.15, 0.15, 0.15])),
        "clrq": ents.established.copy(),
        "djzt": ents.status.copy(),
        "zs": ents.address.copy(),
        "gxsj": update_times(rng, ents.established, business_date),
    }
    outside, renamed, rep_id, true_name, dotted = _register_conflicts(
        conflicts,
        persons,
        rep,
        ents.established,
        cols["fddbr"],
        cols["fddbr_sfzh"],
        conflicts.rates.unregistered_legal_rep,
    )
    dirt.at(DEPT, "qyjbxx")
    places = np.array([c.province + c.city + c.district for c in codes.ZHEJIANG], dtype=object)

    def new_status(rows: np.ndarray) -> np.ndarray:
        old = cols["djzt"][rows]
        shift = rng.integers(1, len(STATUSES), size=len(rows))
        index = np.array([STATUSES.index(s) for s in old], dtype=np.int64)
        return np.array(STATUSES, dtype=object)[(index + shift) % len(STATUSES)]

    def new_address(rows: np.ndarray) -> np.ndarray:
        fresh = places[ents.county[rows]] + street_addresses(rng, pools, len(rows), rooms=0.3)
        return np.where(fresh == cols["zs"][rows], fresh + "1号楼", fresh)

    changed = dirt.updates(cols, "qyid", {"djzt": new_status, "zs": new_address})
    last = int(ents.qyid[-1]) if n else 100_000
    cols, origin = dirt.duplicates(
        cols,
        "qyid",
        lambda rows: last + np.arange(1, len(rows) + 1),
        exclude=changed["djzt"] | changed["zs"],
    )
    pk = cols["qyid"]
    cols["tyshxydm"] = dirt.credit_codes(
        pk, "tyshxydm", cols["tyshxydm"], ents.reg_number[origin], ents.legacy[origin]
    )
    record_row(dirt, pk, origin, outside, "unregistered_legal_rep", rep_id)
    renamed = record_field(
        dirt, pk, origin, renamed, "fddbr", "name_conflict", cols["fddbr"], true_name
    )
    cols["fddbr"] = dirt.names(pk, "fddbr", cols["fddbr"], dotted[origin], exclude=renamed)
    cols["fddbr_sfzh"] = dirt.id_numbers(pk, "fddbr_sfzh", cols["fddbr_sfzh"])
    cols["clrq"] = dirt.dates(pk, "clrq", cols["clrq"], "slash")
    changed = grow(changed, len(origin))
    cols["zs"] = dirt.nulls(pk, "zs", cols["zs"], exclude=changed["zs"])
    return to_table(DEPT, "qyjbxx", cols)


def _qygd(
    ents: Enterprises,
    persons: Persons,
    rng: np.random.Generator,
    dirt: Dirt,
    conflicts: Conflicts,
    business_date: dt.date,
) -> pa.Table:
    ent, person = ents.holder_enterprise, ents.holder_person
    m = len(ent)
    gdid = np.arange(1, m + 1)
    subscribed = ents.capital[ent] * ents.holder_ratio // 10_000
    cols = {
        "gdid": gdid,
        "qyid": ents.qyid[ent],
        "gdmc": persons.name[person],
        "gdzjhm": persons.id_number[person],
        "rjcze": capital_text(subscribed, rng.choice(3, size=m, p=[0.7, 0.15, 0.15])),
        "czbl": ents.holder_ratio.copy(),
        "gxsj": update_times(rng, ents.established[ent], business_date),
    }
    outside, renamed, holder_id, true_name, dotted = _register_conflicts(
        conflicts,
        persons,
        person,
        ents.established[ent],
        cols["gdmc"],
        cols["gdzjhm"],
        conflicts.rates.unregistered_shareholder,
    )
    dirt.at(DEPT, "qygd")
    cols, origin = dirt.duplicates(cols, "gdid", lambda rows: m + np.arange(1, len(rows) + 1))
    pk = cols["gdid"]
    record_row(dirt, pk, origin, outside, "unregistered_shareholder", holder_id)
    renamed = record_field(
        dirt, pk, origin, renamed, "gdmc", "name_conflict", cols["gdmc"], true_name
    )
    cols["gdmc"] = dirt.names(pk, "gdmc", cols["gdmc"], dotted[origin], exclude=renamed)
    cols["gdzjhm"] = dirt.id_numbers(pk, "gdzjhm", cols["gdzjhm"])
    return to_table(DEPT, "qygd", cols)


def _qydmdz(
    ents: Enterprises, rng: np.random.Generator, dirt: Dirt, business_date: dt.date
) -> pa.Table:
    """换照 records: the 注册号 and the credit code that replaced it, for a share (``RELICENSED``)
    of the enterprises registered before 2015-10-01; the others' 注册号 stay unmapped."""
    chosen = np.flatnonzero(ents.legacy & (rng.random(len(ents)) < RELICENSED))
    m = len(chosen)
    relicensed = np.maximum(ents.established[chosen], day(LEGACY_BEFORE))
    cols = {
        "dzid": np.arange(1, m + 1),
        "zch": ents.reg_number[chosen].copy(),
        "tyshxydm": ents.credit_code[chosen].copy(),
        "gxsj": update_times(rng, relicensed, business_date),
    }
    dirt.at(DEPT, "qydmdz")
    cols, _ = dirt.duplicates(cols, "dzid", lambda rows: m + np.arange(1, len(rows) + 1))
    pk = cols["dzid"]
    never_legacy = np.zeros(len(pk), dtype=bool)  # the column holds credit codes only
    cols["tyshxydm"] = dirt.credit_codes(
        pk, "tyshxydm", cols["tyshxydm"], cols["zch"], never_legacy
    )
    return to_table(DEPT, "qydmdz", cols)

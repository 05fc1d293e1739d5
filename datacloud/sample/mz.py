"""mz (民政 civil affairs): marriage and divorce registrations (hydj)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from datacloud.sample import codes
from datacloud.sample.conflicts import Conflicts, record_field, record_row
from datacloud.sample.ddl import to_table
from datacloud.sample.dirt import Dirt
from datacloud.sample.fmt import DAY, day, uniform_dates, update_times, years_after, ymd
from datacloud.sample.people import Persons
from datacloud.sample.pools import numbers, zfill

DEPT = "mz"
MARRY, DIVORCE = "结婚", "离婚"


@dataclass(frozen=True)
class Marriages:
    """Registration events in date order, and each person's current spouse (-1: none)."""

    man: np.ndarray
    woman: np.ndarray
    kind: np.ndarray  # MARRY or DIVORCE
    date: np.ndarray  # datetime64[D]
    spouse: np.ndarray  # per person

    def __len__(self) -> int:
        return len(self.man)


def _days(dates: np.ndarray) -> np.ndarray:
    return dates.astype(np.int64)


def generate_marriages(
    rng: np.random.Generator, persons: Persons, business_date: dt.date
) -> Marriages:
    """Pairs of adults of opposite sex and similar age; 12% divorce, some of them remarry."""
    last = day(business_date) - DAY
    men = np.flatnonzero((persons.sex == 1) & (persons.age >= 23))
    women = np.flatnonzero((persons.sex == 2) & (persons.age >= 21))
    men = rng.permutation(men[rng.random(len(men)) < 0.8])
    women = rng.permutation(women[rng.random(len(women)) < 0.8])
    k = min(len(men), len(women))
    men, women = men[:k], women[:k]
    birth = _days(persons.birth)
    men = men[np.argsort(birth[men] + rng.normal(0, 3 * 365, k), kind="stable")]
    women = women[np.argsort(birth[women] + rng.normal(0, 3 * 365, k), kind="stable")]
    low = np.maximum(years_after(persons.birth[men], 22), years_after(persons.birth[women], 20))
    married = np.minimum(low + rng.exponential(3 * 365, k).astype(np.int64) * DAY, last)

    divorced_on = married + rng.integers(365, 20 * 365, k) * DAY
    divorced = (rng.random(k) < 0.12) & (divorced_on <= last)
    d = np.flatnonzero(divorced)
    a, b = rng.permutation(d), rng.permutation(d)
    half = len(d) // 2
    a, b = a[:half], b[:half]
    again = np.maximum(divorced_on[a], divorced_on[b]) + rng.integers(180, 5 * 365, half) * DAY
    ok = (a != b) & (again <= last)
    a, b, again = a[ok], b[ok], again[ok]

    man = np.concatenate([men, men[d], men[a]])
    woman = np.concatenate([women, women[d], women[b]])
    kind = np.array([MARRY] * k + [DIVORCE] * len(d) + [MARRY] * len(a), dtype=object)
    date = np.concatenate([married, divorced_on[d], again])
    order = np.lexsort((kind == DIVORCE, date))
    spouse = np.full(len(persons), -1, dtype=np.int64)
    current = np.concatenate([np.flatnonzero(~divorced), np.arange(len(a)) + k + len(d)])
    spouse[man[current]] = woman[current]
    spouse[woman[current]] = man[current]
    return Marriages(man[order], woman[order], kind[order], date[order], spouse)


def with_second_marriages(
    marriages: Marriages, persons: Persons, conflicts: Conflicts
) -> tuple[Marriages, np.ndarray, np.ndarray]:
    """The registrations plus, for some persons married on the business date, a second 结婚
    without a divorce: with a never-married partner of legal age, after their own marriage.

    Returns the registrations in date order, a mask of the added ones, and per registration
    the person married twice (person index, -1 elsewhere). ``spouse`` is left as it was.
    """
    rng = conflicts.rng
    last = day(conflicts.business_date) - DAY
    spouse = marriages.spouse
    married = np.flatnonzero(spouse >= 0)
    who = married[conflicts.rows(len(married), conflicts.rates.marital_conflict)]
    current = (marriages.kind == MARRY) & (spouse[marriages.man] == marriages.woman)
    since = np.full(len(persons), last, dtype="datetime64[D]")
    since[marriages.man[current]] = marriages.date[current]
    since[marriages.woman[current]] = marriages.date[current]
    ever = np.zeros(len(persons), dtype=bool)
    ever[marriages.man] = ever[marriages.woman] = True
    male = persons.sex[who] == 1
    partner = np.full(len(who), -1, dtype=np.int64)
    for sex, age, rows in ((2, 21, np.flatnonzero(male)), (1, 23, np.flatnonzero(~male))):
        free = np.flatnonzero(~ever & (persons.sex == sex) & (persons.age >= age))
        free = rng.permutation(free)[: len(rows)]
        partner[rows[: len(free)]] = free
    man = np.where(male, who, partner)
    woman = np.where(male, partner, who)
    low = np.maximum(years_after(persons.birth[man], 22), years_after(persons.birth[woman], 20))
    low = np.maximum(low, since[who] + DAY)
    ok = (partner >= 0) & (low <= last)
    man, woman, who = man[ok], woman[ok], who[ok]
    date = uniform_dates(rng, low[ok], np.full(len(who), last))
    k = len(marriages)
    added = np.concatenate([np.zeros(k, dtype=bool), np.ones(len(who), dtype=bool)])
    twice = np.concatenate([np.full(k, -1, dtype=np.int64), who])
    kind = np.concatenate([marriages.kind, np.full(len(who), MARRY, dtype=object)])
    dates = np.concatenate([marriages.date, date])
    order = np.lexsort((kind == DIVORCE, dates))  # stable: the original order is kept
    events = Marriages(
        np.concatenate([marriages.man, man])[order],
        np.concatenate([marriages.woman, woman])[order],
        kind[order],
        dates[order],
        spouse,
    )
    return events, added[order], twice[order]


def build(
    marriages: Marriages,
    persons: Persons,
    rng: np.random.Generator,
    dirt: Dirt,
    conflicts: Conflicts,
    business_date: dt.date,
) -> dict[str, pa.Table]:
    marriages, added, twice = with_second_marriages(marriages, persons, conflicts)
    n = len(marriages)
    man, woman = marriages.man, marriages.woman
    office = np.where(rng.random(n) < 0.6, persons.county[man], persons.county[woman])
    places = codes.ZHEJIANG
    office_code = np.array([c.code for c in places], dtype=object)[office]
    office_name = np.array([c.city + c.district + "民政局婚姻登记处" for c in places], dtype=object)
    letter = np.where(marriages.kind == MARRY, "J", "L").astype(object)
    serial = np.cumsum(rng.integers(1, 9, size=n))

    def keys(rows: np.ndarray, serial: np.ndarray) -> np.ndarray:
        year = numbers(ymd(marriages.date[rows])[0])
        return letter[rows] + office_code[rows] + year + zfill(serial, 7)

    cols = {
        "djxh": keys(np.arange(n), serial),
        "ywlx": marriages.kind.copy(),
        "nfxm": persons.name[man],
        "nfsfzh": persons.id_number[man],
        "nvfxm": persons.name[woman],
        "nvfsfzh": persons.id_number[woman],
        "djrq": marriages.date.copy(),
        "djjg": office_name[office],
        "gxsj": update_times(rng, marriages.date, business_date),
    }
    # conflicts: other names than the register's (a second marriage is already in the rows)
    renamed = {}
    true_names = {}
    for column, party in (("nfxm", man), ("nvfxm", woman)):
        true_names[column] = cols[column].copy()
        rows = conflicts.rows(n, conflicts.rates.name_conflict)
        cols[column][rows] = conflicts.other_names(cols[column][rows], persons.sex[party][rows])
        renamed[column] = rows
    twice_id = np.full(n, None, dtype=object)
    twice_id[twice >= 0] = persons.id_number[twice[twice >= 0]]
    dirt.at(DEPT, "hydj")
    top = int(serial[-1]) if n else 0
    cols, origin = dirt.duplicates(
        cols, "djxh", lambda rows: keys(rows, top + np.arange(1, len(rows) + 1))
    )
    pk = cols["djxh"]
    record_row(dirt, pk, origin, added, "marital_conflict", twice_id)
    for column in ("nfxm", "nvfxm"):
        renamed[column] = record_field(
            dirt, pk, origin, renamed[column], column, "name_conflict", cols[column],
            true_names[column],
        )  # fmt: skip
    cols["nfxm"] = dirt.names(
        pk, "nfxm", cols["nfxm"], persons.dotted[man[origin]], exclude=renamed["nfxm"]
    )
    cols["nfsfzh"] = dirt.id_numbers(pk, "nfsfzh", cols["nfsfzh"])
    cols["nvfxm"] = dirt.names(
        pk, "nvfxm", cols["nvfxm"], persons.dotted[woman[origin]], exclude=renamed["nvfxm"]
    )
    cols["nvfsfzh"] = dirt.id_numbers(pk, "nvfsfzh", cols["nvfsfzh"])
    cols["djrq"] = dirt.dates(pk, "djrq", cols["djrq"], "dot")
    cols["djjg"] = dirt.nulls(pk, "djjg", cols["djjg"])
    return {"hydj": to_table(DEPT, "hydj", cols)}

"""Cross-department conflicts: data that is well formed but disagrees with the authority.

Unlike field dirt, a conflict survives normalisation: another name or sex than the household
register's, a property owner, legal representative or shareholder the register does not know
(a person registered in another province), a second marriage registered without a divorce.
The consistency check (``datacloud.consistency``) must find exactly these.

Conflicts are chosen on the clean rows with their own random stream (``consistency.<dept>``),
before duplicates are made, so a duplicated row carries its original's conflict; the ground
truth is recorded afterwards for every copy (``record_*``), with ``Dirt.record``. Field dirt
leaves a conflicting name alone (one ground-truth row per field).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from datacloud.sample import codes
from datacloud.sample.dirt import Dirt
from datacloud.sample.fmt import DAY, day, make_dates, ymd
from datacloud.sample.pools import Pools, pick
from datacloud.sample.rates import DirtRates


@dataclass(frozen=True)
class Outsiders:
    """Persons registered outside the province: valid ID numbers the register does not hold."""

    id_number: np.ndarray
    name: np.ndarray
    sex: np.ndarray  # 1 male, 2 female
    birth: np.ndarray  # datetime64[D]

    def __len__(self) -> int:
        return len(self.id_number)


class Conflicts:
    """Chooses the conflicting rows of one department with its own random stream."""

    def __init__(
        self, rates: DirtRates, rng: np.random.Generator, pools: Pools, business_date: dt.date
    ):
        self.rates = rates
        self.rng = rng
        self.pools = pools
        self.business_date = business_date

    def rows(self, n: int, rate: float, eligible: np.ndarray | None = None) -> np.ndarray:
        """A boolean mask of the rows that get a conflict (none where not ``eligible``)."""
        mask = self.rng.random(n) < rate
        return mask if eligible is None else mask & eligible

    def other_names(self, names: np.ndarray, sex: np.ndarray) -> np.ndarray:
        """Another name for each person: the same surname (a common one for a dotted name)
        and another given name of the same sex, never the person's own name."""
        n = len(names)
        rng, pools = self.rng, self.pools
        given = np.where(sex == 1, pick(rng, pools.male_first, n), pick(rng, pools.female_first, n))
        dotted = np.array(["·" in v for v in names.tolist()], dtype=bool)
        surname = np.array([v[:1] for v in names.tolist()], dtype=object)
        surname[dotted] = pick(rng, pools.last_names, int(dotted.sum()))
        out = surname + given
        same = np.flatnonzero(out == names)
        for i in same.tolist():  # rare: the draw gave the person's own name
            out[i] = names[i] + ("明" if not names[i].endswith("明") else "亮")
        return out

    def outsiders(self, adult_by: np.ndarray, registered: np.ndarray) -> Outsiders:
        """One out-of-province person per row, 18 or older on ``adult_by`` (and on the business
        date), with an ID number that is not in ``registered`` and not repeated."""
        rng, pools = self.rng, self.pools
        n = len(adult_by)
        latest = np.minimum(adult_by, day(self.business_date) - DAY)
        years = 18 + np.floor(rng.random(n) * 30).astype(np.int64)
        y, m, d = ymd(latest)
        birth = make_dates(y - years, m, np.minimum(d, 28)) - rng.integers(0, 300, n) * DAY
        sex = np.where(rng.random(n) < 0.5, 1, 2).astype(np.int8)
        county = np.array(codes.OTHER_PROVINCES, dtype=np.int64)[
            rng.integers(0, len(codes.OTHER_PROVINCES), n)
        ]
        by, bm, bd = ymd(birth)
        born = by * 10**4 + bm * 100 + bd
        ids = np.zeros(n, dtype=object)
        todo = np.arange(n)
        taken = set(registered.tolist())
        while len(todo):  # sequence numbers (odd male, even female) until every number is new
            k = rng.integers(1, 500, size=len(todo))
            seq = np.where(sex[todo] == 1, 2 * k - 1, 2 * k)
            ids[todo] = codes.id_numbers(county[todo], born[todo], seq)
            retry = []
            for i in todo.tolist():
                if ids[i] in taken:
                    retry.append(i)
                else:
                    taken.add(ids[i])
            todo = np.array(retry, dtype=np.int64)
        male = sex == 1
        given = np.where(male, pick(rng, pools.male_first, n), pick(rng, pools.female_first, n))
        return Outsiders(ids, pick(rng, pools.last_names, n) + given, sex, birth)


def record_field(
    dirt: Dirt,
    pk: np.ndarray,
    origin: np.ndarray,
    chosen: np.ndarray,
    column: str,
    kind: str,
    written: np.ndarray,
    clean: np.ndarray,
) -> np.ndarray:
    """Ground truth of a field conflict for every copy of the chosen rows: ``written`` (after
    duplicates) is the dirty value, ``clean`` (before duplicates) the register's. Returns the
    mask of the chosen rows after duplicates."""
    grown = chosen[origin]
    rows = np.flatnonzero(grown)
    dirt.record(pk[rows], column, kind, written[rows], clean[origin[rows]])
    return grown


def record_row(
    dirt: Dirt, pk: np.ndarray, origin: np.ndarray, chosen: np.ndarray, kind: str, ids: np.ndarray
) -> np.ndarray:
    """Ground truth of a row conflict for every copy of the chosen rows: column '*', dirty the
    ID number of the person the finding is about (``ids``, before duplicates), clean NULL."""
    grown = chosen[origin]
    rows = np.flatnonzero(grown)
    dirt.record(pk[rows], "*", kind, ids[origin[rows]], np.full(len(rows), None, dtype=object))
    return grown

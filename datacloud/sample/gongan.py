"""gongan (公安 household registration): table czrk, every person once (plus duplicates)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from datacloud.sample import codes
from datacloud.sample.ddl import to_table
from datacloud.sample.dirt import Dirt, grow
from datacloud.sample.fmt import mobiles, update_times
from datacloud.sample.people import Persons
from datacloud.sample.pools import Pools, street_addresses, zfill

DEPT = "gongan"


def _keys(start: int, gaps: np.ndarray) -> np.ndarray:
    return "RK" + zfill(start + np.cumsum(gaps), 10)


def new_address(rng: np.random.Generator, pools: Pools, n: int) -> np.ndarray:
    """Registered addresses in random Zhejiang counties (a person who moved)."""
    places = np.array([c.province + c.city + c.district for c in codes.ZHEJIANG], dtype=object)
    return places[rng.integers(0, len(places), n)] + street_addresses(rng, pools, n, rooms=0.6)


def build(
    persons: Persons,
    pools: Pools,
    rng: np.random.Generator,
    dirt: Dirt,
    business_date: dt.date,
) -> dict[str, pa.Table]:
    n = len(persons)
    gaps = rng.integers(1, 20, size=n)
    cols = {
        "rkbh": _keys(3_300_000_000, gaps),
        "gmsfhm": persons.id_number.copy(),
        "xm": persons.name.copy(),
        "xb": np.where(persons.sex == 1, "1", "2").astype(object),
        "mz": persons.ethnicity.copy(),
        "csrq": persons.birth.copy(),
        "hjdz": persons.address.copy(),
        "lxdh": persons.phone.copy(),
        "gxsj": update_times(rng, persons.birth, business_date),
    }
    cols["lxdh"][~persons.has_phone] = None
    dirt.at(DEPT, "czrk")

    def new_phone(rows: np.ndarray) -> np.ndarray:
        fresh = mobiles(rng, len(rows))
        return np.where(fresh == cols["lxdh"][rows], fresh[::-1], fresh)

    changed = dirt.updates(
        cols,
        "rkbh",
        {"lxdh": new_phone, "hjdz": lambda rows: new_address(rng, pools, len(rows))},
    )
    last = 3_300_000_000 + int(gaps.sum())
    cols, origin = dirt.duplicates(
        cols,
        "rkbh",
        lambda rows: _keys(last, rng.integers(1, 20, size=len(rows))),
        exclude=changed["lxdh"] | changed["hjdz"],
    )
    changed = grow(changed, len(origin))
    pk = cols["rkbh"]
    cols["gmsfhm"] = dirt.id_numbers(pk, "gmsfhm", cols["gmsfhm"])
    cols["xm"] = dirt.names(pk, "xm", cols["xm"], persons.dotted[origin])
    cols["csrq"] = dirt.dates(pk, "csrq", cols["csrq"], "compact")
    cols["hjdz"] = dirt.nulls(pk, "hjdz", cols["hjdz"], exclude=changed["hjdz"])
    cols["lxdh"] = dirt.nulls(pk, "lxdh", cols["lxdh"], exclude=changed["lxdh"])
    return {"czrk": to_table(DEPT, "czrk", cols)}

"""generate(): the five sample department databases of one seed, with their ground truth."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from datacloud.sample import bdc, gjj, gongan, mz, scjg
from datacloud.sample.conflicts import Conflicts
from datacloud.sample.dirt import TRUTH_SCHEMA, Dirt
from datacloud.sample.people import generate_persons
from datacloud.sample.pools import Pools
from datacloud.sample.rates import DirtRates

DEPARTMENTS: tuple[str, ...] = ("gongan", "scjg", "bdc", "gjj", "mz")
DEFAULT_BUSINESS_DATE = dt.date(2026, 11, 20)
# one random stream per purpose: a change in one department leaves the others' data alone
_STREAMS = (
    "persons",
    "marriages",
    "enterprises",
    *DEPARTMENTS,
    *(f"dirt.{d}" for d in DEPARTMENTS),
    *(f"consistency.{d}" for d in DEPARTMENTS),  # appended: the streams above keep their index
    "scjg.qydmdz",  # the crosswalk table, added later: rows and dirt of its own
    "dirt.scjg.qydmdz",
)


@dataclass
class SampleData:
    """Department tables (dept -> table -> rows, exactly the DDL's columns), the ground truth
    of every dirty field, and a JSON-ready manifest (seed, sizes, rates, counts)."""

    tables: dict[str, dict[str, pa.Table]]
    ground_truth: pa.Table
    manifest: dict[str, Any] = field(default_factory=dict)


def _rng(seed: int, stream: str) -> np.random.Generator:
    return np.random.default_rng([seed, _STREAMS.index(stream)])


def generate(
    persons: int,
    seed: int,
    business_date: dt.date = DEFAULT_BUSINESS_DATE,
    dirt: DirtRates = DirtRates(),  # noqa: B008 (frozen dataclass)
) -> SampleData:
    """Generate the sample departments for ``persons`` registered persons.

    Deterministic: the same arguments give identical tables and ground truth. Every person is
    in gongan.czrk; about persons/10 enterprises in scjg with 1-4 shareholders each; about 55%
    of adults own 1-3 properties in bdc; about half of those aged 18-60 hold a gjj account; mz
    registers marriages and divorces. Dirt is applied per department row at ``dirt`` rates and
    every dirty field is a row of ``ground_truth``, as is every cross-department conflict
    (``datacloud.sample.conflicts``).
    """
    if persons < 1:
        raise ValueError(f"persons must be at least 1, got {persons}")
    if seed < 0:
        raise ValueError(f"seed must not be negative, got {seed}")
    bd = business_date
    pools = Pools.build(seed)
    people = generate_persons(_rng(seed, "persons"), pools, persons, bd)
    marriages = mz.generate_marriages(_rng(seed, "marriages"), people, bd)
    ents = scjg.generate_enterprises(_rng(seed, "enterprises"), pools, people, bd)

    dirts = {d: Dirt(dirt, _rng(seed, f"dirt.{d}"), bd) for d in DEPARTMENTS}
    cons = {d: Conflicts(dirt, _rng(seed, f"consistency.{d}"), pools, bd) for d in DEPARTMENTS}
    tables = {
        "gongan": gongan.build(people, pools, _rng(seed, "gongan"), dirts["gongan"], bd),
        "scjg": scjg.build(
            ents,
            people,
            pools,
            _rng(seed, "scjg"),
            dirts["scjg"],
            cons["scjg"],
            bd,
            (_rng(seed, "scjg.qydmdz"), dirts["scjg"].fork(_rng(seed, "dirt.scjg.qydmdz"))),
        ),
        "bdc": bdc.build(
            people, marriages, pools, _rng(seed, "bdc"), dirts["bdc"], cons["bdc"], bd
        ),
        "gjj": gjj.build(people, ents, _rng(seed, "gjj"), dirts["gjj"], cons["gjj"], bd),
        "mz": mz.build(marriages, people, _rng(seed, "mz"), dirts["mz"], cons["mz"], bd),
    }
    truth = pa.concat_tables([d.truth() for d in dirts.values()]).combine_chunks()
    counts: Counter[str] = Counter()
    for d in dirts.values():
        counts.update(d.counts)
    manifest = {
        "generator": "datacloud.sample",
        "seed": seed,
        "persons": persons,
        "business_date": bd.isoformat(),
        "dirt_rates": dirt.as_dict(),
        "row_counts": {d: {t: v.num_rows for t, v in ts.items()} for d, ts in tables.items()},
        "dirt_counts": {k: counts.get(k, 0) for k in DirtRates.kinds()},
        "ground_truth_rows": truth.num_rows,
        "ground_truth_schema": TRUTH_SCHEMA.names,
    }
    return SampleData(tables=tables, ground_truth=truth, manifest=manifest)

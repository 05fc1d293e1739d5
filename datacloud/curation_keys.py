"""Which keys of each curated table a night's staged changes touch.

An incremental night recomputes only these keys from every source (``curate.Night.touched``):
the old and new images of each changed staged row, and what a crosswalk change moves.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from datacloud.curate import (
    RELATIONS,
    Night,
    enterprise_key,
    joined_key,
    role_enterprises,
    with_credit_codes,
)
from datacloud.staged_rows import stack, with_change_columns


def touched(night: Night, changes: dict[str, pa.Table]) -> dict[str, pa.Array]:
    """Curated table -> the keys the staged changes touch (old and new images, deletions).

    A crosswalk change (注册号 R mapped to credit code C, or no longer) touches the enterprise
    keys ``REG:R`` and ``C`` of both images, the roles of those enterprises, and the relation
    rows (housing-fund accounts) whose employer is written as R.
    """

    def of(kind: str, fn: Callable[[pa.Table], pa.Array]) -> list[pa.Array]:
        out = []
        for d in night.depts:
            for t in d.tables:
                rows = changes.get(f"{d.code}/{t.name}")
                if t.kind == kind and rows is not None and rows.num_rows:
                    out.append(pc.cast(fn(with_change_columns(rows, d, t.name)), pa.string()))
        return out

    def ids(*cols: str) -> Callable[[pa.Table], pa.Array]:
        return lambda r: _strings([r[c] for c in cols if c in r.column_names])

    def union(arrays: list[pa.Array]) -> pa.Array:
        if not arrays:
            return pa.array([], pa.string())
        return pc.unique(_strings(arrays).combine_chunks().drop_null())

    def rel(name: str) -> Callable[[pa.Table], pa.Array]:
        return lambda r: joined_key(r, RELATIONS[name].key)

    crosswalk = night.crosswalk()

    def both(key: Callable[[pa.Table], pa.Array]) -> Callable[[pa.Table], pa.Array]:
        """A row's enterprise key as written and through tonight's crosswalk (an image from
        before a crosswalk change is covered by the change's own keys, below)."""
        return lambda r: _strings([key(r), key(with_credit_codes(r, crosswalk))])

    def remapped(r: pa.Table) -> pa.Array:  # a crosswalk row: its 注册号's and its credit code's
        legacy = pc.binary_join_element_wise("REG:", r["reg_number"], "")
        return _strings([legacy, r["credit_code"]])

    regs = union(of("enterprise_code_map", ids("reg_number")))

    def employers(name: str) -> list[pa.Array]:
        """Relation rows naming a remapped 注册号 (housing-fund employers)."""
        spec = RELATIONS[name]
        if spec.crosswalk is None or not len(regs):
            return []
        reg = spec.crosswalk[1]
        rows = stack(
            night.root,
            night.depts,
            {spec.kind},
            [*spec.key, reg],
            versions=night.versions,
            where=([reg], regs),
        )
        return [] if rows is None else [joined_key(rows, spec.key)]

    enterprises = of("enterprise", both(enterprise_key)) + of("enterprise_code_map", remapped)
    return {
        "person": union(
            of("person", ids("id_number"))
            + of("housing_fund_account", ids("id_number"))
            + of("marriage", ids("husband_id_number", "wife_id_number"))
        ),
        "enterprise": union(enterprises),
        **{n: union(of(RELATIONS[n].kind, rel(n)) + employers(n)) for n in RELATIONS},
        # enterprise keys: the roles of these enterprises are rebuilt (enterprise_roles)
        "enterprise_role": union(enterprises + of("enterprise_role", both(role_enterprises))),
    }


def _strings(arrays: list[pa.Array] | list[pa.ChunkedArray]) -> pa.ChunkedArray:
    """Arrays or chunked arrays as one chunked string array. (``pa.chunked_array`` given a
    chunked array reads it value by value, in Python.)"""
    chunks: list[pa.Array] = []
    for a in arrays:
        a = pc.cast(a, pa.string())
        chunks.extend(a.chunks if isinstance(a, pa.ChunkedArray) else [a])
    return pa.chunked_array(chunks, pa.string())

"""Survivorship (一数一源): which source row a golden record takes each field from.

Pure pyarrow and numpy, no I/O. Candidate rows carry ``source`` (the department code) and
``as_of`` (``date32``, the source row's last update). Per field, the authority departments
of its rule win in the listed order where they have a value; otherwise (and for a rule
without authority, "latest") the most recent non-null value wins. Ties on the date go to the
department later in ``sources`` order, then to the later row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

Picker = Callable[[np.ndarray, list[str]], np.ndarray]


def winners(
    group: np.ndarray, as_of: pa.Array, source: pa.Array, sources: list[str]
) -> tuple[np.ndarray, np.ndarray, Picker]:
    """Order rows by (group, as_of, source); returns the order, group starts and a picker.

    ``pick(valid, authority)`` gives per group the row (an index into the input) that wins:
    the highest authority rank among rows with ``valid`` true, then the latest as_of, then
    the later source in ``sources``; -1 where no row of the group is valid.
    """
    src = pc.index_in(source, value_set=pa.array(sources, pa.string())).to_numpy(
        zero_copy_only=False
    )
    days = pc.fill_null(pc.cast(as_of, pa.int32()), -(2**20)).to_numpy().astype(np.int64)
    days -= days.min(initial=0)
    span = int(days.max(initial=0)) + 1
    composite = (group.astype(np.int64) * span + days) * len(sources) + src
    order = np.argsort(composite, kind="stable")
    g = group[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]]) if len(g) else np.array([], np.int64)
    n = len(order)
    src_sorted = src[order]

    def pick(valid: np.ndarray, authority: list[str]) -> np.ndarray:
        if n == 0:
            return np.array([], np.int64)
        rank_of = np.zeros(len(sources), np.int64)
        for i, code in enumerate(authority):
            if code in sources:
                rank_of[sources.index(code)] = len(authority) - i
        score = np.where(valid[order], (rank_of[src_sorted] + 1) * n + np.arange(n), -1)
        best = np.maximum.reduceat(score, starts)
        return np.where(best >= 0, order[best % n], -1)

    return order, starts, pick


def _place(idx: np.ndarray) -> pa.Array:
    return pa.array(idx, pa.int64(), mask=idx < 0)


def survive(
    keys: pa.Array,
    key: str,
    candidates: pa.Table,
    rules: Mapping[str, list[str]],
    sources: list[str],
    columns: Mapping[str, Sequence[str]] | None = None,
) -> pa.Table:
    """Golden records for ``keys`` (sorted unique values of ``candidates[key]``), per field.

    ``candidates``: ``key``, the columns of every field of ``rules``, ``source``, ``as_of``.
    ``rules``: field -> authority departments in priority order ([] = latest non-null).
    ``columns``: field -> the columns it yields, all from the one winning row (default: the
    field's own column); a row has a value for the field when the first of them is not null,
    so the others (a legal representative's name beside the ID number) come along with it.
    Returns ``key`` and per field its columns, ``<field>_source`` and ``<field>_as_of``
    (null where no candidate has a value). Candidates of other keys are ignored.
    """
    columns = columns or {}
    pos = pc.index_in(candidates[key], value_set=keys)
    candidates = candidates.filter(pc.is_valid(pos))
    group = pc.drop_null(pos).to_numpy().astype(np.int64)
    order, starts, pick = winners(group, candidates["as_of"], candidates["source"], sources)
    group_key = group[order[starts]] if len(order) else np.array([], np.int64)
    out: dict[str, Any] = {key: keys}
    for name, authority in rules.items():
        yields = list(columns.get(name, [name]))
        valid = pc.is_valid(candidates[yields[0]]).to_numpy(zero_copy_only=False)
        winner = np.full(len(keys), -1, np.int64)
        winner[group_key] = pick(valid, authority)
        take = _place(winner)
        for column in yields:
            out[column] = candidates[column].take(take)
        out[f"{name}_source"] = candidates["source"].take(take)
        out[f"{name}_as_of"] = candidates["as_of"].take(take)
    return pa.table(out)


def first_per_key(rows: pa.Table, key: str, authority: list[str], sources: list[str]) -> pa.Table:
    """The surviving whole row per ``key``: authority departments first, then the latest as_of."""
    keys = pc.unique(rows[key]).sort()
    group = pc.index_in(rows[key], value_set=keys).to_numpy().astype(np.int64)
    _, _, pick = winners(group, rows["as_of"], rows["source"], sources)
    chosen = pick(np.ones(rows.num_rows, bool), authority)
    return rows.take(pa.array(chosen, pa.int64()))

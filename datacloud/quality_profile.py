"""Compact, personal-data-free tables that the quality suites validate (pure pyarrow).

Great Expectations never sees a department's rows. Per batch we hand it one small Arrow
table (a *profile*) with only what the suite reads, built from verdicts the vectorised row
rules have already reached:

- raw profile (one row per source row): per canonical column ``'valid'``, ``'invalid'`` (a
  rejecting rule fired for that field, ``REQUIRED_MISSING`` aside) or null (no value: the
  source value is null or blank, or ``REQUIRED_MISSING``/``KEY_MISSING``). Dictionary-encoded.
- curated profile (one row per curated row): ``key`` (an integer per distinct key, null when
  every key part is null), ``<column>__valid`` (the value is a canonical, valid ID number or
  credit code), ``<column>__resolves`` (the value exists in the related curated table) and
  ``birth_date__matches_id_number``, each ``'valid'``/``'invalid'``/null.

Nothing in a profile is a value of the source: neither GE's stores nor Data Docs can hold one.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datacloud.config import TableSpec
from transforms.credit_code import normalise_credit_code
from transforms.id_number import normalise_id_number
from transforms.result import NormaliseContext

VERDICTS = pa.array(["valid", "invalid"], pa.string())
_NOT_INVALID = {"REQUIRED_MISSING", "KEY_MISSING"}  # no value, not a wrong one


def verdicts(invalid: np.ndarray, missing: np.ndarray) -> pa.DictionaryArray:
    """``'valid'``/``'invalid'`` per row, null where ``missing`` (dictionary-encoded)."""
    indices = pa.array(invalid.astype(np.int8), mask=missing)
    return pa.DictionaryArray.from_arrays(indices, VERDICTS)


def _blank(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    missing = pc.is_null(col)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        empty = pc.or_(pc.equal(pc.utf8_length(col), 0), pc.utf8_is_space(col))
        missing = pc.or_(missing, empty)
    return np.asarray(pc.fill_null(missing, True).to_numpy(zero_copy_only=False), dtype=bool)


def raw_profile(
    raw: pa.Table, table: TableSpec, issues: pa.Table, pk: pa.Array, wanted: list[str]
) -> pa.Table:
    """The raw profile of one night's table: a verdict column per wanted canonical column.

    ``issues`` is the normaliser's issue table (``source_pk``, ``field``, ``rule_code``,
    ``severity``), ``pk`` the source key per raw row. Wanted columns the table does not fill
    from a source column (unmapped, or constants) are left out.
    """
    n = raw.num_rows
    mapped = [c for c in wanted if c in table.columns and table.columns[c].source is not None]
    fields = np.zeros(0, dtype=object)
    at = np.zeros(0, dtype=np.int64)
    absent = np.zeros(0, dtype=bool)
    if issues.num_rows and mapped:
        is_reject = pc.equal(issues["severity"], "reject")
        rejects = issues.filter(pc.and_(is_reject, pc.is_in(issues["field"], pa.array(mapped))))
        rows = pc.index_in(rejects["source_pk"], value_set=pk)  # one hash of the keys for all
        found = pc.is_valid(rows)
        fields = rejects["field"].filter(found).to_numpy(zero_copy_only=False)
        at = rows.filter(found).to_numpy(zero_copy_only=False)
        code = rejects["rule_code"].filter(found)
        absent = pc.is_in(code, pa.array(sorted(_NOT_INVALID))).to_numpy(zero_copy_only=False)
    out: dict[str, pa.Array] = {}
    for name in mapped:
        source = table.columns[name].source
        assert source is not None
        missing = _blank(raw[source])
        invalid = np.zeros(n, dtype=bool)
        mine = fields == name
        missing[at[mine & absent]] = True
        invalid[at[mine & ~absent]] = True
        out[name] = verdicts(invalid & ~missing, missing)
    return pa.table(out) if out else pa.table({"_row": pa.nulls(n, pa.int8())})


def key_codes(table: pa.Table, key: list[str]) -> pa.Array:
    """An integer per distinct key (nulls of a part kept apart), null when all parts are null."""
    parts = [pc.cast(table[k], pa.string()) for k in key if k in table.column_names]
    if not parts:
        raise ValueError(f"none of the key columns {key} is in the table")
    if len(parts) == 1:
        joined = parts[0]
        all_null = pc.is_null(joined)
    else:
        joined = pc.binary_join_element_wise(
            *parts, "\x1f", null_handling="replace", null_replacement="\x00"
        )
        all_null = pc.is_null(parts[0])
        for p in parts[1:]:
            all_null = pc.and_(all_null, pc.is_null(p))
    if isinstance(joined, pa.ChunkedArray):
        joined = joined.combine_chunks()
    codes = pc.dictionary_encode(joined).indices
    return pc.if_else(all_null, pa.scalar(None, codes.type), codes)


def _normalised(values: pa.Array, kind: str, ds: date) -> Any:
    fn = normalise_id_number if kind == "id_number" else normalise_credit_code
    return fn(values, NormaliseContext(business_date=ds))


def _strings(col: pa.ChunkedArray) -> pa.Array:
    arr = col.combine_chunks()
    return arr if pa.types.is_string(arr.type) else pc.cast(arr, pa.string())


def _compare(a: pa.Array, b: pa.Array) -> pa.DictionaryArray:
    missing = pc.is_null(a).to_numpy(zero_copy_only=False)
    same = pc.fill_null(pc.equal(a, b), False).to_numpy(zero_copy_only=False)
    return verdicts(~same & ~missing, missing)


def resolves(values: pa.Array, known: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Whether each of ``values`` is one of ``known`` (a linked table's keys; null: False).

    ``is_in`` hashes its value set (duplicates fold into it). When ``known`` is the larger,
    e.g. a slice of a table against every person key, the values are hashed instead: the
    keys among them are found, and the values are looked up in those. Memory then holds a
    hash of the slice's values, never of the linked table; ``known`` is read as it is (no
    copy, chunks kept)."""
    if not isinstance(known, pa.ChunkedArray):
        known = pa.chunked_array([known])
    if known.type != values.type:
        known = pc.cast(known, values.type)
    if len(known) > len(values):
        known = known.filter(pc.is_in(known, value_set=values))
    if known.null_count:
        known = known.drop_null()
    return np.asarray(pc.is_in(values, value_set=known).to_numpy(zero_copy_only=False), bool)


def curated_profile(
    table: pa.Table, meta: dict[str, Any], related: dict[str, pa.Table], ds: date
) -> tuple[pa.Table, list[str]]:
    """The curated profile of one curated table, and the profile columns it could not build.

    ``meta`` is the suite's ``meta.datacloud``: ``key`` (columns), ``identifiers`` (column ->
    ``id_number`` | ``credit_code``), ``links`` (column -> ``{table, column}`` of a related
    curated table) and optionally ``birth_date_from`` (the ID column whose birth date the
    ``birth_date`` column must equal). A link whose related table is not given, or a column
    the table lacks, is left out and named in the second value.
    """
    out: dict[str, pa.Array] = {"key": key_codes(table, list(meta["key"]))}
    missing: list[str] = []
    normalised: dict[str, Any] = {}
    for column, kind in meta.get("identifiers", {}).items():
        if column not in table.column_names:
            missing.append(f"{column}__valid")
            continue
        values = _strings(table[column])
        normalised[column] = _normalised(values, kind, ds)
        out[f"{column}__valid"] = _compare(values, normalised[column].values)
    birth_from = meta.get("birth_date_from")
    if birth_from:
        if birth_from in normalised and "birth_date" in table.column_names:
            from_id = normalised[birth_from].extras["birth_date"]
            stated = pc.cast(table["birth_date"].combine_chunks(), pa.date32())
            out["birth_date__matches_id_number"] = _compare(stated, from_id)
        else:
            missing.append("birth_date__matches_id_number")
    for column, link in meta.get("links", {}).items():
        other = related.get(link["table"])
        if column not in table.column_names or other is None:
            missing.append(f"{column}__resolves")
            continue
        values = _strings(table[column])
        found = resolves(values, other[link["column"]])
        absent = pc.is_null(values).to_numpy(zero_copy_only=False)
        out[f"{column}__resolves"] = verdicts(~found & ~absent, absent)
    return pa.table(out), missing

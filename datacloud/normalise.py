"""Normalisation of one raw department table into canonical rows.

Each canonical column is filled from its source column through the named normaliser of
``transforms.registry``. A row is *rejected* when any of its columns has an issue of
severity ``reject`` or a required column is empty; the remaining rows are deduplicated on
the table's business key (the most recently updated row wins). Every row in is accepted,
rejected or deduplicated: ``rows_in == rows_accepted + rows_rejected + rows_deduplicated``.
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datacloud.config import ColumnSpec, Department, TableSpec
from transforms.adapters import ENCODING_MARK, apply_adapters
from transforms.names import BIDI_CHARS, CONTROL_CHARS
from transforms.registry import get_normaliser
from transforms.result import NormaliseContext, Normalised
from transforms.rules import rule
from transforms.sex import sex_mismatch

SOURCE_PK = "_source_pk"
SOURCE_UPDATED_AT = "_source_updated_at"
ISSUE_COLUMNS = ["source_pk", "field", "source_column", "raw_value", "rule_code", "severity"]
# The canonical columns that identify a record of a kind: a row with none of them (that has
# no other rejection on them) is rejected as KEY_MISSING. An enterprise may be known by its
# credit code or, before 换照, by its 15-digit registration number (an extra of credit_code).
KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "person": ("id_number",),
    "enterprise": ("credit_code", "reg_number"),
}


@dataclass
class NormaliseOutcome:
    """The result of normalising one raw table."""

    accepted: pa.Table
    issues: pa.Table  # one row per (row, field, rule): rejections and warnings
    rejected: pa.Table  # one row per rejected source row: raw columns, _source_pk, reject_reasons
    rows_in: int
    rows_rejected: int
    rows_deduplicated: int
    warnings: Counter[str] = field(default_factory=Counter)
    rejections: Counter[str] = field(default_factory=Counter)

    @property
    def rows_accepted(self) -> int:
        return self.accepted.num_rows

    def reconciles(self) -> bool:
        return self.rows_in == self.rows_accepted + self.rows_rejected + self.rows_deduplicated


def source_pk(raw: pa.Table, table: TableSpec) -> pa.Array:
    """The source primary key as text (composite keys joined with '|')."""
    parts = [pc.cast(raw[c], pa.string()) for c in table.primary_key]
    if len(parts) == 1:
        return pc.fill_null(parts[0], "").combine_chunks()
    return pc.binary_join_element_wise(*parts, "|", null_handling="replace").combine_chunks()


def unmapped_columns(raw: pa.Table, table: TableSpec) -> list[str]:
    """Source columns the query returned that no mapping uses (not a ``source:``, the primary
    key or the cursor): landed in raw, never staged; reported as ``unmapped_columns``."""
    used = set(table.source_columns)
    return [c for c in raw.column_names if c not in used]


def _to_timestamp(col: pa.ChunkedArray) -> pa.Array:
    if pa.types.is_timestamp(col.type):
        return pc.cast(col, pa.timestamp("us")).combine_chunks()
    text = pc.utf8_trim_whitespace(pc.cast(col, pa.string()))
    text = pc.replace_substring(text, "T", " ")
    parsed = pc.strptime(
        pc.utf8_slice_codeunits(text, 0, 19), "%Y-%m-%d %H:%M:%S", "us", error_is_null=True
    )
    return parsed.combine_chunks() if isinstance(parsed, pa.ChunkedArray) else parsed


def _issues(
    codes: pa.Array, pk: pa.Array, field: str, source_column: str, raw: pa.Array
) -> pa.Table | None:
    """One row per (row, rule) where ``codes`` is set, with the raw value and the severity."""
    has = pc.is_valid(codes)
    if not pc.any(has).as_py():
        return None
    idx = pa.array(np.flatnonzero(has.to_numpy(zero_copy_only=False)))
    found = codes.take(idx)
    known = pc.unique(found)
    severity = pa.array([rule(c).severity for c in known.to_pylist()], pa.string())
    n = len(idx)
    return pa.table(
        {
            "source_pk": pk.take(idx),
            "field": pa.array([field] * n, pa.string()),
            "source_column": pa.array([source_column] * n, pa.string()),
            "raw_value": pc.cast(raw.take(idx), pa.string()),
            "rule_code": found,
            "severity": severity.take(pc.index_in(found, known)),
            "_row": idx,
        }
    )


def rejected_rows(
    raw: pa.Table, pk: pa.Array, reject: np.ndarray, issue_parts: list[pa.Table]
) -> pa.Table:
    """The rejected source rows as extracted, with ``_source_pk`` and their ``reject_reasons``."""
    idx = pa.array(np.flatnonzero(reject), pa.int64())
    reasons_type = pa.list_(pa.string())
    rows = raw.take(idx).append_column(SOURCE_PK, pk.take(idx))
    parts = [
        p.filter(pc.equal(p["severity"], "reject")).select(["_row", "rule_code"])
        for p in issue_parts
    ]
    if not len(idx) or not parts:
        return rows.append_column("reject_reasons", pa.array([[]] * len(idx), reasons_type))
    grouped = (
        pa.concat_tables(parts)
        .group_by("_row", use_threads=False)
        .aggregate([("rule_code", "list")])
    )
    reasons = grouped["rule_code_list"].take(pc.index_in(idx, grouped["_row"]))
    return rows.append_column("reject_reasons", reasons.cast(reasons_type))


def _counts(issues: pa.Table) -> dict[str, int]:
    vc = pc.value_counts(issues["rule_code"]).to_pylist() if issues.num_rows else []
    return {v["values"]: v["counts"] for v in vc}


def _keep(raw: pa.Array) -> Normalised:
    return Normalised(values=raw, issues=pa.nulls(len(raw), pa.string()))


def _workers(columns: int) -> int:
    return max(1, min(columns, os.cpu_count() or 1))


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _flag(codes: pa.Array, mask: pa.Array, code: str) -> pa.Array:
    """``code`` where ``mask`` is true (taking precedence), the existing codes elsewhere."""
    return pc.if_else(pc.fill_null(mask, False), pa.scalar(code), codes)


def _normalise_column(
    raw: pa.Table, canonical: str, spec: ColumnSpec, pk: pa.Array, ds: date, key: bool = False
) -> tuple[Normalised, pa.Table | None]:
    """One mapped column through its adapters and normaliser, with its issues (if any).

    Besides the normaliser's rules: ENCODING_INVALID where the text (after the adapters)
    holds the mark of an undecodable byte, which wins over every other rule; a ``keep``
    column's text with control or bidi characters is TEXT_CONTROL_CHAR/TEXT_BIDI_CHAR; an
    empty required column is REQUIRED_MISSING, or KEY_MISSING when it is a key column.
    """
    assert spec.source is not None
    src = raw[spec.source].combine_chunks()
    value = apply_adapters(src, spec.adapters) if spec.adapters else src
    ctx = NormaliseContext(business_date=ds, options=spec.options)
    out = _keep(value) if spec.normalise == "keep" else get_normaliser(spec.normalise)(value, ctx)
    codes = out.issues
    if spec.required:
        missing = pc.and_(pc.is_null(out.values), pc.is_null(codes))
        codes = _flag(codes, missing, "KEY_MISSING" if key else "REQUIRED_MISSING")
    if _is_text(value.type):
        if spec.normalise == "keep":
            codes = _flag(codes, pc.match_substring_regex(value, BIDI_CHARS), "TEXT_BIDI_CHAR")
            codes = _flag(
                codes, pc.match_substring_regex(value, CONTROL_CHARS), "TEXT_CONTROL_CHAR"
            )
        codes = _flag(codes, pc.match_substring(value, ENCODING_MARK), "ENCODING_INVALID")
    return out, _issues(codes, pk, canonical, spec.source, src)


def _key_missing(
    raw: pa.Table,
    table: TableSpec,
    columns: dict[str, pa.Array],
    issue_parts: list[pa.Table],
    pk: pa.Array,
) -> pa.Table | None:
    """KEY_MISSING issues: rows where every key column of the kind (``KEY_COLUMNS``) is empty
    and none of them was already rejected by its own rule (a wrong credit code says more)."""
    keys = [c for c in KEY_COLUMNS.get(table.kind, ()) if c in columns]
    if not keys:
        return None
    n = raw.num_rows
    empty = np.ones(n, dtype=bool)
    for k in keys:
        empty &= pc.is_null(columns[k]).to_numpy(zero_copy_only=False)
    for part in issue_parts:  # issues are filed under canonical names; extras under their parent
        mine = pc.and_(
            pc.equal(part["severity"], "reject"), pc.is_in(part["field"], pa.array(keys))
        )
        empty[part["_row"].filter(mine).to_numpy()] = False
    if not empty.any():
        return None
    # the issue is filed under the first key column that comes from a source column
    first = next((k for k in keys if k in table.columns and table.columns[k].source), None)
    if first is None:
        return None
    source = table.columns[first].source
    assert source is not None
    codes = pc.if_else(pa.array(empty), pa.scalar("KEY_MISSING"), pa.scalar(None, pa.string()))
    return _issues(codes, pk, first, source, raw[source].combine_chunks())


def normalise_table(
    raw: pa.Table, dept: Department, table: TableSpec, ds: date, *, dedup: bool = True
) -> NormaliseOutcome:
    """Apply the department's column mapping; split accepted, rejected and duplicate rows.

    With ``dedup=False`` (a batch of a larger table, ``datacloud.staging_batches``) the kept
    rows are returned as accepted, duplicates included: the caller deduplicates across
    batches with ``deduplicate``, and counts and files the losers with ``duplicate_issues``.
    """
    n = raw.num_rows
    pk = source_pk(raw, table)
    columns: dict[str, pa.Array] = {}
    reject = np.zeros(n, dtype=bool)
    issue_parts: list[pa.Table] = []
    warnings: Counter[str] = Counter()
    rejections: Counter[str] = Counter()

    mapped = [(c, spec) for c, spec in table.columns.items() if spec.constant is None]
    for canonical, spec in table.columns.items():
        if spec.constant is not None:
            columns[canonical] = pa.array([spec.constant] * n, pa.string())
    # columns are independent and pyarrow's kernels release the GIL: one thread per core
    keys = KEY_COLUMNS.get(table.kind, ())
    with ThreadPoolExecutor(max_workers=_workers(len(mapped))) as pool:
        results = list(
            pool.map(lambda cs: _normalise_column(raw, cs[0], cs[1], pk, ds, cs[0] in keys), mapped)
        )
    for (canonical, spec), (out, found) in zip(mapped, results, strict=True):
        columns[canonical] = out.values
        for extra, target in spec.extras.items():
            columns[target] = out.extras[extra]
        if found is not None:
            issue_parts.append(found)

    if "sex" in columns and "id_sex" in columns:  # a sex that contradicts the ID's sex digit
        mismatch = sex_mismatch(columns["sex"], columns["id_sex"])
        codes = pc.if_else(mismatch, pa.scalar("SEX_ID_MISMATCH"), pa.scalar(None, pa.string()))
        sex_src = table.columns["sex"].source or "sex"
        found = _issues(codes, pk, "sex", sex_src, raw[sex_src].combine_chunks())
        if found is not None:
            issue_parts.append(found)

    found = _key_missing(raw, table, columns, issue_parts, pk)
    if found is not None:
        issue_parts.append(found)

    for part in issue_parts:
        is_reject = pc.equal(part["severity"], "reject")
        rows = part["_row"].filter(is_reject).to_numpy()
        reject[rows] = True
        for code, count in _counts(part.filter(is_reject)).items():
            rejections[code] += count
        for code, count in _counts(part.filter(pc.invert(is_reject))).items():
            warnings[code] += count
    rejected = rejected_rows(raw, pk, reject, issue_parts)
    issue_parts = [p.drop_columns(["_row"]) for p in issue_parts]

    if table.cursor:
        columns[SOURCE_UPDATED_AT] = _to_timestamp(raw[table.cursor])
    columns[SOURCE_PK] = pk
    canonical_table = pa.table(columns)

    kept = canonical_table.filter(pa.array(~reject))
    accepted, dup_pks = deduplicate(kept, table.business_key) if dedup else (kept, [])
    if dup_pks:
        warnings["DUPLICATE_KEY"] += len(dup_pks)
        issue_parts.append(duplicate_issues(dup_pks, table))
    issues = (
        pa.concat_tables(issue_parts)
        if issue_parts
        else pa.schema([(c, pa.string()) for c in ISSUE_COLUMNS]).empty_table()
    )
    return NormaliseOutcome(
        accepted=accepted,
        issues=issues,
        rejected=rejected,
        rows_in=n,
        rows_rejected=int(reject.sum()),
        rows_deduplicated=len(dup_pks),
        warnings=warnings,
        rejections=rejections,
    )


def duplicate_issues(dup_pks: list[str], table: TableSpec) -> pa.Table:
    """The DUPLICATE_KEY issue rows (severity ``warn``) of the dropped source keys."""
    n = len(dup_pks)
    return pa.table(
        {
            "source_pk": pa.array(dup_pks, pa.string()),
            "field": pa.array(["*"] * n, pa.string()),
            "source_column": pa.array([",".join(table.primary_key)] * n, pa.string()),
            "raw_value": pa.array(dup_pks, pa.string()),
            "rule_code": pa.array(["DUPLICATE_KEY"] * n, pa.string()),
            "severity": pa.array(["warn"] * n, pa.string()),
        }
    )


def business_key_text(rows: pa.Table, key: list[str]) -> pa.Array:
    """Each row's business key as one text, grouped exactly as ``deduplicate`` groups them
    (null only where a single-column key is null)."""
    composite = rows[key[0]] if len(key) == 1 else _composite(rows, key)
    if isinstance(composite, pa.ChunkedArray):
        composite = composite.combine_chunks()
    return pc.cast(composite, pa.string())


def business_key_empty(rows: pa.Table, key: list[str]) -> np.ndarray:
    """Rows whose whole business key is empty: ``deduplicate`` keeps them all."""
    all_null = np.ones(rows.num_rows, dtype=bool)
    for k in key:
        all_null &= pc.is_null(rows[k]).to_numpy(zero_copy_only=False)
    return all_null


def deduplicate(rows: pa.Table, key: list[str]) -> tuple[pa.Table, list[str]]:
    """Keep one row per business key: the latest updated, then the highest source key.

    Rows whose whole business key is empty are all kept (nothing to match them on). Keys are
    grouped by hashing (dictionary encoding); only the rows whose key repeats are sorted.
    Returns the kept rows (unique keys first, in input order) and the dropped source keys.
    """
    n = rows.num_rows
    if n == 0:
        return rows, []
    all_null = business_key_empty(rows, key)
    codes = _key_codes(rows, key)
    codes_np = pc.fill_null(codes, -1).to_numpy(zero_copy_only=False)
    counts = np.bincount(codes_np[codes_np >= 0], minlength=1)
    repeated = (codes_np >= 0) & ~all_null
    repeated[repeated] = counts[codes_np[repeated]] > 1
    if not repeated.any():
        return rows, []
    unique = rows.filter(pa.array(~repeated))
    dupes = rows.filter(pa.array(repeated))
    order = [(k, "ascending", "at_end") for k in key]
    if SOURCE_UPDATED_AT in dupes.column_names:
        order.append((SOURCE_UPDATED_AT, "descending", "at_end"))
    order.append((SOURCE_PK, "descending", "at_end"))
    dupes = dupes.take(pc.sort_indices(dupes, sort_keys=order))
    dup_codes = (
        pc.dictionary_encode(dupes[key[0]] if len(key) == 1 else _composite(dupes, key))
        .combine_chunks()
        .indices.to_numpy(zero_copy_only=False)
    )
    first = np.ones(dupes.num_rows, dtype=bool)
    first[1:] = dup_codes[1:] != dup_codes[:-1]
    dropped = dupes[SOURCE_PK].filter(pa.array(~first)).to_pylist()
    kept = pa.concat_tables([unique, dupes.filter(pa.array(first))])
    return kept, [str(x) for x in dropped]


def _key_codes(rows: pa.Table, key: list[str]) -> pa.Array:
    """One integer per distinct business key (null where the single key column is null)."""
    composite = rows[key[0]] if len(key) == 1 else _composite(rows, key)
    if isinstance(composite, pa.ChunkedArray):  # one dictionary for all chunks
        composite = composite.combine_chunks()
    return pc.dictionary_encode(composite).indices


def _composite(rows: pa.Table, key: list[str]) -> pa.Array:
    # a NUL for an empty part, so (a, null) and (null, a) stay different keys
    parts = [pc.cast(rows[k], pa.string()) for k in key]
    return pc.binary_join_element_wise(
        *parts, "\x1f", null_handling="replace", null_replacement="\x00"
    )

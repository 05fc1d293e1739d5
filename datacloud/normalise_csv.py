"""Normalise a CSV of canonical person or enterprise columns (``datacloud normalise``).

The same rules as the nightly pipeline, on a file: known canonical columns go through their
normalisers, any other column passes through unchanged. Every input row ends in exactly one
of ``valid.parquet`` or ``rejected.parquet`` (with ``reject_reasons``); a record without a
key (a person without an ID number, an enterprise with neither a credit code nor a
registration number) is rejected as KEY_MISSING. A header naming a column twice is a
``CsvHeaderError`` naming the file and the column.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from datacloud.config import IDENTIFIER, Department, TableSpec
from datacloud.normalise import SOURCE_PK, normalise_table

Kind = Literal["person", "enterprise"]
ROW = "_row"

# canonical column -> (normaliser, extras) for each kind; other columns pass through
KNOWN: dict[str, dict[str, tuple[str, dict[str, str]]]] = {
    "person": {
        "id_number": ("id_number", {"birth_date": "id_birth_date", "sex": "id_sex"}),
        "name": ("person_name", {}),
        "sex": ("sex", {}),
        "birth_date": ("date", {}),
        "ethnicity": ("ethnicity", {}),
        "phone": ("phone", {}),
        "registered_address": ("text", {}),
        "address": ("text", {}),
    },
    "enterprise": {
        "credit_code": ("credit_code", {"reg_number": "reg_number", "org_code": "org_code"}),
        "name": ("enterprise_name", {}),
        "enterprise_type": ("text", {}),
        "legal_rep_name": ("person_name", {}),
        "legal_rep_id_number": ("id_number", {}),
        "registered_capital": ("capital", {}),
        "established_date": ("date", {}),
        "status": ("text", {}),
        "address": ("text", {}),
    },
}
KEYS: dict[str, tuple[str, ...]] = {
    "person": ("id_number", "name"),
    "enterprise": ("credit_code", "name"),
}


class InputError(ValueError):
    """The input file cannot be used; the message says why."""

    user_error = True  # the command line reports it and exits 2


class CsvHeaderError(InputError):
    """The CSV header names a column more than once; the message names the file and column."""


@dataclass(frozen=True)
class CsvOutcome:
    rows_in: int
    rows_valid: int
    rows_rejected: int
    valid: Path
    rejected: Path


def _read(path: Path) -> pa.Table:
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            header = next(csv.reader(fh), None)
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read as UTF-8 CSV: {e}") from None
    if not header:
        raise InputError(f"{path}: empty file, expected a header line")
    seen: dict[str, int] = {}
    for i, name in enumerate(header, start=1):
        if name in seen:
            raise CsvHeaderError(
                f"{path}: column {name!r} appears twice in the header "
                f"(columns {seen[name]} and {i}); each column name must be unique"
            )
        seen[name] = i
    bad = [h for h in header if not IDENTIFIER.match(h) or h == ROW]
    if bad:
        raise InputError(f"{path}: column names must be identifiers like id_number; got {bad}")
    try:
        return pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                column_types={h: pa.string() for h in header}, strings_can_be_null=True
            ),
        )
    except pa.ArrowInvalid as e:
        raise InputError(f"{path}: not a well-formed CSV: {e}") from None


def _spec(kind: Kind, columns: list[str]) -> tuple[Department, TableSpec]:
    mapping: dict[str, Any] = {}
    for col in columns:
        normaliser, extras = KNOWN[kind].get(col, ("keep", {}))
        mapping[col] = {"source": col, "normalise": normaliser, "extras": extras}
    mapping[ROW] = {"source": ROW, "normalise": "keep"}
    for key in KEYS[kind]:
        mapping[key]["required"] = key != "credit_code"  # a legacy number may stand in for it
    table = {
        "name": "input",
        "kind": kind,
        "primary_key": [ROW],
        "dedupe_on": [ROW],  # a file is normalised, not deduplicated: rows in = valid + rejected
        "columns": mapping,
    }
    dept = Department.model_validate(
        {"code": "cli", "name": "command line", "connection_id": "none", "tables": [table]}
    )
    return dept, dept.tables[0]


def normalise_csv(kind: Kind, path: Path, out: Path, business_date: date) -> CsvOutcome:
    """Normalise ``path`` and write ``out/valid.parquet`` and ``out/rejected.parquet``."""
    raw = _read(path)
    missing = [k for k in KEYS[kind] if k not in raw.column_names]
    if missing:
        raise InputError(
            f"{path}: a {kind} file needs the column(s) {missing}; it has {raw.column_names}"
        )
    raw = raw.append_column(ROW, pa.array(range(1, raw.num_rows + 1), pa.int64()))
    dept, spec = _spec(kind, [c for c in raw.column_names if c != ROW])
    result = normalise_table(raw, dept, spec, business_date)
    valid = result.accepted.sort_by(SOURCE_PK)
    valid = valid.drop_columns([c for c in (SOURCE_PK, ROW) if c in valid.column_names])
    rejected = result.rejected.drop_columns([SOURCE_PK])
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(valid, out / "valid.parquet")
    pq.write_table(rejected, out / "rejected.parquet")
    return CsvOutcome(
        raw.num_rows,
        valid.num_rows,
        rejected.num_rows,
        out / "valid.parquet",
        out / "rejected.parquet",
    )

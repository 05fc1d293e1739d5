"""The DDL of the sample department databases (``sql/sample/<dept>.sql``) and its Arrow schema.

The .sql files are the one definition of the sample tables: the generator builds its Arrow
tables from them and the writers execute them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pyarrow as pa

SQL_DIR = Path(__file__).resolve().parents[2] / "sql" / "sample"

_CREATE = re.compile(r"CREATE\s+TABLE\s+(\w+)\s*\((.*)\)\s*$", re.IGNORECASE | re.DOTALL)
_DECIMAL = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)", re.IGNORECASE)


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str  # as written, e.g. VARCHAR(20), INTEGER, DECIMAL(7,4), TIMESTAMP
    primary_key: bool

    @property
    def arrow_type(self) -> pa.DataType:
        upper = self.sql_type.upper()
        if upper.startswith("VARCHAR"):
            return pa.string()
        if upper == "INTEGER":
            return pa.int64()
        if upper == "TIMESTAMP":
            return pa.timestamp("s")
        if m := _DECIMAL.fullmatch(upper):
            return pa.decimal128(int(m[1]), int(m[2]))
        raise ValueError(f"sample DDL: unsupported column type {self.sql_type} of {self.name}")


@dataclass(frozen=True)
class TableDef:
    name: str
    columns: tuple[Column, ...]
    statement: str  # CREATE TABLE without comments

    @property
    def primary_key(self) -> str:
        return next(c.name for c in self.columns if c.primary_key)

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([(c.name, c.arrow_type) for c in self.columns])


def strip_comments(sql: str) -> str:
    return "\n".join(line.split("--", 1)[0].rstrip() for line in sql.splitlines())


def _split_top_level(body: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in body:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


@cache
def tables(dept: str) -> tuple[TableDef, ...]:
    """The tables of one department, parsed from ``sql/sample/<dept>.sql``, in file order."""
    path = SQL_DIR / f"{dept}.sql"
    out = []
    for statement in strip_comments(path.read_text(encoding="utf-8")).split(";"):
        statement = " ".join(statement.split())
        if not statement:
            continue
        m = _CREATE.match(statement)
        if m is None:
            raise ValueError(f"{path}: expected only CREATE TABLE statements, got {statement!r}")
        columns = []
        for part in _split_top_level(m[2]):
            words = part.split()
            if words[0].upper() in {"PRIMARY", "UNIQUE", "CONSTRAINT", "FOREIGN"}:
                raise ValueError(f"{path}: declare keys inline, not {part!r}")
            pk = "PRIMARY KEY" in part.upper()
            columns.append(Column(words[0], words[1].replace(" ", ""), pk))
        out.append(TableDef(m[1], tuple(columns), statement))
    return tuple(out)


def table_def(dept: str, name: str) -> TableDef:
    return next(t for t in tables(dept) if t.name == name)


def decimal_array(units: np.ndarray, precision: int, scale: int) -> pa.Array:
    """Decimal array from integers counting units of 10**-scale (e.g. cents for scale 2)."""
    values = np.asarray(units, dtype=np.int64)
    words = np.empty((len(values), 2), dtype=np.int64)
    words[:, 0] = values
    words[:, 1] = np.where(values < 0, -1, 0)
    buffer = pa.py_buffer(words.tobytes())
    return pa.Array.from_buffers(pa.decimal128(precision, scale), len(values), [None, buffer])


def to_table(dept: str, name: str, columns: dict[str, np.ndarray]) -> pa.Table:
    """Arrow table with exactly the DDL's columns, in order, from numpy columns.

    Strings come as object arrays (None for NULL), integers as int arrays, decimals as integer
    units of the column's scale, timestamps as datetime64[s].
    """
    tdef = table_def(dept, name)
    if set(columns) != {c.name for c in tdef.columns}:
        raise ValueError(f"{dept}.{name}: columns {sorted(columns)} differ from the DDL")
    arrays = []
    for col in tdef.columns:
        typ = col.arrow_type
        values = columns[col.name]
        if pa.types.is_decimal(typ):
            assert isinstance(typ, pa.Decimal128Type)
            arrays.append(decimal_array(values, typ.precision, typ.scale))
        else:
            arrays.append(pa.array(values, type=typ, from_pandas=True))
    return pa.Table.from_arrays(arrays, schema=tdef.schema)

"""One curated version in memory, with sorted key indexes for point lookups.

A ``Snapshot`` holds the curated tables (person, enterprise, property_right,
housing_fund_account, marriage, enterprise_role) of one set of Delta versions as Arrow tables,
and per lookup key a ``KeyIndex``: the keys as a sorted fixed-width byte array
(``np.searchsorted``) and the row positions in that order. A lookup is two binary searches and
a ``take`` of the matching rows; nothing is read from disk after loading. Source columns are
dictionary-encoded on load (a handful of department codes in millions of rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from datacloud.curated_tables import LOOKUP
from datacloud.curated_tables import TABLES as CURATED
from datacloud.delta import load, read_loaded, version_as_of
from datacloud.paths import StorageRoot
from datacloud.storage import DataPath, list_names
from transforms._arrow import fixed_width_matrix

TABLES = LOOKUP  # the registry's tables the lookup service loads (datacloud.curated_tables)
# table -> key columns with an index
INDEXES: dict[str, tuple[str, ...]] = {n: CURATED[n].indexes for n in TABLES}
Row = dict[str, Any]


class KeyIndex:
    """Positions of the rows of one key column, sorted by key; nulls are left out."""

    def __init__(self, column: pa.ChunkedArray | pa.Array) -> None:
        arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        valid = pc.is_valid(arr).to_numpy(zero_copy_only=False)
        positions = np.flatnonzero(valid).astype(np.int64)
        keys = pc.cast(arr.filter(pa.array(valid)), pa.string())
        width = int(pc.max(pc.binary_length(keys)).as_py() or 1) if len(keys) else 1
        if len(keys) and int(pc.min(pc.binary_length(keys)).as_py()) != width:
            keys = pc.utf8_rpad(keys, width=width, padding="\0")  # numpy S-strings ignore NULs
        matrix = np.ascontiguousarray(fixed_width_matrix(keys, width))
        self.width = width
        self.keys = matrix.view(f"S{width}").ravel()
        if len(self.keys) > 1 and not bool(np.all(self.keys[1:] >= self.keys[:-1])):
            order = np.argsort(self.keys, kind="stable")
            self.keys = self.keys[order]
            positions = positions[order]
        self.positions = positions

    def find(self, key: str) -> np.ndarray:
        """Row positions whose key equals ``key`` (in key order)."""
        raw = key.encode("ascii", errors="replace")
        if len(raw) > self.width:
            return self.positions[:0]
        probe = np.array(raw, dtype=f"S{self.width}")
        lo = int(np.searchsorted(self.keys, probe, side="left"))
        hi = int(np.searchsorted(self.keys, probe, side="right"))
        return self.positions[lo:hi]

    @property
    def nbytes(self) -> int:
        return int(self.keys.nbytes + self.positions.nbytes)


@dataclass(frozen=True)
class TableVersion:
    """A curated table's Delta version and the business date its commit recorded."""

    version: int
    ds: str | None


class TableVersions:
    """``version`` and ``ds`` of a snapshot's tables (shared by ``Snapshot`` and
    ``paged.PagedSnapshot``), read from its ``versions``."""

    versions: dict[str, TableVersion]

    def version(self, table: str) -> int | None:
        meta = self.versions.get(table)
        return meta.version if meta else None

    def ds(self, table: str) -> str | None:
        meta = self.versions.get(table)
        return meta.ds if meta else None


@dataclass
class Snapshot(TableVersions):
    """The curated tables of one set of versions, indexed for point lookups."""

    versions: dict[str, TableVersion]
    tables: dict[str, pa.Table]
    indexes: dict[tuple[str, str], KeyIndex] = field(default_factory=dict)
    _batches: dict[str, tuple[list[pa.RecordBatch], np.ndarray]] = field(default_factory=dict)
    _distinct: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, root: StorageRoot, versions: dict[str, int]) -> Snapshot:
        """Read each table at its version (tables missing from ``versions`` stay empty)."""
        tables: dict[str, pa.Table] = {}
        meta: dict[str, TableVersion] = {}
        for name, version in versions.items():
            dt = load(root.curated(name), version)
            tables[name] = _compact(read_loaded(dt))
            meta[name] = TableVersion(version, commit_ds(dt, version))
        snap = cls(meta, tables)
        for name, t in tables.items():
            batches = t.to_batches()  # zero-copy; row i is found by a binary search on starts
            starts = np.cumsum([0] + [b.num_rows for b in batches], dtype=np.int64)
            snap._batches[name] = (batches, starts)
        snap.distinct("property_right", "source")  # now, not in the first request
        for name, columns in INDEXES.items():
            if name in tables:
                for column in columns:
                    if column in tables[name].column_names:
                        snap.indexes[(name, column)] = KeyIndex(tables[name][column])
        return snap

    def rows(self, table: str, column: str, key: str) -> list[Row]:
        """The rows whose ``column`` equals ``key``.

        Rows are sliced out of the record batch holding them: a ``take`` or ``slice`` on the
        whole table walks (or concatenates) thousands of chunks at 10M rows.
        """
        index = self.indexes.get((table, column))
        if index is None:
            return []
        positions = index.find(key)
        if len(positions) == 0:
            return []
        batches, starts = self._batches[table]
        out: list[Row] = []
        for pos in np.sort(positions).tolist():
            b = int(np.searchsorted(starts, pos, side="right")) - 1
            out.extend(batches[b].slice(pos - int(starts[b]), 1).to_pylist())
        return out

    def distinct(self, table: str, column: str) -> list[str]:
        """The distinct non-null values of a column (computed once per snapshot)."""
        cached = self._distinct.get((table, column))
        if cached is not None:
            return cached
        t = self.tables.get(table)
        values: list[str] = []
        if t is not None and column in t.column_names:
            found: set[str] = set()
            for chunk in t[column].chunks:
                if pa.types.is_dictionary(chunk.type):  # the values a chunk's indices use
                    chunk = chunk.dictionary.take(pc.unique(chunk.indices).drop_null())
                found.update(v for v in pc.unique(chunk).to_pylist() if v is not None)
            values = sorted(found)
        self._distinct[(table, column)] = values
        return values

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tables.values()) + sum(
            i.nbytes for i in self.indexes.values()
        )


def _compact(table: pa.Table) -> pa.Table:
    """Dictionary-encode the source columns (a few department codes repeated on every row)."""
    for i, name in enumerate(table.column_names):
        if (name == "source" or name.endswith("_source")) and pa.types.is_string(
            table.schema.field(i).type
        ):
            table = table.set_column(i, name, pc.dictionary_encode(table[name]))
    return table


def commit_ds(dt: DeltaTable, version: int) -> str | None:
    """The business date (``datacloud.ds``) recorded by the commit of ``version``."""
    for commit in dt.history():
        if commit.get("version") == version:
            ds = commit.get("datacloud.ds")
            return str(ds) if ds is not None else None
    return None


def latest_version(path: DataPath) -> int | None:
    """The newest committed version from the ``_delta_log`` listing (no table load), or None."""
    names = list_names(path / "_delta_log")
    if names is None:
        return None
    versions = [int(n[:-5]) for n in names if n.endswith(".json") and n[:-5].isdigit()]
    return max(versions) if versions else None


def published_versions(root: StorageRoot, ds: str | None = None) -> dict[str, int]:
    """Curated table -> its newest version, or with ``ds`` the last one committed for a
    business date on or before it; tables with none are left out."""
    out = {}
    for name in TABLES:
        path = root.curated(name)
        version = latest_version(path) if ds is None else version_as_of(path, ds)
        if version is not None:
            out[name] = version
    return out

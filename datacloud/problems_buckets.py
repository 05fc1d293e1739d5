"""The tracking night in buckets on local disk: memory that does not grow with the province.

``problems_night.track_night`` reads every input of the night a batch at a time and spills it
into buckets (``<root>/scratch/problems/<tmp>/``, removed after): the previous problem table
(streamed from Delta), tonight's rejected rows and findings (with their problem IDs), the
person keys of the rejected rows, and the source keys read again tonight of the incremental
tables. A row's bucket is crc32 of ``dept|table|source_key`` (``bucket_of``): every row of a
problem ID, the person key of its source row and its source key read tonight land in the same
bucket. Each bucket is then tracked alone (``problems.track_rows``: the same rules, row by
row), its result cut into slices of (department, table, problem ID range), and the slices,
read back in order and sorted, are written to Delta as one stream: the table's content and
order are those of ``problems.track`` over the whole night. Memory: a batch, a bucket
(``BUCKET_ROWS`` rows) and a slice, whatever the number of problems.
"""

from __future__ import annotations

import bisect
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datacloud.problem_store import OPEN, SCHEMA, SORT_BY
from datacloud.problems import OBSERVED_SCHEMA, Response, observed_ids, track_rows

BUCKET_ROWS = 50_000  # previous + observed rows per bucket (memory, not results)
SLICE_ROWS = 100_000  # problem rows per written slice (memory, not results)
Source = tuple[str, str]
OBSERVED_ID_SCHEMA = OBSERVED_SCHEMA.append(pa.field("problem_id", pa.string()))
PERSON_SCHEMA = pa.schema(
    [
        ("dept", pa.string()),
        ("table", pa.string()),
        ("source_key", pa.string()),
        ("person_key", pa.string()),
    ]
)
READ_SCHEMA = pa.schema(
    [("dept", pa.string()), ("table", pa.string()), ("source_key", pa.string())]
)
KINDS = {
    "previous": SCHEMA,
    "observed": OBSERVED_ID_SCHEMA,
    "person": PERSON_SCHEMA,
    "read": READ_SCHEMA,
}


def bucket_of(rows: pa.Table | pa.RecordBatch, buckets: int) -> pa.Array:
    """Each row's bucket: crc32 of ``dept|table|source_key`` (UTF-8) modulo ``buckets``."""
    dept, table, key = (rows.column(c).to_pylist() for c in ("dept", "table", "source_key"))
    return pa.array(
        [
            zlib.crc32(f"{d}|{t}|{k}".encode()) % buckets
            for d, t, k in zip(dept, table, key, strict=True)
        ],
        pa.int32(),
    )


def buckets_for(rows: int) -> int:
    """How many buckets a night of ``rows`` previous and observed rows takes."""
    return max(1, -(-rows // BUCKET_ROWS))


class Spill:
    """Per (kind, bucket) a Parquet file on local disk, appended a batch at a time."""

    def __init__(self, folder: Path, buckets: int) -> None:
        self.folder = folder
        self.buckets = buckets
        self._writers: dict[tuple[str, int], pq.ParquetWriter] = {}

    def _path(self, kind: str, bucket: int) -> Path:
        return self.folder / f"{kind}-{bucket:05d}.parquet"

    def add(self, kind: str, rows: pa.Table) -> None:
        """Append ``rows`` (of ``KINDS[kind]``) to their buckets' files."""
        if not rows.num_rows:
            return
        rows = rows.select(KINDS[kind].names).cast(KINDS[kind])
        of = bucket_of(rows, self.buckets)
        for b in pc.unique(of).to_pylist():
            writer = self._writers.get((kind, b))
            if writer is None:
                writer = pq.ParquetWriter(self._path(kind, b), KINDS[kind])
                self._writers[(kind, b)] = writer
            writer.write_table(rows.filter(pc.equal(of, b)))

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()

    def read(self, kind: str, bucket: int) -> pa.Table:
        """A bucket's rows of ``kind`` (empty when none were spilled)."""
        path = self._path(kind, bucket)
        if not path.is_file():
            return KINDS[kind].empty_table()
        return pq.read_table(path, schema=KINDS[kind])


@dataclass
class Counts:
    """Per department the open and overdue problems of the new table (``problems.summary``'s
    ``open`` and ``overdue``), counted a bucket at a time."""

    open: Counter[str] = field(default_factory=Counter)
    overdue: Counter[str] = field(default_factory=Counter)
    rows: int = 0

    def add(self, table: pa.Table) -> None:
        self.rows += table.num_rows
        is_open = pc.fill_null(pc.is_in(table["status"], value_set=pa.array(OPEN)), False)
        opened = table.filter(is_open)
        for r in opened.group_by("dept").aggregate([([], "count_all")]).to_pylist():
            self.open[r["dept"]] += int(r["count_all"])
        late = opened.filter(pc.fill_null(opened["overdue"], False))
        for r in late.group_by("dept").aggregate([([], "count_all")]).to_pylist():
            self.overdue[r["dept"]] += int(r["count_all"])


class Slices:
    """The new table's rows cut into slices of one source and one problem-ID range, each
    about ``SLICE_ROWS`` rows (from the source's previous and observed rows, an upper bound
    of its problems): read back source by source, range by range, each slice sorted, they
    are the table in ``SORT_BY`` order."""

    def __init__(self, folder: Path, sizes: Mapping[Source, int]) -> None:
        self.folder = folder
        self.sources = sorted(sizes)  # UTF-8 byte order = code point order (Arrow's sort)
        self.bounds = {s: _bounds(-(-sizes[s] // SLICE_ROWS)) for s in self.sources}
        self._n = 0

    def add(self, table: pa.Table) -> None:
        """Spill one bucket's result into its slices."""
        if not table.num_rows:
            return
        self._n += 1
        ids = table["problem_id"].to_pylist()
        sources = zip(table["dept"].to_pylist(), table["table"].to_pylist(), strict=True)
        place = [
            f"{self.sources.index(s) if s in self.bounds else -1}-"
            f"{bisect.bisect_right(self.bounds.get(s, []), pid)}"
            for s, pid in zip(sources, ids, strict=True)
        ]
        where = pa.array(place, pa.string())
        for p in pc.unique(where).to_pylist():
            folder = self.folder / p
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(table.filter(pc.equal(where, p)), folder / f"{self._n:05d}.parquet")

    def tables(self) -> Iterator[tuple[str, pa.Table]]:
        """The table in ``SORT_BY`` order, a slice at a time: (its name, its rows sorted)."""
        for i, source in enumerate(self.sources):
            for r in range(len(self.bounds[source]) + 1):
                if (self.folder / f"{i}-{r}").is_dir():
                    yield f"{i}-{r}", self.table(f"{i}-{r}")

    def table(self, name: str) -> pa.Table:
        """One slice's rows, sorted."""
        parts = [pq.read_table(p, schema=SCHEMA) for p in sorted((self.folder / name).iterdir())]
        rows = pa.concat_tables(parts).sort_by([(k, "ascending") for k in SORT_BY])
        return rows.combine_chunks()


def _bounds(ranges: int) -> list[str]:
    """The problem-ID boundaries of ``ranges`` ranges (IDs are hex: even ranges of 4 digits)."""
    return [f"{-(-r * 65536 // ranges):04x}" for r in range(1, ranges)]


def observed_with_ids(observed: pa.Table) -> pa.Table:
    """Observed rows (``OBSERVED_SCHEMA``) with their problem IDs (``OBSERVED_ID_SCHEMA``)."""
    return observed.append_column("problem_id", observed_ids(observed))


def track_bucket(
    spill: Spill,
    bucket: int,
    covered: set[Source],
    incremental: set[Source],
    unread: set[Source],
    responses: Mapping[str, Response],
    ds: date,
    due: Any,
) -> pa.Table:
    """One bucket's night (``problems.track_rows``), the rejected rows given the person
    keys of their source rows (as ``problems_night._person_keys`` gives them); ``unread``:
    incremental sources whose keys read tonight are not known (none counts as read)."""
    previous = spill.read("previous", bucket)
    observed = spill.read("observed", bucket)
    people: dict[Source, dict[str, str]] = {}
    person = spill.read("person", bucket)
    for d, t, k, p in zip(*(person[c].to_pylist() for c in PERSON_SCHEMA.names), strict=True):
        people.setdefault((d, t), {})[k] = p
    if people and observed.num_rows:
        keys = [
            people.get((d, t), {}).get(k) if kind == "rejected_row" else p
            for kind, d, t, k, p in zip(
                *(
                    observed[c].to_pylist()
                    for c in ("kind", "dept", "table", "source_key", "person_key")
                ),
                strict=True,
            )
        ]
        observed = observed.set_column(
            observed.schema.get_field_index("person_key"), "person_key", pa.array(keys, pa.string())
        )
    read: dict[Source, set[str]] = {s: set() for s in incremental}
    keys_read = spill.read("read", bucket)
    for d, t, k in zip(*(keys_read[c].to_pylist() for c in READ_SCHEMA.names), strict=True):
        if (d, t) in read and (d, t) not in unread:
            read[(d, t)].add(k)
    ids = observed["problem_id"]
    return track_rows(
        previous,
        observed.select(OBSERVED_SCHEMA.names),
        ids,
        covered,
        responses,
        ds,
        due,
        read,
    )


def sizes_of(tables: Iterable[pa.Table]) -> Counter[Source]:
    """Rows per (department, table) of ``tables``."""
    out: Counter[Source] = Counter()
    for t in tables:
        for r in t.group_by(["dept", "table"]).aggregate([([], "count_all")]).to_pylist():
            out[(r["dept"], r["table"])] += int(r["count_all"])
    return out

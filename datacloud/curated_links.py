"""Which of a slice's link values a curated table has (the curated gate's links: owners,
spouses, legal representatives and roles must exist in curated person or enterprise), read
for that slice alone, never the linked table's whole key column (``curation_night.QualityGate``).

The linked table's key column is streamed with delta-rs (deletion vectors applied), only
between the least and the greatest of the slice's values: the files and row groups outside
that range are skipped on their statistics (curated tables are sorted by their key, so a
slice of a column in the same order reads about its share of the linked table), and the
rows read are looked up in the slice's values a chunk at a time. Memory holds the slice's
values, one chunk and the values found.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from datacloud.delta import plain_types

# rows of the linked table's column looked up in the slice's values at once
CHUNK_ROWS = 1_048_576
# values a range predicate may quote as they are (ID numbers, credit codes); others: no range
_PLAIN = re.compile(r"[0-9A-Za-z]*")


def keys_among(dt: DeltaTable, column: str, values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The distinct ``values`` (strings) that are a value of ``column`` in the loaded table
    ``dt`` (at its loaded version, deleted rows left out)."""
    wanted = pc.unique(pc.drop_null(pc.cast(values, pa.string())))
    if isinstance(wanted, pa.ChunkedArray):
        wanted = wanted.combine_chunks()
    if not len(wanted):
        return wanted
    bounds = pc.min_max(wanted)
    lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
    predicate = None
    if _PLAIN.fullmatch(lo) and _PLAIN.fullmatch(hi):
        predicate = f"{column} >= '{lo}' AND {column} <= '{hi}'"
    reader = pa.RecordBatchReader.from_stream(dt.scan(columns=[column], predicate=predicate))
    found = [wanted[:0]]
    chunk: list[pa.RecordBatch] = []
    rows = 0
    for batch in reader:
        chunk.append(batch)
        rows += batch.num_rows
        if rows >= CHUNK_ROWS:
            found.append(_among(chunk, column, wanted))
            chunk, rows = [], 0
    found.append(_among(chunk, column, wanted))
    return pc.unique(pa.concat_arrays(found))


def _among(chunk: list[pa.RecordBatch], column: str, wanted: pa.Array) -> pa.Array:
    """The values of ``column`` in ``chunk`` that are among ``wanted``."""
    if not chunk:
        return wanted[:0]
    have = plain_types(pa.Table.from_batches(chunk))[column]
    have = pc.cast(have, wanted.type).combine_chunks()
    return pc.drop_null(have.filter(pc.is_in(have, value_set=wanted)))

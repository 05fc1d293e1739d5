"""Rows set aside on local disk in hash buckets of a key, to be read back a bucket at a time:
the streamed publish pairs the published and tonight's keys and row hashes by bucket, so it
never holds a whole table's keys (``delta.streamed``).

A key's bucket is ``key_hash.bucket_of`` of its text: equal keys always share a bucket, and a
bucket keeps its rows in the order they were added. The files are Arrow IPC streams in a
temporary folder (in the folder given, else ``tempfile``'s: ``TMPDIR``), removed on
``close``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from types import TracebackType

import numpy as np
import pyarrow as pa

from datacloud.key_hash import bucket_of

# rows of the larger side per bucket: a bucket's pairing holds about this many rows of each
BUCKET_ROWS = 1_048_576
# rows gathered before they are dealt to the buckets (fewer, larger record batches)
GATHER_ROWS = 65_536


def buckets_for(rows: int, per_bucket: int | None = None) -> int:
    """The bucket count giving about ``per_bucket`` (``BUCKET_ROWS``) of ``rows`` rows per
    bucket (at least 1)."""
    return max(1, -(-rows // max(1, per_bucket or BUCKET_ROWS)))


class Spill:
    """Rows of ``schema`` dealt to ``count`` buckets by ``key`` (``add``), written as they
    come; ``bucket(i)`` reads one bucket back (after the last ``add``). A context manager:
    the files go on exit."""

    def __init__(self, schema: pa.Schema, key: str, count: int, under: Path | None = None) -> None:
        self.schema, self.key, self.count = schema, key, count
        self.rows = 0
        if under is not None:
            under.mkdir(parents=True, exist_ok=True)
        self._folder = Path(tempfile.mkdtemp(prefix="datacloud-spill-", dir=under))
        self._writers: list[pa.ipc.RecordBatchStreamWriter] | None = [
            pa.ipc.new_stream(str(self._path(i)), schema) for i in range(count)
        ]
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def _path(self, i: int) -> Path:
        return self._folder / f"bucket-{i:05d}.arrows"

    def add(self, rows: pa.Table) -> None:
        """Deal ``rows`` (``schema``'s columns) to their buckets."""
        if self._writers is None:
            raise RuntimeError("rows added to a spill already read")
        rows = rows.select(self.schema.names).cast(self.schema)
        self.rows += rows.num_rows
        for at in range(0, rows.num_rows, GATHER_ROWS):
            piece = rows.slice(at, GATHER_ROWS)
            self._pending.append(piece)
            self._pending_rows += piece.num_rows
            if self._pending_rows >= GATHER_ROWS:
                self._deal()

    def _deal(self) -> None:
        assert self._writers is not None
        if not self._pending_rows:
            return
        rows = pa.concat_tables(self._pending).combine_chunks()
        self._pending, self._pending_rows = [], 0
        of = bucket_of(rows[self.key], self.count)
        order = np.argsort(of, kind="stable")  # each bucket's rows in the order they came
        dealt = rows.take(pa.array(order))
        ends = np.cumsum(np.bincount(of, minlength=self.count))
        start = 0
        for i, end in enumerate(ends.tolist()):
            if end > start:
                for batch in dealt.slice(start, end - start).to_batches():
                    self._writers[i].write_batch(batch)
            start = end

    def _finish(self) -> None:
        if self._writers is None:
            return
        self._deal()
        for w in self._writers:
            w.close()
        self._writers = None

    def bucket(self, i: int) -> pa.Table:
        """The rows of bucket ``i``, in the order they were added."""
        self._finish()
        with pa.OSFile(str(self._path(i))) as source:  # read into memory, not mapped
            return pa.ipc.open_stream(source).read_all()

    def close(self) -> None:
        if self._writers is not None:
            for w in self._writers:
                w.close()
            self._writers = None
        shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> Spill:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

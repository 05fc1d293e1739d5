"""Hash-bucketed spill files whose memory does not grow with the number of buckets.

The batched staging (``datacloud.staging_batches``) appends, batch after batch, a slice of
rows to each of ``ceil(rows / batch_rows)`` buckets (325 at a province's 65M persons), then
reads each bucket back whole. A Parquet writer per bucket kept a file open per bucket and, for
every slice, a row group's metadata in memory until the file closed (about 0.9 KB per column:
batches x buckets row groups, growing with the square of the table's rows). Here the buckets
share at most ``MAX_OPEN`` Arrow IPC files, a contiguous range of buckets each; a slice is a
record batch (or a few), whose footer entry is 24 bytes, and each bucket remembers the numbers
of its own record batches in its file (one small integer per slice).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

MAX_OPEN = 32  # open spill files per spill (a night's stage holds at most three spills open)
_OPTIONS = ipc.IpcWriteOptions(compression="zstd")


class BucketSpill:
    """Rows in ``buckets`` buckets under ``folder/<name>-<file>.arrow``: ``write`` slices of a
    bucket (cast to the first slice's schema), ``close``, then ``read`` buckets."""

    def __init__(self, folder: Path, name: str, buckets: int, max_open: int | None = None) -> None:
        self.folder, self.name, self.buckets = folder, name, buckets
        self.files = max(1, min(buckets, MAX_OPEN if max_open is None else max_open))
        self.schema: pa.Schema | None = None
        self._open: dict[int, ipc.RecordBatchFileWriter] = {}
        self._written = [0] * self.files  # record batches in each file so far
        self._batches: list[list[int]] = [[] for _ in range(buckets)]
        self._closed = False

    def file_of(self, bucket: int) -> int:
        """The file of a bucket: buckets in order, ``files`` contiguous ranges."""
        return bucket * self.files // self.buckets

    def _path(self, file: int) -> Path:
        return self.folder / f"{self.name}-{file:05d}.arrow"

    def write(self, bucket: int, rows: pa.Table) -> None:
        """Append rows to a bucket (nothing when there are none)."""
        if self._closed:
            raise RuntimeError(f"spill {self.name} is closed")
        if not rows.num_rows:
            return
        if self.schema is None:
            self.schema = rows.schema
        elif rows.schema != self.schema:
            rows = rows.cast(self.schema)
        f = self.file_of(bucket)
        writer = self._open.get(f)
        if writer is None:
            writer = self._open[f] = ipc.new_file(str(self._path(f)), self.schema, options=_OPTIONS)
        for batch in rows.to_batches():
            if batch.num_rows:
                writer.write_batch(batch)
                self._batches[bucket].append(self._written[f])
                self._written[f] += 1

    def close(self) -> None:
        """Finish the files: every bucket complete, ready to be read."""
        for writer in self._open.values():
            writer.close()
        self._open.clear()
        self._closed = True

    def has(self, bucket: int) -> bool:
        return bool(self._batches[bucket])

    def read(self, bucket: int) -> pa.Table | None:
        """A bucket's rows in the order written; None when it has none."""
        if not self._closed:
            raise RuntimeError(f"spill {self.name} is still being written")
        numbers = self._batches[bucket]
        if not numbers:
            return None
        assert self.schema is not None
        with pa.OSFile(str(self._path(self.file_of(bucket)))) as source:
            reader = ipc.open_file(source)
            return pa.Table.from_batches([reader.get_batch(i) for i in numbers], self.schema)

    def release(self, bucket: int) -> None:
        """Delete the file of a bucket once it and every earlier bucket are read for good
        (its last bucket: the spill is read in bucket order)."""
        f = self.file_of(bucket)
        if bucket + 1 == self.buckets or self.file_of(bucket + 1) != f:
            self._path(f).unlink(missing_ok=True)

"""Writing a raw partition's Parquet parts: the writer, its marker name, and a background
writer that overlaps reading with encoding (``datacloud.landing`` decides where they go)."""

from __future__ import annotations

import queue
import threading

import pyarrow as pa
import pyarrow.parquet as pq

from datacloud.storage import DataPath, filesystem

SUCCESS = "_SUCCESS"
ATTEMPT = "_attempt-"


class IncompletePartition(RuntimeError):
    """A raw partition is missing or has no _SUCCESS marker."""


class PartitionWriter:
    """Writes Arrow batches as Parquet parts into a staging folder."""

    def __init__(self, folder: DataPath, rows_per_file: int = 1_000_000) -> None:
        self.folder = folder
        self._fs, self._base = filesystem(folder)
        self.rows_per_file = rows_per_file
        self.rows = 0
        self._part = 0
        self._writer: pq.ParquetWriter | None = None
        self._rows_in_file = 0
        self.schema: pa.Schema | None = None

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        if batch.num_rows == 0:
            return
        if self.schema is None:
            self.schema = batch.schema
        elif batch.schema != self.schema:
            batch = batch.cast(self.schema)
        if self._writer is None or self._rows_in_file >= self.rows_per_file:
            self._close_file()
            path = f"{self._base}/part-{self._part:05d}.parquet"
            # no dictionaries: raw columns are mostly near-unique (keys, ID numbers, addresses),
            # where a dictionary per row group costs time and makes the file larger (measured)
            self._writer = pq.ParquetWriter(
                path, self.schema, compression="zstd", use_dictionary=False, filesystem=self._fs
            )
            self._part += 1
            self._rows_in_file = 0
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        self._writer.write_table(table)
        self._rows_in_file += batch.num_rows
        self.rows += batch.num_rows

    def _close_file(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def close(self, empty_schema: pa.Schema | None = None) -> None:
        self._close_file()
        if self._part == 0 and empty_schema is not None:
            pq.write_table(
                empty_schema.empty_table(), f"{self._base}/part-00000.parquet", filesystem=self._fs
            )
            self._part = 1
            self.schema = empty_schema

    @property
    def files(self) -> list[str]:
        """The names of the Parquet files written so far."""
        return [f"part-{i:05d}.parquet" for i in range(self._part)]


class BackgroundWriter:
    """Write batches on a thread while the caller reads the next ones (queue of ``depth``).

    Reading (ADBC, the database driver) and Parquet encoding both release the GIL, so on two
    cores they overlap. Memory stays bounded by ``depth`` batches; an error on the writer thread
    is raised in the caller at the next ``write`` or at ``join``.
    """

    _DONE = object()

    def __init__(self, writer: PartitionWriter, depth: int = 2) -> None:
        self.writer = writer
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="parquet-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is self._DONE:
                return
            if self._error is None:
                try:
                    self.writer.write(item)
                except BaseException as e:  # handed to the caller
                    self._error = e

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(batch)

    def join(self) -> None:
        """Wait until every batch is written; raise the writer's error if it had one."""
        self._queue.put(self._DONE)
        self._thread.join()
        if self._error is not None:
            raise self._error

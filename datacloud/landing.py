"""Raw landing: a partition is complete or absent, never half-written and taken as complete.

Batches are written into a hidden temporary folder beside the partition; a ``_SUCCESS``
marker with the row count is written last; the folder then replaces the partition by
rename. Readers only accept a partition that has the marker.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SUCCESS = "_SUCCESS"


class IncompletePartition(RuntimeError):
    """A raw partition is missing or has no _SUCCESS marker."""


class PartitionWriter:
    """Writes Arrow batches as Parquet parts into a staging folder."""

    def __init__(self, folder: Path, rows_per_file: int = 1_000_000) -> None:
        self.folder = folder
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
            path = self.folder / f"part-{self._part:05d}.parquet"
            # no dictionaries: raw columns are mostly near-unique (keys, ID numbers, addresses),
            # where a dictionary per row group costs time and makes the file larger (measured)
            self._writer = pq.ParquetWriter(
                path, self.schema, compression="zstd", use_dictionary=False
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
            pq.write_table(empty_schema.empty_table(), self.folder / "part-00000.parquet")
            self.schema = empty_schema


def _publish(tmp: Path, partition: Path, rows: int) -> None:
    """Write the marker last, then swap ``tmp`` in for the partition (rename, never copy)."""
    marker = {"rows": rows, "files": sorted(p.name for p in tmp.glob("*.parquet"))}
    (tmp / SUCCESS).write_text(json.dumps(marker), encoding="utf-8")
    old = None
    if partition.exists():
        old = partition.parent / f".{partition.name}.old-{uuid.uuid4().hex[:8]}"
        partition.rename(old)
    tmp.rename(partition)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class BackgroundWriter:
    """Write batches on a thread while the caller reads the next ones (queue of ``depth``).

    Reading (ADBC, the database driver) and Parquet encoding both release the GIL, so on two
    cores they overlap. Memory stays bounded by ``depth`` batches; an error on the writer thread
    is raised in the caller at the next ``write`` or at ``join``.
    """

    _DONE = object()

    def __init__(self, writer: PartitionWriter, depth: int = 2) -> None:
        import queue
        import threading

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


@contextmanager
def replace_partition(partition: Path) -> Iterator[PartitionWriter]:
    """Write a partition atomically: on success it replaces the old one, on error nothing changes."""
    partition.parent.mkdir(parents=True, exist_ok=True)
    tmp = partition.parent / f".{partition.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    writer = PartitionWriter(tmp)
    try:
        yield writer
        writer.close()
        _publish(tmp, partition, writer.rows)
    except BaseException:
        writer.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def chunk_folder(partition: Path, run_key: str) -> Path:
    """Where the chunks of one run of a partition are written before they are landed together."""
    safe = "".join(ch if ch.isalnum() else "_" for ch in run_key)[:80]
    return partition.parent / f".{partition.name}.chunks-{safe}"


@contextmanager
def write_chunk(folder: Path, index: int) -> Iterator[PartitionWriter]:
    """Write one chunk atomically (a retried chunk replaces its earlier attempt)."""
    folder.mkdir(parents=True, exist_ok=True)
    done = folder / f"chunk-{index:05d}"
    tmp = folder / f".chunk-{index:05d}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    writer = PartitionWriter(tmp)
    try:
        yield writer
        writer.close()
        (tmp / SUCCESS).write_text(json.dumps({"rows": writer.rows}), encoding="utf-8")
        if done.exists():
            shutil.rmtree(done)
        tmp.rename(done)
    except BaseException:
        writer.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def land_chunks(partition: Path, folder: Path, chunks: int, empty_schema: pa.Schema) -> int:
    """Land all ``chunks`` of a run as the partition, or raise if any is missing. Returns rows."""
    missing = [i for i in range(chunks) if not (folder / f"chunk-{i:05d}" / SUCCESS).is_file()]
    if missing:
        raise IncompletePartition(f"{partition}: chunks {missing} of {chunks} were not extracted")
    tmp = partition.parent / f".{partition.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    rows = 0
    try:
        for i in range(chunks):
            chunk = folder / f"chunk-{i:05d}"
            rows += json.loads((chunk / SUCCESS).read_text(encoding="utf-8"))["rows"]
            for part in sorted(chunk.glob("*.parquet")):
                part.rename(tmp / f"chunk-{i:05d}-{part.name}")
        if not any(tmp.glob("*.parquet")):
            pq.write_table(empty_schema.empty_table(), tmp / "part-00000.parquet")
        _publish(tmp, partition, rows)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for stale in partition.parent.glob(f".{partition.name}.chunks-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return rows


def read_partition(partition: Path) -> pa.Table:
    """Read a complete partition; raise IncompletePartition otherwise."""
    marker = partition / SUCCESS
    if not marker.is_file():
        raise IncompletePartition(f"{partition} is missing or incomplete (no {SUCCESS} marker)")
    meta = json.loads(marker.read_text(encoding="utf-8"))
    parts = [pq.read_table(partition / name) for name in meta["files"]]
    table = pa.concat_tables(parts) if parts else pa.table({})
    if table.num_rows != meta["rows"]:
        raise IncompletePartition(
            f"{partition}: marker says {meta['rows']} rows, files hold {table.num_rows}"
        )
    return table

"""Raw landing on an object store: no rename, so the partition's marker is the commit.

Batches are written under an attempt prefix inside the partition (``ds=.../_attempt-<id>/``);
the marker, one PUT that replaces the previous one whole, is written last; then earlier
attempts are deleted. A failed attempt deletes its own files and leaves the previous marker.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from datacloud.landing_writer import ATTEMPT, SUCCESS, IncompletePartition, PartitionWriter
from datacloud.storage import ObjectPath, filesystem


def read_text(fs: pafs.FileSystem, path: str) -> str | None:
    try:
        with fs.open_input_stream(path) as f:
            return bytes(f.read()).decode("utf-8")
    except (FileNotFoundError, OSError) as e:
        if fs.get_file_info(path).type == pafs.FileType.NotFound:
            return None
        raise e


def _write_text(fs: pafs.FileSystem, path: str, text: str) -> None:
    """One PUT: readers see the old object or the new one, never a part."""
    with fs.open_output_stream(path) as f:
        f.write(text.encode("utf-8"))


def _children(fs: pafs.FileSystem, base: str, prefix: str) -> list[str]:
    """Names directly under ``base`` that start with ``prefix``."""
    infos = fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
    return sorted(i.base_name for i in infos if i.base_name.startswith(prefix))


def _delete(fs: pafs.FileSystem, path: str) -> None:
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.Directory:
        fs.delete_dir(path)
    elif info.type == pafs.FileType.File:
        fs.delete_file(path)


def _attempt() -> str:
    return f"{ATTEMPT}{uuid.uuid4().hex[:12]}"


@contextmanager
def replace_object_partition(partition: ObjectPath) -> Iterator[PartitionWriter]:
    fs, base = filesystem(partition)
    attempt = _attempt()
    writer = PartitionWriter(partition / attempt)
    try:
        yield writer
        writer.close()
        files = [f"{attempt}/{name}" for name in writer.files]
        _write_text(fs, f"{base}/{SUCCESS}", json.dumps({"rows": writer.rows, "files": files}))
    except BaseException:
        writer.close()
        _delete(fs, f"{base}/{attempt}")
        raise
    _clean(fs, base, keep=attempt)


def _clean(fs: pafs.FileSystem, base: str, keep: str) -> None:
    """Delete earlier attempts and chunk folders of a partition (after its marker is written)."""
    for name in _children(fs, base, ATTEMPT) + _children(fs, base, "_chunks-"):
        if name != keep:
            _delete(fs, f"{base}/{name}")


@contextmanager
def write_object_chunk(folder: ObjectPath, index: int) -> Iterator[PartitionWriter]:
    """Chunk ``index`` under ``chunk-<index>.<attempt>/``; its marker ``chunk-<index>._SUCCESS``
    (written last) names the attempt; earlier attempts of the chunk are then deleted."""
    fs, base = filesystem(folder)
    stem = f"chunk-{index:05d}"
    attempt = f"{stem}.{_attempt()}"
    writer = PartitionWriter(folder / attempt)
    try:
        yield writer
        writer.close()
        files = [f"{attempt}/{name}" for name in writer.files]
        marker = json.dumps({"rows": writer.rows, "files": files})
        _write_text(fs, f"{base}/{stem}.{SUCCESS}", marker)
    except BaseException:
        writer.close()
        _delete(fs, f"{base}/{attempt}")
        raise
    for name in _children(fs, base, f"{stem}.{ATTEMPT}"):
        if name != attempt:
            _delete(fs, f"{base}/{name}")


def _object_rows(fs: pafs.FileSystem, paths: list[str]) -> int | None:
    """The rows the Parquet files hold (their footers), None when one is missing."""
    total = 0
    for path in paths:
        if fs.get_file_info(path).type != pafs.FileType.File:
            return None
        with fs.open_input_file(path) as f:
            total += pq.ParquetFile(f).metadata.num_rows
    return total


def land_object_chunks(
    partition: ObjectPath, folder: ObjectPath, chunks: int, empty_schema: pa.Schema
) -> int:
    """Write the partition's marker naming every chunk's files (they stay where they are)."""
    fs, base = filesystem(partition)
    _, chunk_base = filesystem(folder)
    markers = [read_text(fs, f"{chunk_base}/chunk-{i:05d}.{SUCCESS}") for i in range(chunks)]
    missing = [i for i, m in enumerate(markers) if m is None]
    if missing:
        raise IncompletePartition(f"{partition}: chunks {missing} of {chunks} were not extracted")
    rows, files = 0, []
    for i, marker in enumerate(markers):
        meta = json.loads(marker or "{}")
        held = _object_rows(fs, [f"{chunk_base}/{name}" for name in meta["files"]])
        if held != meta["rows"]:
            raise IncompletePartition(
                f"{partition}: chunk {i}'s marker says {meta['rows']} rows, its files hold {held}"
            )
        rows += meta["rows"]
        files += [f"{folder.name}/{name}" for name in meta["files"]]
    if not files:
        attempt = _attempt()
        pq.write_table(empty_schema.empty_table(), f"{base}/{attempt}/part-00000.parquet",
                       filesystem=fs)  # fmt: skip
        files = [f"{attempt}/part-00000.parquet"]
    _write_text(fs, f"{base}/{SUCCESS}", json.dumps({"rows": rows, "files": files}))
    _clean(fs, base, keep=files[0].split("/", 1)[0])
    return rows

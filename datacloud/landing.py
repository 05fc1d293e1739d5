"""Raw landing: a partition is complete or absent, never half-written and taken as complete.

A partition's ``_SUCCESS`` marker names its row count and its Parquet files; readers only
accept a partition that has the marker, and read only the files it names.

On a local or shared folder, batches are written into a hidden temporary folder beside the
partition (``.ds=….tmp-<id>``), the marker last, and the folder then replaces the partition by
two renames (the old partition aside to ``.ds=….old-<id>``, the new one in) under an ``flock``
of the table folder. The writer holds an ``flock`` on its temporary folder while it lives, so
after a ``kill -9`` its folder is known to be dead. The next write of any partition of the
table, and a read that finds a partition missing, tidy the table folder under the same lock: a
crashed swap is rolled forward (a dead ``.tmp-*`` whose marker's files hold its row count) or
back (a complete ``.old-*``), and every other dead ``.tmp-*`` and ``.old-*`` is deleted, so no
copy of raw personal data outlives the next run. Chunks are landed by hard links (the chunk
folder stays whole until the partition is swapped in), so a killed landing is simply redone.

On an object store (no rename, ``datacloud/storage.py``) the marker is the commit
(``landing_objects``); the Parquet writers are ``landing_writer``.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from datacloud.landing_objects import (
    land_object_chunks,
    read_text,
    replace_object_partition,
    write_object_chunk,
)
from datacloud.landing_writer import (
    SUCCESS,
    BackgroundWriter,
    IncompletePartition,
    PartitionWriter,
)
from datacloud.storage import DataPath, ObjectPath, filesystem

__all__ = [
    "SUCCESS",
    "BackgroundWriter",
    "IncompletePartition",
    "MissingColumns",
    "PartitionWriter",
    "chunk_folder",
    "iter_partition",
    "land_chunks",
    "partition_rows",
    "read_partition",
    "replace_partition",
    "write_chunk",
]


class MissingColumns(LookupError):
    """A file of a partition has not every column ``iter_partition`` was asked for."""


# hidden siblings of a partition: a write in progress (or killed) and a swapped-out old copy
_SIBLING = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-[0-9a-f]{8}$")


def _hidden(partition: Path, kind: str) -> Path:
    return partition.parent / f".{partition.name}.{kind}-{uuid.uuid4().hex[:8]}"


def _lock(folder: Path, blocking: bool = True) -> int | None:
    """An exclusive ``flock`` on a folder: its descriptor, or None when another process holds
    it (``blocking=False``). A file system without ``flock`` gives a descriptor without a lock
    (then concurrent writers of one table are not told apart: one night per table at a time,
    as the DAGs run, stays safe)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    except OSError as e:
        if e.errno not in (errno.ENOLCK, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF):
            os.close(fd)
            raise
    return fd


@contextmanager
def _table_lock(folder: Path) -> Iterator[None]:
    """Swaps and tidying of one table's partitions, one at a time."""
    fd = _lock(folder)
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)


def _alive(folder: Path) -> bool:
    """Whether a live writer holds ``folder`` (its flock goes with its process)."""
    try:
        fd = _lock(folder, blocking=False)
    except FileNotFoundError:
        return True  # gone already: nothing to tidy
    if fd is None:
        return True
    os.close(fd)
    return False


def _complete(folder: Path) -> float | None:
    """The marker's time when ``folder`` is a complete partition (marker readable, every file
    it names present, their row counts adding up to its count), else None."""
    try:
        marker = folder / SUCCESS
        meta = json.loads(marker.read_text(encoding="utf-8"))
        rows = sum(pq.ParquetFile(folder / name).metadata.num_rows for name in meta["files"])
        return marker.stat().st_mtime if rows == meta["rows"] else None
    except Exception:
        return None


def _tidy(table: Path, only: str | None = None) -> None:
    """Under the table lock: finish or undo crashed swaps and delete dead copies.

    For each partition name with hidden siblings (``only``: just that one), a missing
    partition is restored from the newest complete dead ``.tmp-*`` (roll forward), else the
    newest complete ``.old-*`` (roll back); then every remaining dead sibling is deleted.
    A ``.tmp-*`` whose writer lives is left alone.
    """
    groups: dict[str, list[tuple[str, Path]]] = {}
    for entry in table.iterdir() if table.is_dir() else []:
        m = _SIBLING.match(entry.name)
        if m and (only is None or m["name"] == only):
            groups.setdefault(m["name"], []).append((m["kind"], entry))
    for name, entries in groups.items():
        dead = [(kind, p) for kind, p in entries if kind == "old" or not _alive(p)]
        partition = table / name
        if not partition.exists():
            ranked = sorted(
                (
                    (kind == "tmp", when, p)
                    for kind, p in dead
                    if (when := _complete(p)) is not None
                ),
                reverse=True,
            )
            if ranked:
                os.rename(ranked[0][2], partition)
        for _, p in dead:
            if p.exists():
                shutil.rmtree(p, ignore_errors=True)


def _discard(folder: Path) -> None:
    """Delete a folder of raw rows: renamed to a dead ``.tmp-*`` sibling first, so a kill
    in the middle leaves something the next tidy deletes, never a half folder under its name."""
    if not folder.exists():
        return
    aside = folder.parent / f".{folder.name.lstrip('.')}.tmp-{uuid.uuid4().hex[:8]}"
    os.rename(folder, aside)
    shutil.rmtree(aside, ignore_errors=True)


def _publish(tmp: Path, partition: Path, rows: int, landed: str | None = None) -> None:
    """Write the marker last, then swap ``tmp`` in for the partition (rename, never copy).
    ``landed``: the chunk folder landed (a retry after its deletion finds it done)."""
    marker: dict[str, object] = {
        "rows": rows,
        "files": sorted(p.name for p in tmp.glob("*.parquet")),
    }
    if landed is not None:
        marker["landed"] = landed
    (tmp / SUCCESS).write_text(json.dumps(marker), encoding="utf-8")
    old = None
    with _table_lock(partition.parent):
        if partition.exists():
            old = _hidden(partition, "old")
            os.rename(partition, old)
        os.rename(tmp, partition)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def _staging(partition: Path) -> Iterator[Path]:
    """A new hidden ``.tmp-*`` folder beside the partition, held (flock) while the caller
    writes into it; the table folder is tidied first. On error the folder is deleted."""
    partition.parent.mkdir(parents=True, exist_ok=True)
    with _table_lock(partition.parent):  # a tidy never sees the new folder unheld
        _tidy(partition.parent)
        tmp = _hidden(partition, "tmp")
        tmp.mkdir()
        held = _lock(tmp)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if held is not None:
            os.close(held)


@contextmanager
def replace_partition(partition: DataPath) -> Iterator[PartitionWriter]:
    """Write a partition atomically: on success it replaces the old one, on error nothing changes."""
    if isinstance(partition, ObjectPath):
        with replace_object_partition(partition) as writer:
            yield writer
        return
    with _staging(partition) as tmp:
        writer = PartitionWriter(tmp)
        try:
            yield writer
            writer.close()
            _publish(tmp, partition, writer.rows)
        except BaseException:
            writer.close()
            raise


def chunk_folder(partition: DataPath, run_key: str) -> DataPath:
    """Where the chunks of one run of a partition are written before they are landed together
    (on the object store: inside the partition, where the marker can name their files)."""
    safe = "".join(ch if ch.isalnum() else "_" for ch in run_key)[:80]
    if isinstance(partition, ObjectPath):
        return partition / f"_chunks-{safe}"
    return partition.parent / f".{partition.name}.chunks-{safe}"


@contextmanager
def write_chunk(folder: DataPath, index: int) -> Iterator[PartitionWriter]:
    """Write one chunk atomically (a retried chunk replaces its earlier attempt)."""
    if isinstance(folder, ObjectPath):
        with write_object_chunk(folder, index) as writer:
            yield writer
        return
    folder.mkdir(parents=True, exist_ok=True)
    done = folder / f"chunk-{index:05d}"
    tmp = folder / f".chunk-{index:05d}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    writer = PartitionWriter(tmp)
    try:
        yield writer
        writer.close()
        marker = {"rows": writer.rows, "files": writer.files}
        (tmp / SUCCESS).write_text(json.dumps(marker), encoding="utf-8")
        old = folder / f".chunk-{index:05d}.old-{uuid.uuid4().hex[:8]}"
        if done.exists():
            os.rename(done, old)  # a kill now leaves the chunk missing, never half deleted
        os.rename(tmp, done)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        writer.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def land_chunks(partition: DataPath, folder: DataPath, chunks: int, empty_schema: pa.Schema) -> int:
    """Land all ``chunks`` of a run as the partition, or raise if any is missing. Returns rows."""
    if isinstance(partition, ObjectPath) and isinstance(folder, ObjectPath):
        return land_object_chunks(partition, folder, chunks, empty_schema)
    assert isinstance(partition, Path) and isinstance(folder, Path)
    if not folder.exists() and partition.is_dir():
        meta = _landed(partition)
        if meta is not None and meta.get("landed") == folder.name:
            # landed, then killed while deleting the chunk folders: finish that
            with _table_lock(partition.parent):
                _tidy(partition.parent)
            for stale in partition.parent.glob(f".{partition.name}.chunks-*"):
                _discard(stale)
            return int(meta["rows"])
    missing = [i for i in range(chunks) if not (folder / f"chunk-{i:05d}" / SUCCESS).is_file()]
    if missing:
        raise IncompletePartition(f"{partition}: chunks {missing} of {chunks} were not extracted")
    parts = [_chunk_files(folder / f"chunk-{i:05d}") for i in range(chunks)]
    rows = sum(n for n, _ in parts)
    with _staging(partition) as tmp:
        # hard links: the chunk folder stays whole until the partition is swapped in
        for i, (_, files) in enumerate(parts):
            for part in files:
                _link(part, tmp / f"chunk-{i:05d}-{part.name}")
        if not any(tmp.glob("*.parquet")):
            pq.write_table(empty_schema.empty_table(), tmp / "part-00000.parquet")
        _publish(tmp, partition, rows, landed=folder.name)
    for stale in partition.parent.glob(f".{partition.name}.chunks-*"):
        _discard(stale)
    return rows


def _landed(partition: Path) -> dict[str, Any] | None:
    """The marker of a complete partition, else None."""
    if _complete(partition) is None:
        return None
    meta: dict[str, Any] = json.loads((partition / SUCCESS).read_text(encoding="utf-8"))
    return meta


def _chunk_files(chunk: Path) -> tuple[int, list[Path]]:
    """A landed chunk's row count and files, checked against its marker (IncompletePartition
    when a file is missing or the files hold another row count)."""
    meta = json.loads((chunk / SUCCESS).read_text(encoding="utf-8"))
    names = meta.get("files")
    files = [chunk / n for n in names] if names is not None else sorted(chunk.glob("*.parquet"))
    try:
        held = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    except FileNotFoundError as e:
        raise IncompletePartition(f"{chunk}: a file its marker names is missing") from e
    if held != meta["rows"]:
        raise IncompletePartition(f"{chunk}: marker says {meta['rows']} rows, files hold {held}")
    return held, files


def _link(source: Path, target: Path) -> None:
    """A hard link (no copy of the rows); a copy where the file system has none."""
    try:
        os.link(source, target)
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        shutil.copyfile(source, target)


def read_partition(partition: DataPath) -> pa.Table:
    """Read a complete partition (the files its marker names); raise IncompletePartition
    otherwise."""
    fs, base = filesystem(partition)
    meta = _marker(partition)
    try:
        parts = [pq.read_table(f"{base}/{name}", filesystem=fs) for name in meta["files"]]
    except FileNotFoundError as e:
        raise IncompletePartition(f"{partition}: a file its marker names is missing") from e
    table = pa.concat_tables(parts) if parts else pa.table({})
    if table.num_rows != meta["rows"]:
        raise IncompletePartition(
            f"{partition}: marker says {meta['rows']} rows, files hold {table.num_rows}"
        )
    return table


def _marker(partition: DataPath) -> dict[str, Any]:
    """The partition's marker (row count and files), after tidying a crashed swap; raise
    IncompletePartition when there is none."""
    fs, base = filesystem(partition)
    marker = read_text(fs, f"{base}/{SUCCESS}")
    if marker is None and isinstance(partition, Path) and not partition.exists():
        with _table_lock(partition.parent) if partition.parent.is_dir() else _nothing():
            _tidy(partition.parent, only=partition.name)  # a crashed swap: forward or back
        marker = read_text(fs, f"{base}/{SUCCESS}")
    if marker is None:
        raise IncompletePartition(f"{partition} is missing or incomplete (no {SUCCESS} marker)")
    meta: dict[str, Any] = json.loads(marker)
    return meta


def partition_rows(partition: DataPath) -> int:
    """The row count a complete partition's marker names (nothing else is read)."""
    return int(_marker(partition)["rows"])


def iter_partition(
    partition: DataPath, batch_rows: int, columns: list[str] | None = None
) -> Iterator[pa.Table]:
    """A complete partition in tables of at most ``batch_rows`` rows, in row order, never
    whole: one Parquet row group at a time is decoded, of it only ``columns`` (in that order;
    None: every column; an empty list: tables of no column, their rows counted, nothing
    decoded). Raises IncompletePartition (before the first batch) without a marker, when a
    file it names is missing, and after the last when the files hold another count than the
    marker names; MissingColumns when a file has not every one of ``columns``. A partition
    without files yields nothing."""
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, not {batch_rows}")
    fs, base = filesystem(partition)
    meta = _marker(partition)
    seen = 0
    for name in meta["files"]:
        try:
            handle = fs.open_input_file(f"{base}/{name}")
        except FileNotFoundError as e:
            raise IncompletePartition(f"{partition}: a file its marker names is missing") from e
        with handle, pq.ParquetFile(handle) as file:
            if columns is not None:
                absent = [c for c in columns if c not in file.schema_arrow.names]
                if absent:
                    raise MissingColumns(f"{partition}: {name} has no column {absent}")
            for batch in file.iter_batches(
                batch_size=batch_rows, columns=columns, use_threads=False
            ):
                seen += batch.num_rows
                yield pa.Table.from_batches([batch])
    if seen != meta["rows"]:
        raise IncompletePartition(
            f"{partition}: marker says {meta['rows']} rows, files hold {seen}"
        )


@contextmanager
def _nothing() -> Iterator[None]:
    yield

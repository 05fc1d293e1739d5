"""The curated tables of one version as files read from the operating system's page cache,
shared by every replica on the host, built once per curated version.

Per curated table and Delta version, a folder ``<state root>/lookup/serving/<table>/<version>-<id>``
(``id``: the Delta table's id, so a table dropped and created again never meets an old build)
holds:

* ``rows.arrow``: an Arrow IPC file with one column, ``row``: each row as a compact JSON array
  of its values (the column names and Arrow types are kept once, in ``meta.json``), the rows
  sorted by the table's first index column. A lookup reads one row with one ``pread`` instead
  of a page or two per column, and decodes it with one ``json.loads`` (about 5 us);
* ``index-<column>.arrow``: per lookup index, the keys sorted as a ``fixed_size_binary`` column
  (binary-searched as bytes) and each key's row number; and
  ``index-<column>.top.arrow``: every 256th key, kept in memory, so a search reads one block
  of 256 keys (one ``pread``, about 4.6 KB) instead of ~15 scattered pages;
* ``meta.json``: format, table, version, business date, schema, row count, the distinct values
  of the source columns.

Reading is ``os.pread`` at offsets taken from the IPC layout (read once through a temporary
memory map, released before serving). Why not serve from a memory map: on this kernel (6.x,
ext4 with large folios) a fault maps the whole page-cache folio, up to 2 MiB, so random lookups
made most of a mapped file the process's own resident memory (measured: 245 MB of a 243 MB file
after 10,000 lookups at 1M persons, ``MADV_RANDOM`` or not). With ``pread`` the pages stay in
the page cache, shared by the replicas of a host, evicted under memory pressure and read back on
demand; a replica's own memory is the interpreter, the layouts and the 256th-key samples
(about 2.3 MB per 10M keys): it does not grow with the population.

Building is done at publish time (``build_serving_files``, the curation night's hook), or else
by the first replica that sees the version. Building is atomic and done once: under an
exclusive ``flock`` of ``<table>/.lock`` the first process that needs a version writes it into
``<table>/.tmp-…``, fsyncs every file and the folder, renames the folder into place and fsyncs
the parent; the others wait for the lock and find it built. A crash leaves a ``.tmp-…`` folder
that the next builder removes. ``meta.json`` is written last, and a folder without it is never
opened.
"""

from __future__ import annotations

import base64
import bisect
import errno
import fcntl
import itertools
import json
import logging
import os
import shutil
import struct
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from datacloud.atomic import fsync_dir
from datacloud.delta import load, read_loaded
from datacloud.lookup.snapshot import INDEXES, KeyIndex, TableVersion, TableVersions, commit_ds
from datacloud.paths import StorageRoot

log = logging.getLogger(__name__)

FORMAT = 1
BLOCK = 256  # keys per sample of the top-level index
_TWO_OFFSETS = struct.Struct("<2q")
Search = Callable[
    ..., int
]  # bisect.bisect_left or bisect.bisect_right  # a row's start and end in its batch's data
BATCH_ROWS = 1 << 20  # rows per record batch of rows.arrow
KEEP_BUILDS = 3  # builds of a table kept (the newest); older ones are removed by the next build
FILE_MODE, DIR_MODE = 0o440, 0o750  # as the curated data they copy: never world-readable
BUILD_WAIT_S = 3600.0  # how long a replica waits for another one's build before giving up
_CONTROL = "[\\x00-\\x1f]"  # RE2: characters JSON must escape that the fast path does not
Row = dict[str, Any]


class BuildError(RuntimeError):
    """The files of a curated version could not be built or opened."""


def serving_folder(root: StorageRoot) -> Path:
    """Where the serving builds of the curated versions live (under the state root)."""
    return root.lookup_serving()


# --- encoding a table as JSON rows, vectorised ----------------------------------------------------


def _large(text: str) -> pa.Scalar:
    return pa.scalar(text, pa.large_string())


_QUOTE, _EMPTY, _COMMA, _OPEN, _CLOSE = map(_large, ('"', "", ",", "[", "]"))


def _quoted(text: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(_QUOTE, text, _QUOTE, _EMPTY)


def _json_text(arr: pa.Array) -> pa.Array:
    """Each value of ``arr`` as JSON text (``null`` for a null); what ``_decoder`` reads back."""
    kind = arr.type
    if pa.types.is_dictionary(kind):
        arr = arr.dictionary_decode()
        kind = arr.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        text = arr.cast(pa.large_string())
        special = pc.fill_null(pc.match_substring_regex(text, _CONTROL), False)
        escaped = _quoted(
            pc.replace_substring(pc.replace_substring(text, "\\", "\\\\"), '"', '\\"')
        )
        if pc.any(special).as_py():  # control characters: Python's encoder for those values
            values = text.to_pylist()
            flags = special.to_pylist()
            slow = [
                json.dumps(v, ensure_ascii=False) if f else None
                for v, f in zip(values, flags, strict=True)
            ]
            escaped = pc.if_else(special, pa.array(slow, pa.large_string()), escaped)
        out = escaped
    elif pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        out = arr.cast(pa.large_string())
    elif pa.types.is_floating(kind):
        text = arr.cast(pa.float64()).cast(pa.large_string())
        out = pc.replace_substring(pc.replace_substring(text, "nan", "NaN"), "inf", "Infinity")
    elif pa.types.is_date(kind) or pa.types.is_decimal(kind):
        out = _quoted(arr.cast(pa.large_string()))
    elif pa.types.is_timestamp(kind):
        out = arr.cast(pa.int64()).cast(pa.large_string())
    elif pa.types.is_null(kind):
        return pa.array(["null"] * len(arr), pa.large_string())
    else:
        raise BuildError(f"a column of type {kind} cannot be served (not in the curated types)")
    return pc.fill_null(out, "null")


def _json_rows(batch: pa.RecordBatch) -> pa.Array:
    """One JSON array per row: ``[v0,v1,…]`` in column order."""
    if batch.num_columns == 0:
        return pa.array(["[]"] * batch.num_rows, pa.large_string())
    parts = [_json_text(batch.column(i)) for i in range(batch.num_columns)]
    return pc.binary_join_element_wise(
        _OPEN, pc.binary_join_element_wise(*parts, _COMMA), _CLOSE, _EMPTY
    )


def _decoder(kind: pa.DataType) -> Callable[[Any], Any] | None:
    """What turns a JSON value back into the value ``to_pylist`` gives; None: as parsed."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_floating(kind):
        return float
    if pa.types.is_date(kind):
        return date.fromisoformat
    if pa.types.is_decimal(kind):
        return Decimal
    if pa.types.is_timestamp(kind):
        return lambda v: pa.scalar(v, kind).as_py()
    return None


# --- the files of one table version --------------------------------------------------------------


@dataclass(frozen=True)
class _Column:
    """Where one column of one record batch lies in its file: length and each buffer's
    (file offset, size)."""

    length: int
    kind: pa.DataType
    buffers: tuple[tuple[int, int] | None, ...]


class _File:
    """An Arrow IPC file read with ``pread`` (the page cache's pages, never this process's).

    The layout (each batch's buffers as file offsets) is read once through a temporary memory
    map that is released before serving.
    """

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        self.fd = fd
        self._closer = weakref.finalize(self, os.close, fd)
        self.size = os.fstat(fd).st_size
        if self.size == 0:
            raise BuildError(f"{path.name} is empty")
        self.batches = self._layout(path)

    def _layout(self, path: Path) -> list[list[_Column]]:
        source = pa.memory_map(str(path))
        try:
            base = source.read_buffer(1).address
            reader = ipc.open_file(source)
            out = []
            for i in range(reader.num_record_batches):
                columns = []
                for col in reader.get_batch(i).columns:
                    if col.offset:
                        raise BuildError(f"{path.name}: a column with an offset")
                    where = tuple(
                        (b.address - base, b.size) if b is not None else None for b in col.buffers()
                    )
                    columns.append(_Column(len(col), col.type, where))
                out.append(columns)
            return out
        finally:
            source.close()

    def read(self, offset: int, size: int) -> bytes:
        if size <= 0:
            return b""
        data = os.pread(self.fd, size, offset)
        if len(data) != size:  # a regular file read inside its size: only a truncated file
            raise BuildError(f"short read ({len(data)} of {size} bytes)")
        return data


def _buffer(col: _Column, i: int) -> int:
    where = col.buffers[i]
    if where is None:
        raise BuildError("a buffer is missing")
    return where[0]


class PagedIndex:
    """The sorted keys of one column and their row numbers, searched where they lie on disk:
    every ``BLOCK``-th key in memory, then one block of keys and the row numbers read."""

    def __init__(self, path: Path, top: Path) -> None:
        self._file = _File(path)
        if len(self._file.batches) != 1:
            raise BuildError(f"{path.name}: expected one record batch")
        keys, pos = self._file.batches[0]
        self.n = keys.length
        self.width = int(keys.kind.byte_width)
        self._keys_at = _buffer(keys, 1) if self.n else 0
        self._pos_at = _buffer(pos, 1) if self.n else 0
        small = ipc.open_file(pa.OSFile(str(top))).read_all()  # n / BLOCK keys: a copy
        col = small.column(0).combine_chunks()
        raw = col.buffers()[1].to_pybytes() if len(col) else b""
        w = self.width
        # bytes, padded as stored: compared as memcmp compares, the order the build sorted in
        self.top = [raw[i * w : (i + 1) * w] for i in range(len(col))]

    def _block(self, probe: bytes, search: Search) -> tuple[int, int, Callable[[int], bytes]]:
        """The block of keys in which ``search`` (``bisect_left`` or ``bisect_right``) places
        ``probe`` among the sampled keys, read with one ``pread``: its first position, its
        number of keys and its ``i``-th key."""
        a = search(self.top, probe)
        start, end = max(a - 1, 0) * BLOCK, min(a * BLOCK, self.n)
        w = self.width
        block = self._file.read(self._keys_at + start * w, (end - start) * w)
        return start, end - start, lambda i: block[i * w : (i + 1) * w]

    def _edge(self, probe: bytes, search: Search) -> int:
        """The first position whose key is >= ``probe`` (``bisect_left``) or > it (right)."""
        start, size, at = self._block(probe, search)
        return start + search(range(size), probe, key=at)

    def find(self, key: str) -> list[int]:
        """Row numbers whose key equals ``key`` (in key order): one block of keys read; a
        second only when the key's run of rows goes on past that block."""
        raw = key.encode("ascii", errors="replace")
        if len(raw) > self.width or self.n == 0:
            return []
        probe = raw.ljust(self.width, b"\0")  # as the build padded shorter keys
        start, size, at = self._block(probe, bisect.bisect_left)
        lo = start + bisect.bisect_left(range(size), probe, key=at)
        hi = start + bisect.bisect_right(range(size), probe, key=at)
        if hi == start + size:  # the run may go on in the next block
            hi = self._edge(probe, bisect.bisect_right)
        if hi <= lo:
            return []
        count = hi - lo
        return list(struct.unpack(f"<{count}q", self._file.read(self._pos_at + 8 * lo, 8 * count)))

    @property
    def nbytes(self) -> int:
        return self._file.size


class PagedTable:
    """One curated table at one version, opened from its build folder."""

    def __init__(self, folder: Path) -> None:
        meta_path = folder / "meta.json"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise BuildError(f"{folder.name}: no readable meta.json ({type(e).__name__})") from e
        if meta.get("format") != FORMAT:
            raise BuildError(f"{folder.name}: format {meta.get('format')}, expected {FORMAT}")
        self.folder = folder
        self.meta = meta
        self.version = TableVersion(int(meta["version"]), meta.get("ds"))
        schema = ipc.read_schema(pa.py_buffer(base64.b64decode(meta["schema"])))
        self.names = list(schema.names)
        self._decoders = [
            (i, d) for i, d in ((i, _decoder(f.type)) for i, f in enumerate(schema)) if d
        ]
        self._rows = _File(folder / "rows.arrow")
        self._batches = [(_buffer(b[0], 1), _buffer(b[0], 2)) for b in self._rows.batches]
        sizes = [b[0].length for b in self._rows.batches]
        self._starts = [0, *itertools.accumulate(sizes)]  # the first row of each batch
        if int(self._starts[-1]) != int(meta["rows"]):
            raise BuildError(f"{folder.name}: {self._starts[-1]} rows, meta says {meta['rows']}")
        self.indexes = {
            column: PagedIndex(
                folder / f"index-{column}.arrow", folder / f"index-{column}.top.arrow"
            )
            for column in meta["indexes"]
        }
        self.distinct_values: dict[str, list[str]] = dict(meta.get("distinct", {}))

    @property
    def num_rows(self) -> int:
        return int(self._starts[-1])

    def row(self, position: int) -> Row:
        b = bisect.bisect_right(self._starts, position) - 1
        offsets_at, data_at = self._batches[b]
        i = position - self._starts[b]
        start, end = _TWO_OFFSETS.unpack(self._rows.read(offsets_at + 8 * i, 16))
        values = json.loads(self._rows.read(data_at + start, end - start))
        for j, decode in self._decoders:
            if values[j] is not None:
                values[j] = decode(values[j])
        return dict(zip(self.names, values, strict=True))

    def distinct(self, column: str) -> list[str]:
        """Distinct non-null values (the source columns' come from the build; others are
        computed by reading every row, once)."""
        found = self.distinct_values.get(column)
        if found is None:
            seen = {self.row(i).get(column) for i in range(self.num_rows)}
            found = sorted(str(v) for v in seen if v is not None)
            self.distinct_values[column] = found
        return found

    @property
    def nbytes(self) -> int:
        return self._rows.size + sum(i.nbytes for i in self.indexes.values())


@dataclass
class PagedSnapshot(TableVersions):
    """The curated tables of one set of versions, read from their files (a ``CuratedView``)."""

    tables: dict[str, PagedTable]
    versions: dict[str, TableVersion] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.versions = {name: t.version for name, t in self.tables.items()}

    @classmethod
    def open(
        cls, root: StorageRoot, versions: dict[str, int], wait_s: float = BUILD_WAIT_S
    ) -> PagedSnapshot:
        """Map each table at its version, building the files first where no replica has."""
        folder = serving_folder(root)
        return cls(
            {
                name: PagedTable(ensure_built(root, folder, name, v, wait_s))
                for name, v in versions.items()
            }
        )

    def rows(self, table: str, column: str, key: str) -> list[Row]:
        t = self.tables.get(table)
        index = t.indexes.get(column) if t is not None else None
        if t is None or index is None:
            return []
        return [t.row(p) for p in sorted(index.find(key))]

    def distinct(self, table: str, column: str) -> list[str]:
        t = self.tables.get(table)
        return t.distinct(column) if t is not None and column in t.names else []

    @property
    def nbytes(self) -> int:
        """Bytes of the files (on disk and in the shared page cache, not per process)."""
        return sum(t.nbytes for t in self.tables.values())


# --- building ------------------------------------------------------------------------------------


def _fsync_file(path: Path) -> None:
    """Owner and group read only (the files hold the curated personal data), then fsync."""
    os.chmod(path, FILE_MODE)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_ipc(path: Path, schema: pa.Schema, batches: list[pa.RecordBatch]) -> None:
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
    _fsync_file(path)


def _key_array(keys: np.ndarray, width: int) -> pa.Array:
    raw = np.ascontiguousarray(keys).view(np.uint8)
    return pa.Array.from_buffers(pa.binary(width), len(keys), [None, pa.py_buffer(raw)])


def _write_index(dest: Path, column: str, values: pa.ChunkedArray) -> None:
    index = KeyIndex(values)
    keys = np.ascontiguousarray(index.keys, dtype=f"S{index.width}")
    batch = pa.record_batch(
        [_key_array(keys, index.width), pa.array(index.positions, pa.int64())], ["key", "pos"]
    )
    _write_ipc(dest / f"index-{column}.arrow", batch.schema, [batch])
    top = np.ascontiguousarray(keys[::BLOCK])
    top_batch = pa.record_batch([_key_array(top, index.width)], ["key"])
    _write_ipc(dest / f"index-{column}.top.arrow", top_batch.schema, [top_batch])


def _distinct_sources(table: pa.Table) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name in table.column_names:
        if name == "source" or name.endswith("_source"):
            col = table[name]
            values = pc.unique(col.cast(pa.string()) if pa.types.is_dictionary(col.type) else col)
            out[name] = sorted(str(v) for v in values.to_pylist() if v is not None)
    return out


def build_table(table: pa.Table, name: str, version: int, ds: str | None, dest: Path) -> None:
    """Write the files of one table version into ``dest`` (an empty folder), each fsynced."""
    indexes = [c for c in INDEXES.get(name, ()) if c in table.column_names]
    if indexes:  # rows in the first index's key order: a key's rows lie together
        table = table.sort_by([(indexes[0], "ascending")])
    table = table.combine_chunks()
    schema = pa.schema([pa.field("row", pa.large_string(), nullable=False)])
    batches = [
        pa.record_batch([_json_rows(b)], schema=schema)
        for b in table.to_batches(max_chunksize=BATCH_ROWS)
    ] or [pa.record_batch([pa.array([], pa.large_string())], schema=schema)]
    _write_ipc(dest / "rows.arrow", schema, batches)
    del batches
    for column in indexes:
        _write_index(dest, column, table[column])
    meta = {
        "format": FORMAT,
        "table": name,
        "version": version,
        "ds": ds,
        "rows": table.num_rows,
        "indexes": indexes,
        "schema": base64.b64encode(table.schema.serialize().to_pybytes()).decode("ascii"),
        "distinct": _distinct_sources(table),
    }
    meta_path = dest / "meta.json"
    meta_path.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    _fsync_file(meta_path)
    fsync_dir(dest)


def _flock(path: Path, wait_s: float) -> int:
    """An exclusive ``flock`` of ``path`` (created), waiting at most ``wait_s``."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
    deadline = time.monotonic() + wait_s
    pause = 0.01
    while True:  # bounded by the deadline
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
            if time.monotonic() > deadline:
                os.close(fd)
                raise BuildError(
                    f"another process has been building {path.parent.name} for over {wait_s:.0f} s"
                ) from None
            time.sleep(pause)
            pause = min(pause * 2, 0.5)


def _build_name(version: int, table_id: str) -> str:
    safe = "".join(ch for ch in table_id if ch.isalnum() or ch == "-")[:40] or "table"
    return f"{version}-{safe}"


def ensure_built(
    root: StorageRoot, folder: Path, name: str, version: int, wait_s: float = BUILD_WAIT_S
) -> Path:
    """The build folder of curated ``name`` at ``version``, built now if no process has."""
    dt = load(root.curated(name), version)
    final = folder / name / _build_name(version, str(dt.metadata().id))
    if (final / "meta.json").is_file():
        return final
    table_dir = folder / name
    table_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    fd = _flock(table_dir / ".lock", wait_s)
    try:
        if (final / "meta.json").is_file():  # another replica built it while we waited
            return final
        for stale in table_dir.glob(".tmp-*"):  # a builder killed mid-way (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = table_dir / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(mode=DIR_MODE)
        started = time.perf_counter()
        try:
            build_table(read_loaded(dt), name, version, commit_ds(dt, version), tmp)
            if final.exists():  # a folder without meta.json: an interrupted older format
                shutil.rmtree(final)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fsync_dir(table_dir)
        log.info(
            "lookup: built %s version %d for serving in %.1f s",
            name,
            version,
            time.perf_counter() - started,
        )
        _prune(table_dir, keep=final.name)
        return final
    finally:
        os.close(fd)  # releases the lock


def build_serving_files(root: StorageRoot, table: str, version: int) -> Path | None:
    """The publish hook: build the serving files of curated ``table`` at ``version`` now, so
    the lookup replicas find them whole and switch within their poll interval (a second)
    instead of building them when they first see the version. Call it right after the
    publish commits the version (the curation night: once per published curated table);
    None for a table the lookups do not serve. Idempotent and safe beside replicas: the build
    is under the table's ``flock`` and renamed into place complete (``ensure_built``), so a
    replica that sees the version first waits for this build and opens it."""
    if table not in INDEXES:
        return None
    return ensure_built(root, serving_folder(root), table, version)


def build_latest_serving_files(root: StorageRoot) -> dict[str, int]:
    """The curation DAG's ``serving_files`` task: the serving files of every served curated
    table at its newest version (table -> version; a table not published yet is left out).
    A task of its own, after the publish: a build reads the whole table version, so its memory
    stays out of the publish task's, and a failed build costs the night nothing (the replicas
    then build the version themselves when they first see it, as before)."""
    from datacloud.lookup.snapshot import latest_version

    built: dict[str, int] = {}
    for table in INDEXES:
        version = latest_version(root.curated(table))
        if version is not None:
            build_serving_files(root, table, version)
            built[table] = version
    return built


def _prune(table_dir: Path, keep: str) -> None:
    """Remove all but the newest ``KEEP_BUILDS`` builds (a replica still reading one keeps its
    descriptors: unlinking never pulls an open file away)."""
    builds = [p for p in table_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    builds.sort(key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for old in builds[KEEP_BUILDS:]:
        if old.name != keep:
            shutil.rmtree(old, ignore_errors=True)

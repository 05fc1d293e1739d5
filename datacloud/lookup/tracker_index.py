"""The data tracker's index of the audit trail by ``key_hmac``: one sidecar per closed day file.

The trail stays the source of truth; the index only says where to look. For a day file
``<audit>/lookups-D.jsonl`` the sidecar ``<audit>/.tracker-index/lookups-D.jsonl.idx`` holds,
sorted, one fixed-width entry per ``"key_hmac"`` of each complete line: the first 8 bytes of the
HMAC and the line's byte offset. It holds no ID number (only a prefix of the HMAC the trail
already holds) and nothing else of a record. Its header records the day file's size,
modification time (ns) and inode: a sidecar whose day file changed since (appended, a torn tail
repaired, replaced) is stale and built again. It is built lazily, the first time the tracker
reads a day that is closed (not the newest file of the trail), written atomically (a temporary
file renamed); when the folder cannot be written the index is built in memory for that request.

A lookup in it is a binary search over the mapped file (no whole read), then each offset's line
is read from the day file, parsed, and kept only when its ``key_hmac`` equals the asked one in
full (a prefix collision costs one line read, never a wrong entry). The newest day file (the
one being appended) is searched by bytes as before. docs/proofs.md#tracker
"""

from __future__ import annotations

import contextlib
import mmap
import os
import re
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from datacloud.lookup.audit_chain import parse

INDEX_DIR = ".tracker-index"
MAGIC = b"DCTRKIX1"
HEAD = struct.Struct("<8sQQQQ")  # magic, day file size, mtime_ns, inode, entry count
ENTRY = struct.Struct(">8sQ")  # HMAC prefix, line offset; big-endian: bytes sort as entries
PREFIX = 8
_KEY = re.compile(rb'"key_hmac": ?"([0-9a-f]{64})"')


def index_path(day_file: Path) -> Path:
    return day_file.parent / INDEX_DIR / f"{day_file.name}.idx"


def _stamp(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_size, st.st_mtime_ns, st.st_ino


def build(day_file: Path) -> tuple[tuple[int, int, int], bytes]:
    """The day file's stamp (read before the scan) and its index body (sorted entries)."""
    with day_file.open("rb") as fh:
        stamp = _stamp(os.fstat(fh.fileno()))
        entries: list[bytes] = []
        offset = 0
        for raw in fh:  # bounded by the file
            if raw.endswith(b"\n"):  # a torn last line is not a record
                for m in _KEY.finditer(raw):
                    entries.append(
                        ENTRY.pack(bytes.fromhex(m.group(1)[: 2 * PREFIX].decode()), offset)
                    )
            offset += len(raw)
            if offset >= stamp[0]:
                break  # appended after the stamp: not covered by this index
    entries.sort()
    return stamp, b"".join(entries)


def _write(path: Path, stamp: tuple[int, int, int], body: bytes) -> None:
    path.parent.mkdir(mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".idx-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(HEAD.pack(MAGIC, *stamp, len(body) // ENTRY.size))
            fh.write(body)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _search(buf: Any, start: int, count: int, prefix: bytes) -> Iterator[int]:
    """Offsets of the entries with ``prefix`` in ``count`` sorted entries from ``start``."""
    lo, hi = 0, count
    while lo < hi:  # first entry >= prefix
        mid = (lo + hi) // 2
        at = start + mid * ENTRY.size
        if bytes(buf[at : at + PREFIX]) < prefix:
            lo = mid + 1
        else:
            hi = mid
    while lo < count:
        key, offset = ENTRY.unpack_from(buf, start + lo * ENTRY.size)
        if key != prefix:
            return
        yield offset
        lo += 1


def _offsets(day_file: Path, prefix: bytes) -> list[int]:
    """Offsets of the lines of ``day_file`` that may hold ``prefix``: from a fresh sidecar, else
    from one built now (and written when the folder allows)."""
    stamp = _stamp(day_file.stat())
    side = index_path(day_file)
    try:
        with side.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            if len(buf) >= HEAD.size:
                magic, size, mtime, ino, count = HEAD.unpack_from(buf, 0)
                if (
                    magic == MAGIC
                    and (size, mtime, ino) == stamp
                    and len(buf) == HEAD.size + count * ENTRY.size
                ):
                    return list(_search(buf, HEAD.size, count, prefix))
    except (OSError, ValueError):  # missing, empty (mmap of 0 bytes), unreadable: build it
        pass
    built, body = build(day_file)
    with contextlib.suppress(OSError):  # a read-only trail: this request uses it in memory
        _write(side, built, body)
    return list(_search(body, 0, len(body) // ENTRY.size, prefix))


def indexed_lines(day_file: Path, key_hmac: str) -> Iterator[dict[str, Any]]:
    """The records of ``day_file`` whose ``key_hmac`` is ``key_hmac``, in file order."""
    prefix = bytes.fromhex(key_hmac[: 2 * PREFIX])
    offsets = sorted(_offsets(day_file, prefix))
    if not offsets:
        return
    with day_file.open("rb") as fh:
        for offset in offsets:
            fh.seek(offset)
            raw = fh.readline()
            if raw.endswith(b"\n"):
                rec = parse(raw)
                if rec is not None and rec.get("key_hmac") == key_hmac:
                    yield rec

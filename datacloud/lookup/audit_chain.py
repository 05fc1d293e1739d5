"""The audit trail's hash chain: sealing a record, reading a file's tail, verifying, anchoring.

Each record carries ``alg`` (``sm3`` when this platform's OpenSSL has it, else ``sha256``),
``prev`` (the ``hash`` of the record before it: the line above, or the last record of the newest
earlier day's file, or ``GENESIS``) and ``hash``, the digest of its canonical form (the record
without ``hash``, keys sorted, compact JSON). Editing a field breaks the record's own hash;
deleting, inserting or reordering lines breaks the next ``prev``. A writer who rewrites the whole
rest of the chain is caught by the anchors: ``day_anchor`` (records and last hash of a day)
kept where the trail's writer cannot rewrite them (the night's report).

A line written before the chain existed (no ``hash``) links by the digest of its bytes.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from datacloud.atomic import fsync_dir  # noqa: F401  (audit.py imports it from here)

GENESIS = "0" * 64
# what ends a torn line in place in an append-only file (chattr +a), so that it never parses
TORN_MARK = b" <torn>\n"
_GARBLED = "not a JSON record (garbled, or glued to a torn line)"
_FILE = re.compile(r"^lookups-(\d{4}-\d{2}-\d{2})\.jsonl$")
# characters str.splitlines() breaks on that JSON leaves unescaped: one record, one line
_LINE_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def _default_alg() -> str:
    try:
        hashlib.new("sm3")
    except ValueError:
        return "sha256"
    return "sm3"


ALG = _default_alg()
ALGS = frozenset({"sm3", "sha256"})


def digest(alg: str, data: bytes) -> str:
    return hashlib.new(alg, data).hexdigest()


def canonical(record: dict[str, Any]) -> bytes:
    body = {k: v for k, v in record.items() if k != "hash"}
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def seal(record: dict[str, Any], prev: str, alg: str = ALG) -> None:
    """Adds ``alg``, ``prev`` and ``hash`` to the record (in place)."""
    record.pop("hash", None)
    record["alg"] = alg
    record["prev"] = prev
    record["hash"] = digest(alg, canonical(record))


def line_of(record: dict[str, Any]) -> bytes:
    text = json.dumps(record, ensure_ascii=False, sort_keys=True)
    return (text.translate(_LINE_BREAKS) + "\n").encode("utf-8")


def parse(raw: bytes) -> dict[str, Any] | None:
    """The record on a line, or None when the line is not a JSON object."""
    try:
        rec = json.loads(raw)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) else None


def line_hash(raw: bytes, alg: str = ALG) -> str:
    """What the next record's ``prev`` is: the record's ``hash``, or the digest of its bytes."""
    rec = parse(raw)
    if rec is not None and isinstance(rec.get("hash"), str):
        return str(rec["hash"])
    return digest(alg, raw.rstrip(b"\n"))


def tail(fd: int, size: int, chunk: int = 8192) -> tuple[bytes | None, int]:
    """(the last complete line, the size of the complete part) of an open file of ``size`` bytes.

    Bytes after the last newline are a torn tail (a write cut short); no complete line: None, 0.
    """
    buf, pos = b"", size
    while pos > 0:  # bounded: pos falls by up to ``chunk`` each round
        n = min(chunk, pos)
        pos -= n
        buf = os.pread(fd, n, pos) + buf
        last = buf.rfind(b"\n")
        if last >= 0 and buf.rfind(b"\n", 0, last) >= 0:
            break
    last = buf.rfind(b"\n")
    if last < 0:
        return None, 0
    start = buf.rfind(b"\n", 0, last) + 1
    return buf[start : last + 1], pos + last + 1


def names(path: Path, fd: int) -> bool:
    """Whether ``path`` still names the open file ``fd`` (not moved, deleted or replaced)."""
    try:
        at_path = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    st = os.fstat(fd)
    return (at_path.st_dev, at_path.st_ino) == (st.st_dev, st.st_ino)


def write_all(fd: int, data: bytes) -> None:
    written = os.write(fd, data)
    if written != len(data):  # a full disk writes part of the line, then refuses the rest
        raise OSError(errno.ENOSPC, f"short write ({written} of {len(data)} bytes)")


def opened_for_writing(fd: int) -> bool:
    return (fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE) != os.O_RDONLY


def system_event(kind: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": uuid.uuid4().hex,
        "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "kind": kind,
        "who": "datacloud",
        "role": None,
        "channel": None,
        "detail": detail,
    }


def trail_files(folder: Path) -> list[tuple[str, Path]]:
    """(day, path) of each day's file, oldest first."""
    if not folder.is_dir():
        return []
    found = [(m.group(1), p) for p in folder.iterdir() if (m := _FILE.match(p.name))]
    return sorted(found)


def head_before(folder: Path, day: str) -> str | None:
    """The hash the first record of ``day`` links to: the newest earlier file's last record."""
    for _, path in reversed([f for f in trail_files(folder) if f[0] < day]):
        with path.open("rb") as fh:
            last, _ = tail(fh.fileno(), os.fstat(fh.fileno()).st_size)
        if last is not None:
            return line_hash(last)
    return None


@dataclass
class Break:
    file: str
    line: int
    record_id: str | None
    reason: str

    def __str__(self) -> str:
        return f"{self.file} line {self.line} (record {self.record_id or '-'}): {self.reason}"


@dataclass
class Verdict:
    files: int = 0
    records: int = 0
    unchained: int = 0  # lines written before the chain existed, at the start of the trail
    last_hash: str | None = None
    alg: str | None = None
    broken: Break | None = None
    warnings: list[str] = field(default_factory=list)


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as fh:
        yield from enumerate(fh, start=1)  # bounded by the file


def _check(
    rec: dict[str, Any] | None,
    chained: bool,
    prev_hash: str | None,
    prev_raw: bytes | None,
    n: int,
) -> str | None:
    """Why the record at line ``n`` breaks the chain, or None."""
    if rec is None:
        return _GARBLED
    if "hash" not in rec:
        return "a record without chain fields inside the chain (inserted)" if chained else None
    alg = rec.get("alg")
    if alg not in ALGS or not isinstance(rec.get("prev"), str):
        return f"unknown hash algorithm {alg!r} or no prev"
    if digest(str(alg), canonical(rec)) != rec["hash"]:
        return "the record was altered (its hash does not match its content)"
    expected = prev_hash
    if expected is None and prev_raw is not None:
        expected = digest(str(alg), prev_raw.rstrip(b"\n"))
    if expected is not None and rec["prev"] != expected:
        where = ", or the file does not follow the day before" if n == 1 else ""
        return f"the link to the record before is broken (a line deleted, inserted or moved{where})"
    if rec.get("kind") == "trail_reopened":
        return (
            "the day's file was moved, deleted or truncated while in use: earlier records are gone"
        )
    return None


def verify(folder: Path, day: str | None = None) -> Verdict:
    """Walks the day files (or one ``day`` and its link to the day before); first break wins."""
    files = trail_files(folder)
    out = Verdict()
    prev_hash: str | None = None  # the last chained record's hash
    prev_raw: bytes | None = None  # the last line, when it is not chained
    if day is not None:
        prev_hash = head_before(folder, day)
        files = [f for f in files if f[0] == day]
    chained = False
    for _, path in files:
        out.files += 1
        torn_at: int | None = None  # a torn line ended in place, waiting for its trail_repaired
        for n, raw in _lines(path):
            if not raw.endswith(b"\n"):  # a torn tail: a write cut short, never acknowledged
                out.warnings.append(
                    f"{path.name} line {n}: an incomplete last line ({len(raw)} bytes, a write "
                    "cut short, e.g. disk full); it is moved aside at the next write"
                )
                break
            rec = parse(raw)
            if rec is None and raw.endswith(TORN_MARK) and torn_at is None:
                torn_at = n
                continue
            if torn_at is not None:
                if rec is None or rec.get("kind") != "trail_repaired":
                    out.broken = Break(path.name, torn_at, None, _GARBLED)
                    return out
                torn_at = None
            reason = _check(rec, chained, prev_hash, prev_raw, n)
            if reason:
                rid = rec.get("id") if rec is not None else None
                out.broken = Break(path.name, n, str(rid) if rid else None, reason)
                return out
            out.records += 1
            if rec is None or "hash" not in rec:  # written before the chain existed
                out.unchained += 1
                prev_raw, prev_hash = raw, None
                continue
            chained = True
            out.alg = str(rec["alg"])
            if rec.get("kind") == "trail_repaired":
                detail = rec.get("detail") or {}
                out.warnings.append(
                    f"{path.name} line {n}: a write cut short before this line was "
                    f"{detail.get('how', 'truncated')}; its bytes are in {detail.get('side_file')}"
                )
            prev_hash, prev_raw = str(rec["hash"]), None
        if torn_at is not None:
            out.broken = Break(path.name, torn_at, None, _GARBLED)
            return out
    out.last_hash = prev_hash
    if prev_hash is None and prev_raw is not None:
        out.last_hash = digest(ALG, prev_raw.rstrip(b"\n"))
    return out


def day_anchor(folder: Path, day: str) -> dict[str, Any]:
    """What the night's report keeps of a day's trail: its record count and last hash.

    ``last_hash`` is the chain's head at the end of the day (the newest earlier day's when the
    day has no file); ``broken`` is ``verify``'s first break in that day, or None.
    """
    path = folder / f"lookups-{day}.jsonl"
    records, last = 0, None
    if path.is_file():
        for _, raw in _lines(path):
            if raw.endswith(b"\n"):
                records += 1
                last = raw
    head = line_hash(last) if last is not None else head_before(folder, day) or GENESIS
    verdict = verify(folder, day)
    return {
        "day": day,
        "file": path.name if path.is_file() else None,
        "records": records,
        "last_hash": head,
        "alg": ALG if last is None else (parse(last) or {}).get("alg", ALG),
        "broken": str(verdict.broken) if verdict.broken else None,
    }


def check_anchor(folder: Path, anchor: dict[str, Any]) -> str | None:
    """None when the day's file still holds the anchored records (as a prefix), else why not."""
    day, count, want = str(anchor["day"]), int(anchor["records"]), anchor["last_hash"]
    path = folder / f"lookups-{day}.jsonl"
    if count == 0:
        return None
    if not path.is_file():
        return f"{path.name}: the file is gone; the anchor holds {count} records"
    for n, raw in _lines(path):
        if n == count:
            if not raw.endswith(b"\n") or line_hash(raw) != want:
                return f"{path.name} line {n}: not the anchored record (hash {str(want)[:12]}…)"
            return None
    return f"{path.name}: fewer records than the {count} anchored (records removed)"

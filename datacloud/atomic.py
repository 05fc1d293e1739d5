"""Write-aside-then-replace: the one way a local file is replaced whole.

A writer builds the new content under a unique hidden temporary name beside the file (so two
writers never share a temporary file), fsyncs it, renames it over the file and fsyncs the
folder, so a reader (or a crash at any moment) sees the old file or the complete new one, and
the new name survives a power cut. ``lock`` takes an exclusive ``flock`` on ``<file>.lock``
for a read-modify-write (``locked``), so parallel writers never lose each other's fields.

Local files only: the data plane on an object store is written through ``datacloud.storage``
and Delta commits.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def fsync_dir(folder: Path) -> None:
    """Make the names in ``folder`` (a rename into it) durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``<path>.lock`` beside ``path`` while the block runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def temporary_name(path: Path) -> Path:
    """A unique hidden name beside ``path`` (``.<name>.<random>.tmp``)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")


def replace_with(path: Path, write: Callable[[Path], Any], *, lock: bool = False) -> None:
    """Replace ``path`` by what ``write(tmp)`` writes to a temporary file beside it.

    The temporary file is fsynced, renamed over ``path`` and the folder fsynced; on any error
    it is deleted and ``path`` is left as it was. ``lock`` holds ``<path>.lock`` meanwhile.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if lock:
        with locked(path):
            _replace(path, write)
    else:
        _replace(path, write)


def _replace(path: Path, write: Callable[[Path], Any]) -> None:
    tmp = temporary_name(path)
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def replace_text(path: Path, text: str, *, encoding: str = "utf-8", lock: bool = False) -> None:
    """Replace ``path`` by ``text`` (``replace_with``)."""
    replace_with(path, lambda tmp: tmp.write_text(text, encoding=encoding), lock=lock)


def replace_json(path: Path, doc: Any, *, lock: bool = False, **dumps: Any) -> None:
    """Replace ``path`` by ``doc`` as JSON (``json.dumps`` options in ``dumps``)."""
    replace_text(path, json.dumps(doc, **dumps), lock=lock)

"""The Delta log as our own commits read and write it.

Reading: the ``add`` actions and app transactions (``txn``) at a version (the last
checkpoint, then the JSON entries after it). Writing: one log entry at exactly a version,
only if free (a hard link locally, a conditional PUT on the object store), after the
entry's data files; a file an outside vacuum deleted around the commit is written again.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from datacloud.delta import lock
from datacloud.delta.spec import REBASES, CommitConflict
from datacloud.storage import DataPath, ObjectPath, filesystem, list_names

log = logging.getLogger(__name__)

# after a commit naming new data files, look for them again after these pauses (seconds) when
# an outsider's vacuum shows: one that listed the table before the commit may still be deleting
RECHECK_PAUSES = (0.0, 0.1, 0.3, 1.0)


def read_bytes(loc: DataPath) -> bytes | None:
    fs, p = filesystem(loc)
    try:
        with fs.open_input_stream(p) as f:
            return bytes(f.read())
    except FileNotFoundError:
        return None


def exists(loc: DataPath) -> bool:
    fs, p = filesystem(loc)
    return bool(fs.get_file_info(p).type != pafs.FileType.NotFound)


def write_bytes(loc: DataPath, data: bytes) -> None:
    """Write a data file; locally fsynced, so it is on disk before the entry naming it."""
    if isinstance(loc, Path):
        with open(loc, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return
    fs, p = filesystem(loc)
    with fs.open_output_stream(p) as out:
        out.write(data)


def delete_file(loc: DataPath) -> None:
    fs, p = filesystem(loc)
    with contextlib.suppress(FileNotFoundError):
        fs.delete_file(p)


def entry(root: DataPath, version: int) -> list[dict[str, Any]] | None:
    """The actions of log entry ``version``, or None when there is none."""
    text = read_bytes(root / "_delta_log" / f"{version:020d}.json")
    if text is None:
        return None
    return [json.loads(line) for line in text.decode("utf-8").splitlines() if line.strip()]


def _log_versions(root: DataPath) -> list[int]:
    names = list_names(root / "_delta_log") or []
    return sorted(int(n.split(".")[0]) for n in names if n.endswith(".json") and n[0].isdigit())


def _plain(add: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint row's add as the JSON log writes it (maps as objects, no nulls)."""
    out = {k: v for k, v in add.items() if v is not None}
    for k in ("partitionValues", "tags"):
        if isinstance(out.get(k), list):
            out[k] = dict(out[k])
    if isinstance(out.get("deletionVector"), dict):
        out["deletionVector"] = {k: v for k, v in out["deletionVector"].items() if v is not None}
    return out


def _replay(root: DataPath, kinds: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    """The log's actions of ``kinds`` (``add``, ``remove``, ``txn``) in order: the last
    checkpoint's (as the JSON log writes them), then every later entry's."""
    log_dir = root / "_delta_log"
    start = -1
    last = read_bytes(log_dir / "_last_checkpoint")
    if last is not None:
        info = json.loads(last)
        start = int(info["version"])
        if info.get("parts"):
            n = int(info["parts"])
            parts = [f"{start:020d}.checkpoint.{i:010d}.{n:010d}.parquet" for i in range(1, n + 1)]
        else:
            parts = [f"{start:020d}.checkpoint.parquet"]
        for part in parts:
            fs, p = filesystem(log_dir / part)
            names = set(pq.read_schema(p, filesystem=fs).names)
            wanted = [k for k in kinds if k in names and k != "remove"]
            if not wanted:
                continue
            table = pq.read_table(p, columns=wanted, filesystem=fs)
            for kind in wanted:
                for action in table[kind].to_pylist():
                    if action is not None:
                        yield {kind: _plain(action) if kind == "add" else action}
    for v in _log_versions(root):
        if v <= start:
            continue
        for action in entry(root, v) or []:
            if any(k in action for k in kinds):
                yield action


def logged_adds(root: DataPath, version: int) -> dict[str, dict[str, Any]]:
    """Data file -> its ``add`` action exactly as the log holds it at ``version``. Raises
    ``CommitConflict`` when the log already has a later version: the caller's snapshot is
    stale."""
    versions = _log_versions(root)
    if versions and versions[-1] > version:
        raise CommitConflict(f"{root}: the log has version {versions[-1]} past {version}")
    out: dict[str, dict[str, Any]] = {}
    for action in _replay(root, ("add", "remove")):
        if "remove" in action:
            out.pop(action["remove"]["path"], None)
        elif "add" in action:
            out[action["add"]["path"]] = action["add"]
    return out


def transactions(root: DataPath) -> dict[str, int]:
    """App id -> the version of its latest app transaction (``txn``) in the log."""
    out: dict[str, int] = {}
    for action in _replay(root, ("txn",)):
        txn = action["txn"]
        out[str(txn["appId"])] = int(txn["version"])
    return out


def only_commit_info(root: DataPath, version: int) -> bool:
    """Whether log entry ``version`` exists and holds nothing but ``commitInfo`` (a commit
    that changes no file, protocol, metadata or transaction: vacuum's START and END)."""
    actions = entry(root, version)
    return actions is not None and all(set(a) == {"commitInfo"} for a in actions)


def write_entry(root: DataPath, version: int, actions: list[dict[str, Any]]) -> None:
    """Write log entry ``version`` only if no other writer took it (else ``CommitConflict``).

    Locally the entry is written aside and hard-linked to its name (fails if the name exists,
    as delta-rs's own local commits do), so a reader never sees a partial entry. On the object
    store one conditional PUT (``If-None-Match: *``), as delta-rs commits there with
    ``AWS_CONDITIONAL_PUT=etag``.
    """
    lock.check(root)  # a lease taken over: another writer owns the table now
    text = "".join(json.dumps(a, ensure_ascii=False) + "\n" for a in actions).encode("utf-8")
    name = f"{version:020d}.json"
    if isinstance(root, ObjectPath):
        if lock.put_if_absent(root / "_delta_log" / name, text) is None:
            raise CommitConflict(f"{root}: another writer committed version {version} first")
        return
    log_dir = root / "_delta_log"
    aside = log_dir / f".{uuid.uuid4().hex}.json.tmp"
    write_bytes(aside, text)
    try:
        os.link(aside, log_dir / name)
    except FileExistsError as e:
        raise CommitConflict(
            f"{root}: another writer committed version {version} first; rerun the publish"
        ) from e
    finally:
        aside.unlink()


def commit_files(
    path: DataPath,
    version: int,
    actions: list[dict[str, Any]],
    files: dict[str, bytes],
    written: Mapping[str, Callable[[], object]] | None = None,
) -> int:
    """Write the night's data files, then commit ``actions`` as log entry ``version`` (only
    if free; the next one when another writer took it with a commit changing nothing our
    entry relies on). A file that vanished around the commit (an outsider's vacuum of
    unreferenced files) is written again, byte for byte, once the log names it. Returns the
    version committed.

    ``written``: data files already in place (written as they were built, not held in
    memory), each with the call that writes it again, the same bytes, if it vanishes; they
    are deleted as ``files`` are when another writer took the version."""
    for name, data in files.items():
        write_bytes(path / name, data)
    again: dict[str, Callable[[], object]] = dict(written or {})
    for name, data in files.items():
        again[name] = functools.partial(write_bytes, path / name, data)
    vacuum_seen = False
    for _ in range(REBASES):
        try:
            write_entry(path, version, actions)
            break
        except CommitConflict:
            if only_commit_info(path, version):  # e.g. VACUUM START/END
                version += 1  # nothing our entry relies on changed: take the next version
                vacuum_seen = True
                continue
            for name in again:  # another writer changed the table: tonight's files are nobody's
                delete_file(path / name)
            raise
    else:
        raise CommitConflict(f"{path}: {REBASES} commits by other writers in a row")
    # Checked at once; for a while longer only when an outside vacuum shows (it took a version
    # or a file vanished): a night without one pays no wait.
    pauses = list(RECHECK_PAUSES if vacuum_seen else RECHECK_PAUSES[:1]) if again else []
    while pauses:
        time.sleep(pauses.pop(0))
        vanished = [name for name in again if not exists(path / name)]
        for name in vanished:
            log.warning("%s: %s vanished around its commit; written again", path, name)
            again[name]()
        if vanished and not vacuum_seen:
            vacuum_seen, pauses = True, list(RECHECK_PAUSES[1:])
    return version

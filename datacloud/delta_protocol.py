"""Which way a publish may write a curated table, from its Delta protocol and properties.

datacloud writes some log entries itself (deletion vectors, copy-on-write rewrites: see
``delta.publish``). A writer must implement every feature the table's protocol lists
(PROTOCOL.md, "Table Features"), so those entries are written only for tables whose features
our writer handles; everything else goes through delta-rs, which implements them, and the
reason is logged:

- ``delta.appendOnly=true``: a publish that updates or deletes is refused (``AppendOnly``);
- ``delta.enableChangeDataFeed=true``: delta-rs MERGE, which writes the ``cdc`` files;
- column mapping, row tracking, in-commit timestamps, CHECK constraints, generated or identity
  columns, column invariants, any reader or writer feature not in ``OUR_WRITER_FEATURES``:
  delta-rs MERGE (copy-on-write);
- deletion vectors only when the protocol lists ``deletionVectors`` as reader and writer
  feature *and* ``delta.enableDeletionVectors`` is ``true`` (PROTOCOL.md: "Writers must only
  write new Deletion Vectors (DVs) when this property is set to true"). The property is set by
  ``enable_deletion_vectors_actions``: one commit of our own with the ``protocol`` and
  ``metaData`` actions, adding exactly that feature and that property (delta-rs's
  ``alter.set_table_properties`` would add other features too).
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import DeltaTable

from datacloud.storage import DataPath, ObjectPath, filesystem, list_names

DV = "deletionVectors"
DV_PROPERTY = "delta.enableDeletionVectors"
APPEND_ONLY = "delta.appendOnly"
CDF = "delta.enableChangeDataFeed"
# writer features whose rules our hand-written log entries follow (checked below where the
# feature is only harmless while its property or metadata is absent)
OUR_WRITER_FEATURES = frozenset({"appendOnly", "invariants", DV, "changeDataFeed"})
OUR_READER_FEATURES = frozenset({DV})
# features a legacy writer version implies (PROTOCOL.md, "Writer Version Requirements")
_LEGACY_WRITER = {
    1: [],
    2: ["appendOnly", "invariants"],
    3: ["appendOnly", "invariants", "checkConstraints"],
    4: ["appendOnly", "invariants", "checkConstraints", "changeDataFeed", "generatedColumns"],
    5: [
        "appendOnly",
        "invariants",
        "checkConstraints",
        "changeDataFeed",
        "generatedColumns",
        "columnMapping",
    ],
    6: [
        "appendOnly",
        "invariants",
        "checkConstraints",
        "changeDataFeed",
        "generatedColumns",
        "columnMapping",
        "identityColumns",
    ],
}
_LEGACY_READER = {1: [], 2: ["columnMapping"]}


class AppendOnly(ValueError):
    """A publish would update or delete rows of a table with ``delta.appendOnly=true``."""


@dataclass(frozen=True)
class Gate:
    """What our own log entries may do on this table."""

    ours: bool  # our hand-written commits (rewrite, deletion vectors) are allowed
    vectors: bool  # deletion vectors may be written now (feature and property set)
    can_enable_vectors: bool  # our protocol/metadata commit may add them
    append_only: bool
    why: str  # when not ``ours`` (or not ``vectors``): the reason, for the log


def writer_features(dt: DeltaTable) -> list[str]:
    """The writer features the table has: listed (writer 7) or implied (legacy versions)."""
    p = dt.protocol()
    if p.min_writer_version >= 7:
        return list(p.writer_features or [])
    return list(_LEGACY_WRITER.get(p.min_writer_version, _LEGACY_WRITER[6]))


def reader_features(dt: DeltaTable) -> list[str]:
    p = dt.protocol()
    if p.min_reader_version >= 3:
        return list(p.reader_features or [])
    return list(_LEGACY_READER.get(p.min_reader_version, ["columnMapping"]))


def _schema_blockers(dt: DeltaTable) -> list[str]:
    """Column metadata our writer does not implement (invariants, generated, identity)."""
    out = []
    for f in json.loads(dt.schema().to_json())["fields"]:
        meta = f.get("metadata") or {}
        for k in meta:
            if k in ("delta.invariants", "delta.generationExpression") or k.startswith(
                ("delta.identity.", "delta.columnMapping.")
            ):
                out.append(f"column {f['name']} has {k}")
    return out


def gate(dt: DeltaTable) -> Gate:
    """The table's features against what our writer implements."""
    config = dt.metadata().configuration
    reasons = []
    unknown_w = sorted(set(writer_features(dt)) - OUR_WRITER_FEATURES)
    unknown_r = sorted(set(reader_features(dt)) - OUR_READER_FEATURES)
    if unknown_w or unknown_r:
        reasons.append(f"features our writer does not implement: {unknown_w + unknown_r}")
    if config.get(CDF) == "true":
        reasons.append(f"{CDF}=true (the change data feed needs cdc files)")
    if config.get("delta.columnMapping.mode", "none") != "none":
        reasons.append("column mapping")
    for k in config:
        if k.startswith("delta.constraints."):
            reasons.append(f"CHECK constraint {k}")
        if k in ("delta.enableRowTracking", "delta.enableInCommitTimestamps") and (
            config[k] == "true"
        ):
            reasons.append(k)
    reasons += _schema_blockers(dt)
    ours = not reasons
    has_dv = DV in writer_features(dt) and DV in reader_features(dt)
    vectors = ours and has_dv and config.get(DV_PROPERTY) == "true"
    why = "; ".join(reasons)
    if ours and not vectors:
        why = f"{DV_PROPERTY} is not true"
    return Gate(
        ours=ours,
        vectors=vectors,
        can_enable_vectors=ours,
        append_only=config.get(APPEND_ONLY) == "true",
        why=why,
    )


def enable_deletion_vectors_actions(dt: DeltaTable) -> list[dict[str, Any]]:
    """The ``protocol`` and ``metaData`` actions of a commit that lets the table's writers
    write deletion vectors: reader 3 / writer 7, ``deletionVectors`` added to the reader and
    writer features the table has (legacy versions' implied ones listed), and
    ``delta.enableDeletionVectors=true`` added to the configuration; nothing else changes."""
    readers = [f for f in reader_features(dt) if f != DV] + [DV]
    writers = [f for f in writer_features(dt) if f != DV] + [DV]
    m = dt.metadata()
    protocol = {
        "minReaderVersion": 3,
        "minWriterVersion": 7,
        "readerFeatures": readers,
        "writerFeatures": writers,
    }
    metadata = {
        "id": m.id,
        "name": m.name,
        "description": m.description,
        "format": {"provider": "parquet", "options": {}},
        "schemaString": dt.schema().to_json(),
        "partitionColumns": list(m.partition_columns),
        "configuration": {**m.configuration, DV_PROPERTY: "true"},
        "createdTime": m.created_time,
    }
    return [{"protocol": protocol}, {"metaData": metadata}]


# --- the log, as our own commits read and write it ----------------------------------------


class CommitConflict(RuntimeError):
    """Another writer committed after the snapshot a publish read: reload and redo it."""


def _fs(loc: DataPath) -> tuple[pafs.FileSystem, str]:
    return filesystem(loc)


def read_bytes(loc: DataPath) -> bytes | None:
    fs, p = _fs(loc)
    try:
        with fs.open_input_stream(p) as f:
            return bytes(f.read())
    except FileNotFoundError:
        return None


def exists(loc: DataPath) -> bool:
    fs, p = _fs(loc)
    return bool(fs.get_file_info(p).type != pafs.FileType.NotFound)


def write_bytes(loc: DataPath, data: bytes) -> None:
    """Write a data file; locally fsynced, so it is on disk before the entry naming it."""
    if isinstance(loc, Path):
        with open(loc, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return
    fs, p = _fs(loc)
    with fs.open_output_stream(p) as out:
        out.write(data)


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


def logged_adds(root: DataPath, version: int) -> dict[str, dict[str, Any]]:
    """Data file -> its ``add`` action exactly as the log holds it at ``version`` (the last
    checkpoint, then the entries after it). Raises ``CommitConflict`` when the log already
    has a later version: the caller's snapshot is stale."""
    log_dir = root / "_delta_log"
    versions = _log_versions(root)
    if versions and versions[-1] > version:
        raise CommitConflict(f"{root}: the log has version {versions[-1]} past {version}")
    out: dict[str, dict[str, Any]] = {}
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
            fs, p = _fs(log_dir / part)
            adds = pq.read_table(p, columns=["add"], filesystem=fs)["add"]
            for add in adds.to_pylist():
                if add is not None:
                    out[add["path"]] = _plain(add)
    for v in versions:
        if v <= start:
            continue
        text = (read_bytes(log_dir / f"{v:020d}.json") or b"").decode("utf-8")
        for line in text.splitlines():
            action = json.loads(line) if line.strip() else {}
            if "remove" in action:
                out.pop(action["remove"]["path"], None)
            elif "add" in action:
                out[action["add"]["path"]] = action["add"]
    return out


def loose_stats(raw: str | None) -> str | None:
    """The add's statistics text with ``"tightBounds": false`` (its rows are about to be
    partly deleted: the bounds may no longer be reached). Every other member is copied
    verbatim, as text, so no value changes its JSON type or form."""
    if not raw:
        return raw
    decoder = json.JSONDecoder()
    text = raw.strip()
    parts: list[str] = []
    i = 1
    while True:
        i = _skip_ws(text, i)
        if text[i] == "}":
            break
        key, j = decoder.raw_decode(text, i)
        j = _skip_ws(text, j) + 1  # the colon
        j = _skip_ws(text, j)
        _, end = decoder.raw_decode(text, j)
        if key != "tightBounds":
            parts.append(f"{text[i:j].rstrip()}{text[j:end]}")
        i = _skip_ws(text, end)
        if text[i] == ",":
            i += 1
    parts.append('"tightBounds":false')
    return "{" + ",".join(parts) + "}"


def _skip_ws(text: str, i: int) -> int:
    while text[i] in " \t\r\n":
        i += 1
    return i


def remove_action(add: dict[str, Any], now: int) -> dict[str, Any]:
    """The ``remove`` of a logged file: its vector exactly as logged, and with
    ``extendedFileMetadata`` its ``partitionValues``, ``size`` and ``tags`` (when the add has
    them) and statistics."""
    out: dict[str, Any] = {
        "path": add["path"],
        "deletionTimestamp": now,
        "dataChange": True,
        "extendedFileMetadata": True,
        "partitionValues": add.get("partitionValues") or {},
        "size": add["size"],
    }
    for k in ("tags", "stats", "deletionVector"):
        if add.get(k) is not None:
            out[k] = add[k]
    return out


def only_commit_info(root: DataPath, version: int) -> bool:
    """Whether log entry ``version`` exists and holds nothing but ``commitInfo`` (a commit
    that changes no file, protocol, metadata or transaction: vacuum's START and END)."""
    text = read_bytes(root / "_delta_log" / f"{version:020d}.json")
    if text is None:
        return False
    actions = [json.loads(line) for line in text.decode("utf-8").splitlines() if line.strip()]
    return all(set(a) == {"commitInfo"} for a in actions)


def commit(root: DataPath, version: int, actions: list[dict[str, Any]]) -> None:
    """Write log entry ``version`` only if no other writer took it (else ``CommitConflict``).

    Locally the entry is written aside and hard-linked to its name (fails if the name exists,
    as delta-rs's own local commits do), so a reader never sees a partial entry. On the object
    store one conditional PUT (``If-None-Match: *``), as delta-rs commits there with
    ``AWS_CONDITIONAL_PUT=etag``.
    """
    from datacloud import table_lock

    table_lock.check(root)  # a lease taken over: another writer owns the table now
    text = "".join(json.dumps(a, ensure_ascii=False) + "\n" for a in actions).encode("utf-8")
    name = f"{version:020d}.json"
    if isinstance(root, ObjectPath):
        if table_lock.put_if_absent(root / "_delta_log" / name, text) is None:
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

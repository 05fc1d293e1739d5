"""Which way a publish may write a curated table, from its Delta protocol and properties.

datacloud writes some log entries itself (deletion vectors, copy-on-write rewrites: see
``publish``). A writer must implement every feature the table's protocol lists
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
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable
from deltalake import Schema as DeltaSchema

from datacloud.delta import log
from datacloud.delta.spec import CDF, DV_FEATURE, CommitInfo
from datacloud.storage import DataPath

_log = logging.getLogger(__name__)

DV = DV_FEATURE
DV_PROPERTY = "delta.enableDeletionVectors"
APPEND_ONLY = "delta.appendOnly"
# writer features whose rules our hand-written log entries follow (checked below where the
# feature is only harmless while its property or metadata is absent)
OUR_WRITER_FEATURES = frozenset({"appendOnly", "invariants", DV, "changeDataFeed"})
OUR_READER_FEATURES = frozenset({DV})
# features a legacy writer version implies (PROTOCOL.md, "Writer Version Requirements"):
# each version has those of the versions below it and the ones it adds
_WRITER_VERSION_ADDS = {
    2: ["appendOnly", "invariants"],
    3: ["checkConstraints"],
    4: ["changeDataFeed", "generatedColumns"],
    5: ["columnMapping"],
    6: ["identityColumns"],
}
_LEGACY_WRITER = {
    v: [f for since, adds in _WRITER_VERSION_ADDS.items() if since <= v for f in adds]
    for v in range(1, 7)
}
_LEGACY_READER = {1: [], 2: ["columnMapping"]}


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


def enable_deletion_vectors(path: DataPath, dt: DeltaTable, commit: CommitInfo) -> None:
    """Let the table's writers write deletion vectors, in one commit of our own: reader 3 /
    writer 7 with ``deletionVectors`` added to the features it has, and the property
    ``delta.enableDeletionVectors=true``. Not for a table whose features our writer does not
    implement (the reason is logged)."""
    g = gate(dt)
    if g.vectors:
        return
    if not g.can_enable_vectors:
        _log.info("%s: no deletion vectors: %s", path, g.why)
        return
    # changes no content: none of the publish's metadata, no consumed versions
    info = CommitInfo(commit.run_id, commit.ds, {"datacloud.maintenance": "deletion vectors"})
    actions = info.actions("ADD FEATURE", {"name": json.dumps([DV])})
    log.commit_files(path, dt.version() + 1, [*actions, *enable_deletion_vectors_actions(dt)], {})


# --- actions of our own commits -------------------------------------------------------------


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


def new_table_actions(schema: pa.Schema, now: int) -> list[dict[str, Any]]:
    """The ``protocol`` and ``metaData`` actions of a new table, as delta-rs writes them
    (our own writers' first commit: ``delta.streamed``, ``problem_store``)."""
    metadata: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "name": None,
        "description": None,
        "format": {"provider": "parquet", "options": {}},
        "schemaString": DeltaSchema.from_arrow(schema).to_json(),
        "partitionColumns": [],
        "createdTime": now,
        "configuration": {},
    }
    return [{"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}}, {"metaData": metadata}]

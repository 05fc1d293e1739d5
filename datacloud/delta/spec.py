"""The package's vocabulary: constants, the typed specs a write takes, its result, its errors.

Every other module of ``datacloud.delta`` imports this one; it imports none of them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from deltalake import ColumnProperties, CommitProperties, DeltaTable, Transaction, WriterProperties

from datacloud.storage import DataPath

ROW_GROUP_ROWS = 128 * 1024
# publish rewrites a curated table sorted (one overwrite) instead of merging when the files
# that can hold a touched key hold more than this share of its rows (docs/curation.md)
REWRITE_OVER = 0.5
# an incremental publish of a local table marks the touched keys' old rows deleted (deletion
# vectors) and adds their new rows in one file, while they are at most this share of its rows
DELETION_VECTORS_UNDER = 0.2
# maintain rewrites a table sorted once this share of its physical rows is marked deleted
RECLUSTER_DELETED_OVER = 0.2
DV_FEATURE = "deletionVectors"
# a publish that finds another writer's commit after its snapshot reloads and starts again
PUBLISH_ATTEMPTS = 5
# a commit whose version another writer took with an entry that changes no file, protocol or
# metadata (vacuum's START/END) takes the next version instead, at most this many times
REBASES = 50
# every published curated row carries a 64-bit hash of its other columns: an incremental
# publish compares it instead of reading the old rows whole
ROW_HASH = "_row_hash"
# staged tables record their row changes (Delta change data feed): curation reads them
CDF = "delta.enableChangeDataFeed"
# the app id of the Delta app transaction (``txn``) recording a consumed staged table's version
CONSUMED_APP = "datacloud.staged:"


class CommitConflict(RuntimeError):
    """Another writer committed after the snapshot a publish read: reload and redo it."""


class VectorsUnknown(Exception):
    """A file's current deletion vector is not in the log as expected (another writer)."""


class AppendOnly(ValueError):
    """A publish would update or delete rows of a table with ``delta.appendOnly=true``."""


@dataclass(frozen=True)
class MergeResult:
    version: int
    inserted: int
    updated: int
    deleted: int


@dataclass(frozen=True)
class CommitInfo:
    """What every datacloud commit records: business date, run, extra ``commitInfo``
    members, and the staged versions the content was built from (``consumed``:
    ``"<dept>/<table>"`` -> version), kept as Delta app transactions (``txn`` actions,
    app id ``datacloud.staged:<dept>/<table>``) so the log itself says what was consumed
    (``read.consumed_versions``)."""

    run_id: str
    ds: str
    extra: Mapping[str, str] = field(default_factory=dict)
    consumed: Mapping[str, int] = field(default_factory=dict)

    def with_extra(self, **more: str) -> CommitInfo:
        """The same commit with more ``commitInfo`` members (``datacloud.<name>``)."""
        return CommitInfo(
            self.run_id,
            self.ds,
            {**self.extra, **{f"datacloud.{k}": v for k, v in more.items()}},
            self.consumed,
        )

    def metadata(self) -> dict[str, str]:
        return {"datacloud.run_id": self.run_id, "datacloud.ds": self.ds, **self.extra}

    def properties(self) -> CommitProperties:
        """For a delta-rs commit: the metadata as custom ``commitInfo``, the consumed
        versions as app transactions."""
        txns = [Transaction(CONSUMED_APP + k, int(v)) for k, v in sorted(self.consumed.items())]
        return CommitProperties(custom_metadata=self.metadata(), app_transactions=txns or None)

    def actions(self, operation: str, parameters: dict[str, str]) -> list[dict[str, Any]]:
        """For a commit of our own: its ``commitInfo`` action and one ``txn`` per consumed
        staged table."""
        now = int(time.time() * 1000)
        info = {
            "timestamp": now,
            "operation": operation,
            "operationParameters": parameters,
            "clientVersion": "datacloud",
            **self.metadata(),
        }
        txns = [
            {"txn": {"appId": CONSUMED_APP + k, "version": int(v), "lastUpdated": now}}
            for k, v in sorted(self.consumed.items())
        ]
        return [{"commitInfo": info}, *txns]


@dataclass(frozen=True)
class FileLayout:
    """How our own commits write a data file: rows sorted by ``sort_by``, row groups of at
    most ``row_group_rows``."""

    sort_by: tuple[str, ...]
    row_group_rows: int = ROW_GROUP_ROWS


@dataclass(frozen=True)
class PublishSpec:
    """How a curated table is published (``publishing.publish``).

    ``key``: the business key; ``sort_by``: the files' order (the lookup key first).
    ``full=False``: tonight's rows hold only some keys (an incremental night). The ways a
    publish may take: deletion vectors while the touched keys are at most
    ``deletion_vectors_under`` of the rows (None: ``DELETION_VECTORS_UNDER``), a sorted
    rewrite when the files in range hold more than ``rewrite_over`` of them, otherwise a
    copy-on-write of those files; row groups of at most ``row_group_rows``.
    """

    key: str
    sort_by: tuple[str, ...]
    full: bool = True
    deletion_vectors: bool = True
    deletion_vectors_under: float | None = None
    rewrite_over: float = REWRITE_OVER
    row_group_rows: int = ROW_GROUP_ROWS

    @property
    def layout(self) -> FileLayout:
        return FileLayout(self.sort_by, self.row_group_rows)

    @property
    def vectors_under(self) -> float:
        under = self.deletion_vectors_under
        return DELETION_VECTORS_UNDER if under is None else under


@dataclass(frozen=True)
class MaintainSpec:
    """How a published table is kept lookup-ready (``upkeep.maintain``): recluster by
    ``key`` over ``recluster_files_over`` files (or overlapping row groups, or a fifth of
    the rows deleted), vacuum what no reader of ``retention_days`` days needs."""

    key: str
    retention_days: int
    recluster_files_over: int
    row_group_rows: int = ROW_GROUP_ROWS

    @property
    def layout(self) -> FileLayout:
        return FileLayout((self.key,), self.row_group_rows)


@dataclass(frozen=True)
class MergeSpec:
    """A delta-rs MERGE by ``key`` (``rs.merge``): a matched row is updated only when one of
    ``compare`` differs (None: every column but the key); ``merge_schema`` lets the source
    add columns."""

    key: str
    compare: tuple[str, ...] | None = None
    merge_schema: bool = False
    row_group_rows: int = ROW_GROUP_ROWS


@dataclass(frozen=True)
class Snapshot:
    """A table as one publish attempt read it: the loaded version and, per data file, the
    row positions its deletion vector already deletes."""

    path: DataPath
    dt: DeltaTable
    deleted: dict[str, np.ndarray]


@dataclass(frozen=True)
class Changes:
    """Tonight's rows of the touched keys, and the keys deleted (``gone``, in the key's
    type)."""

    rows: pa.Table
    gone: pa.Array

    def touched(self, key: str) -> pa.Array:
        """Every key tonight touches: published or deleted."""
        t = self.rows.schema.field(key).type
        return pa.chunked_array([self.rows[key].combine_chunks(), self.gone], t).combine_chunks()


def writer(row_group_rows: int = ROW_GROUP_ROWS) -> WriterProperties:
    """ZSTD Parquet, row groups of at most ``row_group_rows``, min/max statistics per page."""
    return WriterProperties(
        max_row_group_size=row_group_rows,
        compression="ZSTD",
        default_column_properties=ColumnProperties(statistics_enabled="PAGE"),
    )

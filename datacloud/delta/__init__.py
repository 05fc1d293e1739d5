"""Delta Lake for staged and curated tables: one module per job.

Delta commits are the only way these tables change: a reader sees the last committed
version or the next, never a partial write. Files are sorted by key with row groups of at
most 128k rows, so point lookups prune on statistics.

Modules, each importing only those above it:

- ``spec``: constants, the typed specs (``PublishSpec``, ``MaintainSpec``, ``MergeSpec``,
  ``CommitInfo``), ``MergeResult``, the errors;
- ``lock``: one writer at a time per table (``flock`` locally, a lease on the object store);
- ``log``: the Delta log as our own commits read it (adds, app transactions) and write it
  (one entry at exactly a version: hard link locally, conditional PUT on the object store);
- ``protocol``: the feature gate (which tables our own commits may write), the actions our
  commits build, the commit enabling deletion vectors;
- ``read``: load, read, read by key, as-of, history, change feed, deleted rows,
  ``consumed_versions``;
- ``rs``: writes through delta-rs (new table, overwrite, MERGE) and the check after them;
- ``staged``: staged tables' merge by key, and whole-table overwrites;
- ``rewrite``: our copy-on-write commit (a sorted rewrite of some or all files);
- ``dv_writer``: our deletion-vector writer (retired by deleting it once delta-rs writes
  deletion vectors);
- ``publishing``: a curated table's nightly publish: the strategy, retried under the lock;
- ``upkeep``: layout analysis, recluster, vacuum, checkpoints.

The names below are what callers use; import others from their module.
"""

from __future__ import annotations

from datacloud.delta.protocol import Gate, gate
from datacloud.delta.publishing import publish, share_to_rewrite, with_row_hash
from datacloud.delta.read import (
    changes,
    consumed_versions,
    deleted_positions,
    has_cdf,
    has_deletion_vectors,
    history,
    live_rows,
    load,
    open_table,
    plain_types,
    read_loaded,
    read_table,
    read_where,
    version_as_of,
)
from datacloud.delta.spec import (
    CDF,
    DELETION_VECTORS_UNDER,
    PUBLISH_ATTEMPTS,
    RECLUSTER_DELETED_OVER,
    REWRITE_OVER,
    ROW_GROUP_ROWS,
    ROW_HASH,
    AppendOnly,
    CommitConflict,
    CommitInfo,
    MaintainSpec,
    MergeResult,
    PublishSpec,
    VectorsUnknown,
)
from datacloud.delta.staged import merge_by_key, overwrite
from datacloud.delta.upkeep import key_ranges, maintain, overlapping_row_groups

__all__ = [
    "CDF",
    "DELETION_VECTORS_UNDER",
    "PUBLISH_ATTEMPTS",
    "RECLUSTER_DELETED_OVER",
    "REWRITE_OVER",
    "ROW_GROUP_ROWS",
    "ROW_HASH",
    "AppendOnly",
    "CommitConflict",
    "CommitInfo",
    "Gate",
    "MaintainSpec",
    "MergeResult",
    "PublishSpec",
    "VectorsUnknown",
    "changes",
    "consumed_versions",
    "deleted_positions",
    "gate",
    "has_cdf",
    "has_deletion_vectors",
    "history",
    "key_ranges",
    "live_rows",
    "load",
    "maintain",
    "merge_by_key",
    "open_table",
    "overlapping_row_groups",
    "overwrite",
    "plain_types",
    "publish",
    "read_loaded",
    "read_table",
    "read_where",
    "share_to_rewrite",
    "version_as_of",
    "with_row_hash",
]

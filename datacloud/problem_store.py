"""The problem table (问题数据台账): a Delta table at ``<state root>/problems/problems``.

One row per problem (``problem_id``), columns ``SCHEMA`` (the shared contract of issue 19,
docs/problems.md). Each tracking night replaces the whole table in one Delta commit
(``datacloud.delta.overwrite``), stamped with the night's business date (``datacloud.ds``),
so the table's history is the problems' history and ``read_problems(root, as_of=...)``
reads the table as an earlier night left it. The same content makes no new version: a rerun of
a night changes nothing.

The table holds ID numbers (``person_key``, and the source key of a cross-department
finding): it is for the platform's own code; every page, file and answer built from it masks
them (``datacloud.masking``).
"""

from __future__ import annotations

from datetime import date, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from datacloud.delta import open_table, overwrite, read_loaded, rs, version_as_of
from datacloud.delta.read import load
from datacloud.delta.spec import CommitInfo, writer
from datacloud.paths import StorageRoot

SCHEMA = pa.schema(
    [
        pa.field("problem_id", pa.string(), nullable=False),  # sha256("dept|table|key|rule")[:16]
        pa.field("kind", pa.string(), nullable=False),  # 'rejected_row' | 'finding'
        pa.field("dept", pa.string(), nullable=False),
        pa.field("table", pa.string(), nullable=False),  # source table; 'consistency' (finding)
        pa.field("source_key", pa.string(), nullable=False),
        pa.field("field", pa.string()),  # canonical field(s), comma-joined
        pa.field("rule", pa.string(), nullable=False),  # rule code or finding code
        pa.field("message_zh", pa.string()),
        pa.field("person_key", pa.string()),  # the ID number concerned; never shown unmasked
        pa.field("first_seen", pa.date32(), nullable=False),
        pa.field("last_seen", pa.date32(), nullable=False),
        pa.field("status", pa.string(), nullable=False),  # 'open' | 'fixed' | 'reopened'
        pa.field("fixed_on", pa.date32()),
        pa.field("reopened_on", pa.date32()),
        pa.field("due", pa.date32(), nullable=False),
        pa.field("overdue", pa.bool_(), nullable=False),
        pa.field("response", pa.string()),  # 'fixed' | 'disputed' | 'cannot_fix' | null
        pa.field("response_at", pa.timestamp("us", tz="UTC")),
        pa.field("response_by", pa.string()),
        pa.field("response_note", pa.string()),
        pa.field("fix_failed", pa.bool_(), nullable=False),
        pa.field("disputed_since", pa.date32()),
    ]
)
SORT_BY = ["dept", "table", "problem_id"]
KINDS = ("rejected_row", "finding")
STATUSES = ("open", "fixed", "reopened")
RESPONSES = ("fixed", "disputed", "cannot_fix")
OPEN = ("open", "reopened")


def empty() -> pa.Table:
    return SCHEMA.empty_table()


def conform(table: pa.Table) -> pa.Table:
    """``table`` with exactly the columns and types of ``SCHEMA`` (in its order)."""
    return pa.Table.from_arrays(
        [pc.cast(table[f.name], f.type) for f in SCHEMA], schema=SCHEMA
    ).combine_chunks()


def version(root: StorageRoot) -> int | None:
    """The problem table's current Delta version, None before the first tracking night."""
    dt = open_table(root.problems_table())
    return None if dt is None else dt.version()


def read_problems(
    root: StorageRoot,
    dept: str | None = None,
    *,
    as_of: date | None = None,
    version: int | None = None,
) -> pa.Table:
    """The problem table (``SCHEMA``), of one department when ``dept`` is given.

    ``as_of``: the table as the latest tracking night on or before that business date left
    it (empty when there was none); ``version``: a Delta version. An empty table (with the
    schema) before the first tracking night.
    """
    path = root.problems_table()
    if as_of is not None:
        version = version_as_of(path, as_of.isoformat())
        if version is None:
            return empty()
    dt = open_table(path, version)
    if dt is None:
        return empty()
    rows = conform(read_loaded(dt))
    if dept is not None:
        rows = rows.filter(pc.equal(rows["dept"], dept))
    return rows


def read_before(root: StorageRoot, ds: date) -> pa.Table:
    """The table as the tracking nights before ``ds`` left it: what night ``ds`` starts from
    (so a rerun of ``ds`` starts from the same rows as its first run)."""
    return read_problems(root, as_of=ds - timedelta(days=1))


def latest_night(root: StorageRoot) -> date | None:
    """The business date of the table's latest commit (a tracking night), None when none."""
    dt = open_table(root.problems_table())
    if dt is None:
        return None
    for entry in dt.history(1):
        ds = entry.get("datacloud.ds") or (entry.get("userMetadata") or {}).get("datacloud.ds")
        if isinstance(ds, str):
            return date.fromisoformat(ds)
    return None


def night_as_of(root: StorageRoot, ds: date) -> date | None:
    """The latest tracking night on or before ``ds`` (the night ``read_problems(as_of=ds)``
    shows), None when there was none."""
    dt = open_table(root.problems_table())
    if dt is None:
        return None
    nights = [
        str(c["datacloud.ds"])
        for c in dt.history()
        if c.get("datacloud.ds") and str(c["datacloud.ds"]) <= ds.isoformat()
    ]
    return date.fromisoformat(max(nights)) if nights else None


def write_problems(root: StorageRoot, table: pa.Table, ds: date, run_id: str) -> int:
    """Replace the problem table with ``table`` in one commit stamped with ``ds``. A rerun of
    the latest night with the same content makes no new version; a new night always commits
    (also with unchanged rows), so every tracked night has its version. Returns the version
    now current."""
    rows = conform(table).sort_by([(k, "ascending") for k in SORT_BY])
    path = root.problems_table()
    if latest_night(root) in (None, ds):
        return overwrite(path, rows, SORT_BY, run_id, ds.isoformat())
    rs.write(
        path,
        rows,
        mode="overwrite",
        schema_mode="overwrite",
        writer_properties=writer(),
        commit_properties=CommitInfo(run_id, ds.isoformat()).properties(),
    )
    return load(path).version()

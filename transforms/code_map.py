"""The crosswalk of legacy business registration numbers (注册号) to credit codes.

When the 统一社会信用代码 replaced the 15-digit 工商注册号 (from 2015-10-01), each enterprise
was re-licensed (换照) under a credit code; a department that still writes the 注册号 names
the same enterprise. Pure pyarrow, no I/O. A crosswalk table has the columns ``reg_number``,
``credit_code``, ``source`` and ``as_of`` (one row per mapping as a department states it).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from transforms.survivorship import first_per_key

CROSSWALK_SCHEMA = pa.schema(
    [
        ("reg_number", pa.string()),
        ("credit_code", pa.string()),
        ("source", pa.string()),
        ("as_of", pa.date32()),
    ]
)


def resolve_crosswalk(rows: pa.Table | None, sources: list[str]) -> pa.Table:
    """One credit code per 注册号: the most recently updated mapping (``CROSSWALK_SCHEMA``).

    Rows without both numbers are left out. Where departments disagree the latest ``as_of``
    wins, then the department later in ``sources``.
    """
    if rows is None or rows.num_rows == 0:
        return CROSSWALK_SCHEMA.empty_table()
    rows = rows.select(CROSSWALK_SCHEMA.names).cast(CROSSWALK_SCHEMA)
    rows = rows.filter(pc.and_(pc.is_valid(rows["reg_number"]), pc.is_valid(rows["credit_code"])))
    if rows.num_rows == 0:
        return CROSSWALK_SCHEMA.empty_table()
    return first_per_key(rows, "reg_number", [], sources).combine_chunks()


def mapped_credit_codes(
    credit_code: pa.Array | pa.ChunkedArray,
    reg_number: pa.Array | pa.ChunkedArray,
    crosswalk: pa.Table,
) -> pa.Array | pa.ChunkedArray:
    """``credit_code`` where present, else the credit code ``crosswalk`` maps the 注册号 to
    (null where neither is known)."""
    if crosswalk.num_rows == 0:
        return credit_code
    regs = crosswalk["reg_number"].combine_chunks()
    codes = crosswalk["credit_code"].combine_chunks()
    found = codes.take(pc.index_in(pc.cast(reg_number, pa.string()), value_set=regs))
    return pc.coalesce(pc.cast(credit_code, pa.string()), found)

"""The Airflow Assets of the pipeline, each defined once: a department DAG's stage task emits
``staged_asset`` and the curation DAG waits for the same objects, so a rename cannot leave
curation waiting for the cutoff. Imported only by the DAG files (it imports ``airflow.sdk``).
"""

from __future__ import annotations

from airflow.sdk import Asset

from datacloud.config import Department
from datacloud.curated_tables import TABLES


def staged_asset(code: str, table: str) -> Asset:
    """The staged Delta table ``staged/<code>/<table>``, updated by its department's night."""
    return Asset(name=f"staged.{code}.{table}", uri=f"datacloud://staged/{code}/{table}")


def staged_assets(depts: list[Department]) -> list[Asset]:
    """Every staged table of the departments, in department and table order."""
    return [staged_asset(d.code, t.name) for d in depts for t in d.tables]


def curated_asset(table: str) -> Asset:
    """The curated Delta table ``curated/<table>``, published by curation."""
    return Asset(name=f"curated.{table}", uri=f"datacloud://curated/{table}")


CURATED = [curated_asset(t) for t in TABLES]

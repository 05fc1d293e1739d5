"""A department's configured connection, and its queries compiled against the source.

``datacloud validate --connect`` and ``datacloud run`` resolve a department's connection as an
Airflow task would from the environment (``AIRFLOW_CONN_<CONNECTION_ID>``: a URI or JSON), and
``validate --connect`` runs each extraction query with no rows
(``SELECT * FROM (<query>) q WHERE 1=0``): a column the YAML maps that the query does not
select is named with its file and table before any night runs. Driver errors are masked
(``mask_text``) and cut to their first line; passwords never appear (``connections.masked``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.engine import URL

from datacloud import failures
from datacloud.config import Department, TableSpec
from datacloud.connections import engine as source_engine
from datacloud.connections import masked, sqlalchemy_url
from datacloud.masking import mask_text


class ConnectionMissing(Exception):
    """The department's connection is not configured in the environment."""


class SourceUnreachable(Exception):
    """The department's source database did not answer."""


def connection_var(dept: Department) -> str:
    """The environment variable Airflow reads the department's connection from."""
    return f"AIRFLOW_CONN_{dept.connection_id.upper()}"


def require_connection(dept: Department, environ: Mapping[str, str]) -> str:
    """The connection's value in ``environ``; ConnectionMissing naming the variable when unset."""
    var = connection_var(dept)
    value = environ.get(var, "").strip()
    if not value:
        raise ConnectionMissing(
            f"department {dept.code}: connection {dept.connection_id!r} is not configured: set "
            f"{var} (a URI such as postgres://user:password@host:5432/db, or JSON such as "
            '{"conn_type": "mysql", "host": "…", "login": "…", "schema": "…"}; '
            'docs/operations.md "Connections")'
        )
    return value


def connection_url(dept: Department, environ: Mapping[str, str]) -> URL:
    """The SQLAlchemy URL of the department's source, from ``AIRFLOW_CONN_<ID>`` parsed by
    Airflow's own connection class (URI or JSON), as ``airflow_connection_url`` does in a task.

    Importing Airflow creates ``$AIRFLOW_HOME`` (``~/airflow`` when unset): callers outside
    Airflow set ``AIRFLOW_HOME`` first (the CLI: the embedded home under the state root).
    """
    value = require_connection(dept, environ)
    from airflow.sdk.definitions.connection import Connection

    try:
        if value.lstrip().startswith("{"):
            conn = Connection.from_json(value, conn_id=dept.connection_id)
        else:
            conn = Connection.from_uri(value, conn_id=dept.connection_id)
        return sqlalchemy_url(conn)
    except Exception as e:
        raise ValueError(
            f"{connection_var(dept)}: not a connection URI or JSON Airflow can read: "
            f"{mask_text(str(e).splitlines()[0] if str(e) else type(e).__name__)}"
        ) from None


@dataclass
class QueryCheck:
    """What compiling a department's queries against its source found."""

    problems: list[str] = field(default_factory=list)  # mapped columns the queries do not select
    unmapped: dict[str, list[str]] = field(default_factory=dict)  # table -> selected, unused
    failed: set[str] = field(default_factory=set)  # tables with a problem


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return mask_text(lines[0])[:300] if lines else type(e).__name__


def query_columns(url: URL | str, dept: Department, table: TableSpec) -> list[str]:
    """The columns the table's extraction query returns, from running it with no rows."""
    sql = dept.sql_path(table.name).read_text(encoding="utf-8").strip().rstrip(";")
    engine = source_engine(url)
    try:
        with engine.connect() as conn:
            result = conn.execute(text(f"SELECT * FROM (\n{sql}\n) q WHERE 1=0"))
            columns = list(result.keys())
            result.close()
        return columns
    finally:
        engine.dispose()


def check_queries(dept: Department, url: URL | str) -> QueryCheck:
    """Compile every extraction query of ``dept`` on its source with no rows; name each mapped
    source column (keys, cursor, ``source:``) a query does not select, with file and table.
    SourceUnreachable when the source does not answer."""
    out = QueryCheck()
    for table in dept.tables:
        path = dept.sql_path(table.name)
        try:
            columns = query_columns(url, dept, table)
        except Exception as e:
            if failures.classify(e) == failures.SOURCE_UNREACHABLE:
                raise SourceUnreachable(
                    f"department {dept.code}: source {masked(url)} did not answer: {_first_line(e)}"
                ) from None
            out.problems.append(
                f"{path}: table {table.name}: the query fails on the source: {_first_line(e)}"
            )
            out.failed.add(table.name)
            continue
        for column in table.source_columns:
            if column not in columns:
                out.problems.append(
                    f"{path}: table {table.name}: column {column!r} (mapped in "
                    f"{dept.code}.yaml) is not selected by the query; it returns {columns}"
                )
                out.failed.add(table.name)
        unused = [c for c in columns if c not in table.source_columns]
        if unused:
            out.unmapped[table.name] = unused
    return out


def airflow_home_default(home: str) -> None:
    """Point Airflow at ``home`` unless AIRFLOW_HOME is set (importing Airflow creates it)."""
    os.environ.setdefault("AIRFLOW_HOME", home)

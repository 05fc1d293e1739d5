"""Department connections: an Airflow connection (``AIRFLOW_CONN_<ID>``) to a SQLAlchemy URL."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Engine, make_url

_DRIVERS = {
    "postgres": "postgresql+psycopg2",
    "postgresql": "postgresql+psycopg2",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
}


class ConnectionLike(Protocol):
    conn_type: str | None
    host: str | None
    login: str | None
    password: str | None
    schema: str | None
    port: int | None

    @property
    def extra_dejson(self) -> dict[str, Any]: ...


def sqlalchemy_url(conn: ConnectionLike) -> URL:
    """Build the SQLAlchemy URL of a department database from an Airflow connection.

    ``extra.sqlalchemy_url`` wins when given (any dialect SQLAlchemy supports, e.g. the
    domestic databases departments run); otherwise ``sqlite`` (host = file path),
    ``postgres`` and ``mysql``/``mariadb`` connection types are mapped to their drivers.
    """
    extra = conn.extra_dejson or {}
    if extra.get("sqlalchemy_url"):
        return make_url(str(extra["sqlalchemy_url"]))
    ctype = (conn.conn_type or "").lower()
    if ctype == "sqlite":
        return URL.create("sqlite", database=conn.host or conn.schema)
    if ctype in _DRIVERS:
        return URL.create(
            _DRIVERS[ctype],
            username=conn.login or None,
            password=conn.password or None,
            host=conn.host or None,
            port=conn.port or None,
            database=conn.schema or None,
        )
    raise ValueError(
        f"connection type {conn.conn_type!r} is not mapped; use sqlite, postgres, mysql, "
        "or give extra.sqlalchemy_url"
    )


def airflow_connection_url(conn_id: str) -> URL:
    """Look the connection up through Airflow (inside a task only, never at parse time)."""
    from airflow.sdk import Connection

    return sqlalchemy_url(Connection.get(conn_id))


def masked(url: URL | str) -> str:
    """The URL as text with the password hidden, for logs and reports."""
    u = make_url(url) if isinstance(url, str) else url
    return u.render_as_string(hide_password=True)


CONNECT_TIMEOUT_S = 30
_TIMEOUT_ARGS = {
    "psycopg2": {"connect_timeout": CONNECT_TIMEOUT_S},
    "pymysql": {"connect_timeout": CONNECT_TIMEOUT_S},
    "pysqlite": {"timeout": CONNECT_TIMEOUT_S},
}


def engine(url: URL | str) -> Engine:
    """An engine for a department source: a connect timeout where the driver has one, so an
    unreachable source fails in seconds (and is retried by Airflow), not after TCP gives up."""
    u = make_url(url)
    return create_engine(u, connect_args=dict(_TIMEOUT_ARGS.get(u.get_driver_name(), {})))

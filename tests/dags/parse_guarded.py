"""Parse the DAG folder with every database and connection path booby-trapped.

Run as a script in a fresh interpreter (by test_dagbag.py): prints a JSON line with the DAG
ids, import errors and the number of SQL statements executed while parsing.
"""

from __future__ import annotations

import json
import socket
import sys

import sqlalchemy
from airflow.dag_processing.dagbag import DagBag  # airflow's own import may set up its ORM
from airflow.sdk import BaseHook, Connection
from sqlalchemy import event
from sqlalchemy.engine import Engine

queries: list[str] = []
lookups: list[str] = []


@event.listens_for(Engine, "before_cursor_execute")
def _count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
    queries.append(statement)


def _deny_connect(self, *args, **kwargs):  # type: ignore[no-untyped-def]
    raise AssertionError(f"network connection while parsing DAGs: {args}")


def _deny_lookup(*args, **kwargs):  # type: ignore[no-untyped-def]
    lookups.append(str(args))
    raise AssertionError("connection lookup while parsing DAGs")


def _deny_engine(*args, **kwargs):  # type: ignore[no-untyped-def]
    raise AssertionError("create_engine while parsing DAGs")


socket.socket.connect = _deny_connect  # type: ignore[method-assign]
Connection.get = _deny_lookup  # type: ignore[method-assign]
BaseHook.get_connection = _deny_lookup  # type: ignore[method-assign]
sqlalchemy.create_engine = _deny_engine

bag = DagBag(dag_folder=sys.argv[1])
print(
    json.dumps(
        {
            "dag_ids": sorted(bag.dags),
            "import_errors": bag.import_errors,
            "queries": queries,
            "lookups": lookups,
        },
        ensure_ascii=False,
    )
)

"""Helpers shared by several test suites (plain functions; fixtures live in conftest.py).

Imported as ``helpers``: pytest puts ``tests/`` on ``sys.path`` for ``tests/conftest.py``
(no ``__init__.py``, the default ``prepend`` import mode), as ``tests/deploy`` imports ``stack``.
"""

from __future__ import annotations

import contextlib
import re
import socket
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from datacloud.paths import StorageRoot
from transforms.id_number import is_valid_id_number

PG = "postgresql+psycopg2://postgres@127.0.0.1:5432"
PG_ADMIN = f"{PG}/postgres"


@contextlib.contextmanager
def pg_database(prefix: str, create_options: str = "") -> Iterator[str]:
    """A throwaway PostgreSQL database ``<prefix>_<8 hex>`` on 127.0.0.1 (``CREATE DATABASE``
    with ``create_options``), dropped WITH (FORCE) on exit; yields its SQLAlchemy URL."""
    db = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f"CREATE DATABASE {db}{create_options}")
    try:
        yield f"{PG}/{db}"
    finally:
        with admin.connect() as c:
            c.exec_driver_sql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        admin.dispose()


def department_folders(
    tmp_path: Path, spec: dict[str, Any], queries: dict[str, str] | None = None
) -> tuple[Path, Path]:
    """``tmp_path/departments/<code>.yaml`` holding ``spec`` and ``tmp_path/sql/<code>/``
    with ``<table>.sql`` per entry of ``queries``; returns (departments, sql) folders."""
    deps, sql = tmp_path / "departments", tmp_path / "sql"
    code = spec["code"]
    (sql / code).mkdir(parents=True)
    deps.mkdir()
    for table, query in (queries or {}).items():
        (sql / code / f"{table}.sql").write_text(query, "utf-8")
    (deps / f"{code}.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), "utf-8")
    return deps, sql


def use_department_folders(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    spec: dict[str, Any],
    queries: dict[str, str] | None = None,
) -> None:
    """``department_folders``, then DATACLOUD_DEPARTMENTS_DIR and DATACLOUD_SQL_DIR point at them."""
    deps, sql = department_folders(tmp_path, spec, queries)
    monkeypatch.setenv("DATACLOUD_DEPARTMENTS_DIR", str(deps))
    monkeypatch.setenv("DATACLOUD_SQL_DIR", str(sql))


def use_incremental_gongan(tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped gongan department with ``czrk`` switched from full to incremental, in
    ``tmp_path/departments`` (DATACLOUD_DEPARTMENTS_DIR points there)."""
    depts = tmp_path / "departments"
    depts.mkdir()
    text = (repo / "dags" / "departments" / "gongan.yaml").read_text(encoding="utf-8")
    assert "mode: full" in text
    (depts / "gongan.yaml").write_text(text.replace("mode: full", "mode: incremental"), "utf-8")
    monkeypatch.setenv("DATACLOUD_DEPARTMENTS_DIR", str(depts))


def free_port() -> int:
    """A TCP port on 127.0.0.1 free at the time of asking."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_night(root: StorageRoot, persons: int, ds: date, run_id: str) -> None:
    """A sample night of ``persons`` (seed 20261120) into ``root`` (also DATACLOUD_ROOT):
    SQLite department databases, ``nightly.extract`` and ``nightly.stage`` of every
    department table, then ``curate_all``."""
    from datacloud import nightly
    from datacloud.curation_night import curate_all
    from datacloud.demo import departments as sample_departments
    from datacloud.sample import generate, write_sqlite

    write_sqlite(generate(persons, 20261120, ds), root.samples())
    depts = sample_departments()  # those with a sample database
    for dept in depts:
        for table in dept.tables:
            url = f"sqlite:///{root.samples() / (dept.code + '.db')}"
            nightly.extract(StorageRoot.from_env(), dept, table.name, ds, url)
            nightly.stage(StorageRoot.from_env(), dept, table.name, ds, run_id)
    curate_all(root, depts, ds, run_id)


@contextlib.contextmanager
def built_night_root(
    tmp_path_factory: pytest.TempPathFactory, name: str, persons: int, ds: date, run_id: str
) -> Iterator[StorageRoot]:
    """A fresh storage root (DATACLOUD_ROOT set while open) holding ``build_night``'s night;
    yields its ``StorageRoot``."""
    folder = tmp_path_factory.mktemp(name) / "root"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATACLOUD_ROOT", str(folder))
        r = StorageRoot.from_env()
        build_night(r, persons, ds, run_id)
        yield r


def full_id_numbers(text: str) -> set[str]:
    """18-character ID numbers with a valid check character found in the text."""
    return {
        m
        for m in re.findall(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])", text)
        if is_valid_id_number(m.upper())
    }


def person_columns(id_source: str = "sfzh", name_source: str = "xm") -> dict[str, Any]:
    """A person table's required mapping: id_number and name from the given source columns."""
    return {
        "id_number": {"source": id_source, "normalise": "id_number", "required": True},
        "name": {"source": name_source, "normalise": "person_name", "required": True},
    }


def department_spec(
    code: str = "rs",
    name: str = "人社厅",
    table: str = "cbry",
    kind: str = "person",
    columns: dict[str, Any] | None = None,
    **table_options: Any,
) -> dict[str, Any]:
    """A one-table department's YAML as a dict (connection ``dept_<code>``, primary key ``id``,
    ``columns`` by default ``person_columns()``); ``table_options`` go into the table."""
    return {
        "code": code,
        "name": name,
        "connection_id": f"dept_{code}",
        "tables": [
            {
                "name": table,
                "kind": kind,
                **table_options,
                "primary_key": ["id"],
                "columns": person_columns() if columns is None else columns,
            }
        ],
    }


def rk_incremental_spec(**table_options: Any) -> dict[str, Any]:
    """Department 'rk' (测试部门) with table ryxx of persons, incremental on gxsj (an hour's
    overlap), id_number from gmsfhm and name from xm."""
    return department_spec(
        "rk",
        "测试部门",
        "ryxx",
        mode="incremental",
        cursor="gxsj",
        overlap_minutes=60,
        columns=person_columns("gmsfhm"),
        **table_options,
    )

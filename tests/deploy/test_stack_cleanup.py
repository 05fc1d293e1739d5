"""The e2e driver cleans up after a stack that fails to start (processes, databases, folder).

Real PostgreSQL and MariaDB; runs under ``make e2e`` after the scheduler tests (file order),
so no other stack of this driver is alive.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import stack
from sqlalchemy import create_engine, text

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.environ.get("DATACLOUD_E2E_STACK") != "1",
        reason="drops and creates the e2e_ databases; run by `make e2e` (DATACLOUD_E2E_STACK=1)",
    ),
]


def _e2e_databases() -> list[str]:
    """Databases named e2e_* on the local PostgreSQL and MariaDB."""
    found = []
    for url, query in [
        (f"{stack.PG}/postgres", "SELECT datname FROM pg_database"),
        (f"{stack.MARIADB}/", "SHOW DATABASES"),
    ]:
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                found += [r[0] for r in conn.execute(text(query)) if r[0].startswith(stack.PREFIX)]
        finally:
            engine.dispose()
    return found


def test_a_stack_that_fails_to_start_leaves_nothing_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No metadata database: ``airflow db migrate`` fails after the samples were seeded."""
    monkeypatch.setattr(stack, "create_metadata_db", lambda: None)
    seeded = []
    real_seed = stack.seed_samples

    def seed_and_look(persons: int, run_dir: Path) -> None:
        real_seed(persons, run_dir)
        seeded.extend(_e2e_databases())

    monkeypatch.setattr(stack, "seed_samples", seed_and_look)
    with (
        pytest.raises(stack.StackError, match="db migrate exited"),
        stack.night("local", persons=50) as done,
    ):
        pytest.fail(f"the night should not have started: {done}")
    assert len(seeded) == 2 * len(stack.SAMPLE_DEPTS)  # both servers were seeded, then:
    assert _e2e_databases() == []
    assert not list(Path(tempfile.gettempdir()).glob("datacloud-e2e-local-*"))

"""``datacloud history`` and ``datacloud curated --as-of`` on real curated Delta tables."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from test_curate import C, nights
from typer.testing import CliRunner

from datacloud.cli import app
from datacloud.paths import StorageRoot


def test_history_and_as_of_commands(storage_root: StorageRoot, tmp_path: Path) -> None:
    nights(storage_root)
    runner = CliRunner()
    res = runner.invoke(app, ["history", "person"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    lines = [line for line in res.output.splitlines() if "MERGE" in line or "WRITE" in line]
    assert [("2026-11-20" in ln, "2026-11-18" in ln) for ln in (lines[0], lines[-1])] == [
        (True, False),
        (False, True),
    ]
    assert "WRITE (full)" in lines[-1]
    out = tmp_path / "p.parquet"
    res = runner.invoke(app, ["curated", "person", "--as-of", "2026-11-18", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "version 1: 3 rows" in res.output  # 0 wrote it, 1 enabled deletion vectors
    assert C in pq.read_table(out)["id_number"].to_pylist()  # deleted since, readable as of then
    res = runner.invoke(app, ["curated", "person", "--as-of", "2026-10-01"])
    assert res.exit_code != 0

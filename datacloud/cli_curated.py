"""``datacloud history`` and ``datacloud curated``: a curated table's versions, and its rows
now or as of an earlier night (registered on the app by ``datacloud.cli``).

pyarrow and deltalake are imported when a command runs, not when ``datacloud --help`` starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from datacloud import business_day
from datacloud.canonical import CURATED_TABLES
from datacloud.cli_common import (
    EXIT_UNAVAILABLE,
    UserError,
    console,
    parse_date,
    refuse_existing,
)
from datacloud.paths import StorageRoot

if TYPE_CHECKING:
    from datacloud.storage import DataPath


def curated_table(table: str) -> DataPath:
    from datacloud.delta import open_table

    if table not in CURATED_TABLES:
        raise UserError(f"TABLE: expected one of {', '.join(CURATED_TABLES)}, got {table!r}")
    path = StorageRoot.from_env().curated(table)
    if open_table(path) is None:
        raise UserError(f"curated/{table} has not been published yet ({path})", EXIT_UNAVAILABLE)
    return path


def history(
    table: Annotated[str, typer.Argument(help="curated table, e.g. person")],
    limit: Annotated[int, typer.Option(min=1, help="newest commits to show")] = 30,
) -> None:
    """The versions of a curated table: time, business date, run, operation, rows changed."""
    from datacloud.delta import history as table_history

    path = curated_table(table)
    out = Table(title=f"curated/{table}")
    for col in ("version", "committed (Shanghai)", "business date", "run id", "operation"):
        out.add_column(col)
    for col in ("added", "updated", "removed"):
        out.add_column(col, justify="right")
    for h in table_history(path)[:limit]:
        ts = h["timestamp"]
        when = (
            business_day.from_millis(int(ts)).strftime("%Y-%m-%d %H:%M:%S")
            if isinstance(ts, int)
            else ""
        )
        full = " (full)" if h["full_rebuild"] == "true" else ""
        out.add_row(
            str(h["version"]),
            when,
            str(h["ds"] or ""),
            str(h["run_id"] or ""),
            f"{h['operation']}{full}",
            *(
                "" if h[k] is None else f"{int(str(h[k])):,}"
                for k in ("rows_added", "rows_updated", "rows_removed")
            ),
        )
    console.print(out)


def curated(
    table: Annotated[str, typer.Argument(help="curated table, e.g. person")],
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="business date YYYY-MM-DD: the table as published that night"),
    ] = None,
    version: Annotated[int | None, typer.Option(help="a table version instead of --as-of")] = None,
    out: Annotated[Path | None, typer.Option(help="write the rows to this Parquet file")] = None,
    force: Annotated[
        bool, typer.Option("--force", "--overwrite", help="overwrite an existing --out file")
    ] = False,
) -> None:
    """Read a curated table now or as of an earlier night: version, rows, optionally Parquet."""
    import pyarrow.parquet as pq

    from datacloud.delta import load, read_table, version_as_of

    if as_of is not None and version is not None:
        raise UserError("give --as-of or --version, not both")
    if out is not None:
        refuse_existing([out], force)
    path = curated_table(table)
    if as_of is not None:
        version = version_as_of(path, parse_date(as_of).isoformat())
        if version is None:
            raise UserError(
                f"curated/{table} has no version published on or before {as_of}", EXIT_UNAVAILABLE
            )
    try:
        rows = read_table(path, version=version)
    except Exception as e:
        raise UserError(f"curated/{table} version {version}: cannot read ({e})") from None
    shown = load(path, version).version()
    console.print(f"curated/{table} version {shown}: {rows.num_rows:,} rows")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        try:  # "x": an --out that appeared since the check is still not overwritten
            with out.open("wb" if force else "xb") as fh:
                pq.write_table(rows, fh)
        except FileExistsError:
            raise UserError(f"--out: {out} exists; give --force to overwrite it") from None
        console.print(f"wrote {out}")

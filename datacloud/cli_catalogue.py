"""``datacloud catalogue``: the resource catalogue (资源目录) of the curated tables.

``datacloud catalogue build [--date D]`` rebuilds ``<state root>/catalogue/index.html`` and
``catalogue.json`` from the curated tables' Delta logs, the night's curated quality gate
(default: the last completed curation's night), the sharing types of ``dags/curation.yaml`` and
the matters catalogue; the curation night does the same at its end. ``datacloud catalogue show
[TABLE] [--json]`` prints the built catalogue: every table, or one table's fields. Exit codes:
0 done; 2 a bad option, an unknown table or a configuration error; 3 no catalogue built yet.

pydantic, pyarrow and deltalake are imported when a command runs, not at ``datacloud --help``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from datacloud.cli_common import EXIT_UNAVAILABLE, UserError, console, ok, parse_date
from datacloud.paths import StorageRoot

catalogue_app = typer.Typer(
    help="The resource catalogue (资源目录) of the curated tables: build it, show it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@catalogue_app.command("build")
def build(
    business_date: Annotated[
        str | None,
        typer.Option(
            "--date",
            help="the night whose quality gate to show, YYYY-MM-DD (default: the last curation's)",
        ),
    ] = None,
) -> None:
    """Rebuild catalogue/index.html and catalogue.json from the curated tables as published."""
    from datacloud import catalogue_night
    from datacloud.config import load_departments

    ds = parse_date(business_date) if business_date else None
    root = StorageRoot.from_env()
    catalogue = catalogue_night.build_catalogue(root, load_departments(), ds)
    html = catalogue_night.write_catalogue(root, catalogue)
    published = sum(1 for t in catalogue.tables if t.published)
    console.print(
        ok(
            f"{len(catalogue.tables)} tables ({published} published), "
            f"{sum(len(t.fields) for t in catalogue.tables)} fields"
        )
    )
    console.print(f"{html}")
    console.print(f"{html.parent / catalogue_night.JSON_NAME}")


def _read(root: StorageRoot) -> dict[str, Any]:
    from datacloud.catalogue_night import JSON_NAME, catalogue_dir

    path = catalogue_dir(root) / JSON_NAME
    if not path.is_file():
        raise UserError(
            f"no resource catalogue yet ({path}): the curation night builds it, or run "
            "`datacloud catalogue build`",
            EXIT_UNAVAILABLE,
        )
    try:
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(
            f"{path}: cannot read ({type(e).__name__}); rebuild it", EXIT_UNAVAILABLE
        ) from None
    return doc


def _names(codes: list[str]) -> str:
    return ", ".join(codes) or "-"


@catalogue_app.command("show")
def show(
    table: Annotated[
        str | None, typer.Argument(help="a curated table, e.g. person: its fields")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="print catalogue.json (or its table)")
    ] = False,
) -> None:
    """Print the built catalogue: every curated table, or one table's fields."""
    doc = _read(StorageRoot.from_env())
    tables = {t["name"]: t for t in doc["tables"]}
    if table is not None and table not in tables:
        raise UserError(f"TABLE: expected one of {', '.join(tables)}, got {table!r}")
    if as_json:
        console.print_json(data=tables[table] if table else doc, ensure_ascii=False)
        return
    if table is None:
        out = Table(title=f"资源目录 (generated {doc['generated_at']})")
        for col in ("table", "名称", "共享类型", "更新周期", "version", "rows", "quality gate"):
            out.add_column(col, justify="right" if col in {"version", "rows"} else "left")
        for t in doc["tables"]:
            out.add_row(
                t["name"],
                t["name_zh"],
                t["sharing"],
                t["update_cycle"],
                "-" if t["version"] is None else str(t["version"]),
                "-" if t["rows"] is None else f"{t['rows']:,}",
                t["quality_gate"]["status_zh"],
            )
        console.print(out)
        return
    t = tables[table]
    out = Table(title=f"{t['name']} {t['name_zh']}: {t['sharing']}, {t['update_cycle']}")
    for col in ("field", "中文名", "type", "sources", "authority", "matters"):
        out.add_column(col)
    for f in t["fields"]:
        out.add_row(
            f["name"],
            f["name_zh"],
            f["type"],
            _names(f["sources"]),
            _names(f["authority"]),
            _names([m["code"] for m in f["matters"]]),
        )
    console.print(out)

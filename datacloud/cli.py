"""The ``datacloud`` command line.

Exit codes (docs/operations.md "Command-line exit codes"): 0 done; 1 a negative answer (a
lookup found no record, a demo or ``run`` DAG run failed, the audit chain is broken); 2 a usage,
input or configuration error (one message on stderr naming the option or file, never a
traceback); 3 something the command needs is unavailable (the lookup audit trail or audit key,
curated data not published, the server's port, a department's connection); 70 an internal
error (a bug: one line, ``DATACLOUD_DEBUG=1`` for the traceback); 130 interrupted. ``run``
returns the code, ``main`` hands it to the shell. The consoles print no rich markup: text from
arguments, files and data is printed verbatim, and ID and mobile numbers in error messages are
masked.
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from datacloud import business_day, cli_catalogue, cli_curated, cli_run
from datacloud.cli_common import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_NEGATIVE,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    UserError,
    console,
    dept_code,
    err,
    exit_now,
    ok,
    parse_date,
    progress,
    refuse_existing,
)
from datacloud.cli_problems import problems_app
from datacloud.lookup.audit_cli import audit_app
from datacloud.lookup.cli import lookup_app
from datacloud.lookup.proof_cli import proof_app
from datacloud.lookup.tracker_cli import tracker_command
from datacloud.paths import REPO_ROOT, StorageRoot, departments_dir

# Light modules are imported here; pydantic (config), pyarrow, deltalake, numpy, Great
# Expectations and Airflow stay inside the commands that use them, so ``datacloud --help``
# starts in well under a second (docs/architecture.md, "Imports").
if TYPE_CHECKING:
    from datacloud.config import Department

app = typer.Typer(
    help="datacloud: nightly ETL for the provincial data-resource cloud (政务数据资源共享平台).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(lookup_app, name="lookup")
app.add_typer(audit_app, name="audit")
app.add_typer(proof_app, name="proof")
app.command("tracker")(tracker_command)


@app.command()
def sample(
    persons: Annotated[
        int, typer.Option(min=10, help="number of persons in the household register")
    ] = 20_000,
    seed: Annotated[
        int, typer.Option(help="random seed; the same seed gives the same data")
    ] = 20261120,
    out: Annotated[Path | None, typer.Option(help="folder for the SQLite files <dept>.db")] = None,
    url: Annotated[
        str | None,
        typer.Option(
            help="SQLAlchemy URL of a PostgreSQL or MariaDB database to load instead; "
            "'{dept}' in it gives each department its own database"
        ),
    ] = None,
    business_date: Annotated[
        str, typer.Option("--date", help="business date YYYY-MM-DD")
    ] = "2026-11-20",
    dirt: Annotated[
        list[str] | None, typer.Option(help="dirt rate override kind=rate, repeatable")
    ] = None,
) -> None:
    """Write the five sample department databases (gongan, scjg, bdc, gjj, mz) and a ground truth."""
    from datacloud.sample import DirtRates, generate, write_ground_truth, write_sqlite, write_url

    ds = parse_date(business_date)
    try:
        rates = DirtRates.parse(dirt or [])
    except ValueError as e:
        raise UserError(f"--dirt: {e}") from None
    target = out or StorageRoot.from_env().samples()
    if target.exists() and not target.is_dir():
        raise UserError(f"--out: {target} is a file, expected a folder")
    with progress() as p:
        t = p.add_task(f"generating {persons:,} persons (seed {seed})", total=None)
        data = generate(persons, seed, ds, rates)
        p.update(
            t, description=f"generated {persons:,} persons (seed {seed})", total=1, completed=1
        )
        if url:
            t = p.add_task("loading into the database", total=None)
            written = write_url(data, url)
            p.update(t, description=f"loaded into {', '.join(written)}", total=1, completed=1)
        else:
            t = p.add_task(f"writing SQLite files to {target}", total=None)
            write_sqlite(data, target)
            p.update(t, total=1, completed=1)
        gt = write_ground_truth(data, target)
    table = Table(title="sample departments")
    table.add_column("department")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for dept, tables in data.tables.items():
        for name, rows in tables.items():
            table.add_row(dept, name, f"{rows.num_rows:,}")
    console.print(table)
    console.print(f"ground truth: {gt}")


@app.command()
def normalise(
    kind: Annotated[str, typer.Argument(help="person or enterprise")],
    input_csv: Annotated[
        Path, typer.Argument(metavar="INPUT.csv", help="UTF-8 CSV with canonical column names")
    ],
    out: Annotated[Path, typer.Option(help="folder for valid.parquet and rejected.parquet")],
    business_date: Annotated[
        str | None,
        typer.Option("--date", help="business date YYYY-MM-DD (default: today in Shanghai)"),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", "--overwrite", help="overwrite valid/rejected.parquet in --out"),
    ] = False,
) -> None:
    """Normalise a CSV of person or enterprise records with the platform's rules."""
    from datacloud.normalise_csv import InputError, normalise_csv

    if kind not in ("person", "enterprise"):
        raise UserError(f"KIND: expected 'person' or 'enterprise', got {kind!r}")
    ds = parse_date(business_date) if business_date else business_day.today()
    if out.exists() and not out.is_dir():
        raise UserError(f"--out: {out} is a file, expected a folder")
    if input_csv.is_file():  # else normalise_csv names the input's problem, writing nothing
        refuse_existing([out / "valid.parquet", out / "rejected.parquet"], force)
    try:
        result = normalise_csv(kind, input_csv, out, ds)  # type: ignore[arg-type]
    except InputError as e:  # CsvHeaderError and other user_error ValueErrors: see main()
        raise UserError(str(e)) from None
    console.print(
        f"{result.rows_in:,} rows in: {result.rows_valid:,} valid -> {result.valid}, "
        f"{result.rows_rejected:,} rejected -> {result.rejected}"
    )


@app.command()
def validate(
    folder: Annotated[Path | None, typer.Option(help="folder of department YAMLs")] = None,
    connect: Annotated[
        bool,
        typer.Option(
            "--connect",
            help="also run each extraction query on its source with no rows (needs the "
            "department's connection AIRFLOW_CONN_<ID>): a mapped column it does not select "
            "is named",
        ),
    ] = False,
    dept: Annotated[
        str | None, typer.Option(help="with --connect: only this department's source")
    ] = None,
) -> None:
    """Validate every department YAML, check that its extraction queries exist, check
    dags/curation.yaml against the departments' authority lists and dags/matters.yaml (the
    matters catalogue) against the curated-table registry and the departments; --connect
    compiles the queries against the sources."""
    from datacloud.config import check_sql, load_departments
    from datacloud.curation_config import config_path, load_curation_config
    from datacloud.matters import catalogue_problems, matters_path, read_matters

    where = folder or departments_dir()
    if not where.is_dir():
        raise UserError(f"--folder: {where} is not a folder")
    depts = load_departments(where)
    if not depts:
        raise UserError(f"--folder: no department YAML (*.yaml) in {where}")
    if dept is not None and not connect:
        raise UserError("--dept: only with --connect")
    if dept is not None and dept_code(dept) not in {d.code for d in depts}:
        raise UserError(f"--dept: no department {dept!r} in {where}")
    problems = [p for d in depts for p in check_sql(d)]
    if problems:
        raise UserError("\n".join(problems))
    for d in depts:
        console.print(ok(f"{d.code}: {d.name}, {len(d.tables)} table(s)"))
    load_curation_config().fingerprint(depts)  # resolves every survivorship rule
    console.print(ok(f"survivorship: {config_path()}"))
    path = matters_path()  # every unknown table, field, item or department: one line each
    catalogue = read_matters(path)
    problems = catalogue_problems(catalogue, {d.code for d in depts})
    if problems:
        raise UserError("\n".join(f"{path}: {p}" for p in problems))
    console.print(
        ok(f"matters: {path}, {len(catalogue.matters)} matter(s), {len(catalogue.items)} item(s)")
    )
    if connect:
        _validate_sources([d for d in depts if dept is None or d.code == dept])


def _validate_sources(depts: list[Department]) -> None:
    """Each department's queries compiled on its source with no rows (validate --connect)."""
    from datacloud import source_check

    # importing Airflow (its connection parser) creates AIRFLOW_HOME: the embedded one
    source_check.airflow_home_default(str(StorageRoot.from_env().airflow_home()))
    problems: list[str] = []
    for d in depts:
        try:
            url = source_check.connection_url(d, os.environ)
            found = source_check.check_queries(d, url)
        except (source_check.ConnectionMissing, source_check.SourceUnreachable) as e:
            raise UserError(str(e), EXIT_UNAVAILABLE) from None
        except ValueError as e:
            raise UserError(str(e)) from None
        problems += found.problems
        for t in d.tables:
            if t.name in found.failed:
                continue
            console.print(
                ok(f"{d.code}.{t.name}: the query on the source returns every mapped column")
            )
            if found.unmapped.get(t.name):
                console.print(
                    f"   unmapped (selected, not mapped; raw only): "
                    f"{', '.join(found.unmapped[t.name])}"
                )
    if problems:
        raise UserError("\n".join(problems))


@app.command()
def report(
    dept: Annotated[str, typer.Option(help="department code, e.g. gongan")],
    business_date: Annotated[str, typer.Option("--date", help="business date YYYY-MM-DD")],
) -> None:
    """Regenerate one department's load report (index.html, report.json, rejected.csv) and the overview."""
    from datacloud.config import ConfigError, load_departments
    from datacloud.nightly import department  # pyarrow, deltalake
    from datacloud.report import write_department_report, write_overview

    ds = parse_date(business_date)
    code = dept_code(dept)
    try:
        d = department(code)
    except ConfigError as e:
        if "cannot read" in str(e):
            raise UserError(f"--dept: no department {dept!r} (no YAML for it)") from None
        raise
    root = StorageRoot.from_env()
    out = write_department_report(root, d, ds)
    overview = write_overview(root, load_departments(), ds)
    console.print(f"{out.parent / 'index.html'} ({out.status}), report.json, rejected.csv")
    console.print(f"overview: {overview}")


@app.command()
def docs() -> None:
    """Regenerate docs/rules.md from the rules catalogue."""
    from transforms.rules import rules_markdown

    path = REPO_ROOT / "docs" / "rules.md"
    path.write_text(rules_markdown(), encoding="utf-8")
    console.print(f"wrote {path}")


# a curated table's versions and rows (datacloud.cli_curated), in this place of --help
app.command()(cli_curated.history)
app.command()(cli_curated.curated)
# the resource catalogue (资源目录) of the curated tables (datacloud.cli_catalogue)
app.add_typer(cli_catalogue.catalogue_app, name="catalogue")
# the problem loop: returned feedback workbooks, the inbox (datacloud.cli_problems)
app.add_typer(problems_app, name="problems")
# one department's night through Airflow with its configured connection (datacloud.cli_run)
app.command("run")(cli_run.run_night)


@app.command()
def demo(
    persons: Annotated[int, typer.Option(min=10, help="persons in the sample register")] = 20_000,
    seed: Annotated[int, typer.Option(help="random seed of the sample")] = 20261120,
    business_date: Annotated[
        str, typer.Option("--date", help="business date YYYY-MM-DD")
    ] = "2026-11-20",
) -> None:
    """Generate the sample departments and run one night through Airflow (embedded, no server)."""
    from datacloud import demo as d
    from datacloud.config import load_departments
    from datacloud.sample import DirtRates, generate, write_ground_truth, write_sqlite

    ds = parse_date(business_date)
    root = StorageRoot.from_env()
    depts = d.departments()
    others = sorted({x.code for x in load_departments()} - {x.code for x in depts})
    if others:  # a department added by YAML has no sample database: `datacloud run` runs it
        console.print(
            f"not in the demo (no sample database; use datacloud run): {', '.join(others)}"
        )
    samples = root.samples()
    failed: list[str] = []
    with progress() as p:
        t = p.add_task(f"sample departments: {persons:,} persons", total=None)
        data = generate(persons, seed, ds, DirtRates())
        write_sqlite(data, samples)
        write_ground_truth(data, samples)
        p.update(t, total=1, completed=1)
        env = d.airflow_env(root, depts, samples)
        t = p.add_task("airflow db migrate (SQLite metadata)", total=None)
        ok, _, log = d.migrate(env, root)
        p.update(t, total=1, completed=1)
        if not ok:
            raise UserError(f"airflow db migrate failed; see {log}", EXIT_NEGATIVE)
        for dag_id in [f"dept_{x.code}" for x in depts] + ["curation"]:
            t = p.add_task(
                f"airflow dags test {dag_id} {d.logical_date_for(ds).isoformat()}", total=None
            )
            outcome = d.run_dag(dag_id, ds, env, root)
            mark = "ok" if outcome.ok else "FAILED"
            p.update(t, description=f"{dag_id} {mark}", total=1, completed=1)
            if not outcome.ok:
                failed.append(f"{dag_id} (log: {outcome.log})")
    _print_summary(root, depts, ds)
    if failed:
        raise UserError("these DAG runs failed: " + "; ".join(failed), EXIT_NEGATIVE)


def _print_summary(root: StorageRoot, depts: list[Department], ds: date) -> None:
    table = Table(title=f"night of {ds.isoformat()}")
    for col in ("department", "status", "extracted", "accepted", "rejected", "deduplicated"):
        table.add_column(col, justify="left" if col in {"department", "status"} else "right")
    for dept in depts:
        path = root.report_dir(dept.code, ds) / "report.json"
        if not path.is_file():
            table.add_row(dept.code, "no report", "", "", "", "")
            continue
        r = json.loads(path.read_text(encoding="utf-8"))
        tot = r["totals"]
        table.add_row(
            dept.code,
            r["status_zh"],
            f"{tot['rows_in']:,}",
            f"{tot['rows_accepted']:,}",
            f"{tot['rows_rejected']:,}",
            f"{tot['rows_deduplicated']:,}",
        )
    console.print(table)
    console.print(cli_run.curated_summary(root))
    console.print(f"storage root:  {root.root} (state); data {root.data_root}")
    console.print(
        f"reports:       {root.root / 'reports' / 'index.html'} (all departments); "
        f"per department <department>/{ds.isoformat()}/index.html, report.json, rejected.csv"
    )
    console.print(
        f"curated:       {root.data_root / 'curated'}/<table> "
        "(Delta Lake; open with polars or deltalake's DeltaTable.scan())"
    )


def _error(message: str) -> None:
    """One message on stderr, verbatim (no markup) and with ID and mobile numbers masked."""
    from datacloud.masking import mask_text

    err.print(Text.assemble(("error:", "red"), " ", mask_text(message)))


def _is_user_error(e: BaseException) -> bool:
    """Exceptions other modules raise for a user's mistake: their own ``user_error = True``
    (e.g. normalise_csv's CsvHeaderError, a repeated CSV column) or an input error class."""
    from datacloud.normalise_csv import InputError

    return isinstance(e, InputError) or getattr(e, "user_error", False) is True


def run(args: list[str] | None = None) -> int:
    """Run the command line and return its exit code (the module docstring lists them)."""
    from pydantic import ValidationError

    from datacloud.config import ConfigError

    try:
        code = app(args=args, prog_name="datacloud", standalone_mode=False)
    except UserError as e:
        _error(str(e))
        return e.code
    except (ConfigError, ValidationError) as e:
        _error(str(e))
        return EXIT_USAGE
    except typer.Exit as e:  # typer vendors click: its exceptions, not click's
        return int(e.exit_code)
    except typer.Abort:
        err.print("aborted")
        return EXIT_INTERRUPTED
    except typer.TyperException as e:
        if hasattr(e, "show"):  # usage errors: click's own message (plain text), exit 2
            e.show()
            return int(getattr(e, "exit_code", EXIT_USAGE))
        _error(f"internal error: {type(e).__name__}: {e}")
        return EXIT_INTERNAL
    except Exception as e:
        if _is_user_error(e):
            _error(str(e))
            return EXIT_USAGE
        if os.environ.get("DATACLOUD_DEBUG"):
            raise
        _error(f"internal error: {type(e).__name__}: {e}")
        err.print("run with DATACLOUD_DEBUG=1 for the traceback", style="dim")
        return EXIT_INTERNAL
    # standalone_mode=False hands back typer.Exit's code, or the command's return value (None)
    return code if isinstance(code, int) else EXIT_OK


def main() -> None:
    """Entry point (the ``datacloud`` console script): the exit code ``run`` gives, and
    nothing after it (``cli_common.exit_now``)."""
    exit_now(run())

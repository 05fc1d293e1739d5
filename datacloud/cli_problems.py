"""``datacloud problems``: import a department's returned feedback workbook, process the
departments' inbox, write a department's feedback workbook (docs/problems.md, "Responding").

pyarrow, deltalake and openpyxl are imported when a command runs, not when ``datacloud --help``
starts. ``python -m datacloud.cli_problems`` runs the same commands (with the exit codes of
``datacloud``: 0 done, 1 a file of the inbox was refused, 2 a refused file or bad option, 3 no
problem table yet).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from datacloud.cli_common import (
    EXIT_INTERNAL,
    EXIT_NEGATIVE,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    UserError,
    console,
    dept_code,
    err,
    exit_now,
    ok,
    refuse_existing,
)
from datacloud.masking import mask_text
from datacloud.paths import StorageRoot

if TYPE_CHECKING:
    import pyarrow as pa

problems_app = typer.Typer(
    help="The problem-data loop (问题数据闭环): departments' responses and feedback workbooks.",
    no_args_is_help=True,
    add_completion=False,
)


def _problems(root: StorageRoot) -> pa.Table:
    from datacloud import problem_store

    if problem_store.version(root) is None:
        raise UserError(
            f"no problem table yet under {root.problems_table()}: the tracking night has not run",
            EXIT_UNAVAILABLE,
        )
    return problem_store.read_problems(root)


@problems_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="the returned .xlsx feedback workbook")],
    dept: Annotated[str, typer.Option("--dept", help="the department that returned it")],
    by: Annotated[
        str | None, typer.Option(help="who answered (default: the OS user running this)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Check a returned workbook and append its responses to the department's log (all or
    nothing; a file already imported changes nothing)."""
    from datacloud.problem_responses import ResponseFileError, default_by, import_file

    code = dept_code(dept)
    if not file.is_file():
        raise UserError(f"FILE: {file} is not a file")
    root = StorageRoot.from_env()
    problems = _problems(root)
    try:
        result = import_file(
            root, code, file, by=by or default_by(), channel="inbox", problems=problems
        )
    except ResponseFileError as e:
        raise UserError(e.message) from None
    if as_json:
        console.print_json(json.dumps(result.as_dict(), ensure_ascii=False))
    elif result.already_imported:
        console.print(ok(f"{mask_text(file.name)}: already imported, nothing changed"))
    else:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(result.by_response.items()))
        shown = mask_text(file.name)
        console.print(ok(f"{shown}: {result.recorded} responses recorded ({counts or 'none'})"))


@problems_app.command()
def inbox(
    dept: Annotated[str | None, typer.Option("--dept", help="only this department's inbox")] = None,
    min_age: Annotated[
        float,
        typer.Option(min=0, help="skip files written less than this many seconds ago"),
    ] = 30.0,
    as_json: Annotated[bool, typer.Option("--json", help="print the outcomes as JSON")] = False,
) -> None:
    """Process <state root>/problems/inbox/<dept>/: accepted files to done/, refused ones to
    rejected/ with a .error.txt; exit 1 when a file was refused."""
    from datacloud.problem_inbox import process_inbox

    code = dept_code(dept) if dept else None
    root = StorageRoot.from_env()
    outcomes = process_inbox(root, code, problems=_problems(root), min_age_seconds=min_age)
    if as_json:
        console.print_json(json.dumps([o.as_dict() for o in outcomes], ensure_ascii=False))
    else:
        for o in outcomes:
            line = f"{o.dept}/{o.file}: {o.outcome}, {o.recorded} responses"
            console.print(ok(line) if o.outcome != "rejected" else f"refused {line}: {o.error}")
        if not outcomes:
            console.print("nothing waiting in the inbox")
    if any(o.outcome == "rejected" for o in outcomes):
        raise typer.Exit(EXIT_NEGATIVE)


@problems_app.command()
def workbook(
    dept: Annotated[str, typer.Option("--dept", help="the department")],
    out: Annotated[Path, typer.Option(help="the .xlsx to write")],
    force: Annotated[bool, typer.Option(help="overwrite --out")] = False,
) -> None:
    """Write a department's feedback workbook of its open problems."""
    from datacloud.problem_workbook import write_workbook

    code = dept_code(dept)
    refuse_existing([out], force)
    if out.suffix.lower() != ".xlsx":
        raise UserError(f"--out: expected a .xlsx file name, got {out.name!r}")
    root = StorageRoot.from_env()
    write_workbook(out, _problems(root), code)
    console.print(ok(f"{out} written"))


def run(args: list[str] | None = None) -> int:
    """The commands above outside ``datacloud`` (``python -m datacloud.cli_problems``)."""
    try:
        code = problems_app(args=args, prog_name="datacloud problems", standalone_mode=False)
    except UserError as e:
        err.print(f"error: {mask_text(str(e))}")
        return e.code
    except typer.Exit as e:
        return int(e.exit_code)
    except typer.TyperException as e:
        if hasattr(e, "show"):
            e.show()
            return int(getattr(e, "exit_code", EXIT_USAGE))
        err.print(f"error: internal error: {type(e).__name__}")
        return EXIT_INTERNAL
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    exit_now(run())

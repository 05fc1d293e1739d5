"""What every ``datacloud`` command shares: the consoles (no rich markup), the exit codes,
``UserError`` and the parsing of common options."""

from __future__ import annotations

import contextlib
import os
import sys
from datetime import date
from pathlib import Path
from typing import NoReturn

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

# no markup: a '[/]' or '[bold]' in an argument, a path, a YAML or a table cell prints verbatim
console = Console(markup=False, soft_wrap=True)
err = Console(stderr=True, markup=False, highlight=False, soft_wrap=True)

EXIT_OK = 0
EXIT_NEGATIVE = 1  # a lookup found no record; a demo DAG run failed
EXIT_USAGE = 2  # bad option, argument, input file or configuration
EXIT_UNAVAILABLE = 3  # audit trail or key unavailable; curated data not published
EXIT_INTERNAL = 70  # an unexpected error (EX_SOFTWARE): a bug
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """A problem the user can fix: printed as one clear message, exit code ``code`` (2)."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def ok(message: str) -> Text:
    return Text.assemble(("ok", "green"), " ", message)


def parse_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UserError(f"--date: expected YYYY-MM-DD, got {value!r}") from None


def dept_code(value: str) -> str:
    """A department code as --dept gives it: the config's code pattern, never a path."""
    from datacloud.config import CODE  # pydantic: not at the start of every command

    if not CODE.fullmatch(value):
        raise UserError(
            f"--dept: expected a department code (a lower-case letter, then 1-30 lower-case "
            f"letters, digits or _, e.g. gongan), got {value!r}"
        )
    return value


def refuse_existing(paths: list[Path], force: bool) -> None:
    """--out must not overwrite a file unless --force says so; a folder is never overwritten."""
    for path in paths:
        if path.is_dir():
            raise UserError(f"--out: {path} is a folder, expected a file path")
        if path.exists() and not force:
            raise UserError(f"--out: {path} exists; give --force to overwrite it")


def progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}", markup=False),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def exit_now(code: int) -> NoReturn:
    """End the process with ``code`` once the command has finished and printed everything.

    The native thread pools of Arrow and delta-rs are torn down at interpreter exit, and that
    teardown aborts now and then with ``terminate called without an active exception``
    (SIGABRT, exit -6/134) after a command has done its work and printed its answer
    (delta-rs#2184; seen here after reading the problem table). A script would take a
    finished command for a crash, so the console script flushes its output and ends with
    ``os._exit``: nothing runs after the command (every file the commands write is already
    fsynced and replaced, and the audit trail is fsynced per record before an answer).
    """
    import logging

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    logging.shutdown()
    os._exit(code)

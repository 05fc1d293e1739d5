"""The console script ends with the command's exit code and nothing after it: the teardown of
Arrow's and delta-rs's native thread pools at interpreter exit aborts now and then (SIGABRT,
``terminate called without an active exception``) after a command has printed its answer.
What runs at teardown is stood in for by an ``atexit`` handler that aborts: a real subprocess,
nothing mocked in the code under test."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import atexit, os, sys
atexit.register(os.abort)  # stands in for a native thread pool aborting at teardown
sys.argv = {argv!r}
from {module} import {func}
{call}
"""


@pytest.mark.parametrize(
    ("module", "func", "call", "argv", "code"),
    [
        ("datacloud.cli", "main", "main()", ["datacloud", "--help"], 0),
        ("datacloud.cli", "main", "main()", ["datacloud", "no-such-command"], 2),
        (
            "datacloud.cli_problems",
            "run",
            "from datacloud.cli_common import exit_now; exit_now(run(['--help']))",
            ["x"],
            0,
        ),
    ],
)
def test_the_exit_code_is_the_commands_whatever_teardown_does(
    module: str, func: str, call: str, argv: list[str], code: int
) -> None:
    script = SCRIPT.format(argv=argv, module=module, func=func, call=call)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == code, done.stderr[-2000:]

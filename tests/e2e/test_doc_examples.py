"""The examples of README.md and docs/ marked runnable run, as written, against a demo night.

A fenced ``sh`` or ``python`` block preceded by the line ``<!-- runnable -->`` is an example a
user can paste after ``make demo``: it runs here from a folder laid out like a checkout after the
demo (``var/`` the demo's storage root, ``.venv/`` the project's environment), with
``DATACLOUD_LOOKUP_DEV=1`` as a development machine has it. A shell block runs under
``bash -euo pipefail``: every command in it must succeed. Docs that drift from the code fail here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from datacloud.paths import REPO_ROOT

pytestmark = pytest.mark.e2e

MARKER = "<!-- runnable -->"
DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```(\w+)\s*$")


@dataclass(frozen=True)
class Example:
    doc: str
    line: int
    lang: str
    code: str

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}"


def runnable_examples(paths: list[Path]) -> list[Example]:
    """Every fenced block right after a ``<!-- runnable -->`` line, in file order."""
    found = []
    for path in paths:
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, text in enumerate(lines):
            if text.strip() != MARKER:
                continue
            fence = _FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
            if fence is None:
                raise AssertionError(f"{path.name}:{i + 1}: {MARKER} is not followed by a fence")
            end = lines.index("```", i + 2)
            code = "\n".join(lines[i + 2 : end]) + "\n"
            found.append(Example(path.relative_to(REPO_ROOT).as_posix(), i + 2, fence[1], code))
    return found


EXAMPLES = runnable_examples(DOCS)


def test_examples_are_marked_and_of_a_known_language() -> None:
    assert len(EXAMPLES) >= 3, "the runnable examples lost their markers"
    assert {e.lang for e in EXAMPLES} <= {"sh", "python"}, [str(e) for e in EXAMPLES]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A folder as a user's checkout looks after ``make demo``: var/ holds one small night."""
    work = tmp_path_factory.mktemp("checkout")
    (work / ".venv").symlink_to(Path(sys.executable).parent.parent)
    bin_dir = Path(sys.executable).parent
    env = dict(
        os.environ,
        DATACLOUD_ROOT=str(work / "var"),
        DATACLOUD_LOOKUP_DEV="1",
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        COLUMNS="200",
    )
    env.pop("DATACLOUD_AUDIT_KEY", None)
    demo = subprocess.run(
        [str(bin_dir / "datacloud"), "demo", "--persons", "400", "--date", "2026-11-20"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    return work, env


@pytest.mark.parametrize("example", EXAMPLES, ids=str)
def test_example_runs_as_written(example: Example, checkout: tuple[Path, dict[str, str]]) -> None:
    work, env = checkout
    if example.lang == "sh":
        cmd = ["bash", "-euo", "pipefail", "-c", example.code]
    else:
        cmd = [sys.executable, "-c", example.code]
    proc = subprocess.run(
        cmd, cwd=work, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, (
        f"{example} exits {proc.returncode}\n--- code\n{example.code}"
        f"--- stdout\n{proc.stdout[-2000:]}--- stderr\n{proc.stderr[-3000:]}"
    )

"""The project's docs stand alone: every relative link resolves inside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from datacloud.paths import REPO_ROOT

_LINK = re.compile(r"\]\(([^)\s]+)\)")
_DOCS = sorted([REPO_ROOT / "README.md", REPO_ROOT / "DEVELOPERS.md", *REPO_ROOT.glob("docs/*.md")])


def _relative_links(doc: Path) -> list[str]:
    links = _LINK.findall(doc.read_text(encoding="utf-8"))
    return [x for x in links if not re.match(r"^[a-z][a-z0-9+.-]*:", x) and not x.startswith("#")]


@pytest.mark.parametrize("doc", _DOCS, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_every_relative_link_resolves_inside_the_repository(doc: Path) -> None:
    repo = REPO_ROOT.resolve()
    for link in _relative_links(doc):
        target = (doc.parent / link.split("#", 1)[0]).resolve()
        assert target.is_relative_to(repo), f"{doc.name}: {link} points outside the repository"
        assert target.exists(), f"{doc.name}: {link} does not exist"


@pytest.mark.parametrize("doc", _DOCS, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_no_doc_names_the_workspace_outside_the_repository(doc: Path) -> None:
    assert "shared/docs" not in doc.read_text(encoding="utf-8"), f"{doc.name} names ../shared"


_TEST_REF = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+))?`")


def test_every_test_the_docs_name_exists() -> None:
    """docs/security.md (and any doc) names tests as `tests/x.py::name`: each must exist."""
    missing = []
    for doc in _DOCS:
        for file, name in _TEST_REF.findall(doc.read_text(encoding="utf-8")):
            path = REPO_ROOT / file
            if not path.is_file():
                missing.append(f"{doc.name}: {file}")
            elif name and not re.search(rf"^def {name}\(", path.read_text("utf-8"), re.M):
                missing.append(f"{doc.name}: {file}::{name}")
    assert not missing, missing

"""Generated docs stay true to the code."""

from __future__ import annotations

from datacloud.paths import REPO_ROOT
from transforms.rules import RULES, rules_markdown


def test_rules_md_is_generated_from_the_catalogue() -> None:
    text = (REPO_ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    assert text == rules_markdown(), "docs/rules.md is stale: run `make docs`"
    assert all(f"`{code}`" in text for code in RULES)

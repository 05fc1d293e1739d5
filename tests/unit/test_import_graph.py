"""The import graph of datacloud/, transforms/ and dags/, read with the stdlib ``ast``.

Arrows point downwards only: dags → datacloud → transforms. No cycle among the modules of
datacloud (function-local imports count: a cycle hidden inside a function is still one), no
module imports a private name (``_x``) from another module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("datacloud", "transforms", "dags")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            out[_module_name(path)] = path
    return out


MODULES = _modules()


def _resolve(module: str, level: int, name: str | None, importer: str, is_package: bool) -> str:
    """The absolute module name of an import statement's target."""
    if level == 0:
        return name or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def _owner(name: str) -> str | None:
    """The longest known module that ``name`` is or lies in."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports(module: str) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) of every import in ``module``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    out: list[tuple[str, str | None, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((a.name, None, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node.level, node.module, module, is_package)
            for a in node.names:
                sub = f"{target}.{a.name}"
                if sub in MODULES:  # ``from package import module``
                    out.append((sub, None, node.lineno))
                else:
                    out.append((target, a.name, node.lineno))
    return out


def graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (a package's ``__init__`` included)."""
    edges: dict[str, set[str]] = {}
    for module in MODULES:
        targets = set()
        for target, _, _ in imports(module):
            owner = _owner(target)
            if owner is not None and owner != module:
                targets.add(owner)
        edges[module] = targets
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _parents(module: str) -> set[str]:
    """A module's enclosing packages (their ``__init__`` runs first: no cycle with them)."""
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def test_no_cycle_among_datacloud_modules() -> None:
    edges = {
        m: {t for t in ts if t.startswith("datacloud") and t not in _parents(m)}
        for m, ts in graph().items()
        if m.startswith("datacloud")
    }
    assert cycles(edges) == []


def test_transforms_import_nothing_from_datacloud_or_dags() -> None:
    bad = [
        (m, t)
        for m, ts in graph().items()
        if m.startswith("transforms")
        for t in ts
        if t.split(".")[0] in ("datacloud", "dags")
    ]
    assert bad == []


def test_datacloud_imports_nothing_from_dags() -> None:
    bad = [
        (m, target)
        for m in MODULES
        if m.startswith("datacloud")
        for target, _, _ in imports(m)
        if target.split(".")[0] == "dags"
    ]
    assert bad == []


def test_no_module_imports_a_private_name_of_another() -> None:
    bad = [
        f"{m}:{line} imports {target}.{name}"
        for m in MODULES
        for target, name, line in imports(m)
        if name is not None
        and name.startswith("_")
        and not name.startswith("__")
        and _owner(target) not in (None, m)
    ]
    bad += [
        f"{m}:{line} imports private module {target}"
        for m in MODULES
        for target, name, line in imports(m)
        if name is None
        and _owner(target) not in (None, m)
        and any(p.startswith("_") and not p.startswith("__") for p in target.split(".")[1:])
        and target.split(".")[0] != m.split(".")[0]  # a package's own private helpers
    ]
    assert bad == []


# --- the checks themselves catch what they are for ---------------------------------------------


def test_cycles_finds_a_cycle_and_only_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize(
    ("importer", "level", "name", "is_package", "expected"),
    [
        ("datacloud.curate", 0, "datacloud.delta", False, "datacloud.delta"),
        ("datacloud.lookup.api", 1, "answers", False, "datacloud.lookup.answers"),
        ("datacloud.lookup.api", 2, "paths", False, "datacloud.paths"),
        ("datacloud.delta", 1, "read", True, "datacloud.delta.read"),
    ],
)
def test_relative_imports_resolve(
    importer: str, level: int, name: str, is_package: bool, expected: str
) -> None:
    assert _resolve(importer, level, name, importer, is_package) == expected

"""The layout holds: imports run one way between the sub-packages of idp/, no module imports
another that imports it back, connectors never import idp, and modules stay readable in size.

The order is the one docs/architecture.md draws, from the ground up.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("core", "services", "accounts", "login", "oidc", "selfservice")
TOP = ("idp.cli", "idp.demo", "idp.config")  # on top: nothing imports them but the app factory
MAX_LINES = 500
TOO_LONG_ON_PURPOSE = "longer than 500 lines on purpose"


def _modules() -> dict[str, Path]:
    out = {}
    for base in ("idp", "connectors"):
        for path in (ROOT / base).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every module of idp/ or connectors/ that ``name`` imports, anywhere in its body."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] == "idp" and len(parts) > 1 and parts[1] in LAYERS:
        return LAYERS.index(parts[1])
    return None


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
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
                    work.append((child, iter(sorted(graph.get(child, ())))))
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


def test_no_module_imports_another_that_imports_it_back():
    assert _cycles(GRAPH) == []


def test_the_cycle_check_finds_a_cycle_through_a_chain():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_sub_packages_import_only_the_ones_below_them():
    upward = [
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if _layer(module) is not None and _layer(target) is not None and _layer(target) > _layer(module)
    ]
    assert upward == []


def test_only_the_app_factory_imports_cli_demo_and_config():
    importers = [
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if target in TOP and module not in ("idp", "idp.cli")
    ]
    assert importers == []


def test_connectors_never_import_the_provider():
    leaks = [
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        if module.startswith("connectors")
        for target in targets
        if target == "idp" or target.startswith("idp.")
    ]
    assert leaks == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_under_500_lines_unless_their_docstring_says_why(name):
    text = MODULES[name].read_text()
    if len(text.splitlines()) > MAX_LINES:
        docstring = ast.get_docstring(ast.parse(text)) or ""
        assert TOO_LONG_ON_PURPOSE in docstring, f"{name} has {len(text.splitlines())} lines"

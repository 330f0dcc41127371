"""No import cycle inside ``micronet_score``: every import counts, at module level and deferred inside
functions alike (a deferred import hides a cycle, it does not remove it); only ``if TYPE_CHECKING:`` blocks,
which never run, are left out. ``from pkg import sub`` is an edge to the submodule ``pkg.sub``; ``from pkg import
name`` an edge to ``pkg`` itself (its ``__init__``)."""

from __future__ import annotations

import ast
from pathlib import Path

import micronet_score

ROOT = Path(micronet_score.__file__).resolve().parent
PACKAGE = "micronet_score"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, name: str, is_package: bool, known: set[str]) -> set[str]:
    """Modules of the package that ``tree`` imports (resolved ``from X import submodule`` included)."""
    found: set[str] = set()
    base = name if is_package else name.rpartition(".")[0]

    def resolve(target: str) -> str | None:
        while target and target not in known:  # an attribute of a module: the module
            target = target.rpartition(".")[0]
        return target or None

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    target = resolve(alias.name)
                    if target:
                        found.add(target)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parent = base
                for _ in range(node.level - 1):
                    parent = parent.rpartition(".")[0]
                module = f"{parent}.{node.module}" if node.module else parent
            else:
                module = node.module or ""
            if module.split(".")[0] == PACKAGE:
                for alias in node.names:
                    sub = f"{module}.{alias.name}"
                    target = sub if sub in known else resolve(module)
                    if target:
                        found.add(target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        graph[name] = _imports(tree, name, path.name == "__init__.py", known)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = dfs(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = dfs(node)
            if found:
                return found
    return None


def test_the_walker_sees_deferred_imports_and_skips_type_checking():
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from micronet_score.report import Report\n"
        "def f():\n    from micronet_score.rules.score import score\n"
        "from . import bits\n"
    )
    known = {"micronet_score.report", "micronet_score.rules.score", "micronet_score.bits", "micronet_score.cli",
             "micronet_score"}
    edges = _imports(ast.parse(source), "micronet_score.cli", False, known)
    assert edges == {"micronet_score.rules.score", "micronet_score.bits"}


def test_the_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_the_package():
    graph = import_graph()
    assert "micronet_score.counting.tracer" in graph  # the walk found the package
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        node = todo.pop()
        for nxt in graph.get(node, ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_rules_are_arithmetic_and_results_are_data():
    """``rules/`` never reaches the engine; ``report.py`` reaches neither the engine nor the rules."""
    graph = import_graph()
    for name in graph:
        if name == "micronet_score.rules" or name.startswith("micronet_score.rules."):
            engine = sorted(m for m in _reachable(graph, name) if m.startswith("micronet_score.counting"))
            assert not engine, f"{name} imports the engine: {engine}"
    reached = _reachable(graph, "micronet_score.report")
    assert not {m for m in reached if m.startswith(("micronet_score.counting", "micronet_score.rules"))}

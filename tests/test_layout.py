"""The package's layers import one way (README "Architecture"), checked on the source itself.

Every ``import`` inside ``kling_async/`` is read from the syntax tree — those under
``TYPE_CHECKING`` and inside functions too, because a circle hidden behind either is still a
circle in the design — and resolved to a module of the package. The graph must have no cycle,
nothing may import the package root, and only the façade's users may import the client.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kling_async"
ROOT = "kling_async"

# Who may hold a KlingClient: the package root (re-export) and the command line (its user).
CLIENT_USERS = (f"{ROOT}", f"{ROOT}.cli")
# Modules of at most ~400 lines; the exceptions say why in their module docstring.
MAX_LINES = 450
LONG_MODULES = {
    f"{ROOT}.polling.scheduler",
    f"{ROOT}.serde.records",
    f"{ROOT}.batch.run",
    f"{ROOT}.transport",
    f"{ROOT}.errors",
}


def test_long_modules_say_why() -> None:
    for name in LONG_MODULES:
        doc = ast.get_docstring(ast.parse(MODULES[name].read_text(encoding="utf-8"))) or ""
        assert "past 400 lines" in doc, f"{name} is long and its docstring does not say why"


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(module: str, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The modules of the package that ``node`` (inside ``module``) makes Python load."""
    targets: list[str] = []
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        if node.level:
            base = module.split(".")
            if not _is_package(module):
                base = base[:-1]
            base = base[: len(base) - (node.level - 1)]
            prefix = ".".join(base)
            origin = f"{prefix}.{node.module}" if node.module else prefix
        else:
            origin = node.module or ""
        targets = [origin]
        # ``from pkg import mod`` loads the submodule ``pkg.mod`` when it is one.
        targets += [f"{origin}.{a.name}" for a in node.names if f"{origin}.{a.name}" in MODULES]
    return [t for t in targets if t == ROOT or t.startswith(ROOT + ".")]


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _resolve(name, node):
                    # A submodule's import of its own package's modules is an edge to them;
                    # the implicit load of parent packages is Python's, not a design edge.
                    if target in MODULES and target != name:
                        edges.add(target)
        graph[name] = edges
    return graph


GRAPH = _imports()


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            # An __init__ re-exporting its own submodules is the package's face, not a circle.
            if nxt.startswith(node + "."):
                continue
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_the_import_graph_has_no_cycle() -> None:
    # Package __init__ files are left out: they only gather names, and Python loads them
    # before any of their submodules anyway.
    inner = {
        name: {t for t in edges if not _is_package(t)}
        for name, edges in GRAPH.items()
        if not _is_package(name)
    }
    assert _cycle(inner) is None, " -> ".join(_cycle(inner) or [])


def test_the_cycle_check_can_find_one() -> None:
    # The check above is only worth something if it sees a circle when there is one.
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n != ROOT))
def test_nothing_imports_the_package_root(name: str) -> None:
    assert ROOT not in GRAPH[name], f"{name} imports the package root"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_only_the_facade_users_import_the_client(name: str) -> None:
    if name == f"{ROOT}.client" or name.startswith(CLIENT_USERS[1]) or name == ROOT:
        return
    assert f"{ROOT}.client" not in GRAPH[name], f"{name} imports kling_async.client"


def test_the_testing_package_is_not_imported_by_the_library() -> None:
    # The emulator is for tests; the library loads it only where a user asks for it (the CLI's
    # --emulator and `kling-async emulator`, inside functions).
    for name, edges in GRAPH.items():
        if name.startswith(f"{ROOT}.testing") or name.startswith(f"{ROOT}.cli"):
            continue
        assert not any(e.startswith(f"{ROOT}.testing") for e in edges), name


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_small(name: str) -> None:
    if name.startswith(f"{ROOT}.testing") or name in LONG_MODULES:
        return
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name}: {lines} lines"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_each_module_imports_alone() -> None:
    # A fresh interpreter per module: an import that works only after another module was
    # loaded first is a hidden circle. One interpreter loads the third-party libraries once,
    # then forks a child per module, so each child starts with no kling_async module loaded.
    script = (
        "import importlib, os, sys, warnings\n"
        "warnings.simplefilter('error')\n"
        "import aiohttp, aiohttp.web, attrs, backoff, cattrs, jwt, yarl\n"
        "import rich.console, rich.live, rich.progress, rich.table\n"
        "failed = []\n"
        "for name in sys.argv[1:]:\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        try:\n"
        "            importlib.import_module(name)\n"
        "        except BaseException as exc:\n"
        "            print(name, type(exc).__name__, exc, flush=True)\n"
        "            os._exit(1)\n"
        "        os._exit(0)\n"
        "    if os.waitpid(pid, 0)[1]:\n"
        "        failed.append(name)\n"
        "sys.exit(1 if failed else 0)\n"
    )
    names = sorted(n for n in MODULES if not n.endswith("__main__"))
    result = subprocess.run(
        [sys.executable, "-c", script, *names], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr

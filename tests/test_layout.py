"""The package's layers import one way (docs/architecture.md), checked on the source itself.

Every ``import`` inside ``kling_async/`` is read from the syntax tree — those under
``TYPE_CHECKING`` and inside functions too, because a circle hidden behind either is still a
circle in the design — and resolved to a module of the package. The graph must have no cycle
(seen through the packages' ``__init__`` faces too), every arrow must point down the layers of
:data:`LAYERS`, nothing may import the package root, only the façade's users may import the
client, the top of the package stays a short list, and modules stay a readable size.
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
    f"{ROOT}.transport",
    f"{ROOT}.errors",
}
# Modules directly in kling_async/ (``__init__`` included): the façade and small shared ones.
MAX_TOP_LEVEL = 20

# The layers, bottom first: a module may import its own layer and those below, never above.
# A name stands for that module or package and everything inside it; the longest name that
# matches a module places it (``slots.sharing`` opens a PostgreSQL coordinator for a DSN, so it
# sits above ``postgres``, which implements the ``slots.coordination`` Protocols below it).
LAYERS: tuple[tuple[str, ...], ...] = (
    # shared values: the models, errors, kinds and clocks every room speaks
    (
        "_version",
        "_filelock",
        "_argtypes",
        "errors",
        "models",
        "kinds",
        "clock",
        "clock_skew",
        "account",
        "media",
        "auth",
    ),
    # the wire: request classes, the one converter, the one request path, the one retry policy
    ("requests", "serde", "transport", "retry"),
    # reading and following tasks; callbacks read into the same records
    ("polling", "webhooks"),
    # the slots every create passes (and the Protocols a shared coordinator implements)
    ("slots",),
    # storage and coordination backends, and the gate's factory that picks one
    ("postgres", "journal", "slots.sharing"),
    # the create path: the create rule
    ("creates", "claims", "faces"),
    # many creates as one job
    ("batch",),
    # the façade
    ("client", "shortcuts", "download"),
    # the package root, the command line and the emulator: users of the façade
    ("", "cli", "testing"),
)


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


def _through_faces(graph: dict[str, set[str]], packages: set[str]) -> dict[str, set[str]]:
    """The graph between modules, an import of a package's face standing for what that
    ``__init__`` imports (its own submodules and whatever else it loads)."""

    def seen_through(target: str, path: frozenset[str]) -> set[str]:
        if target not in packages:
            return {target}
        if target in path:
            return set()
        found: set[str] = set()
        for nxt in graph[target]:
            found |= seen_through(nxt, path | {target})
        return found

    return {
        name: set().union(*(seen_through(t, frozenset()) for t in edges)) - {name}
        for name, edges in graph.items()
        if name not in packages
    }


PACKAGES = {name for name in MODULES if _is_package(name)}


def test_the_import_graph_has_no_cycle() -> None:
    # Package __init__ files only gather names: an import of one counts as importing what it
    # gathers, so a circle through a face (a -> pkg -> pkg.b -> a) is still found.
    inner = _through_faces(GRAPH, PACKAGES)
    assert _cycle(inner) is None, " -> ".join(_cycle(inner) or [])


def test_a_circle_through_a_face_is_seen() -> None:
    graph = {"p": {"p.b"}, "p.b": {"a"}, "a": {"p"}}
    assert _cycle(_through_faces(graph, {"p"})) == ["a", "p.b", "a"]


def _layer(name: str) -> int:
    rel = name[len(ROOT) + 1 :] if name != ROOT else ""
    best, rank = -1, -1
    for index, names in enumerate(LAYERS):
        for room in names:
            inside = rel == room or (room and rel.startswith(room + ".")) or room == rel == ""
            if inside and len(room) > best:
                best, rank = len(room), index
    return rank


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_has_a_layer(name: str) -> None:
    assert _layer(name) >= 0, f"{name}: add it to LAYERS in tests/test_layout.py"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_down_the_layers(name: str) -> None:
    upward = [
        target
        for target in GRAPH[name]
        # A package's face hands on its own submodules, whichever layer each sits in.
        if not (_is_package(name) and target.startswith(name + "."))
        and _layer(target) > _layer(name)
    ]
    assert not upward, f"{name} (layer {_layer(name)}) imports upward: {upward}"


def test_the_layers_rank_the_rooms() -> None:
    # The arrow check is only worth something if the layers tell the rooms apart.
    assert _layer(f"{ROOT}.polling.watch") < _layer(f"{ROOT}.client")
    assert _layer(f"{ROOT}.slots.gate") < _layer(f"{ROOT}.postgres.coordinator")
    assert _layer(ROOT) == len(LAYERS) - 1


def test_the_top_level_stays_small() -> None:
    top = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL, f"{len(top)} modules at the top of {ROOT}/: {top}"


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

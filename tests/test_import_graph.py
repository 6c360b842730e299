"""The package's imports run one way: no cycle, routing_gym never imports agents, and nothing
below the env layer imports an env (or anything built on the envs).

The graph is read from the source with ``ast``: every ``import`` / ``from ... import``
statement, at module level or inside a function, except those under ``if TYPE_CHECKING:``
(annotations only, never run). ``import a.b.c`` is an edge to ``a.b.c``; ``from a.b import c``
is an edge to ``a.b.c`` when that is a module, else to ``a.b``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("routing_gym", "agents")

#: The layer table of the architecture page: the one list of layers, which the docs draw and
#: this test checks (between its markers; one row per layer, modules in backticks).
ARCHITECTURE = ROOT / "docs" / "architecture.md"
LAYER_TABLE = re.compile(r"<!-- layers: [^\n]*-->\n(?P<table>.*?)<!-- end layers -->", re.S)


def read_layers(path: Path = ARCHITECTURE) -> dict[str, tuple[str, ...]]:
    """Layer name -> its module prefixes, from the layer table of ``path``."""
    found = LAYER_TABLE.search(path.read_text(encoding="utf-8"))
    if found is None:
        raise ValueError(
            f"{path} has no layer table between '<!-- layers: ... -->' and '<!-- end layers -->'."
        )
    layers = {}
    for line in found["table"].splitlines()[2:]:  # after the header and its separator
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        layers[cells[0]] = tuple(re.findall(r"`([\w.]+)`", cells[1]))
    return layers


LAYERS = read_layers()
AGENTS = LAYERS["agents"]
#: Built on the envs: runners, vector envs, wrappers, the benchmark and the command line.
ABOVE_ENVS = LAYERS["above the envs"]
ENVS = LAYERS["envs"]
#: The exhaustive builders and the table formats they write: they reach the envs only through
#: the registry (``gym.make(env_id)``), never by import, so envs that replay a table may import
#: them. They obey the rule of the layers below.
BUILDERS = LAYERS["builders"]
#: What the envs build on (data flows env -> engine -> protocol -> pool -> cache -> backend).
BELOW_ENVS = LAYERS["below the envs"]


def module_files() -> dict[str, Path]:
    """Module name -> file, for every module of the packages."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_names(tree: ast.AST, module: str, is_package: bool) -> list[str]:
    """The absolute module names one file imports (``TYPE_CHECKING`` blocks left out)."""
    names: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            names.extend(f"{base}.{alias.name}" for alias in node.names)
            names.append(base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports."""
    files = module_files()
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges = set()
        for name in imported_names(tree, module, path.name == "__init__.py"):
            if name in files and name != module:
                edges.add(name)
        # "from a.b import c" with c a name, not a module: keep only the deepest module edge
        graph[module] = {e for e in edges if not any(o.startswith(e + ".") and o in edges for o in edges)}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_the_graph_sees_the_known_edges():
    graph = import_graph()
    assert "routing_gym.engine" in graph["routing_gym.envs.live_base"]
    assert "routing_gym.protocols.base" in graph["routing_gym.engine"]
    assert "routing_gym.llm.pool" in graph["routing_gym.engine"]
    assert "routing_gym.routers" in graph["agents.base"]  # agents depend on routing_gym


def test_the_layer_table_is_read_from_the_architecture_page():
    assert set(LAYERS) == {"agents", "above the envs", "envs", "builders", "below the envs"}
    assert ENVS == ("routing_gym.envs",) and AGENTS == ("agents",)
    assert {"routing_gym.engine", "routing_gym.llm", "routing_gym.protocols"} <= set(BELOW_ENVS)
    assert {"routing_gym.bench", "routing_gym.cli"} <= set(ABOVE_ENVS)
    listed = [m for layer in LAYERS.values() for m in layer]
    assert len(listed) == len(set(listed)), "a module is listed in two layers"


def test_a_page_without_a_layer_table_is_refused(tmp_path):
    page = tmp_path / "architecture.md"
    page.write_text("# Architecture\n\nno table here\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no layer table"):
        read_layers(page)


def test_a_cycle_would_be_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def test_routing_gym_never_imports_agents():
    offenders = {
        (module, target)
        for module, targets in import_graph().items()
        if module.startswith("routing_gym")
        for target in targets
        if within(target, AGENTS)
    }
    assert offenders == set()


def test_nothing_below_the_env_layer_imports_an_env_or_what_is_built_on_them():
    offenders = {
        (module, target)
        for module, targets in import_graph().items()
        if within(module, BELOW_ENVS + BUILDERS)
        for target in targets
        if within(target, ENVS + ABOVE_ENVS)
    }
    assert offenders == set()


def test_envs_do_not_import_what_is_built_on_them():
    offenders = {
        (module, target)
        for module, targets in import_graph().items()
        if within(module, ENVS)
        for target in targets
        if within(target, ABOVE_ENVS)
    }
    assert offenders == set()


def test_every_module_has_a_layer():
    loose = [
        m
        for m in import_graph()
        if m.startswith("routing_gym.") and not within(m, BELOW_ENVS + BUILDERS + ENVS + ABOVE_ENVS)
    ]
    assert loose == []

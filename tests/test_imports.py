"""The package's import structure: no cycle among boomda's modules, imports inside functions
counted (``import boomda`` without torch: tests/test_fast_start.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import boomda

SRC = Path(boomda.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute module a ``from`` import at ``level`` dots names."""
    if level == 0:
        return name or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` that can run: all but the bodies of ``if TYPE_CHECKING:``."""
    pending = [tree]
    while pending:
        node = pending.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                pending.extend(child.orelse)
            else:
                pending.append(child)


def import_graph() -> dict[str, set[str]]:
    """Each boomda module -> the boomda modules it imports anywhere in its body."""
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(module, is_package, node.level, node.module)
                # ``from package import submodule`` imports the submodule
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target.startswith("boomda") and target != module:
                    graph[module].add(target)
    return graph


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of modules (first == last), or None. A package's
    ``__init__`` importing its own submodules is not counted as an edge back."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if target in _parents(node):
                continue  # importing a submodule runs its package's __init__ first, by design
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_cycle_finder_finds_a_hand_made_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    cycle = find_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_relative_imports_resolve() -> None:
    assert _resolve("boomda.data.files", False, 1, "labels") == "boomda.data.labels"
    assert _resolve("boomda.data", True, 1, "files") == "boomda.data.files"
    assert _resolve("boomda.data.files", False, 2, "config") == "boomda.config"


def test_no_import_cycle_among_boomda_modules() -> None:
    graph = import_graph()
    assert "boomda.cli" in graph and graph["boomda.cli"], "the parser found no imports"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


#: the layers of the package, lowest first (docs/design.md): a module may import its own layer's
#: modules and lower layers' (and its parent packages), never a higher layer's
LAYERS = [
    ("foundation", ["errors", "atomic", "lock", "registry", "runtime", "board", "distributed"]),
    ("settings", ["config", "rundir"]),
    ("models", ["nn", "losses", "balance"]),
    ("data and methods", ["data", "methods"]),
    ("training", ["evaluate", "train", "select", "sweep", "partial", "resolve"]),
    ("estimator", ["estimator", "diagnose"]),
    ("run", ["run"]),
    ("orchestration", ["tune", "grid", "report"]),
    ("entry points", ["cli", "launch", "__main__"]),
]


def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` of ``module`` (``boomda.x.y``): of its first name."""
    first = module.split(".")[1] if module.count(".") else ""
    for index, (_, names) in enumerate(LAYERS):
        if first in names:
            return index
    raise AssertionError(f"{module} is in no layer of LAYERS (docs/design.md): add it")


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for module, targets in sorted(graph.items()):
        if module == "boomda":
            continue  # the package's own lazy names: the entry point of every layer
        for target in sorted(targets):
            if target in _parents(module):
                continue
            if layer_of(target) > layer_of(module):
                found.append(f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} "
                             f"({LAYERS[layer_of(target)][0]})")
    return found


def test_layer_check_catches_an_upward_import() -> None:
    graph = {"boomda.config": {"boomda.errors"}, "boomda.losses": {"boomda.train"}}
    assert upward_imports(graph) == [
        "boomda.losses (models) imports boomda.train (training)"]


def test_every_module_imports_only_its_own_and_lower_layers() -> None:
    graph = import_graph()
    assert upward_imports(graph) == []

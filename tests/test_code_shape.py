"""The shape the library keeps (docs/architecture.md): no private name imported across modules,
no module-level import circle, no function longer than a screen, one module per runtime."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "lib" / "coresweep"
MODULES = sorted(LIB.rglob("*.py"))
MAX_LINES = 60


def _name(path: Path) -> str:
    parts = path.relative_to(LIB.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _imported(node: ast.AST, here: str) -> list[tuple[str, str]]:
    """(module, name) of every coresweep import in ``node``."""
    out = []
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("coresweep"):
        out += [(node.module, a.name) for a in node.names]
    if isinstance(node, ast.Import):
        out += [(a.name, "") for a in node.names if a.name.startswith("coresweep")]
    return out


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_no_private_name_is_imported_from_another_module(path):
    here = _name(path)
    for node in ast.walk(_tree(path)):
        for module, name in _imported(node, here):
            assert not (name.startswith("_") and not name.startswith("__") and module != here), \
                f"{here} imports the private {module}.{name}: make it public or keep it home"


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_functions_fit_on_a_screen(path):
    for node in ast.walk(_tree(path)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            assert length <= MAX_LINES, f"{_name(path)}.{node.name}: {length} lines"


def _type_checking_only(tree: ast.Module) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:`` (annotations, never run)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            out |= {id(n) for n in ast.walk(node)}
    return out


def _imports() -> dict[str, set[str]]:
    """module -> the coresweep modules it imports anywhere (deferred imports in functions too:
    a circle through them is still a circle in the design)."""
    known = {_name(p) for p in MODULES}
    graph: dict[str, set[str]] = {}
    for path in MODULES:
        tree, here, deps = _tree(path), _name(path), set()
        skip = _type_checking_only(tree)
        for node in ast.walk(tree):
            for module, name in (() if id(node) in skip else _imported(node, here)):
                target = f"{module}.{name}" if f"{module}.{name}" in known else module
                deps |= {target} if target in known and target != here else set()
        graph[here] = deps
    return graph


def test_no_import_circle():
    graph = _imports()
    state: dict[str, int] = {}  # 1 = on the path, 2 = done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph.get(m, ())):
            assert state.get(d) != 1, "import circle: " + " -> ".join([*path, m, d])
            if d not in state:
                visit(d, [*path, m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])


def test_every_runtime_is_one_module_of_the_engines_package():
    from coresweep import engines
    from coresweep.parameters import WORKLOAD

    for name, target in engines.RUNTIMES.items():
        module = target.split(":")[0]
        assert (LIB.parent / Path(*module.split("."))).with_suffix(".py").is_file(), name
    assert WORKLOAD["runtime"].choices == engines.ENGINES

"""The shape of the package, read from its source: imports go one way, private names stay home, modules stay small.

The import graph of ``src/mintaudit`` is built with ``ast`` from every ``import`` statement,
function-level and ``TYPE_CHECKING`` ones included (a cycle hidden inside a function is still a
cycle for the next reader). The checks:

- no cycle among the package's modules (a package's ``__init__`` counts as the package; a module
  importing from its own package's ``__init__`` is fine only where that ``__init__`` imports nothing
  back from it);
- no ``_private`` name imported from another module (a missing public API);
- no module over 800 lines (as ``ruff format`` writes them: 500 before the formatter wrapped long calls).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "mintaudit"
MAX_LINES = 800


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _resolve(mod: str, node: ast.ImportFrom, is_pkg: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _imports(modules: dict[str, Path]) -> list[tuple[str, str, str | None, int]]:
    """(importer, imported module, imported name or None, line) for every import of a mintaudit module."""
    out = []
    for mod, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("mintaudit"):
                        out.append((mod, a.name, None, node.lineno))
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(mod, node, is_pkg)
                if not target.startswith("mintaudit"):
                    continue
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    if sub in modules:  # `from mintaudit.data import splits`: the submodule itself
                        out.append((mod, sub, None, node.lineno))
                    else:
                        out.append((mod, target, a.name, node.lineno))
    return out


def _owner(name: str, modules: dict[str, Path]) -> str:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, target, _, _ in _imports(modules):
        t = _owner(target, modules)
        if not t or t == mod:
            continue
        if mod.startswith(t + ".") and modules[t].name == "__init__.py":
            continue  # a submodule importing its own package: counted from the package side below
        graph[mod].add(t)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_sees_function_level_imports():
    imports = _imports(_modules())
    assert len(imports) > 100 and any(t == "mintaudit.workdir" for _, t, _, _ in imports)


def test_no_import_cycle():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles (break each by moving the shared piece down a layer): " + "; ".join(
        " <-> ".join(c) for c in cycles
    )


def test_no_private_name_taken_from_another_module():
    modules = _modules()
    taken = [
        f"{mod}:{line} takes {target}.{name}"
        for mod, target, name, line in _imports(modules)
        if name and name.startswith("_") and not name.startswith("__") and _owner(target, modules) != mod
    ]
    assert not taken, "private names imported across modules (make them public where they are): " + "; ".join(taken)


@pytest.mark.parametrize("module", sorted(_modules()))
def test_no_module_over_800_lines(module):
    n = len(_modules()[module].read_text().splitlines())
    assert n <= MAX_LINES, f"{module} has {n} lines (at most {MAX_LINES}): split it by what its parts do"


#: The command line's modules: the only ones that may read ``sys.argv`` (every other layer is given the command).
CLI_MODULES = {"mintaudit.cli", "mintaudit.cli_args", "mintaudit.cli_audit", "mintaudit.cli_record"}


def _argv_reads(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "argv":
            if isinstance(node.value, ast.Name) and node.value.id == "sys":
                lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "sys" and any(a.name == "argv" for a in node.names):
            lines.append(node.lineno)
    return lines


def test_argv_reads_are_found():
    tree = ast.parse("import sys\nfrom sys import argv\n\ndef f(command=None):\n    return command or sys.argv\n")
    assert _argv_reads(tree) == [2, 5]


def test_no_sys_argv_outside_the_command_line():
    reads = [
        f"{mod}:{line}"
        for mod, path in _modules().items()
        if mod not in CLI_MODULES
        for line in _argv_reads(ast.parse(path.read_text(), str(path)))
    ]
    assert not reads, "sys.argv read outside the command line (take the command as a parameter): " + ", ".join(reads)

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


_PARSED: dict[tuple[str, ...], list[tuple[str, str, str | None, int]]] = {}  # the sources are read once a session


def _imports(modules: dict[str, Path]) -> list[tuple[str, str, str | None, int]]:
    """(importer, imported module, imported name or None, line) for every import of a mintaudit module."""
    key = tuple(modules)
    if key not in _PARSED:
        _PARSED[key] = _read_imports(modules)
    return list(_PARSED[key])


def _read_imports(modules: dict[str, Path]) -> list[tuple[str, str, str | None, int]]:
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


#: The layers, lowest first: a module imports only from its own layer or lower ones.
LAYER_NAMES = ["core and stats", "sources and targets", "signals", "methods", "report", "api", "workdir", "cli"]

#: Every module of ``src/mintaudit``, by the most specific entry (a package's entry covers its modules).
LAYERS = {
    # core and stats: errors, file and lock helpers, logits and outputs, sizes, metrics and statistics
    "mintaudit.errors": "core and stats",
    "mintaudit._io": "core and stats",
    "mintaudit._lock": "core and stats",
    "mintaudit._logits": "core and stats",
    "mintaudit._outputs": "core and stats",
    "mintaudit._progress": "core and stats",
    "mintaudit._registry": "core and stats",
    "mintaudit.sizes": "core and stats",
    "mintaudit.protocols": "core and stats",
    "mintaudit.preprocess": "core and stats",
    "mintaudit.distributed": "core and stats",
    "mintaudit.results": "core and stats",
    "mintaudit.canary": "core and stats",
    "mintaudit.evaluation": "core and stats",
    "mintaudit.attacks.scores": "core and stats",  # score functions of outputs: arrays in, arrays out
    # sources and targets: the data, the audited model, its layers, the one training loop and the gate
    "mintaudit.data": "sources and targets",
    "mintaudit.models": "sources and targets",
    "mintaudit.targets": "sources and targets",
    "mintaudit.taps": "sources and targets",
    "mintaudit._tensor": "sources and targets",
    "mintaudit.training": "sources and targets",
    "mintaudit.dp": "sources and targets",
    "mintaudit.gate": "sources and targets",
    "mintaudit.probe": "sources and targets",
    # signals: what the audited model gives per sample, and the cache on disk
    "mintaudit.signals": "signals",
    # methods: MINT models, passive MINT, gMINT, the attacks, aMINT
    "mintaudit.detectors": "methods",
    "mintaudit.passive": "methods",
    "mintaudit.gradient": "methods",
    "mintaudit.attacks": "methods",
    "mintaudit.active": "methods",
    # report: the typed report, its sections and renderers
    "mintaudit.report": "report",
    # api: mintaudit.audit and its pieces, the one validation of values (shared with the command line)
    "mintaudit": "api",
    "mintaudit.api": "api",
    "mintaudit._pyapi": "api",
    "mintaudit._pyattacks": "api",
    "mintaudit.sweeps": "api",
    "mintaudit._validate": "api",
    # workdir: the verbs over OUT/, and the studies beside them
    "mintaudit.workdir": "workdir",
    "mintaudit.studies": "workdir",
    # cli: parse, call one function, print
    "mintaudit.cli": "cli",
    "mintaudit.cli_args": "cli",
    "mintaudit.cli_audit": "cli",
    "mintaudit.cli_record": "cli",
    "mintaudit.cli_help": "cli",
}

#: Names of a higher module that any layer may import: constants, not code.
CONSTANTS = {("mintaudit", "__version__")}

#: The layers that reach the engine only through ``mintaudit``, its top-level modules and each subpackage's
#: ``__init__`` (never ``mintaudit.<package>.<module>`` of another package).
FACADE_ONLY = {"workdir", "cli"}

#: Deep imports the facade rule allows, each with its reason (keep this list short).
DEEP_IMPORTS_ALLOWED: dict[tuple[str, str], str] = {}


def _layer(module: str) -> str | None:
    """The layer of ``module``: its own entry, else its package's (the root entry covers ``mintaudit`` alone)."""
    name = module
    while name:
        if name in LAYERS and (name != "mintaudit" or module == "mintaudit"):
            return LAYERS[name]
        name = name.rpartition(".")[0]
    return None


def _rank(module: str) -> int:
    return LAYER_NAMES.index(_layer(module))


def test_every_module_has_a_layer():
    assert set(LAYERS.values()) <= set(LAYER_NAMES)
    missing = sorted(m for m in _modules() if _layer(m) is None)
    assert not missing, "modules without a layer (place each in LAYERS, tests/test_architecture.py): " + ", ".join(
        missing
    )
    stale = sorted(k for k in LAYERS if k not in _modules())
    assert not stale, "LAYERS names modules that do not exist: " + ", ".join(stale)


def _upward() -> list[str]:
    modules = _modules()
    out = []
    for mod, target, name, line in _imports(modules):
        t = _owner(target, modules)
        if not t or t == mod or (t, name) in CONSTANTS:
            continue
        if mod.startswith(t + ".") and modules[t].name == "__init__.py":
            continue  # a module importing its own package (the package's own layer)
        if _rank(t) > _rank(mod):
            out.append(f"{mod}:{line} ({_layer(mod)}) imports {t} ({_layer(t)})")
    return out


def test_lower_layers_never_import_higher_ones():
    upward = _upward()
    assert not upward, "upward imports (move the shared piece down, or pass it in): " + "; ".join(upward)


def _package_of(module: str, modules: dict[str, Path]) -> str:
    """The package a module lives in (a package's ``__init__`` lives in the package itself)."""
    return module if modules[module].name == "__init__.py" else module.rpartition(".")[0]


def _deep_imports() -> list[str]:
    modules = _modules()
    out = []
    for mod, target, _, line in _imports(modules):
        if _layer(mod) not in FACADE_ONLY:
            continue
        t = _owner(target, modules)
        if not t or t == mod:
            continue
        home = _package_of(t, modules)
        if home == "mintaudit" or t == home:
            continue  # mintaudit itself, a top-level module, or a subpackage's __init__
        own = _package_of(mod, modules)
        if own != "mintaudit" and (home == own or home.startswith(own + ".")):
            continue  # a sibling in the importer's own package
        if (mod, t) in DEEP_IMPORTS_ALLOWED:
            continue
        out.append(f"{mod}:{line} imports {t} (use {home})")
    return sorted(set(out))


def test_workdir_and_cli_use_the_engine_through_its_packages():
    deep = _deep_imports()
    assert not deep, "deep imports from the work directory or the command line: " + "; ".join(deep)


def test_the_architecture_page_shows_the_layers():
    page = (SRC.parents[1] / "docs" / "explanation" / "architecture.md").read_text()
    rows = {line.split("|")[1].strip() for line in page.splitlines() if line.startswith("| ")}
    assert set(LAYER_NAMES) <= {r.split(" (")[0] for r in rows}, "docs/explanation/architecture.md misses a layer row"
    assert "(layers.svg)" in page and (SRC.parents[1] / "docs" / "explanation" / "layers.svg").is_file()


def test_a_new_top_level_module_is_not_placed_by_the_root_entry():
    assert _layer("mintaudit") == "api" and _layer("mintaudit.report.sections.dp") == "report"
    assert _layer("mintaudit.newly_added") is None  # it must be given its own entry

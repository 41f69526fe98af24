"""Every benchmark imports names the package has: a module moved or removed breaks here, not an hour into a run.

Benchmarks run for minutes to hours and no fast test executes them, so their imports of
``mintaudit`` (function-level ones included) are read with ``ast`` and resolved here.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _imports(path: Path) -> list[tuple[str, str | None, int]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("mintaudit"):
            out += [(node.module, a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names if a.name.startswith("mintaudit")]
    return out


@pytest.mark.parametrize("path", sorted(BENCH.glob("*.py")), ids=lambda p: p.name)
def test_each_benchmark_imports_what_exists(path):
    for module, name, line in _imports(path):
        try:
            mod = importlib.import_module(module)
        except ImportError as e:
            pytest.fail(f"{path.name}:{line} imports {module}: {e}")
        if name is not None and name != "*" and not hasattr(mod, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ImportError:
                pytest.fail(f"{path.name}:{line}: {module} has no {name}")

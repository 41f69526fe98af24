"""The ``>>>`` examples of every module of the package (and of ``benchmarks/_bench.py``) run and print what they say.

Examples run in a temporary folder (some write files), one torch thread, with the RNGs seeded by
``conftest.py``. An example marked ``# doctest: +SKIP`` does not run: only the modules listed in
``SKIPPED`` may hold one, each for the reason given (it needs data files, a trained model or
minutes of training), so a new example cannot be skipped silently.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil
from pathlib import Path
from types import ModuleType

import pytest

import mintaudit

ROOT = Path(__file__).resolve().parents[1]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

#: Modules whose examples are skipped, and why (illustrations of a call on the user's own objects or files).
SKIPPED = {
    "mintaudit.targets.hf": "needs a Hugging Face folder saved with save_pretrained (run in tests/test_hf_audit.py)",
    "mintaudit.api": "audits the user's own model and loaders (run in tests/own/test_readme.py)",
    "mintaudit.active.loop": "the user's own training loop (run in tests/own/test_readme.py)",
    "mintaudit.active.train": "the loss inside the user's own loop",
    "mintaudit.dp": "needs Opacus and trains with DP-SGD",
    "mintaudit.studies.factors": "trains a grid of models (minutes)",
    "mintaudit.models.catalog": "registers the user's own class",
    "mintaudit.detectors.registry": "registers a new detector kind for good",
    "mintaudit.attacks.registry": "registers a new attack for good",
    "mintaudit.attacks.loss": "needs a trained model and its signal cache",
    "mintaudit.gradient": "per-sample gradients of a trained model over a data set",
    "mintaudit.workdir": "the whole demo (minutes)",
    "mintaudit.data.idx": "reads data files",
    "mintaudit.data.images": "reads image folders",
    "mintaudit.data.svhn": "reads data files",
    "mintaudit.data.cifar": "reads data files",
    "mintaudit.data.npz": "reads data files",
    "mintaudit.data.store": "reads image folders into a pool store",
}


def _module_names() -> list[str]:
    names = ["mintaudit"]
    names += sorted(m.name for m in pkgutil.walk_packages(mintaudit.__path__, "mintaudit."))
    return names


def _bench_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_bench", ROOT / "benchmarks" / "_bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tests(module: ModuleType) -> list[doctest.DocTest]:
    return [t for t in doctest.DocTestFinder(exclude_empty=True).find(module) if t.examples]


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as e:  # an optional dependency (opacus, transformers, onnx) is missing
        pytest.skip(f"{name}: {e}")


@pytest.mark.parametrize("name", [*_module_names(), "benchmarks/_bench.py"])
def test_module_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = _bench_module() if name.endswith(".py") else _import(name)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report: list[str] = []
    skipped = 0
    for test in _tests(module):
        skipped += sum(bool(e.options.get(doctest.SKIP)) for e in test.examples)
        runner.run(test, out=report.append)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, "".join(report)
    if skipped:
        assert name in SKIPPED, f"{name}: {skipped} example(s) marked +SKIP; make them run, or list the module and why"


def test_the_skip_list_names_modules_that_still_skip():
    stale = []
    for name in SKIPPED:
        module = importlib.import_module(name)
        if not any(e.options.get(doctest.SKIP) for t in _tests(module) for e in t.examples):
            stale.append(name)
    assert not stale, f"these modules no longer skip an example; remove them from SKIPPED: {stale}"


def test_examples_exist():
    """The package documents itself by example: most public modules carry one."""
    with_examples = [n for n in _module_names() if _tests(importlib.import_module(n))]
    assert len(with_examples) >= 40

"""Shared fixtures: seeded RNGs, tiny models and data built here, real data when present."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from hypothesis import settings


# Property-based tests draw the same examples in every run (derandomize): a failure is reproducible, and a
# suite that passed once passes again on the same code. New examples come with a change of the test's code.
settings.register_profile("mintaudit", derandomize=True, deadline=None)
settings.load_profile("mintaudit")


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _few_threads() -> None:
    # One torch thread: on 2 shared cores, 2 threads per process spin-wait and run many times slower.
    torch.set_num_threads(1)


def _files(root) -> set:
    from pathlib import Path

    return {p for p in Path(root).rglob("*") if p.is_file()}


@pytest.fixture
def refused(capsys, tmp_path, monkeypatch):
    """Run the CLI on bad input and check the foundation rule: exit 2, one line on stderr, no traceback,
    and no new file under ``tmp_path`` except ``*.config.json``. Returns the error line.

    Usage: ``line = refused(["train", "--lr", "nan", "--out", str(tmp_path / "run")])``; the command
    runs with ``tmp_path`` as its working directory.
    """
    from mintaudit.cli import main

    monkeypatch.chdir(tmp_path)

    def run(argv, *, allow_new=()):
        before = _files(tmp_path)
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        err = captured.err
        assert code == 2, f"exit {code}, stderr: {err!r}"
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        assert len(lines) == 1, f"expected one line on stderr, got: {err!r}"
        assert lines[0].startswith("mintaudit: error: ") and "Traceback" not in err, err
        new = {p for p in _files(tmp_path) - before if not p.name.endswith(".config.json")}
        new = {p for p in new if not any(p.match(a) for a in allow_new)}
        assert not new, f"files written by a refused command: {sorted(map(str, new))}"
        return lines[0]

    return run


@pytest.fixture
def toy_dataset():
    """120 random 8x8 grey images in 3 classes, the last 40 marked as the official test split."""
    from mintaudit.data import ImageDataset

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(120, 8, 8, 1), dtype=np.uint8)
    labels = np.arange(120) % 3
    return ImageDataset("toy", images, labels, 3, official_test=np.arange(120) >= 80)


@pytest.fixture
def tiny_model():
    from mintaudit.models import TinyCNN

    torch.manual_seed(0)
    return TinyCNN(1, 3).eval()


@pytest.fixture(scope="session")
def fashion_mnist():
    """Real Fashion-MNIST (Debian's dataset-fashion-mnist or $MINTAUDIT_DATA); skips the test when absent."""
    from mintaudit.data import load_dataset
    from mintaudit.errors import DataNotFoundError

    try:
        return load_dataset("fashion-mnist")
    except DataNotFoundError:
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")


def pytest_collection_modifyitems(config, items):
    from tiers import INTEGRATION_FILES

    for item in items:
        if item.nodeid.split("::")[0] in INTEGRATION_FILES:
            item.add_marker(pytest.mark.integration)

"""Shared fixtures: seeded RNGs, tiny models and data built here, real data when present."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _few_threads() -> None:
    torch.set_num_threads(2)


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

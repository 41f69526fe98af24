"""Fixtures shared by the attack tests."""

from __future__ import annotations

import pytest

from mintaudit.data import ImageDataset, make_splits
from mintaudit.models import ModelSpec, build_model
from mintaudit.passive import passive_split
from mintaudit.training import TrainConfig, train_classifier


@pytest.fixture
def small_setup(toy_dataset):
    """(dataset, spec, a 2-epoch tiny-cnn on 40 members, the passive split) on the 8x8 toy pool, no official test."""
    ds = ImageDataset("toy", toy_dataset.images, toy_dataset.labels, 3)
    splits = make_splits(ds, members=40, external=40, test=30, seed=0)
    spec = ModelSpec("tiny-cnn", 1, 3, (8, 8))
    model = build_model(spec)
    train_classifier(model, ds, splits.members, TrainConfig(epochs=2, batch_size=16), show_progress=False)
    return ds, spec, model, passive_split(splits, seed=0)

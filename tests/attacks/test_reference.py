import numpy as np

import mintaudit.attacks.reference as reference
from mintaudit.attacks import reference_logits, train_reference_models
from mintaudit.models import ModelSpec
from mintaudit.training import TrainConfig


def test_reference_models_halves_cache_and_logits(toy_dataset, tmp_path, monkeypatch):
    spec = ModelSpec("tiny-cnn", 1, 3, (8, 8))
    population = np.arange(40, 80)
    cfg = TrainConfig(epochs=1, batch_size=16)
    refs = train_reference_models(spec, toy_dataset, population, 2, cfg, tmp_path / "refs", show_progress=False)
    assert len(refs.models) == 2
    for part in refs.train_indices:
        assert len(part) == 20 and set(part) <= set(population)
    assert not np.array_equal(refs.train_indices[0], refs.train_indices[1])
    mask = refs.in_mask(population)
    assert mask.shape == (2, 40) and (mask.sum(1) == 20).all()
    assert (mask.sum(0) == 1).all()  # paired halves: every sample IN for exactly one of the two
    assert not refs.in_mask(np.arange(0, 40)).any()

    calls = []
    monkeypatch.setattr(reference, "train_classifier", lambda *a, **k: calls.append(1))
    again = train_reference_models(spec, toy_dataset, population, 3, cfg, tmp_path / "refs", show_progress=False)
    assert len(calls) == 1  # the first two came from the cache, only the third was trained
    x = np.zeros((1, 1, 8, 8), np.float32)
    import torch

    for a, b in zip(refs.models, again.models[:2]):
        assert torch.equal(a(torch.from_numpy(x)), b(torch.from_numpy(x)))

    logits = reference_logits(refs, toy_dataset, np.arange(10), tmp_path / "cache")
    assert logits.shape == (2, 10, 3) and np.isfinite(logits).all()

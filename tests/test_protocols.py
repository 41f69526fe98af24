"""The engine's protocol types and their default adapters (no behaviour change: they wrap what exists)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mintaudit.data import ImageDataset, PoolSource
from mintaudit.detectors import DetectorScorer, MintDetector
from mintaudit.errors import ConfigError
from mintaudit.models import ModelSpec, build_model, save_model
from mintaudit.protocols import Scorer, Source, Target, Trainer
from mintaudit.targets import ModuleTarget, open_target, register_scheme, split_scheme, unregister_scheme
from mintaudit.training import PackageTrainer, TrainConfig


def _pool(n: int = 20) -> ImageDataset:
    rng = np.random.default_rng(0)
    return ImageDataset("toy", rng.integers(0, 256, (n, 8, 8, 1), dtype=np.uint8), np.arange(n) % 2, 2)


def test_pool_source_reads_through_the_pools_preprocessing() -> None:
    ds = _pool()
    src = PoolSource(ds, ids=np.array([3, 5, 7, 9]))
    assert isinstance(src, Source)
    assert len(src) == 4 and src.labels.tolist() == [1, 1, 1, 1]
    (x, y), *rest = list(src.batches(np.array([2, 0]), batch_size=8))
    assert not rest
    assert torch.equal(x, ds.batch(np.array([7, 3]))) and y.tolist() == [1, 1]
    assert PoolSource(ds).fingerprint() == ds.fingerprint()
    assert src.fingerprint() != ds.fingerprint()


def test_open_target_is_build_model_plus_weights(tmp_path) -> None:
    spec = ModelSpec("tiny-cnn", 1, 2, (8, 8))
    torch.manual_seed(1)
    net = build_model(spec).eval()
    save_model(net, spec, tmp_path)
    target = open_target("tiny-cnn", input_shape=(1, 8, 8), num_classes=2, weights=tmp_path / "model.safetensors")
    assert isinstance(target, Target) and target.kind == "zoo" and target.supports_gradients
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(target.module(x), net(x))
    assert target.fingerprint() == ModuleTarget(net, "tiny-cnn").fingerprint()
    fresh = target.fresh()
    assert isinstance(fresh, nn.Module) and fresh is not target.module


def test_a_registered_scheme_opens_its_locators_and_wins_over_a_module_name() -> None:
    seen = {}

    def opener(path, *, input_shape, num_classes, kwargs):
        seen.update(path=path, shape=input_shape, k=num_classes, kwargs=kwargs)
        return ModuleTarget(nn.Flatten(), f"toyscheme:{path}", kind="toyscheme", supports_gradients=False)

    register_scheme("toyscheme", opener)
    try:
        assert split_scheme("toyscheme:some/dir") == ("toyscheme", "some/dir")
        target = open_target("toyscheme:some/dir", input_shape=(1, 2, 2), num_classes=4, kwargs={"a": 1})
        assert target.kind == "toyscheme" and target.fresh() is None
        assert seen == {"path": "some/dir", "shape": (1, 2, 2), "k": 4, "kwargs": {"a": 1}}
        with pytest.raises(ConfigError, match="already registered"):
            register_scheme("toyscheme", opener)
    finally:
        unregister_scheme("toyscheme")
    assert split_scheme("toyscheme:some/dir") == (None, "toyscheme:some/dir")


def test_detector_scorer_scores_like_its_detector() -> None:
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(1, 1, (60, 4)), rng.normal(-1, 1, (60, 4))]).astype(np.float32)
    y = np.r_[np.ones(60), np.zeros(60)]
    scorer = DetectorScorer(MintDetector(hidden=16, epochs=5, seed=0)).fit(X, y)
    assert isinstance(scorer, Scorer)
    scores = scorer.score(X)
    assert scores.shape == (120,) and scores[:60].mean() > scores[60:].mean()
    assert np.array_equal(scores, scorer.detector.decision_function(X))


def test_package_trainer_trains_from_a_loader() -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).long()
    loader = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]
    net = nn.Linear(4, 2)
    before = nn.functional.cross_entropy(net(x), y).item()
    trainer = PackageTrainer(TrainConfig(epochs=20, lr=0.05))
    assert isinstance(trainer, Trainer)
    out = trainer(net, loader)
    assert out is net and not net.training
    assert nn.functional.cross_entropy(net(x), y).item() < 0.5 * before

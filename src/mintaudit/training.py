"""The one plain training loop, for audited models (and later reference / shadow models)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mintaudit._io import atomic_path
from mintaudit._progress import progress
from mintaudit._tensor import iter_batches
from mintaudit.data._base import ImageDataset
from mintaudit.errors import ConfigError, WeightsError

__all__ = ["TrainConfig", "TrainResult", "train_classifier", "accuracy"]

CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class TrainConfig:
    """Options of :func:`train_classifier` (Adam on cross-entropy)."""

    epochs: int = 15
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for key in ("epochs", "batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")


@dataclass
class TrainResult:
    """What training produced: per-epoch history and final accuracies."""

    history: list[dict[str, float]] = field(default_factory=list)
    train_accuracy: float = float("nan")
    test_accuracy: float | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def accuracy(model: nn.Module, dataset: ImageDataset, indices: np.ndarray, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` (put in eval mode, mode restored) on ``indices`` of ``dataset``."""
    was_training = model.training
    model.eval()
    correct = 0
    try:
        for x, y, _ in iter_batches(dataset, indices, batch_size):
            correct += int((model(x).argmax(1) == y).sum())
    finally:
        model.train(was_training)
    return correct / max(len(indices), 1)


def train_classifier(
    model: nn.Module,
    dataset: ImageDataset,
    train_indices: np.ndarray,
    config: TrainConfig,
    *,
    test_indices: np.ndarray | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    show_progress: bool | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``train_indices`` of ``dataset`` with Adam and cross-entropy.

    A checkpoint (model, optimiser, RNG states, history) is written atomically after every
    epoch when ``checkpoint_dir`` is given; ``resume=True`` continues from it and ends in the
    same weights as an uninterrupted run with the same seed.

    Args:
        model: the classifier, (B, C, H, W) float -> (B, num_classes) logits.
        dataset: the pool.
        train_indices: int array of pool indices to train on (the members).
        config: epochs, batch size, learning rate, weight decay, seed.
        test_indices: optional held-out indices whose accuracy is logged each epoch.
        checkpoint_dir: where ``checkpoint.pt`` goes.
        resume: continue from the checkpoint in ``checkpoint_dir`` (if there is one).
        show_progress: progress bar; None = only on a terminal.

    Returns:
        TrainResult with the history and the final train/test accuracy.
    """
    if len(train_indices) == 0:
        raise ConfigError("no training samples; check the member split")
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    result = TrainResult()
    start_epoch = 0
    ckpt_path = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir is not None else None
    if resume and ckpt_path is not None and ckpt_path.is_file():
        try:
            state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["torch_rng"])
            gen.set_state(state["sampler_rng"])
        except (KeyError, RuntimeError) as e:
            raise WeightsError(f"checkpoint {str(ckpt_path)!r} does not fit this model/run ({e}); drop --resume") from e
        start_epoch = int(state["epoch"])
        result.history = [dict(zip(state["history_keys"], row)) for row in state["history"].tolist()]
    t0 = time.perf_counter()
    n_batches = -(-len(train_indices) // config.batch_size)
    for epoch in range(start_epoch, config.epochs):
        model.train()
        total, correct, loss_sum = 0, 0, 0.0
        bar = progress(
            iter_batches(dataset, train_indices, config.batch_size, generator=gen),
            total=n_batches, desc=f"train epoch {epoch + 1}/{config.epochs}", enabled=show_progress, unit="batch",
        )
        for x, y, _ in bar:
            opt.zero_grad(set_to_none=True)
            logits = model(x)
            loss = loss_fn(logits, y)
            loss.backward()
            opt.step()
            total += len(y)
            loss_sum += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
        row = {"epoch": float(epoch + 1), "loss": loss_sum / total, "train_accuracy": correct / total}
        if test_indices is not None and len(test_indices):
            row["test_accuracy"] = accuracy(model, dataset, test_indices)
        result.history.append(row)
        if ckpt_path is not None:
            keys = list(row)
            state = {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "sampler_rng": gen.get_state(),
                "epoch": epoch + 1,
                "history_keys": keys,
                "history": torch.tensor([[r.get(k, float("nan")) for k in keys] for r in result.history]),
            }
            with atomic_path(ckpt_path) as tmp:
                torch.save(state, tmp)
    model.eval()
    result.seconds = time.perf_counter() - t0
    result.train_accuracy = accuracy(model, dataset, train_indices)
    if test_indices is not None and len(test_indices):
        result.test_accuracy = accuracy(model, dataset, test_indices)
    return result

"""Reference (shadow) models for the calibrated attacks, trained with the package's one loop.

Model 2k is trained on a seeded random half of the population indices and model 2k+1 on the
other half, so every population sample is IN for half of the models and OUT for the rest
(what online LiRA needs);
offline attacks use the population as data the audited samples are never part of. Each model is
cached on disk under a key of everything that determines it, so reruns, other attacks and
larger model counts reuse what was trained.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mintaudit.attacks.trainers import ReferenceTrainer, load_weights, save_weights
from mintaudit.data._base import ImageDataset
from mintaudit.errors import ConfigError
from mintaudit.models.registry import ModelSpec, build_model, load_model, save_model
from mintaudit.signals import extract_signals
from mintaudit.training import TrainConfig, train_classifier

__all__ = ["ReferenceSet", "train_reference_models", "reference_logits"]


@dataclass(frozen=True)
class ReferenceSet:
    """Trained reference models and, for each, the pool indices it was trained on."""

    models: tuple[nn.Module, ...]
    train_indices: tuple[np.ndarray, ...]

    def in_mask(self, indices: np.ndarray) -> np.ndarray:
        """bool (R, N): True where ``indices[n]`` was in reference model r's training data."""
        indices = np.asarray(indices)
        return np.stack([np.isin(indices, t) for t in self.train_indices])


def _key(
    spec: ModelSpec | None,
    data_fp: str,
    population: np.ndarray,
    config: TrainConfig,
    r: int,
    trainer: ReferenceTrainer | None = None,
) -> str:
    parts: list[Any] = [spec.to_dict() if spec is not None else None, data_fp, config.to_dict(), r]
    if trainer is not None:  # the default loop keeps the keys it always had
        parts.append(trainer.describe())
    h = hashlib.sha256(json.dumps(parts, sort_keys=True).encode())
    h.update(np.ascontiguousarray(np.sort(population), dtype=np.int64).data)
    return h.hexdigest()[:16]


def rows_fingerprint(dataset: ImageDataset, ids: np.ndarray, batch_size: int = 1024) -> str:
    """SHA-256 (16 hex) of the model inputs and labels of pool ``ids``, in order (read batch by batch)."""
    h = hashlib.sha256(b"rows\0")
    for start in range(0, len(ids), batch_size):
        part = ids[start : start + batch_size]
        h.update(np.ascontiguousarray(dataset.batch(part).numpy(), dtype=np.float32).data)
        h.update(np.ascontiguousarray(dataset.labels[part], dtype=np.int64).data)
    return h.hexdigest()[:16]


def train_reference_models(
    spec: ModelSpec | None,
    dataset: ImageDataset,
    population: np.ndarray,
    n_models: int,
    config: TrainConfig,
    cache_root: str | Path,
    *,
    show_progress: bool | None = None,
    train: bool = True,
    trainer: ReferenceTrainer | None = None,
) -> ReferenceSet:
    """Train (or load from the cache) ``n_models`` reference models on halves of ``population``.

    Args:
        spec: architecture of the reference models (usually the audited model's).
        dataset: the pool.
        population: int array of pool indices disjoint from the audited members and from the
            evaluation non-members.
        n_models: how many models.
        config: training options; model r uses seed ``config.seed + r``.
        cache_root: folder of the model cache.
        train: False to refuse (ConfigError) instead of training a model that is not cached.
        trainer: the user's recipe and/or model builder (:class:`ReferenceTrainer`); None: the
            package's loop on ``build_model(spec)``. Its description is part of the cache key.

    Returns:
        The :class:`ReferenceSet`, models in eval mode.
    """
    population = np.asarray(population, dtype=np.int64)
    if n_models < 1:
        raise ConfigError(f"n_models must be >= 1, got {n_models}")
    if spec is None and (trainer is None or trainer.build is None):
        raise ConfigError("reference models need the model's architecture: give build= (a fresh untrained model)")
    if len(population) < 2:
        raise ConfigError(f"reference models need a population of at least 2 samples, got {len(population)}")
    # the default loop keeps its keys; a user's recipe keys on the population's samples themselves, so the
    # same references serve a pool grown by new query samples (AuditResult.verdict on (x, y))
    data_fp = dataset.fingerprint() if trainer is None else rows_fingerprint(dataset, population)
    models, parts = [], []
    for r in range(n_models):
        cfg = TrainConfig(**{**config.to_dict(), "seed": config.seed + r})
        folder = Path(cache_root) / _key(spec, data_fp, population, cfg, r, trainer)
        # paired halves: model 2k takes a random half, model 2k+1 its complement
        perm = np.random.default_rng(config.seed + r // 2).permutation(population)
        half = np.sort(perm[: len(perm) // 2] if r % 2 == 0 else perm[len(perm) // 2 :])
        if (folder / "model.json").is_file() and trainer is not None and spec is None:
            model = load_weights(trainer.fresh(cfg.seed, lambda: build_model(spec)), folder)  # type: ignore[arg-type]
        elif (folder / "model.json").is_file():
            model, _, _ = load_model(folder)
        elif not train:
            raise ConfigError(
                f"reference model {r + 1} of {n_models} is not in the cache {str(cache_root)!r}; "
                "train them with 'mintaudit attack' first"
            )
        elif trainer is not None:
            model = trainer.fresh(cfg.seed, lambda: build_model(spec))  # type: ignore[arg-type]
            model = trainer.train(
                model,
                dataset,
                half,
                cfg.seed,
                lambda m, half=half, cfg=cfg: train_classifier(m, dataset, half, cfg, show_progress=show_progress),
            )
            about = {"reference_index": r, "train": cfg.to_dict(), "trainer": trainer.describe()}
            if spec is not None:
                save_model(model, spec, folder, about)
            else:
                save_weights(model, folder, about)
        else:
            torch.manual_seed(cfg.seed)
            model = build_model(spec)
            train_classifier(model, dataset, half, cfg, show_progress=show_progress)
            save_model(model, spec, folder, {"reference_index": r, "train": cfg.to_dict()})
        model.eval()
        models.append(model)
        parts.append(half)
    return ReferenceSet(tuple(models), tuple(parts))


def reference_logits(
    refs: ReferenceSet, dataset: ImageDataset, indices: np.ndarray, cache_root: str | Path, *, batch_size: int = 256
) -> np.ndarray:
    """float32 (R, N, K): each reference model's logits on ``indices`` (through the signal cache)."""
    return np.stack(
        [
            extract_signals(m, dataset, indices, [], cache_root, batch_size=batch_size, show_progress=False).outputs()[
                "logits"
            ]
            for m in refs.models
        ]
    )

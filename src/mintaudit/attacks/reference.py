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
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mintaudit import distributed
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


@dataclass(frozen=True)
class _Plan:
    """Reference model ``r``: its training options (seed ``config.seed + r``), cache folder and training half."""

    r: int
    cfg: TrainConfig
    folder: Path
    half: np.ndarray

    def cached(self) -> bool:
        return (self.folder / "model.json").is_file()  # written last, after the weights

    def load(self, spec: ModelSpec | None, trainer: ReferenceTrainer | None) -> nn.Module:
        if trainer is not None and spec is None:
            return load_weights(trainer.fresh(self.cfg.seed, lambda: build_model(spec)), self.folder)  # type: ignore[arg-type]
        return load_model(self.folder)[0]


def _train_one(
    spec: ModelSpec | None,
    dataset: ImageDataset,
    p: _Plan,
    trainer: ReferenceTrainer | None,
    show_progress: bool | None,
    about: dict[str, Any],
) -> nn.Module:
    """Train reference model ``p.r`` (a function of its seed and half alone) and write it to its cache folder."""
    if trainer is None:
        torch.manual_seed(p.cfg.seed)
        model = build_model(spec)  # type: ignore[arg-type]
        train_classifier(model, dataset, p.half, p.cfg, show_progress=show_progress)
        save_model(model, spec, p.folder, {**about, "train": p.cfg.to_dict()})  # type: ignore[arg-type]
        return model
    model = trainer.fresh(p.cfg.seed, lambda: build_model(spec))  # type: ignore[arg-type]
    model = trainer.train(
        model,
        dataset,
        p.half,
        p.cfg.seed,
        lambda m: train_classifier(m, dataset, p.half, p.cfg, show_progress=show_progress),
    )
    info = {**about, "train": p.cfg.to_dict(), "trainer": trainer.describe()}
    if spec is not None:
        save_model(model, spec, p.folder, info)
    else:
        save_weights(model, p.folder, info)
    return model


def _log_ranks(by_rank: list[list[int]], n_models: int, cache_root: str | Path, show: bool | None) -> None:
    """One progress line: which rank trained which reference model (index r, as in model.json)."""
    if not (sys.stderr.isatty() if show is None else show):
        return
    trained = sum(len(d) for d in by_rank)
    shares = "; ".join(f"rank {k} trained {', '.join(map(str, d)) or 'none'}" for k, d in enumerate(by_rank))
    print(
        f"reference models in {str(cache_root)!r}: {shares} ({n_models - trained} of {n_models} were cached)",
        file=sys.stderr,
    )


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

    Where mintaudit runs over a process group (:func:`mintaudit.distributed.init`: the command line
    under torchrun, or ``distributed=True``) the models are trained task-parallel: model r
    whole by rank ``r % world_size``, alone, into the shared cache; then every rank loads all of
    them from it. The models equal one process's, bit for bit (each depends on its seed and half).

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
    plans = []
    for r in range(n_models):
        cfg = TrainConfig(**{**config.to_dict(), "seed": config.seed + r})
        folder = Path(cache_root) / _key(spec, data_fp, population, cfg, r, trainer)
        # paired halves: model 2k takes a random half, model 2k+1 its complement
        perm = np.random.default_rng(config.seed + r // 2).permutation(population)
        half = np.sort(perm[: len(perm) // 2] if r % 2 == 0 else perm[len(perm) // 2 :])
        plans.append(_Plan(r, cfg, folder, half))
    missing = [p.r for p in plans if not p.cached()]
    if missing and not train:
        raise ConfigError(
            f"reference model {missing[0] + 1} of {n_models} is not in the cache {str(cache_root)!r}; "
            "train them with 'mintaudit attack' first"
        )

    def fit(p: _Plan, show: bool | None, about: dict[str, Any]) -> nn.Module:
        return _train_one(spec, dataset, p, trainer, show, {"reference_index": p.r, **about})

    # under torchrun, task-parallel: model r by rank r % world_size, each alone, into the shared cache
    if distributed.is_active():  # the command line under torchrun, or distributed=True
        show = show_progress if distributed.is_main() else False
        where = {"rank": distributed.rank(), "world_size": distributed.world_size()}
        by_rank = distributed.share_tasks(missing, lambda r: fit(plans[r], show, {"trained_by": where}))
        _log_ranks(by_rank, n_models, cache_root, show)
        models = [p.load(spec, trainer) for p in plans]
    else:
        models = [fit(p, show_progress, {}) if p.r in missing else p.load(spec, trainer) for p in plans]
    for model in models:
        model.eval()
    return ReferenceSet(tuple(models), tuple(p.half for p in plans))


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

"""Imitative reference models for calibrated MINT (after Du et al. 2025, "Imitative Membership Inference Attack").

Instead of reference models trained from scratch on labels, *imitators* are distilled from the
audited model itself, so that they reproduce its behaviour everywhere except on what it memorised:

- ``n`` OUT imitators: the target's architecture, initialised as the target was (below), trained
  to match the target's logits (mean squared error on the logits, Ba & Caruana 2014: no
  temperature to choose, and the logits' scale, which every confidence signal reads, is matched
  too) on the reference population, the data the offline reference models use;
- ``n`` IN imitators: copies of the OUT imitators that continue the same distillation on the
  pivot samples, every row calibrated MINT scores or fits on, with the target's logits on them (the
  auditor may query those; no membership label is used).

"Initialised as the target was": a copy of the target's modules re-initialised by their own
``reset_parameters`` right after ``torch.manual_seed(s)``, ``s`` the reference training seed; the
pipeline builds the audited model the same way (``torch.manual_seed(seed)``, then the
constructor), so with the same seed this is the target's own initial weights. All imitators
share it and differ by their batch order (seed ``s + k`` for imitator ``k``).

Features, per sample and per tap (the model's published taps, else the input of its last
``nn.Linear``, and the logits; activations averaged over their spatial positions): the root mean
square difference between the target's activation and each imitator's, averaged over the OUT and
over the IN imitators: ``d_out``, ``d_in`` and ``d_out - d_in`` (a member is where the target
departs from its OUT imitators, which never saw it, more than from the IN ones).

Each imitator is cached under ``cache_root / "imitators"`` by a key of the recipe, the training
options, its index and kind, and the bytes of its data and of the target's logits on them (a
changed target, recipe or row set is a new key); a cached imitator is never retrained.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mintaudit.attacks.reference import rows_fingerprint
from mintaudit.attacks.trainers import load_weights, save_weights
from mintaudit.data._base import ImageDataset
from mintaudit.models import MODEL_NAMES, model_entry
from mintaudit.training import TrainConfig

__all__ = [
    "RECIPE",
    "Imitators",
    "imitation_block",
    "imitation_features",
    "imitation_taps",
    "reinitialised",
    "train_imitators",
]

#: The distillation recipe; part of every imitator's cache key (a change = new imitators).
RECIPE = {"version": 1, "loss": "mse-logits", "optimizer": "adam", "in_epochs": "max(1, epochs // 2)"}
_LOGITS = "logits"


@dataclass(frozen=True)
class Imitators:
    """The OUT and IN imitators (eval mode, on the CPU), imitator k of each kind at position k."""

    out: tuple[nn.Module, ...]
    inside: tuple[nn.Module, ...]
    trained: int  # how many were trained now (the rest came from the cache)


def reinitialised(model: nn.Module, seed: int) -> nn.Module:
    """A copy of ``model`` with every module's ``reset_parameters`` run, in module order, after ``torch.manual_seed(seed)``."""
    m = copy.deepcopy(model).cpu()
    with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
        torch.manual_seed(seed)
        for mod in m.modules():
            reset = getattr(mod, "reset_parameters", None)
            if callable(reset):
                reset()
    return m


def imitation_taps(model: nn.Module) -> list[str]:
    """The zoo's published taps of ``model``'s class, else the input of its last ``nn.Linear``; then ``logits``."""
    for name in MODEL_NAMES:
        entry = model_entry(name)
        if entry is not None and entry.factory is type(model) and entry.published:
            return [layer for _, layer in entry.published] + [_LOGITS]
    linear = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    return ([f"{linear[-1]}:input"] if linear else []) + [_LOGITS]


def _key(parts: list[Any], *arrays: np.ndarray) -> str:
    h = hashlib.sha256(json.dumps(parts, sort_keys=True).encode())
    for a in arrays:
        h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()[:16]


def _distill(
    model: nn.Module,
    dataset: ImageDataset,
    ids: np.ndarray,
    target: np.ndarray,
    cfg: TrainConfig,
    epochs: int,
    seed: int,
) -> nn.Module:
    """Adam on the mean squared error between ``model``'s logits and ``target`` (rows of ``ids``), seeded."""
    with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
        torch.manual_seed(seed)  # dropout
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        t = torch.as_tensor(target, dtype=torch.float32)
        model.train()
        for _ in range(epochs):
            order = torch.randperm(len(ids), generator=gen).numpy()
            for start in range(0, len(ids), cfg.batch_size):
                part = order[start : start + cfg.batch_size]
                opt.zero_grad()
                nn.functional.mse_loss(model(dataset.batch(ids[part])), t[part]).backward()
                opt.step()
    return model.eval()


def train_imitators(
    target: nn.Module,
    dataset: ImageDataset,
    population: np.ndarray,
    population_logits: np.ndarray,
    pivots: np.ndarray,
    pivot_logits: np.ndarray,
    n: int,
    cfg: TrainConfig,
    cache_root: str | Path,
    *,
    show_progress: bool | None = None,
) -> Imitators:
    """Train (or load from the cache) ``n`` OUT and ``n`` IN imitators of ``target`` (see the module docstring).

    Args:
        population, population_logits: the distillation data (pool ids) and the target's logits on them.
        pivots, pivot_logits: the rows the IN imitators continue on, and the target's logits there.
        cfg: batch size, learning rate, weight decay, epochs (OUT) and seed ``s`` (imitator k: ``s + k``).
    """
    show = sys.stderr.isatty() if show_progress is None else show_progress
    root = Path(cache_root) / "imitators"
    pop_fp, piv_fp = rows_fingerprint(dataset, population), rows_fingerprint(dataset, pivots)
    base = [RECIPE, cfg.to_dict(), pop_fp]
    pop_logits = np.asarray(population_logits, np.float32)
    piv_logits = np.asarray(pivot_logits, np.float32)
    in_epochs = max(1, cfg.epochs // 2)
    out, inside, trained = [], [], 0
    for k in range(n):
        seed = cfg.seed + k
        folder_out = root / _key([*base, "out", k], pop_logits)
        folder_in = root / _key([*base, "in", k, piv_fp], pop_logits, piv_logits)
        fresh = reinitialised(target, cfg.seed)
        if (folder_out / "model.json").is_file():
            m_out = load_weights(fresh, folder_out).eval()
        else:
            if show:
                print(f"imitators: distilling OUT imitator {k + 1} of {n} ({cfg.epochs} epochs)", file=sys.stderr)
            m_out = _distill(fresh, dataset, population, pop_logits, cfg, cfg.epochs, seed)
            save_weights(m_out, folder_out, {"imitator": "out", "index": k, "recipe": RECIPE, "train": cfg.to_dict()})
            trained += 1
        if (folder_in / "model.json").is_file():
            m_in = load_weights(reinitialised(target, cfg.seed), folder_in).eval()
        else:
            if show:
                print(f"imitators: continuing IN imitator {k + 1} of {n} on the pivots", file=sys.stderr)
            m_in = _distill(copy.deepcopy(m_out), dataset, pivots, piv_logits, cfg, in_epochs, seed + 10_000)
            info = {"imitator": "in", "index": k, "recipe": RECIPE, "train": cfg.to_dict(), "in_epochs": in_epochs}
            save_weights(m_in, folder_in, info)
            trained += 1
        out.append(m_out)
        inside.append(m_in)
    return Imitators(tuple(out), tuple(inside), trained)


@torch.no_grad()
def _activations(model: nn.Module, dataset: ImageDataset, ids: np.ndarray, taps: list[str], batch_size: int) -> dict:
    """Tap -> float64 (N, C): each tap's activation, averaged over its spatial positions."""
    modules = dict(model.named_modules())
    got: dict[str, list[np.ndarray]] = {t: [] for t in taps}
    current: dict[str, torch.Tensor] = {}
    hooks = []
    for tap in taps:
        if tap == _LOGITS:
            continue
        name, _, where = tap.partition(":")
        if where == "input":
            hooks.append(modules[name].register_forward_hook(lambda m, i, o, t=tap: current.__setitem__(t, i[0])))
        else:
            hooks.append(modules[name].register_forward_hook(lambda m, i, o, t=tap: current.__setitem__(t, o)))
    was = model.training
    model.eval()
    try:
        for start in range(0, len(ids), batch_size):
            x = dataset.batch(ids[start : start + batch_size])
            current[_LOGITS] = model(x.to(next(iter(model.parameters()), x).device))
            for tap in taps:
                a = current[tap].detach().float().cpu()
                a = a.flatten(2).mean(2) if a.ndim > 2 else a
                got[tap].append(a.double().numpy())
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    return {t: np.concatenate(v) if v else np.zeros((0, 0)) for t, v in got.items()}


def _distances(
    target: dict, models: tuple[nn.Module, ...], dataset, ids, taps, batch_size
) -> tuple[np.ndarray, list[np.ndarray]]:
    """(T, N): per tap, the root mean square difference from the target, averaged over ``models``; their logits."""
    total = np.zeros((len(taps), len(ids)))
    logits = []
    for m in models:
        acts = _activations(m, dataset, ids, taps, batch_size)
        for j, tap in enumerate(taps):
            total[j] += np.sqrt(((acts[tap] - target[tap]) ** 2).mean(1))
        logits.append(acts[_LOGITS])
    return total / len(models), logits


def imitation_features(
    target: nn.Module, imitators: Imitators, dataset: ImageDataset, ids: np.ndarray, *, batch_size: int = 256
) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    """float64 (N, 3T) features of rows ``ids``, their names, and the imitators' fidelity.

    Columns per tap: ``d_out``, ``d_in``, ``d_out - d_in``. Fidelity: the share of ``ids`` where each
    kind's argmax agrees with the target's, and each kind's mean squared logit error there.
    """
    taps = imitation_taps(target)
    t = _activations(target, dataset, ids, taps, batch_size)
    d_out, logits_out = _distances(t, imitators.out, dataset, ids, taps, batch_size)
    d_in, logits_in = _distances(t, imitators.inside, dataset, ids, taps, batch_size)
    cols, names = [], []
    for j, tap in enumerate(taps):
        cols += [d_out[j], d_in[j], d_out[j] - d_in[j]]
        names += [f"imit_out:{tap}", f"imit_in:{tap}", f"imit_gap:{tap}"]
    fidelity: dict[str, Any] = {}
    for kind, logits in (("out", logits_out), ("in", logits_in)):  # the same forwards as the distances
        agree = [float((x.argmax(1) == t[_LOGITS].argmax(1)).mean()) for x in logits]
        mse = [float(((x - t[_LOGITS]) ** 2).mean()) for x in logits]
        fidelity[kind] = {"agreement": float(np.mean(agree)), "logit_mse": float(np.mean(mse))}
    return np.stack(cols, 1), names, {"taps": taps, "fidelity": fidelity}


def imitation_block(ctx: Any, extra: np.ndarray, n: int) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    """Calibrated MINT's hook: features of ``ctx.scored`` then ``extra`` from ``n`` OUT and IN imitators."""
    t0 = time.perf_counter()
    cfg = ctx.config
    rows = np.r_[ctx.scored, extra].astype(np.int64)
    population = np.asarray(ctx.reference_population, dtype=np.int64)

    def logits_of(ids: np.ndarray) -> np.ndarray:
        from mintaudit.signals import extract_signals

        out = extract_signals(
            ctx.model, ctx.dataset, ids, [], ctx.signals_root, batch_size=cfg.batch_size, show_progress=False
        )
        return out.outputs()["logits"]

    imit = train_imitators(
        ctx.model,
        ctx.dataset,
        population,
        logits_of(population),
        rows,
        logits_of(rows),
        n,
        cfg.reference_train,
        ctx.cache_root,
        show_progress=ctx.show_progress,
    )
    X, names, about = imitation_features(ctx.model, imit, ctx.dataset, rows, batch_size=cfg.batch_size)
    about = {"n": n, **about, "trained": imit.trained, "seconds": round(time.perf_counter() - t0, 2)}
    return X, names, about

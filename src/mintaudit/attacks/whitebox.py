"""White-box signals of a model, calibrated per sample against reference models.

What only a white-box auditor reads (see the ``whitebox-lira`` attack, whose notes define each
signal and the calibration): :func:`whitebox_signals` computes them on one model,
:func:`calibrate` turns the audited model's values into per-sample z-scores against the reference
models that did not train on each sample. White-box LiRA combines the z-scores as a likelihood
ratio; calibrated MINT takes the values and the z-scores as features of its MINT model.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mintaudit._logits import logits_of
from mintaudit.data import ImageDataset
from mintaudit.errors import ConfigError
from mintaudit.signals.gradients import gradient_layers
from mintaudit.signals.gradnorm import per_sample_grad_norms

__all__ = ["SIGNALS", "calibrate", "whitebox_signals"]

#: The signal families, in column order.
SIGNALS = ("margin", "confidence", "aug-loss", "grad-norm", "curvature")


def _views(x: torch.Tensor, views: str = "shifts") -> list[torch.Tensor]:
    """The views beside the input itself: its horizontal flip, then (``shifts``) its one-pixel shifts.

    Zeros enter at the edge of a shifted view.
    """
    if views == "flip":
        return [torch.flip(x, [-1])]
    right = F.pad(x, (1, 0, 0, 0))[..., :, :-1]
    left = F.pad(x, (0, 1, 0, 0))[..., :, 1:]
    down = F.pad(x, (0, 0, 1, 0))[..., :-1, :]
    up = F.pad(x, (0, 0, 0, 1))[..., 1:, :]
    return [torch.flip(x, [-1]), right, left, down, up]


def _curvature(model: nn.Module, x: torch.Tensor, y: torch.Tensor, probes: int, seed: int) -> torch.Tensor:
    """Hutchinson's estimate of trace(d^2 loss / dx^2) per sample (samples are independent in eval mode)."""
    gen = torch.Generator().manual_seed(seed)
    x = x.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(logits_of(model(x)), y, reduction="sum")
    (g,) = torch.autograd.grad(loss, x, create_graph=True)
    total = torch.zeros(len(x), dtype=torch.float64)
    for _ in range(probes):
        v = torch.randint(0, 2, x.shape, generator=gen).to(x.dtype) * 2 - 1
        (hv,) = torch.autograd.grad((g * v).sum(), x, retain_graph=True)
        total += (hv * v).flatten(1).sum(1).double()
    t = total / probes
    return torch.sign(t) * torch.log1p(t.abs())


def whitebox_signals(
    model: nn.Module,
    dataset: ImageDataset,
    ids: np.ndarray,
    signals: list[str],
    *,
    blocks: str = "combined",
    views: str = "shifts",
    probes: int = 4,
    seed: int = 0,
    batch_size: int = 128,
    seconds: dict[str, float] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """float64 (N, S) white-box signals of ``model`` on pool ``ids``, and the column names.

    ``seconds`` (optional) accumulates the time spent per signal family.
    """
    was_training = model.training
    model.eval()
    layers = gradient_layers(model, blocks) if "grad-norm" in signals else []
    cols: dict[str, list[np.ndarray]] = {}
    clock = seconds if seconds is not None else {}
    try:
        for start in range(0, len(ids), batch_size):
            part = ids[start : start + batch_size]
            x = dataset.batch(part)
            y = torch.as_tensor(dataset.labels[part], dtype=torch.long)
            got: dict[str, torch.Tensor] = {}
            t0 = time.perf_counter()
            if layers:  # one forward and one backward give the logits and the gradient norms
                norms, z = per_sample_grad_norms(model, x, y, layers)
                for layer in layers:
                    got[f"grad-norm:{layer}"] = torch.log(norms[layer].double() + 1e-12)
                clock["grad-norm"] = clock.get("grad-norm", 0.0) + time.perf_counter() - t0
            else:
                with torch.no_grad():
                    z = logits_of(model(x))
                clock["forward"] = clock.get("forward", 0.0) + time.perf_counter() - t0
            z = z.double()
            if "margin" in signals or "confidence" in signals:
                true = z.gather(1, y[:, None])[:, 0]
                other = z.scatter(1, y[:, None], float("-inf")).max(1).values
                if "margin" in signals:
                    got["margin"] = true - other
                if "confidence" in signals:  # LiRA's statistic: log p_y - log(1 - p_y), stable
                    got["confidence"] = true - torch.logsumexp(z.scatter(1, y[:, None], float("-inf")), 1)
            if "aug-loss" in signals:
                t0 = time.perf_counter()
                with torch.no_grad():  # the plain view's loss from the logits above
                    losses = torch.stack(
                        [F.cross_entropy(z, y, reduction="none")]
                        + [F.cross_entropy(logits_of(model(v)).double(), y, reduction="none") for v in _views(x, views)]
                    )
                got["aug-loss-mean"], got["aug-loss-sd"] = losses.mean(0), losses.std(0, correction=0)
                clock["aug-loss"] = clock.get("aug-loss", 0.0) + time.perf_counter() - t0
            if "curvature" in signals:
                t0 = time.perf_counter()
                got["curvature"] = _curvature(model, x, y, probes, seed + start)
                clock["curvature"] = clock.get("curvature", 0.0) + time.perf_counter() - t0
            for k, v in got.items():
                cols.setdefault(k, []).append(v.detach().double().numpy())
    finally:
        model.train(was_training)
    order = [s for s in SIGNALS if s in signals]  # columns in family order, whatever the order computed
    names = sorted(cols, key=lambda k: next(i for i, s in enumerate(order) if k.startswith(s)))
    return np.stack([np.concatenate(cols[k]) for k in names], 1), names


def calibrate(target: np.ndarray, refs: np.ndarray, out_mask: np.ndarray, shrink: float) -> np.ndarray:
    """Per-sample z-scores of ``target`` (N, S) against the OUT reference values ``refs`` (R, N, S).

    ``out_mask`` is bool (R, N): True where reference r did not train on sample n (each sample needs
    at least two). Variances shrunk toward the population's median variance (see the module notes).
    """
    m = out_mask[:, :, None].astype(np.float64)
    k = m.sum(0)  # (N, 1)
    if (k < 2).any():
        raise ConfigError(
            "white-box LiRA needs at least 2 reference models that did not train on each sample; give --reference 2 or more"
        )
    mean = (refs * m).sum(0) / k
    var = (((refs - mean) ** 2) * m).sum(0) / (k - 1)
    v_pop = np.median(var, axis=0, keepdims=True)
    v_pop = np.where(v_pop > 0, v_pop, np.maximum(var.mean(0, keepdims=True), 1e-12))
    shrunk = ((k - 1) * var + shrink * v_pop) / (k - 1 + shrink)
    return (target - mean) / np.sqrt(np.maximum(shrunk, 1e-24))

"""White-box LiRA (our construction, after the audit-power issue; no paper defines this combination).

What only a white-box auditor has, calibrated per sample against the offline reference models
(never trained on the scored samples), then combined as a multi-signal likelihood ratio:

- **signals**, each computed on the audited model and on every reference model, for every scored
  sample (higher or lower: the fit decides the direction):

  - ``margin``: the true-class logit minus the largest other logit;
  - ``aug-loss``: the mean and the standard deviation (ddof 0) of the loss over six views of the
    model input: itself, its horizontal flip and its shifts by one pixel in each direction
    (zeros enter at the edge, in the model's input space);
  - ``grad-norm``: per block, the log of the Euclidean norm of the per-sample gradient of the
    loss w.r.t. the block's weight (:func:`~mintaudit.signals.gradient_vectors`, reduction
    ``l2``; the blocks are a gMINT setup, ``combined`` by default: the first, middle and last
    weighted layers);
  - ``curvature`` (an option, not in the default set): the trace of the Hessian of the loss
    w.r.t. the input, estimated by Hutchinson's method with ``probes`` Rademacher vectors
    (seeded), as ``log(1 + |trace|)`` with its sign.

- **per-sample calibration**: for each signal and sample n, the mean ``m_n`` and the variance
  ``v_n`` (ddof 1) of the reference models that did not train on n (``k_n`` of them); the
  variance is shrunk toward the population's, ``v'_n = ((k_n - 1) v_n + s v_pop) / (k_n - 1 + s)``,
  where ``v_pop`` is the median of ``v_n`` over the scored samples and ``s`` the option
  ``shrink`` (pseudo-models; 4 by default): a sample whose few references happen to agree does
  not get a tiny variance. The calibrated signal is ``z_n = (t_n - m_n) / sqrt(v'_n)``, ``t_n`` the
  audited model's value.

- **the likelihood ratio**: on the auditor's own data (known members: IN; the calibration half
  of the external samples: OUT), one Gaussian per side and per signal is fitted to the z values;
  the score is the sum over signals of ``log N(z; mu_in, sd_in) - log N(z; mu_out, sd_out)``
  (LiRA's per-signal ratio, signals taken as independent). The held-out members and test
  non-members are scored with the fit on all the auditor's rows; the auditor's rows themselves
  (the calibration sets ``mintaudit test`` reads) are scored by two-fold cross-fitting, so their
  AUC is not measured on the rows a fit saw.

Cost: six forwards and one per-sample-gradient pass per model (target and references), on every
scored sample; ``info["seconds_by_signal"]`` gives it per signal, summed over the models.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn

from mintaudit._logits import logits_of
from mintaudit.attacks.options import option
from mintaudit.attacks.registry import AttackContext, AttackScores, register_attack
from mintaudit.data import ImageDataset
from mintaudit.errors import ConfigError
from mintaudit.evaluation.metrics import auc_score
from mintaudit.signals.gradients import gradient_layers, gradient_vectors

__all__ = ["SIGNALS", "WhiteboxOptions", "calibrate", "likelihood_ratio", "whitebox_signals"]

#: The signal families, in column order.
SIGNALS = ("margin", "confidence", "aug-loss", "grad-norm", "curvature")


@dataclass(frozen=True)
class WhiteboxOptions:
    """``--attack-opt whitebox-lira.signals=margin+aug-loss`` and the like."""

    signals: str = option(
        "margin+aug-loss+grad-norm",
        "white-box signals joined by '+': margin, aug-loss, grad-norm, curvature (the last not by default)",
    )
    shrink: float = option(4.0, "weight (in reference models) of the population's variance in each sample's", low=0.0)
    probes: int = option(4, "Rademacher probes of the curvature signal (Hutchinson)", low=1, high=64)
    blocks: str = option("combined", "the blocks of grad-norm: a gMINT setup (entry, middle, output, combined)")
    covariance: str = option(
        "diagonal",
        "the Gaussians of the ratio: diagonal (a sum of per-signal ratios) or full",
        choices=("diagonal", "full"),
    )

    def __post_init__(self) -> None:
        names = self.names()
        bad = [s for s in names if s not in SIGNALS]
        if bad or not names:
            raise ConfigError(
                f"--attack-opt whitebox-lira.signals: unknown signal {bad[0] if bad else '(none)'!r}; "
                f"choose among {', '.join(SIGNALS)} joined by '+'"
            )
        if self.blocks not in ("entry", "middle", "output", "combined"):
            raise ConfigError(
                f"--attack-opt whitebox-lira.blocks must be entry, middle, output or combined, got {self.blocks!r}"
            )

    def names(self) -> list[str]:
        return [s.strip() for s in self.signals.split("+") if s.strip()]


def _views(x: torch.Tensor) -> list[torch.Tensor]:
    """The input, its horizontal flip and its one-pixel shifts (zeros enter at the edge)."""
    right = F.pad(x, (1, 0, 0, 0))[..., :, :-1]
    left = F.pad(x, (0, 1, 0, 0))[..., :, 1:]
    down = F.pad(x, (0, 0, 1, 0))[..., :-1, :]
    up = F.pad(x, (0, 0, 0, 1))[..., 1:, :]
    return [x, torch.flip(x, [-1]), right, left, down, up]


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
            if "margin" in signals or "confidence" in signals:
                with torch.no_grad():
                    z = logits_of(model(x)).double()
                true = z.gather(1, y[:, None])[:, 0]
                other = z.scatter(1, y[:, None], float("-inf")).max(1).values
                if "margin" in signals:
                    got["margin"] = true - other
                if "confidence" in signals:  # LiRA's statistic: log p_y - log(1 - p_y), stable
                    got["confidence"] = true - torch.logsumexp(z.scatter(1, y[:, None], float("-inf")), 1)
                clock["margin"] = clock.get("margin", 0.0) + time.perf_counter() - t0
            if "aug-loss" in signals:
                t0 = time.perf_counter()
                with torch.no_grad():
                    losses = torch.stack(
                        [F.cross_entropy(logits_of(model(v)).double(), y, reduction="none") for v in _views(x)]
                    )
                got["aug-loss-mean"], got["aug-loss-sd"] = losses.mean(0), losses.std(0, correction=0)
                clock["aug-loss"] = clock.get("aug-loss", 0.0) + time.perf_counter() - t0
            if "grad-norm" in signals:
                t0 = time.perf_counter()
                grads, _ = gradient_vectors(model, x, y, layers, "l2")
                for layer in layers:
                    got[f"grad-norm:{layer}"] = torch.log(grads[layer].double().norm(dim=1) + 1e-12)
                clock["grad-norm"] = clock.get("grad-norm", 0.0) + time.perf_counter() - t0
            if "curvature" in signals:
                t0 = time.perf_counter()
                got["curvature"] = _curvature(model, x, y, probes, seed + start)
                clock["curvature"] = clock.get("curvature", 0.0) + time.perf_counter() - t0
            for k, v in got.items():
                cols.setdefault(k, []).append(v.detach().double().numpy())
    finally:
        model.train(was_training)
    names = list(cols)
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


def likelihood_ratio(z_in: np.ndarray, z_out: np.ndarray, covariance: str = "diagonal") -> Any:
    """A function ``z (N, S) -> log N(z; IN fit) - log N(z; OUT fit)``, fitted on the given rows.

    ``diagonal``: the sum over signals of the per-signal ratios; ``full``: multivariate Gaussians
    (covariances with a 1e-3 ridge on the diagonal, relative to their trace).
    """
    if covariance == "full":
        fits = []
        for rows in (z_in, z_out):
            cov = np.atleast_2d(np.cov(rows, rowvar=False))
            cov = cov + np.eye(len(cov)) * 1e-3 * max(np.trace(cov) / len(cov), 1e-12)
            fits.append(stats.multivariate_normal(rows.mean(0), cov, allow_singular=True))
        return lambda z: fits[0].logpdf(z) - fits[1].logpdf(z)
    mu = (z_in.mean(0), z_out.mean(0))
    sd = (np.maximum(z_in.std(0), 1e-6), np.maximum(z_out.std(0), 1e-6))
    return lambda z: (stats.norm.logpdf(z, mu[0], sd[0]) - stats.norm.logpdf(z, mu[1], sd[1])).sum(1)


@register_attack("whitebox-lira", needs_references=True, label="white-box LiRA", options=WhiteboxOptions)
def whitebox_lira(ctx: AttackContext) -> AttackScores:
    opts: WhiteboxOptions = ctx.options
    t_all = time.perf_counter()
    ref_set, _ = ctx.reference("offline")
    seed, names, clock = int(ctx.config.seed), opts.names(), {}
    kw = {"blocks": opts.blocks, "probes": opts.probes, "seed": seed, "seconds": clock}
    target, columns = whitebox_signals(ctx.model, ctx.dataset, ctx.scored, names, **kw)
    refs = np.stack([whitebox_signals(m, ctx.dataset, ctx.scored, names, **kw)[0] for m in ref_set.models])
    z = calibrate(target, refs, ~ref_set.in_mask(ctx.scored), opts.shrink)
    a = ctx.n_members + ctx.n_nonmembers
    known, calib = np.arange(a, a + ctx.n_known), np.arange(a + ctx.n_known, len(ctx.scored))
    if min(len(known), len(calib)) < 4:
        raise ConfigError(
            f"white-box LiRA fits its ratio on known members against external samples and needs at least 4 of "
            f"each; got {len(known)} and {len(calib)}: give more --members and --external"
        )
    s = likelihood_ratio(z[known], z[calib], opts.covariance)(z)
    # the auditor's rows, cross-fitted on two seeded folds: their scores never come from a fit that saw them
    rng = np.random.default_rng(seed)
    fold_k, fold_c = rng.permutation(len(known)) % 2, rng.permutation(len(calib)) % 2
    for f in (0, 1):
        fit = likelihood_ratio(z[known[fold_k != f]], z[calib[fold_c != f]], opts.covariance)
        s[known[fold_k == f]] = fit(z[known[fold_k == f]])
        s[calib[fold_c == f]] = fit(z[calib[fold_c == f]])
    y_val = np.r_[np.ones(len(known)), np.zeros(len(calib))]
    info = {
        "val_auc": float(auc_score(y_val, np.r_[s[known], s[calib]])),  # cross-fitted: no row scored by its own fit
        "signals": columns,
        "shrink": opts.shrink,
        "blocks": opts.blocks,
        "covariance": opts.covariance,
        "n_reference": len(ref_set.models),
        "seconds_by_signal": {k: round(v, 3) for k, v in clock.items()},
        "seconds": round(time.perf_counter() - t_all, 2),
        "row": {"signal": "white-box+calibrated"},
    }
    return ctx.to_scores(s, info)

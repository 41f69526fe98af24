"""White-box LiRA (our construction, after the audit-power issue; no paper defines this combination).

What only a white-box auditor has, calibrated per sample against the offline reference models
(never trained on the scored samples), then combined as a multi-signal likelihood ratio:

- **signals**, each computed on the audited model and on every reference model, for every scored
  sample (higher or lower: the fit decides the direction):

  - ``margin``: the true-class logit minus the largest other logit;
  - ``aug-loss``: the mean and the standard deviation (ddof 0) of the loss over views of the
    model input: itself and its horizontal flip (option ``views=flip``, the default), or also its
    shifts by one pixel in each direction (``views=shifts``; zeros enter at the edge, in the
    model's input space);
  - ``grad-norm``: per block, the log of the Euclidean norm of the per-sample gradient of the
    loss w.r.t. the block's weight (:func:`~mintaudit.signals.gradnorm.per_sample_grad_norms`,
    equal to the norm of :func:`~mintaudit.signals.gradient_vectors`' per-sample gradient; the
    blocks are a gMINT setup, ``combined`` by default: the first, middle and last weighted layers);
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

Cost per model (target and references) and scored sample, by default: one forward and one
backward pass (the gradient norms, :func:`~mintaudit.signals.gradnorm.per_sample_grad_norms`;
the margin reads the same forward) and one more forward (the flip); ``info["seconds_by_signal"]``
gives it per signal family, summed over the models.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from mintaudit.attacks.options import option
from mintaudit.attacks.registry import AttackContext, AttackScores, register_attack
from mintaudit.attacks.whitebox import SIGNALS, calibrate, whitebox_signals
from mintaudit.errors import ConfigError
from mintaudit.evaluation.metrics import auc_score

__all__ = ["WhiteboxOptions", "likelihood_ratio"]


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
    views: str = option(
        "flip",
        "the views of aug-loss beside the input: flip, or shifts (the flip and the four one-pixel shifts)",
        choices=("flip", "shifts"),
    )
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
    kw = {"blocks": opts.blocks, "views": opts.views, "probes": opts.probes, "seed": seed, "seconds": clock}
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
        "views": opts.views,
        "covariance": opts.covariance,
        "n_reference": len(ref_set.models),
        "seconds_by_signal": {k: round(v, 3) for k, v in clock.items()},
        "seconds": round(time.perf_counter() - t_all, 2),
        "row": {"signal": "white-box+calibrated"},
    }
    return ctx.to_scores(s, info)

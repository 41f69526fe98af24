"""Calibrated MINT (our reconstruction; no paper defines it): a MINT model on reference-calibrated output signals.

The attacks that beat passive MINT on the same model (RMIA, LiRA, difficulty-calibrated loss)
all compare each sample's signal with what reference models, never trained on it, give for the
same sample; the MINT detector on output signals never sees that. Calibrated MINT fuses both:

- the audited model's output signals (:func:`mintaudit.signals.output_features`: loss,
  logit-scaled confidence, max probability, entropy, correctness);
- per sample, against the offline reference models: the true-label loss and the logit-scaled
  confidence ``log(p / (1 - p))``, each as the difference from the references' mean on that
  sample and as that difference over their spread (standard deviation, ddof 0), the spread
  floored at a quantile of the spreads on the MINT-training rows (a sample all references agree
  on cannot blow up); the references' mean and spread of the confidence (how hard the sample is);
  the RMIA score (:func:`~mintaudit.attacks.scores.rmia_scores`, the population z of the ``rmia``
  attack) and offline LiRA (:func:`~mintaudit.attacks.scores.lira_scores`).

The MINT model is fitted on exactly passive MINT's data and protocol: known members (1) against
the external samples no reference model trained on (0): with ``--population unused`` every
external sample, otherwise the half of them the references did not use. It is validated on its
own seeded, stratified part of that data (``fit.val_auc``), and scores the held-out members
against the non-member test samples. Two detectors are fitted on the same training part, the
MLP :class:`~mintaudit.detectors.MintDetector` and a logistic regression (about a dozen
features: the MLP may over-fit); the one with the higher validation AUC is kept. The row's
threshold is tuned on the validation part.

White-box features (option ``whitebox``, by default ``margin+aug-loss+grad-norm``): the signals
of :func:`mintaudit.attacks.whitebox.whitebox_signals` on every fitted or scored row, each as the
audited model's value and as its per-sample z-score against the offline reference models
(:func:`mintaudit.attacks.whitebox.calibrate`, variances shrunk toward the population's by
``shrink`` pseudo-models); ``aug-loss`` over the input and its flip (``views=flip``) or also its
one-pixel shifts (``views=shifts``). ``whitebox=none`` keeps the output features alone. They need
two reference models or more. ``imitators`` > 0 adds the activations' distances from imitators
distilled from the target (:mod:`mintaudit.attacks.imitate`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from mintaudit.attacks.imitate import imitation_block
from mintaudit.attacks.options import option
from mintaudit.attacks.reference import reference_logits
from mintaudit.attacks.registry import AttackContext, AttackScores, register_attack
from mintaudit.attacks.scores import lira_scores, logit_confidence, loss_scores, rmia_scores
from mintaudit.attacks.whitebox import SIGNALS, calibrate, whitebox_signals
from mintaudit.detectors import DetectorConfig, MintDetector
from mintaudit.errors import ConfigError
from mintaudit.evaluation.metrics import auc_score
from mintaudit.signals import extract_signals, output_features

__all__ = [
    "CALIBRATED",
    "CalibratedMintOptions",
    "FEATURES",
    "SPREAD_FLOOR_QUANTILE",
    "calibrated_signals",
    "features",
    "spread_floors",
    "training_rows",
    "validation_rows",
]

#: The reference-calibrated columns of :func:`calibrated_signals`, in order.
CALIBRATED = (
    "loss_minus_ref",
    "loss_z",
    "confidence_minus_ref",
    "confidence_z",
    "ref_confidence_mean",
    "ref_confidence_spread",
)
#: Every feature of the MINT model, in column order.
FEATURES = ("loss", "logit_confidence", "max_probability", "entropy", "correct", *CALIBRATED, "rmia", "lira")
#: The spread floor: this quantile of the references' per-sample spreads on the MINT-training rows.
SPREAD_FLOOR_QUANTILE = 0.25
_MIN_PER_CLASS = 4


@dataclass(frozen=True)
class CalibratedMintOptions:
    """``--attack-opt calibrated-mint.whitebox=none`` and the like."""

    whitebox: str = option(
        "margin+aug-loss+grad-norm",
        "white-box signals added as features, each as the audited model's value and its z-score against "
        "the reference models (as whitebox-lira computes them), joined by '+'; none: outputs only",
    )
    views: str = option(
        "flip",
        "the views of the aug-loss signal beside the input: flip, or shifts (the flip and four one-pixel shifts)",
        choices=("flip", "shifts"),
    )
    shrink: float = option(4.0, "weight (in reference models) of the population's variance in each sample's", low=0.0)
    imitators: int = option(
        0,
        "OUT and IN imitators distilled from the target; their activation distances are features (0: none)",
        low=0,
        high=16,
    )

    def __post_init__(self) -> None:
        names = self.names()
        bad = [s for s in names if s not in SIGNALS]
        if bad or (not names and self.whitebox.strip().lower() != "none"):
            what = f"unknown signal {bad[0]!r}" if bad else "no signal given"
            raise ConfigError(
                f"--attack-opt calibrated-mint.whitebox: {what}; choose among {', '.join(SIGNALS)} joined by '+', "
                "or none"
            )

    def names(self) -> list[str]:
        if self.whitebox.strip().lower() == "none":
            return []
        return [s.strip() for s in self.whitebox.split("+") if s.strip()]


def spread_floors(
    ref_logits: np.ndarray, labels: np.ndarray, quantile: float = SPREAD_FLOOR_QUANTILE
) -> tuple[float, float]:
    """The floors of the loss and confidence spreads: ``quantile`` of the per-sample spreads (at least 1e-6).

    Args:
        ref_logits: reference models on the MINT-training rows, (R, N, K); labels: (N,).
    """
    loss_sd = (-loss_scores(ref_logits, labels)).std(0)
    conf_sd = logit_confidence(ref_logits, labels).std(0)
    return max(float(np.quantile(loss_sd, quantile)), 1e-6), max(float(np.quantile(conf_sd, quantile)), 1e-6)


def calibrated_signals(
    logits: np.ndarray, labels: np.ndarray, ref_logits: np.ndarray, floors: tuple[float, float]
) -> np.ndarray:
    """float64 (N, 6): the :data:`CALIBRATED` columns (higher = more likely a member, except the last two).

    ``loss_minus_ref`` = mean reference loss - target loss (the calibrated-loss attack's score);
    ``loss_z`` = that over ``max(spread of the reference losses, floors[0])``; the same two for
    the logit-scaled confidence (target - mean reference, over the floored spread); then the
    references' mean and spread (ddof 0) of the confidence.

    Args:
        logits: the audited model, (N, K); labels: (N,); ref_logits: the offline reference
            models on the same samples, (R, N, K); floors: from :func:`spread_floors`.
    """
    ref_loss = -loss_scores(ref_logits, labels)  # (R, N)
    ref_conf = logit_confidence(ref_logits, labels)
    loss_diff = ref_loss.mean(0) + loss_scores(logits, labels)
    conf_diff = logit_confidence(logits, labels) - ref_conf.mean(0)
    conf_sd = ref_conf.std(0)
    return np.stack(
        [
            loss_diff,
            loss_diff / np.maximum(ref_loss.std(0), floors[0]),
            conf_diff,
            conf_diff / np.maximum(conf_sd, floors[1]),
            ref_conf.mean(0),
            conf_sd,
        ],
        1,
    )


def training_rows(
    n_members: int, n_nonmembers: int, n_known: int, n_calibration: int, n_extra: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rows (of ``scored`` then the extra external samples) the MINT model is fitted on, and their labels.

    Known members (1), then the calibration external samples and the extra ones (0); never a
    held-out member or a test non-member (the first ``n_members + n_nonmembers`` rows).
    """
    start = n_members + n_nonmembers
    rows = np.arange(start, start + n_known + n_calibration + n_extra)
    return rows, np.r_[np.ones(n_known), np.zeros(n_calibration + n_extra)].astype(np.int64)


def validation_rows(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(validation, training) positions of ``y``: the stratified, seeded split of :class:`MintDetector`'s fit."""
    rng = np.random.default_rng(seed)
    val, train = [], []
    for cls in (0, 1):
        rows = rng.permutation(np.flatnonzero(y == cls))
        k = max(1, int(round(fraction * len(rows))))
        val.append(rows[:k])
        train.append(rows[k:])
    return np.concatenate(val), np.concatenate(train)


def _logistic(X: np.ndarray, y: np.ndarray, train: np.ndarray, seed: int) -> Any:
    mean, sd = X[train].mean(0), X[train].std(0)
    sd = np.where(sd > 1e-9, sd, 1.0)
    lr = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000, random_state=seed)
    lr.fit((X[train] - mean) / sd, y[train])
    return lambda Z: lr.decision_function((Z - mean) / sd)


def features(ctx: AttackContext) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """(features of scored + extra external rows, their labels, the training rows, fit details)."""
    cfg = ctx.config
    n_m, n_n, n_k, n_calib = ctx.n_members, ctx.n_nonmembers, ctx.n_known, len(ctx.calibration_external)
    used = np.concatenate([ctx.reference_population, ctx.calibration_external])
    extra = np.setdiff1d(ctx.split.external, used)  # external samples no reference model saw, outside ``scored``
    if min(n_k, n_calib + len(extra)) < _MIN_PER_CLASS:  # before any reference model is trained
        raise ConfigError(
            f"calibrated-mint fits a MINT model on known members against external samples and needs "
            f"at least {_MIN_PER_CLASS} of each; got {n_k} and {n_calib + len(extra)}: give more "
            "--members and --external"
        )
    _, rl = ctx.reference("offline")
    rl = rl[:, 0]  # the plain view
    logits, labels = ctx.logits, ctx.labels
    if len(extra):
        ref_set, _ = ctx.reference("offline")
        t = (
            extract_signals(
                ctx.model, ctx.dataset, extra, [], ctx.signals_root, batch_size=cfg.batch_size, show_progress=False
            )
            .outputs()["logits"]
            .astype(np.float64)
        )
        r = reference_logits(ref_set, ctx.dataset, extra, ctx.cache_root / "signals").astype(np.float64)
        logits, labels, rl = np.r_[logits, t], np.r_[labels, ctx.dataset.labels[extra]], np.concatenate([rl, r], 1)
    fit_rows, y = training_rows(n_m, n_n, n_k, n_calib, len(extra))
    floors = spread_floors(rl[:, fit_rows], labels[fit_rows])
    z = slice(n_m + n_n + n_k, n_m + n_n + n_k + n_calib)  # RMIA's population: as the rmia attack's
    rmia = rmia_scores(logits, labels, rl, logits[z], labels[z], rl[:, z], offline_a=cfg.rmia_a, gamma=cfg.rmia_gamma)
    fixed = cfg.fixed_variance if cfg.fixed_variance is not None else cfg.n_reference < 8
    lira = lira_scores(logits, labels, rl, fixed_variance=fixed)
    X = np.c_[
        output_features(logits, labels).astype(np.float64), calibrated_signals(logits, labels, rl, floors), rmia, lira
    ]
    names = list(FEATURES)
    opts: CalibratedMintOptions = ctx.options or CalibratedMintOptions()
    white: dict[str, Any] = {}
    if opts.names():
        X, names, white = _white_box(ctx, opts, np.r_[ctx.scored, extra], X, names)
    about = {
        "spread_floor": {"loss": floors[0], "confidence": floors[1], "quantile": SPREAD_FLOOR_QUANTILE},
        "lira_fixed_variance": fixed,
        "rmia_population": n_calib,
        "n_known_members": int(n_k),
        "n_external": int(n_calib + len(extra)),
        "features": names,
        **white,
    }
    if opts.imitators:  # imitative references (mintaudit.attacks.imitate)
        Xi, imitated, about["imitators"] = imitation_block(ctx, extra, opts.imitators)
        X, about["features"] = np.c_[X, Xi], [*names, *imitated]
    return X, y, fit_rows, about


def _white_box(
    ctx: AttackContext, opts: CalibratedMintOptions, rows: np.ndarray, X: np.ndarray, names: list[str]
) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    """``X`` with the white-box columns of ``rows`` appended (each signal's value, then its z-score), and the details."""
    ref_set, _ = ctx.reference("offline")
    if len(ref_set.models) < 2:
        raise ConfigError(
            "calibrated-mint's white-box features need at least 2 reference models; give --reference 2 or more, "
            "or --attack-opt calibrated-mint.whitebox=none"
        )
    clock: dict[str, float] = {}
    kw = {"views": opts.views, "seed": int(ctx.config.seed), "seconds": clock, "batch_size": ctx.config.batch_size}
    target, columns = whitebox_signals(ctx.model, ctx.dataset, rows, opts.names(), **kw)
    refs = np.stack([whitebox_signals(m, ctx.dataset, rows, opts.names(), **kw)[0] for m in ref_set.models])
    z = calibrate(target, refs, ~ref_set.in_mask(rows), opts.shrink)
    names = [*names, *columns, *(f"{c} z" for c in columns)]
    about = {
        "whitebox": opts.whitebox,
        "views": opts.views,
        "shrink": opts.shrink,
        "seconds_by_signal": {k: round(v, 3) for k, v in clock.items()},
    }
    return np.c_[X, target, z], names, about


@register_attack("calibrated-mint", needs_references=True, label="calibrated MINT", options=CalibratedMintOptions)
def calibrated_mint(ctx: AttackContext) -> AttackScores:
    """P(member) over ``ctx.scored``; the calibration sets are the MINT model's validation part."""
    t0 = time.perf_counter()
    X, y, fit_rows, about = features(ctx)
    Xf = X[fit_rows]
    det_cfg = DetectorConfig(kind="mlp", seed=ctx.config.seed)
    val, train = validation_rows(y, det_cfg.val_fraction, det_cfg.seed)
    mlp = MintDetector.from_config(det_cfg, show_progress=False).fit(Xf.astype(np.float32), y)
    logistic = _logistic(Xf, y, train, det_cfg.seed)
    decide = {"mlp": lambda Z: mlp.decision_function(Z.astype(np.float32)).astype(np.float64), "logistic": logistic}
    val_auc = {k: float(auc_score(y[val], f(Xf[val]))) for k, f in decide.items()}
    kind = max(val_auc, key=lambda k: (val_auc[k], k == "mlp"))  # a tie keeps the MLP
    n = len(ctx.scored)
    s, vs = expit(decide[kind](X[:n])), expit(decide[kind](Xf[val]))
    info = {
        "val_auc": val_auc[kind],
        "detector": kind,
        "val_auc_by_detector": val_auc,
        "best_epoch": mlp.best_epoch_ if kind == "mlp" else None,
        **about,
        "n_reference": ctx.config.n_reference,
        "seconds": round(time.perf_counter() - t0, 2),
        "row": {
            "signal": "outputs+white-box+calibrated" if "whitebox" in about else "outputs+calibrated",
            "detector": kind,
            "threshold_source": "the MINT model's validation part (known members vs external samples)",
        },
    }
    sc = ctx.to_scores(s, info)
    return replace(sc, calibration_members=vs[y[val] == 1], calibration_nonmembers=vs[y[val] == 0])

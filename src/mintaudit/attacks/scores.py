"""Membership inference attacks as pure score functions (higher score = more likely a member).

Every function takes model outputs (logits) already computed, so the same target and
reference-model outputs serve every attack, and evaluation never knows which attack scored.

Shapes: ``logits`` float (N, K); ``labels`` int (N,); reference-model logits float (R, N, K)
(R reference models); ``ref_in`` bool (R, N), True where sample n was in reference model r's
training data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special, stats

from mintaudit.errors import ConfigError, EvaluationError

__all__ = [
    "loss_scores",
    "confidence_scores",
    "entropy_scores",
    "modified_entropy_scores",
    "calibrated_loss_scores",
    "logit_confidence",
    "lira_scores",
    "lira_variance",
    "rmia_scores",
]


def _check(logits: np.ndarray, labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim < 2:
        raise EvaluationError(f"logits must be (..., N, K), got shape {z.shape}")
    if not np.isfinite(z).all():
        raise EvaluationError("logits contain NaN or infinite values; check the model")
    if labels is None:
        return z, None
    y = np.asarray(labels, dtype=np.int64)
    if y.shape != z.shape[-2:-1]:
        raise EvaluationError(f"{z.shape[-2]} logits rows but labels of shape {y.shape}")
    if y.min(initial=0) < 0 or y.max(initial=0) >= z.shape[-1]:
        raise EvaluationError(f"labels must lie in [0, {z.shape[-1]})")
    return z, y


def _log_softmax(z: np.ndarray) -> np.ndarray:
    return z - special.logsumexp(z, axis=-1, keepdims=True)


def _true_class(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    """a[..., n, y[n]] for every leading index: (..., N, K) -> (..., N)."""
    return np.take_along_axis(a, np.broadcast_to(y[:, None], (*a.shape[:-1], 1)), axis=-1)[..., 0]


def loss_scores(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """LOSS (Yeom et al. 2018): minus the cross-entropy on the true label. Shape (N,)."""
    z, y = _check(logits, labels)
    return _true_class(_log_softmax(z), y)


def confidence_scores(logits: np.ndarray) -> np.ndarray:
    """Confidence (Salem et al. 2019): the maximum softmax probability. Shape (N,)."""
    z, _ = _check(logits)
    return np.exp(_log_softmax(z)).max(-1)


def entropy_scores(logits: np.ndarray) -> np.ndarray:
    """Entropy (Salem et al. 2019): minus the prediction entropy (members are predicted surely)."""
    z, _ = _check(logits)
    logp = _log_softmax(z)
    return (np.exp(logp) * logp).sum(-1)


def modified_entropy_scores(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Modified entropy (Song & Mittal 2021), negated.

    ``Mentr = -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i)``; it is small for confident,
    correct predictions and large for confident wrong ones.
    """
    z, y = _check(logits, labels)
    logp = _log_softmax(z)
    p = np.exp(logp)
    log1mp = np.log1p(-np.clip(p, 0.0, 1.0 - 1e-12))
    terms = -p * log1mp  # i != y terms
    onehot = np.zeros_like(p, dtype=bool)
    np.put_along_axis(onehot, y[:, None], True, axis=-1)
    terms = np.where(onehot, -(1.0 - p) * logp, terms)
    return -terms.sum(-1)


def calibrated_loss_scores(logits: np.ndarray, labels: np.ndarray, ref_logits: np.ndarray) -> np.ndarray:
    """Difficulty calibration (Watson et al. 2022): minus (target loss - mean reference loss).

    Args:
        logits: target model, (N, K); labels: (N,); ref_logits: reference models, (R, N, K),
            trained on data that excludes the audited samples.
    """
    ref, _ = _check(ref_logits, labels)
    if ref.ndim != 3:
        raise EvaluationError(f"ref_logits must be (R, N, K), got {ref.shape}")
    return loss_scores(logits, labels) - loss_scores(ref, labels).mean(0)


def logit_confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """LiRA's logit-scaled confidence ``log(p_y / (1 - p_y))``, computed stably from logits.

    Equals ``z_y - logsumexp_{i != y} z_i``. Works on (..., N, K) logits.
    """
    z, y = _check(logits, labels)
    zy = _true_class(z, y)
    others = z.copy()
    np.put_along_axis(others, np.broadcast_to(y[:, None], (*z.shape[:-1], 1)), -np.inf, axis=-1)
    return zy - special.logsumexp(others, axis=-1)


def _side_counts(ref_in: np.ndarray, online: bool) -> dict[str, np.ndarray]:
    """Models per sample on each side that is fitted: {"in": (N,), "out": (N,)} (offline: "out" only)."""
    sides = {"out": (~ref_in).sum(0)}
    if online:
        sides["in"] = ref_in.sum(0)
    return sides


def lira_variance(ref_in: np.ndarray, *, online: bool = False, fixed_variance: bool = False) -> dict[str, Any]:
    """Which variance :func:`lira_scores` uses for each side, as a report's ``fit`` fields.

    The rule: a sample's variance on a side (IN or OUT) is its own, over that side's models
    (ddof 0, as the reference code), when it has at least 2 models there;
    otherwise, and for every sample when ``fixed_variance``, it is the side's pooled variance:
    the squared deviations of the samples with 2 models or more, over their model count (the
    reference code's fixed variance, without the zeros of one-model samples). A side with no
    such sample (offline with one model; online with two, one per side) takes the other side's
    pool, or, when neither has one, one variance for both sides: that of every reference
    statistic over samples and models (the LiRA authors' fixed variance).

    Args:
        ref_in: bool (R, N), see :func:`lira_scores`.

    Returns:
        ``{"variance": "per-sample" | "pooled", "n_pooled": {side: samples on the pool},
        "pool": {side: "per-sample variances" | "other side" | "all reference statistics"}}``.
    """
    counts = _side_counts(np.asarray(ref_in, dtype=bool), online)
    pools = {side: "per-sample variances" if (c >= 2).any() else None for side, c in counts.items()}
    for side in pools:
        if pools[side] is None:
            other = [s for s in pools if s != side and pools[s] == "per-sample variances"]
            pools[side] = "other side" if other else "all reference statistics"
    return {
        "variance": "pooled" if fixed_variance else "per-sample",
        "n_pooled": {side: int(len(c)) if fixed_variance else int((c < 2).sum()) for side, c in counts.items()},
        "pool": pools,
    }


def lira_scores(
    logits: np.ndarray,
    labels: np.ndarray,
    ref_logits: np.ndarray,
    ref_in: np.ndarray | None = None,
    *,
    online: bool = False,
    fixed_variance: bool = False,
) -> np.ndarray:
    """LiRA (Carlini et al. 2022) on logit-scaled confidences.

    Gaussians are fitted per sample to the reference models' statistics: the mean over the
    side's models, the variance as :func:`lira_variance` says (per sample with 2 models or
    more, else pooled; ``fixed_variance`` pools every sample). Online: the log-likelihood ratio
    ``log N(x; mu_in, s_in) - log N(x; mu_out, s_out)``, as tensorflow/privacy's
    ``compute_score_lira`` (sign flipped: higher = member). Offline: the one-sided test against
    the OUT Gaussian, reported as its z-score ``(x - mu_out) / s_out`` (the paper's
    ``Pr[Z < x]`` ranks the same, but its log saturates to 0 in float64 beyond z = 38).

    Test-time augmentation: give ``logits`` as (A, N, K) and ``ref_logits`` as (R, A, N, K)
    (A augmentations, e.g. the image and its horizontal flip); Gaussians are fitted per
    augmentation (pooled variances over all of them, as the reference code), and the scores
    combined: the log-likelihood ratios summed, the z-scores by Stouffer's rule
    ``sum_a z_a / sqrt(A)``.

    Args:
        logits: target model (N, K) or (A, N, K).
        labels: (N,).
        ref_logits: reference models (R, N, K) or (R, A, N, K).
        ref_in: bool (R, N): sample n in reference model r's training data. Offline LiRA uses
            only the OUT models (all models when None); online LiRA needs IN and OUT models.
        online: likelihood ratio of IN vs OUT Gaussians; offline: one-sided test against OUT.
        fixed_variance: one variance per side shared by all samples (better with few models).

    Returns:
        float (N,): higher = more likely a member.
    """
    target = logit_confidence(logits, labels)
    ref = logit_confidence(ref_logits, labels)
    if target.ndim == 1:
        target, ref = target[None], ref[:, None]
    n_ref = ref.shape[0]
    if ref_in is None:
        if online:
            raise ConfigError("online LiRA needs ref_in, which reference models trained on which samples")
        ref_in = np.zeros((n_ref, target.shape[-1]), dtype=bool)
    ref_in = np.asarray(ref_in, dtype=bool)
    if ref_in.shape != (n_ref, target.shape[-1]):
        raise EvaluationError(f"ref_in must be (R, N) = ({n_ref}, {target.shape[-1]}), got {ref_in.shape}")
    masks = {"out": ~ref_in, **({"in": ref_in} if online else {})}
    for side, mask in masks.items():
        if (mask.sum(0) < 1).any():
            raise ConfigError(
                f"some samples have no {side.upper()} reference model; train more reference models "
                "(online LiRA: at least 2, trained on paired halves)"
            )
    fits: dict[str, list[Any]] = {}
    for side, mask in masks.items():
        m = mask[:, None, :]  # (R, 1, N)
        count = np.broadcast_to(m.sum(0), target.shape)  # (A, N)
        mean = np.where(m, ref, 0.0).sum(0) / count
        sq = np.where(m, (ref - mean) ** 2, 0.0).sum(0)  # squared deviations, (A, N)
        real = count >= 2  # a variance estimated from the sample's own models
        pooled = float(sq[real].sum() / count[real].sum()) if real.any() else None
        fits[side] = [mean, sq / count, real, pooled]  # variance with ddof 0, as the reference code
    every = np.broadcast_to(np.logical_or.reduce(list(masks.values()))[:, None, :], ref.shape)
    for side, fit in fits.items():
        if fit[3] is None:  # no sample has two models on this side (see lira_variance)
            others = [f[3] for s, f in fits.items() if s != side and f[3] is not None]
            fit[3] = others[0] if others else float(np.var(ref[every]))

    def gauss(side: str) -> tuple[np.ndarray, np.ndarray]:
        mean, var, real, pooled = fits[side]
        var = np.full_like(var, pooled) if fixed_variance else np.where(real, var, pooled)
        return mean, np.maximum(np.sqrt(var), 1e-30)  # the reference code's 1e-30: only for identical statistics

    mu_out, sd_out = gauss("out")
    if online:
        mu_in, sd_in = gauss("in")
        ll = stats.norm.logpdf(target, mu_in, sd_in) - stats.norm.logpdf(target, mu_out, sd_out)
        return ll.sum(0)
    # offline: the one-sided test Pr[Z < x], Z ~ N(mu_out, s_out), as its z-score (cannot saturate)
    return ((target - mu_out) / sd_out).sum(0) / np.sqrt(target.shape[0])


def rmia_scores(
    logits: np.ndarray,
    labels: np.ndarray,
    ref_logits: np.ndarray,
    pop_logits: np.ndarray,
    pop_labels: np.ndarray,
    ref_pop_logits: np.ndarray,
    *,
    offline_a: float = 0.33,
    gamma: float = 1.0,
) -> np.ndarray:
    """RMIA (Zarifzadeh et al. 2024), offline: reference models never trained on the samples.

    ``Pr(x) = ((1 + a) * mean_r Pr(x | ref_r) + (1 - a)) / 2`` approximates the probability of
    x averaged over IN and OUT models from OUT models only; the score of x is the share of
    population samples z with ``(Pr(x|target)/Pr(x)) / (Pr(z|target)/Pr(z)) > gamma``.

    Args:
        logits: target on the audited samples (N, K); labels: (N,).
        ref_logits: reference models on the audited samples (R, N, K).
        pop_logits: target on population samples z (M, K); pop_labels: (M,).
        ref_pop_logits: reference models on z (R, M, K).
        offline_a: the offline coefficient ``a`` (the paper tunes it per setting; 0.33 is
            a common choice for CIFAR-like data).
        gamma: the pairwise likelihood-ratio threshold.

    Returns:
        float (N,) in [0, 1].
    """
    if not 0.0 <= offline_a <= 1.0:
        raise ConfigError(f"offline_a must lie in [0, 1], got {offline_a}")

    def ratio(target: np.ndarray, refs: np.ndarray, y: np.ndarray) -> np.ndarray:
        p_target = np.exp(loss_scores(target, y))
        p_out = np.exp(loss_scores(refs, y)).mean(0)
        return p_target / (0.5 * ((1.0 + offline_a) * p_out + (1.0 - offline_a)))

    rx = ratio(logits, ref_logits, np.asarray(labels))
    rz = np.sort(ratio(pop_logits, ref_pop_logits, np.asarray(pop_labels)))
    # share of z with rx / rz > gamma  <=>  rz < rx / gamma
    return np.searchsorted(rz, rx / gamma, side="left") / len(rz)

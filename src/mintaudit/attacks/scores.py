"""Membership inference attacks as pure score functions (higher score = more likely a member).

Every function takes model outputs (logits) already computed, so the same target and
reference-model outputs serve every attack, and evaluation never knows which attack scored.

Shapes: ``logits`` float (N, K); ``labels`` int (N,); reference-model logits float (R, N, K)
(R reference models); ``ref_in`` bool (R, N), True where sample n was in reference model r's
training data.
"""

from __future__ import annotations

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

    Test-time augmentation: give ``logits`` as (A, N, K) and ``ref_logits`` as (R, A, N, K)
    (A augmentations, e.g. the image and its horizontal flip); Gaussians are fitted per
    augmentation and the log-likelihoods summed (the reference code's multivariate form with a
    diagonal covariance).

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

    def fit(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = mask[:, None, :]  # (R, 1, N)
        count = m.sum(0)
        if (count < 1).any():
            raise ConfigError("some samples have no IN (or OUT) reference model; train more reference models")
        mean = np.where(m, ref, 0.0).sum(0) / count
        var = np.where(m, (ref - mean) ** 2, 0.0).sum(0) / np.maximum(count - 1, 1)
        if fixed_variance or (count < 2).any():
            var = np.broadcast_to(np.mean(var, axis=-1, keepdims=True), var.shape)
        return mean, np.sqrt(np.maximum(var, 1e-12))

    mu_out, sd_out = fit(~ref_in)
    if online:
        mu_in, sd_in = fit(ref_in)
        ll = stats.norm.logpdf(target, mu_in, sd_in) - stats.norm.logpdf(target, mu_out, sd_out)
        return ll.sum(0)
    # offline: how far above the OUT distribution the target's confidence lies (log of the CDF)
    return stats.norm.logcdf(target, mu_out, sd_out).sum(0)


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

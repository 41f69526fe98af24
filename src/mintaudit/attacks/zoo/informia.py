"""InfoRMIA (Tao and Shokri, ICLR 2026; arXiv 2510.05582), offline, the class label being the one token scored.

Where the rule comes from: the paper's equations could not be read from this project's sources
(only its abstract and third-party summaries: "a Bayes-factor-like statistic, the information gain
log p(x|theta) / p(x), accounting for the shift D_KL(p(z) || p(z|theta))"). The rule implemented
is the one of the first author's public code, ``InfoRMIAToken`` in ``taojiashu/mimir``
(``mimir/attacks/info_rmia.py``, commit bc87d69, September 2025), which scores one token x_t
given its context against the reference models' predictions over the whole vocabulary::

    s = [log p_theta(x_t) - lbar(x_t)] - sum_v q(v) [log p_theta(v) - lbar(v)],
    lbar(v) = mean_r log p_r(v),  q(v) = exp lbar(v)

(the reference log-probabilities are averaged, so q is their geometric mean, not renormalised,
as in that code; its sign is flipped there because mimir ranks members low). A classifier's
output at x is such a next-token distribution over the K classes, the true label the token: the
first term is the difficulty-calibrated log-likelihood (Watson et al. 2022, ``calibrated-loss``),
the second, with one reference model, ``KL(p_ref || p_theta)``: the information the target gained
about x beyond what it gained about the other labels z. With one token, the paper's mean, sum or
min-k aggregation over tokens are the same. Natural logarithms (nats; bits would scale every score
by 1 / ln 2). The sequence-level form with population samples z (the paper's image and tabular
setting) is not implemented: its equation was not available here.

Closed form, two classes and one reference model: ``s = (1 - p_ref(y)) (m_theta - m_ref)`` with
``m = log p(y) / (1 - p(y))`` (the derivative of s in m_theta is 1 - p_ref(y), and s = 0 where the
target agrees with the reference): a calibrated logit margin, weighted by how unsure the
references are.
"""

from typing import Any

import numpy as np
from scipy.special import log_softmax

from mintaudit.attacks.registry import AttackContext, register_attack
from mintaudit.attacks.scores import loss_scores
from mintaudit.errors import EvaluationError

__all__ = ["informia_scores"]


def informia_scores(logits: np.ndarray, labels: np.ndarray, ref_logits: np.ndarray) -> np.ndarray:
    """InfoRMIA's per-sample score (see the module docstring), higher = more likely a member.

    Args:
        logits: the target model on the audited samples, float (N, K).
        labels: int (N,).
        ref_logits: the reference models on the same samples, float (R, N, K), R >= 1, trained
            without them (offline).

    Returns:
        float64 (N,): the calibrated log-likelihood of the label plus the reference-weighted
        divergence over the K classes; 0 where every reference model equals the target.

    Example:
        >>> # the reference says 1/2, the target 4/5: (1 - 1/2) * (log 4 - 0) = log 2
        >>> round(float(informia_scores(np.array([[np.log(4.0), 0.0]]), [0], np.zeros((1, 1, 2)))[0]), 4)
        0.6931
    """
    loss_scores(logits, labels)  # the checks: shapes, finite values, labels in range
    loss_scores(ref_logits, labels)
    ref = np.asarray(ref_logits, dtype=np.float64)
    if ref.ndim != 3 or ref.shape[1:] != np.shape(logits):
        raise EvaluationError(f"ref_logits must be (R, N, K) with (N, K) = {np.shape(logits)}, got {ref.shape}")
    lt = log_softmax(np.asarray(logits, dtype=np.float64), axis=-1)  # (N, K)
    lbar = log_softmax(ref, axis=-1).mean(0)  # (N, K): the references' mean log-probabilities
    y = np.asarray(labels, dtype=np.int64)[:, None]
    gain = np.take_along_axis(lt - lbar, y, axis=1)[:, 0]
    divergence = (np.exp(lbar) * (lbar - lt)).sum(-1)
    return gain + divergence


@register_attack("informia", needs_references=True, label="InfoRMIA")
def informia(ctx: AttackContext) -> tuple[np.ndarray, dict[str, Any]]:
    _, rl = ctx.reference("offline")
    s = informia_scores(ctx.logits, ctx.labels, rl[:, 0])  # the plain view (as RMIA)
    return s, {"rule": "token-level InfoRMIA, the label as the token", "offline": True}

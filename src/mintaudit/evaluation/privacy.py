"""An empirical lower bound on the epsilon of differential privacy, from membership scores.

If training is (epsilon, delta)-DP, every membership test "score >= t means member" obeys
``TPR <= exp(epsilon) * FPR + delta`` and ``1 - FPR <= exp(epsilon) * (1 - TPR) + delta``
(Kairouz et al. 2015). Turning measured rates into a bound that holds with a stated confidence
follows Jagielski et al. 2020 ("Auditing differentially private machine learning"), Nasr et al.
2021 ("Adversary instantiation") and TensorFlow Privacy's membership-inference bound: a one-sided
Clopper-Pearson lower bound on the TPR and upper bound on the FPR, each at confidence
``1 - (1 - confidence) / 2`` so that both hold together at ``confidence`` (Bonferroni), and

    eps_lb = max(log((TPR_lo - delta) / FPR_hi), log((1 - FPR_hi - delta) / (1 - TPR_lo)), 0).

Validity needs the threshold to be fixed before the rates are counted: each side's scores are
split by a seeded permutation into a *selection* half (the first ``n // 2`` of the permutation),
on which the threshold with the highest bound is chosen, and a *bound* half (the other
``n - n // 2``), on which that one threshold alone is evaluated. Trying many thresholds on the
bound half would be a multiple comparison and void the confidence.

Example:
    >>> rng = np.random.default_rng(0)
    >>> b = epsilon_lower_bound(rng.normal(3, 1, 2000), rng.normal(0, 1, 2000))
    >>> 1.0 < b.epsilon < 5.0, b.per_rate_confidence
    (True, 0.975)
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import betaincinv

from mintaudit.errors import EvaluationError

__all__ = ["EpsilonBound", "clopper_pearson", "epsilon_lower_bound", "min_scores_for_bound"]

THRESHOLD_HALF = (
    "threshold chosen on the selection half (first n//2 of a seeded permutation of each side), "
    "bound computed on the other half at that one threshold"
)


@dataclass(frozen=True)
class EpsilonBound:
    """A lower bound on epsilon that holds with probability ``confidence`` if training was (epsilon, delta)-DP.

    Attributes:
        epsilon: the bound, >= 0 (0 when no threshold gives a positive bound).
        delta: the delta it is stated for.
        confidence: joint confidence of the two rate bounds.
        per_rate_confidence: each Clopper-Pearson bound's confidence, ``1 - (1 - confidence) / 2``.
        threshold_half: which scores chose the threshold and which bounded it.
        threshold: the threshold chosen on the selection half ("score >= threshold" = member);
            None when no threshold could give a bound there.
        form: ``"tpr/fpr"`` or ``"tnr/fnr"``, the inequality that gave the bound (None if 0).
        tpr_lower, fpr_upper: the Clopper-Pearson bounds on the bound half.
        true_positives, false_positives: the counts behind them.
        n_members, n_nonmembers: the bound half's sizes.
        n_selection_members, n_selection_nonmembers: the selection half's sizes.
        selection_epsilon: the chosen threshold's bound on the selection half (NOT a valid bound).
        positive: whether the bound is above 0.
        note: one sentence saying what the number means.
        split_seed: seed of the half split.
    """

    epsilon: float
    delta: float
    confidence: float
    per_rate_confidence: float
    threshold_half: str
    threshold: float | None
    form: str | None
    tpr_lower: float | None
    fpr_upper: float | None
    true_positives: int | None
    false_positives: int | None
    n_members: int
    n_nonmembers: int
    n_selection_members: int
    n_selection_nonmembers: int
    selection_epsilon: float | None
    positive: bool
    note: str
    split_seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready python types (no NaN: missing values are None)."""
        return dataclasses.asdict(self)


def _check_level(value: Any, name: str, example: str, error: type[Exception] = EvaluationError) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 < float(value) < 1.0:
        raise error(f"{name} must be a number strictly between 0 and 1; given {value!r}; pass e.g. {example}")
    return float(value)


def clopper_pearson(k: ArrayLike, n: int, confidence: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """One-sided Clopper-Pearson bounds on a binomial rate from ``k`` successes of ``n``.

    Args:
        k: int array (M,) of success counts in [0, n].
        n: the number of trials (>= 1).
        confidence: each bound's own confidence, in (0, 1).

    Returns:
        ``(lower, upper)`` float arrays (M,): P(rate >= lower) >= confidence and, separately,
        P(rate <= upper) >= confidence. ``lower`` is 0 at k = 0, ``upper`` 1 at k = n.

    Example:
        >>> lo, hi = clopper_pearson([0, 10], 10, 0.975)
        >>> round(float(lo[1]), 4), round(float(hi[0]), 4)
        (0.6915, 0.3085)
    """
    k = np.asarray(k, dtype=np.float64)
    alpha = 1.0 - float(confidence)
    with np.errstate(all="ignore"):
        lower = np.where(k > 0, betaincinv(k, n - k + 1.0, alpha), 0.0)
        upper = np.where(k < n, betaincinv(k + 1.0, n - k, 1.0 - alpha), 1.0)
    return lower, upper


def _epsilons(tpr_lo: NDArray, fpr_hi: NDArray, delta: float) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Best of the two forms per threshold (-inf where neither is defined), and where the second won."""
    with np.errstate(all="ignore"):
        first = np.where(tpr_lo > delta, np.log((tpr_lo - delta) / fpr_hi), -np.inf)
        second = np.where(1.0 - fpr_hi > delta, np.log((1.0 - fpr_hi - delta) / (1.0 - tpr_lo)), -np.inf)
    return np.maximum(first, second), second > first


def min_scores_for_bound(delta: float = 1e-5, confidence: float = 0.95) -> int:
    """Scores needed per side for a positive bound to be possible at all.

    With n scores per side, the bound half holds ``n - n // 2``; even a perfect separation of
    it gives a positive bound only when ``2 * c ** (1 / m) > 1 + delta`` for its size ``m`` and
    ``c = (1 - confidence) / 2``. Returns the smallest such ``n``.

    Example:
        >>> min_scores_for_bound(1e-5, 0.95)
        11
    """
    delta = _check_level(delta, "delta", "1e-5")
    confidence = _check_level(confidence, "confidence", "0.95")
    alpha = (1.0 - confidence) / 2.0
    m = max(2, math.ceil(math.log(alpha) / math.log((1.0 + delta) / 2.0)))
    while 2.0 * alpha ** (1.0 / m) <= 1.0 + delta:
        m += 1
    while m > 2 and 2.0 * alpha ** (1.0 / (m - 1)) > 1.0 + delta:
        m -= 1
    return 2 * m - 1  # the bound half n - n // 2 == m, the selection half n // 2 == m - 1 >= 1


def _scores(values: ArrayLike, argument: str) -> NDArray[np.float64]:
    s = np.asarray(values, dtype=np.float64)
    if s.ndim != 1:
        raise EvaluationError(f"{argument} must be a 1-D array (N,); given shape {s.shape}; flatten it with .ravel()")
    if not np.all(np.isfinite(s)):
        raise EvaluationError(
            f"{argument} must be finite; given {int(np.count_nonzero(~np.isfinite(s)))} NaN or infinite value(s); "
            "check the method that produced them"
        )
    return s


def epsilon_lower_bound(
    member_scores: ArrayLike,
    nonmember_scores: ArrayLike,
    *,
    delta: float = 1e-5,
    confidence: float = 0.95,
    split_seed: int = 0,
) -> EpsilonBound:
    """A lower bound on the DP epsilon of training, valid with probability ``confidence``.

    See the module docstring for the method. "score >= t means member" is the test; the
    threshold ``t`` and the form of the inequality are chosen on the selection half, then
    evaluated once on the bound half.

    Args:
        member_scores: float array (N_members,), scores of training samples.
        nonmember_scores: float array (N_nonmembers,), scores of samples not trained on.
        delta: the DP delta the bound is stated for, in (0, 1).
        confidence: the joint confidence, in (0, 1); each rate bound gets ``1 - (1 - confidence) / 2``.
        split_seed: seeds the split of each side into selection and bound halves.

    Returns:
        An :class:`EpsilonBound`; ``to_dict()`` is the report's ``epsilon_lower_bound``.

    Raises:
        EvaluationError: delta or confidence outside (0, 1), arrays not 1-D or not finite, or
            fewer scores on a side than :func:`min_scores_for_bound` (the message says how many).

    Example:
        >>> epsilon_lower_bound([1.0] * 50, [0.0] * 50).epsilon > 0
        True
    """
    delta = _check_level(delta, "delta", "1e-5")
    confidence = _check_level(confidence, "confidence", "0.95")
    members = _scores(member_scores, "member_scores")
    nonmembers = _scores(nonmember_scores, "nonmember_scores")
    need = min_scores_for_bound(delta, confidence)
    if members.size < need or nonmembers.size < need:
        raise EvaluationError(
            f"the epsilon lower bound needs at least {need} member and {need} non-member scores at delta={delta:g}, "
            f"confidence={confidence:g} (half choose the threshold, half bound it); given {members.size} members "
            f"and {nonmembers.size} non-members; pass more scores or a lower confidence"
        )
    per_rate = 1.0 - (1.0 - confidence) / 2.0
    rng = np.random.default_rng(split_seed)
    sel_m, bound_m = _halves(members, rng)
    sel_n, bound_n = _halves(nonmembers, rng)

    # selection half: every distinct score as a threshold, "score >= v"
    values = np.unique(np.concatenate([sel_m, sel_n]))[::-1]
    tp = np.searchsorted(np.sort(-sel_m), -values, side="right")  # members >= v
    fp = np.searchsorted(np.sort(-sel_n), -values, side="right")
    lo, _ = clopper_pearson(tp, sel_m.size, per_rate)
    _, hi = clopper_pearson(fp, sel_n.size, per_rate)
    eps_sel, _ = _epsilons(lo, hi, delta)
    common = dict(
        delta=delta,
        confidence=confidence,
        per_rate_confidence=per_rate,
        threshold_half=THRESHOLD_HALF,
        n_members=int(bound_m.size),
        n_nonmembers=int(bound_n.size),
        n_selection_members=int(sel_m.size),
        n_selection_nonmembers=int(sel_n.size),
        split_seed=int(split_seed),
    )
    if not np.isfinite(eps_sel).any():
        return EpsilonBound(
            epsilon=0.0,
            threshold=None,
            form=None,
            tpr_lower=None,
            fpr_upper=None,
            true_positives=None,
            false_positives=None,
            selection_epsilon=None,
            positive=False,
            note="no threshold gives a positive bound: the scores show no leakage this test can certify",
            **common,
        )
    best = int(np.argmax(eps_sel))
    threshold = float(values[best])

    # bound half: the one chosen threshold
    k_tp = int(np.count_nonzero(bound_m >= threshold))
    k_fp = int(np.count_nonzero(bound_n >= threshold))
    tpr_lo = float(clopper_pearson([k_tp], bound_m.size, per_rate)[0][0])
    fpr_hi = float(clopper_pearson([k_fp], bound_n.size, per_rate)[1][0])
    eps, second = _epsilons(np.array([tpr_lo]), np.array([fpr_hi]), delta)
    value = float(eps[0]) if np.isfinite(eps[0]) else 0.0
    positive = value > 0.0
    if positive:
        note = f"if training was (epsilon, {delta:g})-DP, epsilon >= {value:.3f} with confidence {confidence:g}"
    else:
        note = "no threshold gives a positive bound: the scores show no leakage this test can certify"
    return EpsilonBound(
        epsilon=max(value, 0.0),
        threshold=threshold,
        form=("tnr/fnr" if bool(second[0]) else "tpr/fpr") if positive else None,
        tpr_lower=tpr_lo,
        fpr_upper=fpr_hi,
        true_positives=k_tp,
        false_positives=k_fp,
        selection_epsilon=float(eps_sel[best]),
        positive=positive,
        note=note,
        **common,
    )


def _halves(scores: NDArray[np.float64], rng: np.random.Generator) -> tuple[NDArray, NDArray]:
    """(selection half: first n // 2 of a permutation, bound half: the rest)."""
    perm = scores[rng.permutation(scores.size)]
    return perm[: scores.size // 2], perm[scores.size // 2 :]

"""Functional membership metrics: numpy arrays in, python floats out.

Convention: ``y_true`` is 1 for members and 0 for non-members; ``scores`` are per-sample
membership scores, higher meaning "more likely a member". Every metric is checked against
scikit-learn in ``tests/evaluation/test_metrics.py``.

All metrics are computed from *counts per distinct score*: the sorted distinct scores, and how
many members / non-members hold each one. The batch helpers (:func:`curve_from_counts`,
:func:`auc_from_curve`, :func:`tpr_at_fpr_from_curve`, :func:`threshold_from_counts`) work on
a batch of count rows, which is how :func:`mintaudit.evaluation.evaluate_scores` bootstraps
without a Python loop.
"""

from __future__ import annotations

import warnings
from typing import TypedDict

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mintaudit.errors import EvaluationError

__all__ = [
    "UndefinedMetricWarning",
    "ThresholdMetrics",
    "roc_curve",
    "auc_score",
    "tpr_at_fpr",
    "threshold_metrics",
    "best_threshold",
    "curve_from_counts",
    "auc_from_curve",
    "tpr_at_fpr_from_curve",
    "threshold_from_counts",
]


class UndefinedMetricWarning(RuntimeWarning):
    """A metric is undefined for this input (no members or no non-members) and is NaN."""


class ThresholdMetrics(TypedDict):
    """Metrics of the hard decision "score >= threshold means member"."""

    accuracy: float
    precision: float
    recall: float


# --------------------------------------------------------------------------------------------
# checks and counts


def _check(y_true: ArrayLike, scores: ArrayLike) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    """Validate inputs; return (members mask (N,), scores float64 (N,))."""
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1:
        raise EvaluationError(
            f"y_true and scores must be 1-D arrays (N,); given shapes {y.shape} and {s.shape}; "
            "flatten them with .ravel()"
        )
    if y.shape != s.shape:
        raise EvaluationError(
            f"y_true and scores must have the same length; given {y.size} labels and {s.size} scores; "
            "pass one score per labelled sample"
        )
    if y.size == 0:
        raise EvaluationError("no scores to evaluate: y_true and scores are empty; pass at least one sample")
    if not np.all(np.isfinite(s)):
        bad = int(np.count_nonzero(~np.isfinite(s)))
        raise EvaluationError(
            f"scores must be finite; given {bad} NaN or infinite value(s) of {s.size}; "
            "check the method that produced them"
        )
    if y.dtype != np.bool_:
        if not np.all((y == 0) | (y == 1)):
            raise EvaluationError(
                f"y_true must hold 0 (non-member) and 1 (member) only; given values {np.unique(y)[:5].tolist()}; "
                "encode members as 1"
            )
        y = y == 1
    return y, s


def _sample_curve(y_true: ArrayLike, scores: ArrayLike) -> tuple[NDArray[np.float64], NDArray, NDArray]:
    """Validate; return the distinct scores ascending (U,) and their curve tps, fps (1, U + 1)."""
    y, s = _check(y_true, scores)
    values, inverse = np.unique(s, return_inverse=True)
    pos = np.bincount(inverse[y], minlength=values.size)
    neg = np.bincount(inverse[~y], minlength=values.size)
    return (values, *curve_from_counts(pos[None], neg[None]))


def _degenerate(n_pos: int, n_neg: int, what: str) -> bool:
    """Warn and return True when one side is empty (the metric is then NaN)."""
    if n_pos > 0 and n_neg > 0:
        return False
    side = "members (label 1)" if n_pos == 0 else "non-members (label 0)"
    warnings.warn(
        f"{what} is undefined without {side}: got {n_pos} members and {n_neg} non-members; returning NaN",
        UndefinedMetricWarning,
        stacklevel=3,
    )
    return True


# --------------------------------------------------------------------------------------------
# batch helpers: a "curve" is tps, fps (B, U + 1), the members / non-members at or above each
# threshold as it walks from +inf down the U distinct scores (column 0 is the point (0, 0))


def curve_from_counts(pos: NDArray, neg: NDArray) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Curve (B, U + 1) from counts per distinct score (B, U), ascending score order."""
    tps = np.zeros((pos.shape[0], pos.shape[1] + 1), dtype=np.int64)
    fps = np.zeros_like(tps)
    np.cumsum(pos[:, ::-1], axis=1, out=tps[:, 1:])
    np.cumsum(neg[:, ::-1], axis=1, out=fps[:, 1:])
    return tps, fps


def auc_from_curve(tps: NDArray, fps: NDArray) -> NDArray[np.float64]:
    """Mann-Whitney AUC (B,), P(member > non-member) + 1/2 P(tie), as an exact trapezoid sum."""
    twice_wins = (np.diff(fps, axis=1) * (tps[:, :-1] + tps[:, 1:])).sum(axis=1)
    return twice_wins / (2.0 * tps[:, -1] * fps[:, -1])


def tpr_at_fpr_from_curve(tps: NDArray, fps: NDArray, target_fpr: float) -> NDArray[np.float64]:
    """Highest TPR (B,) among thresholds whose FPR <= target (the point (0, 0) always qualifies)."""
    # FPR and TPR never decrease along a curve, so the best point is the last one within target.
    last = np.count_nonzero(fps / fps[:, -1:] <= target_fpr, axis=1) - 1
    return tps[np.arange(tps.shape[0]), last] / tps[:, -1]


def threshold_from_counts(tp: NDArray, fp: NDArray, n_pos: NDArray, n_neg: NDArray) -> dict[str, NDArray]:
    """Accuracy, precision (0 with no predicted member), recall (0 with no member) from counts."""
    predicted = tp + fp
    precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
    recall = np.where(n_pos > 0, tp / np.maximum(n_pos, 1), 0.0)
    accuracy = (tp + n_neg - fp) / (n_pos + n_neg)
    return {"accuracy": accuracy, "precision": precision, "recall": recall}


# --------------------------------------------------------------------------------------------
# public functions


def roc_curve(
    y_true: ArrayLike, scores: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Receiver operating characteristic at every distinct score.

    Equal to ``sklearn.metrics.roc_curve(y_true, scores, drop_intermediate=False)``.

    Args:
        y_true: int or bool array (N,), 1 = member, 0 = non-member.
        scores: float array (N,), higher = more likely a member.

    Returns:
        ``(fpr, tpr, thresholds)``, float arrays (U + 1,) for U distinct scores. Point ``i`` is
        the decision "score >= thresholds[i]"; the first point is (0, 0) with threshold +inf.
        Thresholds decrease, FPR and TPR increase. A rate is all NaN (with a warning) when its
        side is empty.

    Raises:
        EvaluationError: mismatched lengths, empty input, non-finite scores, labels not 0/1.

    Example:
        >>> fpr, tpr, thr = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        >>> tpr.tolist()
        [0.0, 0.5, 0.5, 1.0, 1.0]
    """
    values, tps, fps = _sample_curve(y_true, scores)
    tps, fps = tps[0], fps[0]
    _degenerate(int(tps[-1]), int(fps[-1]), "the ROC curve")
    with np.errstate(invalid="ignore"):  # an empty side gives 0 / 0 = NaN rates
        return fps / fps[-1], tps / tps[-1], np.concatenate([[np.inf], values[::-1]])


def auc_score(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve: P(member score > non-member score), ties counted 1/2.

    Equal to ``sklearn.metrics.roc_auc_score``. 0.5 is chance, 1.0 perfect separation.

    Args:
        y_true: int or bool array (N,), 1 = member, 0 = non-member.
        scores: float array (N,), higher = more likely a member.

    Returns:
        The AUC in [0, 1]; NaN, with an :class:`UndefinedMetricWarning`, when there are no
        members or no non-members.

    Raises:
        EvaluationError: mismatched lengths, empty input, non-finite scores, labels not 0/1.

    Example:
        >>> auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        0.75
    """
    _, tps, fps = _sample_curve(y_true, scores)
    if _degenerate(int(tps[0, -1]), int(fps[0, -1]), "AUC"):
        return float("nan")
    return float(auc_from_curve(tps, fps)[0])


def tpr_at_fpr(y_true: ArrayLike, scores: ArrayLike, target_fpr: float) -> float:
    """True positive rate at a low false positive rate (the LiRA / torchmetrics convention).

    The highest TPR among the thresholds whose FPR does not exceed ``target_fpr``, without
    interpolation between ROC points.

    Args:
        y_true: int or bool array (N,), 1 = member, 0 = non-member.
        scores: float array (N,), higher = more likely a member.
        target_fpr: the largest acceptable false positive rate, in [0, 1] (e.g. 0.01).

    Returns:
        The TPR in [0, 1]; NaN, with an :class:`UndefinedMetricWarning`, when there are no
        members or no non-members.

    Raises:
        EvaluationError: ``target_fpr`` outside [0, 1], or invalid inputs (see :func:`roc_curve`).

    Example:
        >>> tpr_at_fpr([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.0)
        0.5
    """
    if not 0.0 <= float(target_fpr) <= 1.0:
        raise EvaluationError(f"target_fpr must be in [0, 1]; given {target_fpr!r}; pass e.g. 0.01 for 1%")
    _, tps, fps = _sample_curve(y_true, scores)
    if _degenerate(int(tps[0, -1]), int(fps[0, -1]), "TPR at a fixed FPR"):
        return float("nan")
    return float(tpr_at_fpr_from_curve(tps, fps, float(target_fpr))[0])


def threshold_metrics(y_true: ArrayLike, scores: ArrayLike, threshold: float) -> ThresholdMetrics:
    """Accuracy, precision and recall of the decision "score >= threshold means member".

    Precision is 0.0 when nothing is predicted a member, recall 0.0 when there is no member
    (scikit-learn's ``zero_division=0``).

    Args:
        y_true: int or bool array (N,), 1 = member, 0 = non-member.
        scores: float array (N,), higher = more likely a member.
        threshold: the decision threshold (0.5 for the probabilities of a MINT model).

    Returns:
        ``{"accuracy": float, "precision": float, "recall": float}``.

    Raises:
        EvaluationError: invalid inputs (see :func:`roc_curve`).

    Example:
        >>> threshold_metrics([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.8], 0.5)
        {'accuracy': 0.5, 'precision': 0.5, 'recall': 0.5}
    """
    values, tps, fps = _sample_curve(y_true, scores)
    k = int(np.count_nonzero(values >= threshold))  # the curve's column of "score >= threshold"
    out = threshold_from_counts(tps[:, k], fps[:, k], tps[:, -1], fps[:, -1])
    return ThresholdMetrics(**{name: float(v[0]) for name, v in out.items()})  # type: ignore[typeddict-item]


def best_threshold(y_true: ArrayLike, scores: ArrayLike) -> float:
    """The threshold that maximises balanced accuracy (mean of TPR and TNR) on these samples.

    Balanced, so that unequal numbers of members and non-members in the tuning data cannot
    make "nobody is a member" the best cut; on balanced data it is the plain accuracy.

    Tune it on *validation* scores and apply it to the test side: a threshold tuned on the
    samples it is then scored on overstates accuracy (docs/explanation/protocols.md).

    The returned value lies halfway between the two distinct scores that bracket the best
    cut, so it generalises better than a score itself; among equally accurate cuts the highest
    threshold wins. If predicting no member at all is best (a useless score), a value just above the largest
    score is returned.

    Args:
        y_true: int or bool array (N,), 1 = member, 0 = non-member.
        scores: float array (N,), higher = more likely a member.

    Returns:
        A finite threshold ``t``; "score >= t" is predicted a member.

    Raises:
        EvaluationError: invalid inputs (see :func:`roc_curve`).

    Example:
        >>> best_threshold([0, 0, 1, 1], [0.1, 0.2, 0.6, 0.8])
        0.4
    """
    values, tps, fps = _sample_curve(y_true, scores)
    tps, fps = tps[0], fps[0]
    # index k: the k largest distinct scores are predicted members
    correct = tps / max(tps[-1], 1) + (fps[-1] - fps) / max(fps[-1], 1)
    k = int(np.argmax(correct))
    desc = values[::-1]
    if k == 0:
        return float(np.nextafter(desc[0], np.inf))
    if k == desc.size:
        return float(desc[-1])
    middle = desc[k - 1] / 2.0 + desc[k] / 2.0
    return float(middle if middle > desc[k] else desc[k - 1])  # adjacent floats have no middle

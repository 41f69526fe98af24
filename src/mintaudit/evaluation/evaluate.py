"""Turn member / non-member scores into every number a report needs, with bootstrap intervals."""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mintaudit.errors import EvaluationError
from mintaudit.evaluation.metrics import auc_from_curve, curve_from_counts, threshold_from_counts, tpr_at_fpr_from_curve
from mintaudit.evaluation.privacy import epsilon_lower_bound, min_scores_for_bound

__all__ = ["TARGET_FPRS", "Evaluation", "SampleInfo", "evaluate_scores"]

TARGET_FPRS: tuple[float, ...] = (0.01, 0.001)
"""False positive rates at which the TPR is reported (keys ``"0.01"``, ``"0.001"``)."""

_FPR_KEYS = tuple(f"{t:g}" for t in TARGET_FPRS)
_SCALARS = ("accuracy", "precision", "recall", "auc")
_HIST_BINS = 40
# FPRs near which the ROC curve is kept: dense in log space, plus the reported ones exactly
_ROC_GRID = np.unique(np.concatenate([np.logspace(-4, 0, 100), np.linspace(0, 1, 51), TARGET_FPRS]))
_BOOTSTRAP_CELLS = 4_000_000  # bound on resamples x (samples + distinct scores) held at once


@dataclass(frozen=True)
class Evaluation:
    """Every number reported for one set of scores.

    Attributes:
        n_members: members evaluated (after balancing).
        n_nonmembers: non-members evaluated (after balancing).
        threshold: the decision threshold of accuracy, precision and recall.
        metrics: ``{"accuracy", "precision", "recall", "auc": float,
            "tpr_at_fpr": {"0.01": float, "0.001": float}}``.
        ci95: the same keys, each a 95% percentile bootstrap interval ``[lo, hi]``
            (``[nan, nan]`` when ``n_bootstrap`` is 0).
        roc: ``{"fpr": [...], "tpr": [...]}``, the ROC curve downsampled to about 300 points,
            dense at low FPR (it is drawn on log-log axes).
        histogram: ``{"edges": [41 floats], "members": [40 ints], "nonmembers": [40 ints]}``
            over the pooled score range.
        n_bootstrap: the number of bootstrap resamples behind ``ci95``.
        epsilon_lower_bound: :meth:`~mintaudit.evaluation.EpsilonBound.to_dict` of the
            evaluated scores; with too few scores, ``{"epsilon": None, "delta", "confidence",
            "note"}`` saying how many are needed.
        slices: with :class:`SampleInfo` for both sides, the same metrics per true class and
            per correctly / wrongly classified sample: ``{"class": {"0": slice, ...}, "correct":
            slice, "wrong": slice}``, each slice ``{"n_members", "n_nonmembers", "metrics",
            "ci95", "epsilon_lower_bound"}`` over the evaluated (balanced) samples, not
            rebalanced; ``metrics`` and ``ci95`` are None when the slice lacks a side. None
            when no sample information was given (the method cannot provide labels).
    """

    n_members: int
    n_nonmembers: int
    threshold: float
    metrics: dict[str, Any]
    ci95: dict[str, Any]
    roc: dict[str, list[float]]
    histogram: dict[str, list[float]]
    n_bootstrap: int = 0
    epsilon_lower_bound: dict[str, Any] | None = None
    slices: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A deep copy made of plain JSON-ready python types (NaN stays a float NaN)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SampleInfo:
    """What the audited model made of each scored sample, for slicing results.

    Attributes:
        labels: int array (N,), the true class of each sample.
        correct: bool array (N,), whether the audited model predicted that class.
    """

    labels: NDArray[np.int64]
    correct: NDArray[np.bool_]

    @classmethod
    def from_logits(cls, logits: ArrayLike, labels: ArrayLike) -> SampleInfo:
        """From the audited model's logits float (N, K) and the true labels int (N,)."""
        z, y = np.asarray(logits), np.asarray(labels, dtype=np.int64)
        return cls(y, np.argmax(z, axis=1) == y)

    def take(self, idx: NDArray[np.intp]) -> SampleInfo:
        return SampleInfo(self.labels[idx], self.correct[idx])


def evaluate_scores(
    member_scores: ArrayLike,
    nonmember_scores: ArrayLike,
    *,
    threshold: float = 0.5,
    balance: bool = True,
    n_bootstrap: int = 1000,
    seed: int = 0,
    member_info: SampleInfo | None = None,
    nonmember_info: SampleInfo | None = None,
    delta: float = 1e-5,
    confidence: float = 0.95,
) -> Evaluation:
    """Evaluate membership scores: metrics, 95% bootstrap intervals, ROC and histogram.

    Accuracy, precision and recall use the decision "score >= threshold means member"; AUC
    and TPR at 1% / 0.1% FPR use the scores alone. With ``balance`` the larger side is
    subsampled (seeded, without replacement) to the size of the smaller one, as the published
    MINT protocol does, so that accuracy is comparable to 0.5 chance. Intervals resample
    members and non-members separately (each with replacement, at its own size) and take the
    2.5 and 97.5 percentiles of each metric over the resamples.

    Args:
        member_scores: float array (N_members,), scores of samples used in training.
        nonmember_scores: float array (N_nonmembers,), scores of samples not used.
        threshold: decision threshold; 0.5 for MINT probabilities. If it is tuned (see
            :func:`~mintaudit.evaluation.best_threshold`), tune it on validation scores only.
        balance: subsample the larger side to the size of the smaller one.
        n_bootstrap: bootstrap resamples for ``ci95``; 0 skips the intervals (NaN).
        seed: seeds balancing and bootstrap, and the halves of the epsilon bound; equal inputs
            and seed give equal results.
        member_info: true labels and correctness of each scored member, in the order of the
            scores; given with ``nonmember_info``, the result gains ``slices``.
        nonmember_info: the same for the non-members.
        delta: of the epsilon lower bound (see :func:`~mintaudit.evaluation.epsilon_lower_bound`), in (0, 1).
        confidence: of the epsilon lower bound, in (0, 1).

    Returns:
        An :class:`Evaluation`; ``to_dict()`` is ready for ``report.add_result``.

    Raises:
        EvaluationError: an empty side, arrays that are not 1-D, non-finite scores, a
            non-finite threshold, a negative ``n_bootstrap``, delta or confidence outside
            (0, 1), or sample information of the wrong length or given for one side only.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> ev = evaluate_scores(rng.normal(1, 1, 500), rng.normal(0, 1, 500), n_bootstrap=200)
        >>> 0.7 < ev.metrics["auc"] < 0.8, ev.ci95["auc"][0] < ev.metrics["auc"] < ev.ci95["auc"][1]
        (True, True)
    """
    members = _side(member_scores, "members", "member_scores")
    nonmembers = _side(nonmember_scores, "non-members", "nonmember_scores")
    if not isinstance(threshold, numbers.Real) or not np.isfinite(threshold):
        raise EvaluationError(f"threshold must be a finite number; given {threshold!r}; pass e.g. 0.5")
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, numbers.Integral) or n_bootstrap < 0:
        raise EvaluationError(f"n_bootstrap must be an integer >= 0; given {n_bootstrap!r}; pass e.g. 1000")
    min_scores_for_bound(delta, confidence)  # checks delta and confidence
    infos = _check_infos(member_info, nonmember_info, members.size, nonmembers.size)
    rng = np.random.default_rng(seed)
    if balance and members.size != nonmembers.size:
        n = min(members.size, nonmembers.size)
        kept = [rng.choice(s.size, size=n, replace=False) if s.size > n else None for s in (members, nonmembers)]
        members, nonmembers = (s if k is None else s[k] for s, k in zip((members, nonmembers), kept))
        if infos is not None:
            infos = tuple(i if k is None else i.take(k) for i, k in zip(infos, kept))

    tps, fps, point, lo, hi = _point_and_intervals(members, nonmembers, float(threshold), int(n_bootstrap), rng)
    slices = None
    if infos is not None:
        slices = _slices(members, nonmembers, *infos, float(threshold), int(n_bootstrap), seed, delta, confidence)
    return Evaluation(
        n_members=int(members.size),
        n_nonmembers=int(nonmembers.size),
        threshold=float(threshold),
        metrics=_nest([float(v) for v in point]),
        ci95=_nest([[float(a), float(b)] for a, b in zip(lo, hi)]),
        roc=_roc_points(tps[0], fps[0]),
        histogram=_histogram(members, nonmembers),
        n_bootstrap=int(n_bootstrap),
        epsilon_lower_bound=_bound(members, nonmembers, delta, confidence, seed),
        slices=slices,
    )


def _point_and_intervals(
    members: NDArray, nonmembers: NDArray, threshold: float, n_bootstrap: int, rng: np.random.Generator
) -> tuple[NDArray, NDArray, NDArray, NDArray, NDArray]:
    """Curve tps, fps (1, U + 1), point metric columns (K,) and interval ends lo, hi (K,)."""
    values, inverse = np.unique(np.concatenate([members, nonmembers]), return_inverse=True)
    inv_m, inv_n = inverse[: members.size], inverse[members.size :]
    n_predicted = int(np.count_nonzero(values >= threshold))  # distinct scores predicted member
    tps, fps = curve_from_counts(
        np.bincount(inv_m, minlength=values.size)[None], np.bincount(inv_n, minlength=values.size)[None]
    )
    point = _metric_columns(tps, fps, n_predicted)[0]
    boot = _bootstrap(inv_m, inv_n, values.size, n_predicted, n_bootstrap, rng)
    if n_bootstrap:
        lo, hi = np.percentile(boot, [2.5, 97.5], axis=0)
    else:
        lo = hi = np.full(point.size, np.nan)
    return tps, fps, point, lo, hi


def _bound(members: NDArray, nonmembers: NDArray, delta: float, confidence: float, seed: int) -> dict[str, Any]:
    """The epsilon lower bound as a dict, or why there is none (too few scores)."""
    need = min_scores_for_bound(delta, confidence)
    if min(members.size, nonmembers.size) < need:
        return {
            "epsilon": None,
            "delta": delta,
            "confidence": confidence,
            "note": f"too few scores for a bound: {members.size} members and {nonmembers.size} non-members, "
            f"at least {need} of each needed",
        }
    return epsilon_lower_bound(members, nonmembers, delta=delta, confidence=confidence, split_seed=seed).to_dict()


def _check_infos(
    member_info: SampleInfo | None, nonmember_info: SampleInfo | None, n_m: int, n_n: int
) -> tuple[SampleInfo, SampleInfo] | None:
    if member_info is None and nonmember_info is None:
        return None
    if member_info is None or nonmember_info is None:
        raise EvaluationError(
            "sample information was given for one side only; pass both member_info and nonmember_info, or neither"
        )
    out = []
    for info, n, side in ((member_info, n_m, "member"), (nonmember_info, n_n, "nonmember")):
        labels, correct = np.asarray(info.labels), np.asarray(info.correct, dtype=bool)
        if labels.shape != (n,) or correct.shape != (n,):
            raise EvaluationError(
                f"{side}_info must hold one label and one correctness flag per {side} score ({n}); given shapes "
                f"{labels.shape} and {correct.shape}; build it from the same rows as the scores"
            )
        out.append(SampleInfo(labels.astype(np.int64), correct))
    return out[0], out[1]


def _slices(
    members: NDArray,
    nonmembers: NDArray,
    info_m: SampleInfo,
    info_n: SampleInfo,
    threshold: float,
    n_bootstrap: int,
    seed: int,
    delta: float,
    confidence: float,
) -> dict[str, Any]:
    """Metrics per true class and per correct / wrong prediction (see :class:`Evaluation`)."""
    rng = np.random.default_rng((seed, 16))  # its own stream: the whole-set numbers do not move

    def one(mask_m: NDArray[np.bool_], mask_n: NDArray[np.bool_]) -> dict[str, Any]:
        m, n = members[mask_m], nonmembers[mask_n]
        out: dict[str, Any] = {"n_members": int(m.size), "n_nonmembers": int(n.size), "metrics": None, "ci95": None}
        if m.size and n.size:
            _, _, point, lo, hi = _point_and_intervals(m, n, threshold, n_bootstrap, rng)
            out["metrics"] = _nest([float(v) for v in point])
            out["ci95"] = _nest([[float(a), float(b)] for a, b in zip(lo, hi)])
            out["epsilon_lower_bound"] = _bound(m, n, delta, confidence, seed)
        else:
            out["epsilon_lower_bound"] = None
            out["note"] = "no members or no non-members in this slice"
        return out

    classes = np.union1d(info_m.labels, info_n.labels)
    return {
        "class": {str(int(c)): one(info_m.labels == c, info_n.labels == c) for c in classes},
        "correct": one(info_m.correct, info_n.correct),
        "wrong": one(~info_m.correct, ~info_n.correct),
    }


def _side(scores: ArrayLike, name: str, argument: str) -> NDArray[np.float64]:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise EvaluationError(f"{argument} must be a 1-D array (N,); given shape {s.shape}; flatten it with .ravel()")
    if s.size == 0:
        raise EvaluationError(f"no {name} to evaluate: {argument} is empty; pass at least one score per side")
    if not np.all(np.isfinite(s)):
        bad = int(np.count_nonzero(~np.isfinite(s)))
        raise EvaluationError(
            f"{argument} must be finite; given {bad} NaN or infinite value(s) of {s.size}; "
            "check the method that produced them"
        )
    return s


def _metric_columns(tps: NDArray, fps: NDArray, n_predicted: int) -> NDArray[np.float64]:
    """All metrics (B, 4 + len(TARGET_FPRS)) from curves (B, U + 1).

    ``n_predicted`` is the number of distinct scores at or above the threshold, i.e. the
    curve's column of the decision "score >= threshold".
    """
    hard = threshold_from_counts(tps[:, n_predicted], fps[:, n_predicted], tps[:, -1], fps[:, -1])
    columns = [hard["accuracy"], hard["precision"], hard["recall"], auc_from_curve(tps, fps)]
    columns += [tpr_at_fpr_from_curve(tps, fps, t) for t in TARGET_FPRS]
    return np.stack(columns, axis=1).astype(np.float64)


def _nest(values: list[Any]) -> dict[str, Any]:
    """Columns of :func:`_metric_columns` as the nested ``metrics`` / ``ci95`` dict."""
    out: dict[str, Any] = dict(zip(_SCALARS, values[: len(_SCALARS)]))
    out["tpr_at_fpr"] = dict(zip(_FPR_KEYS, values[len(_SCALARS) :]))
    return out


def _bootstrap(
    inv_m: NDArray,
    inv_n: NDArray,
    n_values: int,
    n_predicted: int,
    n_bootstrap: int,
    rng: np.random.Generator,
) -> NDArray[np.float64]:
    """Metric columns (n_bootstrap, K) over resamples, a chunk of resamples at a time."""
    chunk = max(1, _BOOTSTRAP_CELLS // (n_values + inv_m.size + inv_n.size))
    rows = [np.empty((0, len(_SCALARS) + len(TARGET_FPRS)))]
    for start in range(0, n_bootstrap, chunk):
        b = min(chunk, n_bootstrap - start)
        tps, fps = curve_from_counts(
            _resampled_counts(inv_m, n_values, b, rng), _resampled_counts(inv_n, n_values, b, rng)
        )
        rows.append(_metric_columns(tps, fps, n_predicted))
    return np.concatenate(rows)


def _resampled_counts(inverse: NDArray, n_values: int, b: int, rng: np.random.Generator) -> NDArray[np.int64]:
    """Counts per distinct score (b, U) of ``b`` resamples with replacement of one side."""
    draws = inverse[rng.integers(0, inverse.size, size=(b, inverse.size))]
    draws += np.arange(b)[:, None] * n_values
    return np.bincount(draws.ravel(), minlength=b * n_values).reshape(b, n_values)


def _roc_points(tps: NDArray, fps: NDArray) -> dict[str, list[float]]:
    """The ROC curve (U + 1,) kept at both corners of each step near a grid dense at low FPR (<= ~300 points)."""
    fpr, tpr = fps / fps[-1], tps / tps[-1]
    keep = np.concatenate(
        [
            [0, fpr.size - 1],
            np.searchsorted(fpr, _ROC_GRID, side="left"),
            np.searchsorted(fpr, _ROC_GRID, "right") - 1,
        ]
    )
    keep = np.unique(np.clip(keep, 0, fpr.size - 1))
    return {"fpr": np.round(fpr[keep], 7).tolist(), "tpr": np.round(tpr[keep], 7).tolist()}


def _histogram(members: NDArray, nonmembers: NDArray) -> dict[str, list[float]]:
    lo = float(min(members.min(), nonmembers.min()))
    hi = float(max(members.max(), nonmembers.max()))
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, _HIST_BINS + 1)
    return {
        "edges": edges.tolist(),
        "members": np.histogram(members, edges)[0].tolist(),
        "nonmembers": np.histogram(nonmembers, edges)[0].tolist(),
    }

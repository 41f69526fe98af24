"""The blind baseline: can a classifier that never sees the model tell the query from the null reference?

Every verdict rests on one assumption: query samples that are not members are exchangeable with
the null reference. The blind baseline checks the part of it that can be checked without the
model: it describes each image by features that never touch the model (the image area-averaged
to 8x8 per channel, its mean, standard deviation and a 16-bin histogram of its pixel values),
fits an L2-regularised logistic regression of "query or null?" on them, and measures its 5-fold
cross-validated AUC. A permutation test (labels permuted within the fixed folds, the same
statistic recomputed) gives its p-value. When it rejects at ``alpha`` (0.01), the two sets differ
in distribution, and a membership test that rejects may be measuring that difference, not use.

The logistic regression is fitted by Böhning's bound (a Newton step with the fixed Hessian bound
``X'X / 4 + lambda I``, monotone in the penalised likelihood; Böhning 1992) for a fixed number of
iterations, for all permutations at once: one inverse per fold, matrix products for the
rest. Its AUCs agree with scikit-learn's ``LogisticRegression(C=1)`` within 0.03 (tested);
the permutation test is exact for the statistic it computes, whatever the number of iterations.

Permutations are drawn in batches; once the decision is settled (enough permuted AUCs reach the
observed one that the test cannot reject any more), the remaining ones are skipped: the decision
is the one all ``n_permutations`` would give, and ``p_value`` is then Besag and Clifford's
sequential p-value ``k / m`` (k exceedances after m permutations; Biometrika 1991), which is valid.

Example:
    >>> rng = np.random.default_rng(0)
    >>> null = rng.integers(0, 200, (300, 8, 8), dtype=np.uint8)
    >>> same = rng.integers(0, 200, (100, 8, 8), dtype=np.uint8)
    >>> bool(blind_test(same, null).rejects)
    False
    >>> bright = np.clip(same * 1.2, 0, 255).astype(np.uint8)
    >>> bool(blind_test(bright, null).rejects)
    True
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mintaudit.errors import EvaluationError

__all__ = ["BLIND_FEATURES", "BlindTest", "blind_features", "blind_test"]

BLIND_FEATURES = (
    "each image area-averaged to 8x8 per channel, its mean, standard deviation and a 16-bin histogram of its "
    "pixel values; an L2-regularised logistic regression (lambda = 1 on standardised features), 5-fold "
    "cross-validated AUC, permutation test"
)
"""What the blind baseline sees and fits, in words."""

_GRID = 8
_BINS = 16
_ITERATIONS = 30
_FIRST = 10
_BATCH = 50
_MIN_PER_SIDE = 10


@dataclass(frozen=True)
class BlindTest:
    """The blind baseline's answer to "does the query differ in distribution from the null reference?".

    Attributes:
        auc: the 5-fold cross-validated AUC (mean over folds) of query against null; 0.5 when the
            features cannot tell them apart.
        p_value: the permutation p-value, ``(1 + k) / (1 + B)`` after all B permutations, or Besag and
            Clifford's ``k / m`` when stopped early after m (see the module's docstring).
        rejects: ``p_value <= alpha``: the sets differ in distribution.
        n_permutations: the permutations computed (at most ``n_permutations_planned``).
        n_permutations_planned, alpha, folds, n_query, n_null, seed: the test's settings and sizes.
        features: what the classifier sees, in words.
    """

    auc: float
    p_value: float
    rejects: bool
    n_permutations: int
    n_permutations_planned: int
    alpha: float
    folds: int
    n_query: int
    n_null: int
    seed: int
    features: str = BLIND_FEATURES

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready types."""
        return asdict(self)


def blind_features(images: NDArray[np.uint8]) -> NDArray[np.float64]:
    """Features of images that never touch a model.

    Args:
        images: uint8 array (N, H, W) or (N, H, W, C).

    Returns:
        float64 (N, 64 * C + 18): the image area-averaged to 8x8 per channel (exact area weights,
        any H and W), then its mean and standard deviation (pixel values / 255) and the share of its
        pixel values in each of 16 equal bins of [0, 256).

    Example:
        >>> blind_features(np.zeros((2, 28, 28), np.uint8)).shape
        (2, 82)
    """
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[0] == 0 or x.shape[3] not in (1, 3) or x.dtype != np.uint8:
        raise EvaluationError(
            f"images must be a non-empty uint8 array (N, H, W) or (N, H, W, C) with C 1 or 3; "
            f"given {x.dtype} of shape {x.shape}"
        )
    n, h, w, _ = x.shape
    rows, cols = _area_weights(h), _area_weights(w)
    small = np.einsum("ih,nhwc,jw->ncij", rows, x / 255.0, cols, optimize=True).reshape(n, -1)
    flat = x.reshape(n, -1)
    scaled = flat / 255.0
    bins = flat.astype(np.int64) // (256 // _BINS)
    hist = np.bincount((bins + _BINS * np.arange(n)[:, None]).ravel(), minlength=n * _BINS).reshape(n, _BINS)
    return np.hstack([small, scaled.mean(1, keepdims=True), scaled.std(1, keepdims=True), hist / flat.shape[1]])


def blind_test(
    query_images: NDArray[np.uint8],
    null_images: NDArray[np.uint8],
    *,
    n_permutations: int = 200,
    alpha: float = 0.01,
    folds: int = 5,
    seed: int = 0,
) -> BlindTest:
    """Can a classifier that never sees the model tell the query images from the null reference's?

    Args:
        query_images: uint8 (N, H, W[, C]), the samples in question.
        null_images: uint8 (M, H, W[, C]), the held-out non-members the verdict compares them with.
        n_permutations: label permutations of the test (200).
        alpha: the level at which the test says the sets differ (0.01).
        folds: cross-validation folds (5), stratified, fixed by ``seed``.
        seed: folds and permutations come from ``numpy.random.default_rng([seed, 7])``.

    Returns:
        A :class:`BlindTest`; the same inputs and seed give the same result.

    Raises:
        EvaluationError: fewer than 10 images on a side, images of different shapes, bad settings.
    """
    q, m = np.asarray(query_images), np.asarray(null_images)
    if q.shape[1:] != m.shape[1:]:
        raise EvaluationError(f"query and null images must have one shape; given {q.shape[1:]} and {m.shape[1:]}")
    if min(len(q), len(m)) < _MIN_PER_SIDE:
        raise EvaluationError(
            f"the blind baseline needs at least {_MIN_PER_SIDE} images on each side; given {len(q)} query and "
            f"{len(m)} null images"
        )
    if not (isinstance(n_permutations, int) and n_permutations >= 1 and 0.0 < alpha < 1.0 and 2 <= folds):
        raise EvaluationError(
            f"n_permutations must be >= 1, alpha in (0, 1) and folds >= 2; given {n_permutations}, {alpha}, {folds}"
        )
    x = np.vstack([blind_features(q), blind_features(m)])
    sd = x.std(0)
    x = (x - x.mean(0)) / np.where(sd > 1e-12, sd, 1.0)  # standardised once, blind to the labels
    x = np.hstack([x, np.ones((len(x), 1))])
    y = np.r_[np.ones(len(q)), np.zeros(len(m))]
    rng = np.random.default_rng([seed, 7])
    fold = np.empty(len(y), dtype=np.int64)
    for label in (1.0, 0.0):  # stratified: each fold holds its share of both sides
        where = np.flatnonzero(y == label)
        fold[rng.permutation(where)] = np.arange(len(where)) % folds
    solvers = [_Fold(x, fold == f) for f in range(folds)]
    observed = float(_cv_auc(solvers, y[:, None], fold)[0])
    # the test rejects iff at most `allowed` permuted AUCs reach the observed one
    allowed = math.floor(alpha * (n_permutations + 1) + 1e-9) - 1
    k = done = 0
    members = [np.flatnonzero(fold == f) for f in range(folds)]
    while done < n_permutations:
        b = min(_FIRST if done == 0 else _BATCH, n_permutations - done)
        labels = np.repeat(y[:, None], b, axis=1)
        for idx in members:  # permuted within the fixed folds: every split keeps its class counts
            labels[idx] = np.take_along_axis(labels[idx], rng.random((len(idx), b)).argsort(0), 0)
        k += int(np.count_nonzero(_cv_auc(solvers, labels, fold) >= observed - 1e-12))
        done += b
        if k > allowed and done < n_permutations:
            break
    p = (1 + k) / (1 + done) if done == n_permutations else k / done
    return BlindTest(
        auc=observed,
        p_value=float(min(1.0, p)),
        rejects=bool(k <= allowed and done == n_permutations),
        n_permutations=done,
        n_permutations_planned=n_permutations,
        alpha=float(alpha),
        folds=folds,
        n_query=len(q),
        n_null=len(m),
        seed=seed,
    )


class _Fold:
    """One cross-validation split: the training rows' fixed Hessian bound, factored once."""

    def __init__(self, x: NDArray[np.float64], test: NDArray[np.bool_]) -> None:
        self.train, self.test = x[~test], x[test]
        d = x.shape[1]
        penalty = np.eye(d)
        penalty[-1, -1] = 0.0  # the intercept is not penalised
        self.penalty = penalty
        self.step = np.linalg.inv(self.train.T @ self.train / 4.0 + penalty + 1e-9 * np.eye(d))

    def fit(self, y: NDArray[np.float64]) -> NDArray[np.float64]:
        """Weights (d, B) for the label columns y (n_train, B), by Böhning's bound."""
        w = np.zeros((self.train.shape[1], y.shape[1]))
        for _ in range(_ITERATIONS):
            p = 1.0 / (1.0 + np.exp(-(self.train @ w)))
            grad = self.train.T @ (y - p) - self.penalty @ w
            w += self.step @ grad
        return w


def _cv_auc(solvers: list[_Fold], labels: NDArray[np.float64], fold: NDArray[np.int64]) -> NDArray[np.float64]:
    """The mean over folds of the held-out AUC, for each label column (n, B) -> (B,)."""
    aucs = []
    for f, solver in enumerate(solvers):
        test = fold == f
        w = solver.fit(labels[~test])
        aucs.append(_auc_columns(solver.test @ w, labels[test]))
    return np.nanmean(np.vstack(aucs), axis=0)


def _auc_columns(scores: NDArray[np.float64], labels: NDArray[np.float64]) -> NDArray[np.float64]:
    """AUC of each column (ties count half); NaN where a column lacks one of the classes."""
    from scipy.stats import rankdata

    ranks = rankdata(scores, axis=0)
    pos = labels.sum(0)
    neg = len(labels) - pos
    u = (ranks * labels).sum(0) - pos * (pos + 1) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((pos > 0) & (neg > 0), u / (pos * neg), np.nan)


def _area_weights(size: int) -> NDArray[np.float64]:
    """(8, size) weights: row i averages the input cells overlapping [i * size / 8, (i + 1) * size / 8)."""
    edges = np.arange(_GRID + 1) * size / _GRID
    cells = np.arange(size)
    lo = np.maximum(cells[None, :], edges[:-1, None])
    hi = np.minimum(cells[None, :] + 1, edges[1:, None])
    overlap = np.clip(hi - lo, 0.0, None)
    return overlap / overlap.sum(1, keepdims=True)

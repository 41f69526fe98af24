"""The data owner's two other questions: how much of my data was used, and how many samples must I reveal?

- :func:`usage_share`: the share of a query set that was used in training, debiased with the
  method's error rates measured on the audit's own labelled sets (DUCI, Tong et al., ICLR 2025):
  at a threshold t, a query's positive rate is ``r = s TPR + (1 - s) FPR``, so
  ``s = (r - FPR) / (TPR - FPR)``, clipped to [0, 1]. TPR is measured on members the scoring
  method never fitted on (held-out members), FPR on held-out non-members (the null reference); t
  is the median of those two sets pooled (not tuned on them, which would fit their noise). The 95%
  interval is a percentile bootstrap over the three sets' counts (query, members, non-members).
  It assumes that the query's members score like the held-out members and its non-members like
  the null reference.
- :func:`samples_needed`: how many suspect samples, all members, a data owner must reveal for the
  dataset-level test (one-sided Mann-Whitney U against a null reference of the same size as the
  verdict's) to reach ``p < 0.01`` with 90% power; from the method's measured per-sample scores,
  resampled (members' and non-members' held-out scores), N found by bisection.

Example:
    >>> rng = np.random.default_rng(2)
    >>> members, null = rng.normal(1, 1, 500), rng.normal(0, 1, 500)
    >>> query = np.r_[rng.normal(1, 1, 150), rng.normal(0, 1, 350)]       # 30% used
    >>> s = usage_share(query, members, null)
    >>> s.ci95[0] < 0.3 < s.ci95[1]
    True
    >>> samples_needed(members, null).n
    17
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mintaudit.errors import EvaluationError

__all__ = ["SamplesNeeded", "UsageShare", "samples_needed", "usage_share"]

_SHARE_ASSUMES = (
    "that the query's members score like the held-out members and its non-members like the null reference "
    "(the same distribution, scored by the same fixed method)"
)


@dataclass(frozen=True)
class UsageShare:
    """The estimated share of a query set used in training (DUCI-style debiasing).

    Attributes:
        estimate: ``(r - FPR) / (TPR - FPR)`` clipped to [0, 1]; None when ``TPR <= FPR`` (no signal).
        ci95: the 2.5% and 97.5% percentiles of the bootstrap estimates ([0, 1] without signal).
        positive_rate, tpr, fpr: the query's share above ``threshold``; the members' and null's.
        threshold: the score above which a sample counts as positive (median of members and null pooled).
        n_query, n_members, n_null: the sizes behind the three rates; n_bootstrap: the draws.
        estimator, assumes: what was computed and what it rests on, in words.
    """

    estimate: float | None
    ci95: list[float]
    positive_rate: float
    tpr: float
    fpr: float
    threshold: float
    n_query: int
    n_members: int
    n_null: int
    n_bootstrap: int
    estimator: str
    assumes: str = _SHARE_ASSUMES

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready types."""
        return asdict(self)


@dataclass(frozen=True)
class SamplesNeeded:
    """How many member samples the dataset-level test needs for ``p < alpha`` with the given power.

    Attributes:
        n: the smallest N found (bisection over simulated powers); None when even ``max_n`` falls short.
        power_at_n: the simulated power at ``n`` (at ``max_n`` when ``n`` is None).
        alpha, power, n_trials, max_n, n_null: the settings; auc: members against null, the signal.
        how: what was simulated, in words.
    """

    n: int | None
    power_at_n: float
    alpha: float
    power: float
    n_trials: int
    max_n: int
    n_null: int
    auc: float
    how: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready types."""
        return asdict(self)


def usage_share(
    query_scores: ArrayLike,
    member_scores: ArrayLike,
    null_scores: ArrayLike,
    *,
    n_bootstrap: int = 2000,
    seed: int = 0,
) -> UsageShare:
    """The share of the query set used in training, with a 95% bootstrap interval.

    Args:
        query_scores: float (N,), the samples in question.
        member_scores: float (K,), held-out members (members the method never fitted on).
        null_scores: float (M,), held-out non-members.
        n_bootstrap: bootstrap draws of the three sets.
        seed: ``numpy.random.default_rng([seed, 11])`` draws them.

    Returns:
        A :class:`UsageShare`.
    """
    q, mem, null = (
        _scores(v, name) for v, name in ((query_scores, "query"), (member_scores, "member"), (null_scores, "null"))
    )
    t, tpr, fpr = _midpoint(mem, null)
    r = float(np.mean(q > t))
    rng = np.random.default_rng([seed, 11])
    r_b = rng.binomial(q.size, r, n_bootstrap) / q.size
    tpr_b = rng.binomial(mem.size, tpr, n_bootstrap) / mem.size
    fpr_b = rng.binomial(null.size, fpr, n_bootstrap) / null.size
    draws = _share(r_b, tpr_b, fpr_b)
    estimate = float(_share(np.array([r]), np.array([tpr]), np.array([fpr]))[0]) if tpr > fpr else None
    return UsageShare(
        estimate=estimate,
        ci95=[float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))] if tpr > fpr else [0.0, 1.0],
        positive_rate=r,
        tpr=tpr,
        fpr=fpr,
        threshold=t,
        n_query=int(q.size),
        n_members=int(mem.size),
        n_null=int(null.size),
        n_bootstrap=int(n_bootstrap),
        estimator=(
            "(r - FPR) / (TPR - FPR) clipped to [0, 1] (DUCI-style), r the query's share above the median of "
            "held-out members' and null scores pooled; 95% percentile bootstrap over the three sets"
        ),
    )


def samples_needed(
    member_scores: ArrayLike,
    null_scores: ArrayLike,
    *,
    alpha: float = 0.01,
    power: float = 0.9,
    n_null: int | None = None,
    n_trials: int = 200,
    max_n: int = 10_000,
    seed: int = 0,
) -> SamplesNeeded:
    """The number of suspect samples (all members) the dataset-level test needs for ``p < alpha`` at ``power``.

    For a size N, ``n_trials`` times: draw N member scores and ``n_null`` null scores with
    replacement, run the one-sided Mann-Whitney U test; the power is the share of trials with
    ``p < alpha``. N doubles from 2 until the power is reached (at most ``max_n``), then is bisected
    to within 5% (the upper end is returned); each N has its own fixed draws (seeded by ``[seed, N]``),
    so the answer is deterministic. With a null reference of M scores the power has a ceiling below 1
    however large N is (the null's own noise), so a weak signal can need more than ``max_n``.

    Args:
        member_scores: float (K,), held-out members' scores; null_scores: float (M,), non-members'.
        alpha, power: the target p-value and power (0.01, 0.9).
        n_null: the null reference's size in the simulated test (default M).
        n_trials, max_n, seed: the simulation's size, the largest N tried and its seed.
    """
    mem, null = _scores(member_scores, "member"), _scores(null_scores, "null")
    if not (0.0 < alpha < 1.0 and 0.0 < power < 1.0 and n_trials >= 10 and max_n >= 2):
        raise EvaluationError(
            f"alpha and power must lie in (0, 1), n_trials >= 10, max_n >= 2; given {alpha}, {power}, {n_trials}, {max_n}"
        )
    m = int(n_null or null.size)

    values = np.unique(np.r_[mem, null])
    mem_v, null_v = np.searchsorted(values, mem), np.searchsorted(values, null)

    def counts(rng: np.random.Generator, where: NDArray[np.int64], size: int) -> NDArray[np.float64]:
        """(n_trials, len(values)): how often each value is drawn in ``size`` draws with replacement."""
        k = len(where)
        if size <= 4 * k:  # few draws: count them; many: one multinomial per row
            picks = rng.integers(0, k, (n_trials, size)) + k * np.arange(n_trials)[:, None]
            drawn = np.bincount(picks.ravel(), minlength=n_trials * k).reshape(n_trials, k)
        else:
            drawn = rng.multinomial(size, np.full(k, 1.0 / k), size=n_trials)
        order = np.argsort(where, kind="stable")
        distinct, starts = np.unique(where[order], return_index=True)
        out = np.zeros((n_trials, len(values)))
        out[:, distinct] = np.add.reduceat(drawn[:, order], starts, axis=1)
        return out

    def power_at(n: int) -> float:
        rng = np.random.default_rng([seed, n])
        p = _mann_whitney_counts(counts(rng, mem_v, n), counts(rng, null_v, m))
        return float(np.mean(p < alpha))

    from scipy.stats import mannwhitneyu

    auc = float(mannwhitneyu(mem, null, alternative="greater").statistic) / (mem.size * null.size)
    how = (
        f"{n_trials} simulated audits per N: N held-out members' scores and {m} null scores drawn with replacement, "
        f"one-sided Mann-Whitney U; the smallest N with p < {alpha:g} in {power:.0%} of them (doubling, then bisection to within 5%)"
    )
    lo, hi = 1, 2  # power_at(lo) is taken to fall short
    p_hi = power_at(hi)
    while p_hi < power:  # doubling up to max_n, then bisection between the last two sizes
        if hi >= max_n:
            return SamplesNeeded(None, p_hi, alpha, power, n_trials, max_n, m, auc, how)
        lo, hi = hi, min(2 * hi, max_n)
        p_hi = power_at(hi)
    while hi - lo > max(1, lo // 20):  # to within 5%: a large N needs no unit precision
        mid = (lo + hi) // 2
        p_mid = power_at(mid)
        if p_mid >= power:
            hi, p_hi = mid, p_mid
        else:
            lo = mid
    return SamplesNeeded(hi, p_hi, alpha, power, n_trials, max_n, m, auc, how)


def _mann_whitney_counts(cx: NDArray[np.float64], cy: NDArray[np.float64]) -> NDArray[np.float64]:
    """One-sided (x greater) asymptotic Mann-Whitney U p-values, with the tie correction, from value counts.

    Args:
        cx, cy: (R, V) how often each of V sorted distinct values occurs in row r's x and y samples.

    Returns:
        (R,) p-values, as ``scipy.stats.mannwhitneyu(x, y, alternative="greater", method="asymptotic")``.
    """
    from scipy.stats import norm

    n, m = cx.sum(1), cy.sum(1)
    below = np.cumsum(cy, axis=1) - cy
    u = (cx * (below + 0.5 * cy)).sum(1)
    t = cx + cy
    ties = (t**3 - t).sum(1)
    var = n * m / 12.0 * ((n + m + 1) - ties / ((n + m) * (n + m - 1)))
    z = (u - n * m / 2.0 - 0.5) / np.sqrt(np.maximum(var, 1e-300))  # continuity correction, as scipy's
    return np.where(var > 0, norm.sf(z), 1.0)


def _midpoint(mem: NDArray[np.float64], null: NDArray[np.float64]) -> tuple[float, float, float]:
    """(threshold, TPR, FPR): the median of members and null pooled, positives strictly above it.

    A threshold tuned to maximise TPR - FPR on these same sets would fit their noise (its FPR comes out
    low by chance); the pooled median is nearly fixed, so the measured rates stay honest.
    """
    t = float(np.median(np.r_[mem, null]))
    return t, float(np.mean(mem > t)), float(np.mean(null > t))


def _share(r: NDArray, tpr: NDArray, fpr: NDArray) -> NDArray[np.float64]:
    """Clipped ``(r - fpr) / (tpr - fpr)``; where ``tpr <= fpr`` (no signal in that draw): 0 or 1 by the sign of r - fpr."""
    gap = tpr - fpr
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(gap > 0, (r - fpr) / np.where(gap > 0, gap, 1.0), np.where(r > fpr, 1.0, 0.0))
    return np.clip(share, 0.0, 1.0)


def _scores(values: ArrayLike, name: str) -> NDArray[np.float64]:
    s = np.asarray(values, dtype=np.float64)
    if s.ndim != 1 or s.size == 0 or not np.all(np.isfinite(s)):
        raise EvaluationError(f"{name} scores must be a non-empty 1-D array of finite numbers; given shape {s.shape}")
    return s

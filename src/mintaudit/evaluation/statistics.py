"""Calibrated decisions from membership scores: conformal p-values, FDR control, a dataset-level test.

The *null reference* is a set of scores of held-out non-members: samples never used to train
the audited model, to fit the MINT model, or to tune anything. Everything here rests on one
assumption, stated in every verdict: **a query sample that is not a member is exchangeable with
the null reference** (drawn from the same distribution and scored by the same fixed method).
Under it:

- :func:`conformal_pvalues` gives each query sample a p-value that is valid for that sample,
  ``P(p <= a) <= a`` for every ``a``, without any model of the score distribution;
- :func:`benjamini_hochberg` flags samples with the false discovery rate controlled at ``q``
  (conformal p-values against one shared null are positively dependent (PRDS), for which
  Benjamini-Hochberg is valid: Bates et al., "Testing for outliers with conformal p-values",
  Annals of Statistics 2023);
- :func:`dataset_test` asks "were these N samples, or some of them, used in training?" with a
  one-sided Mann-Whitney U test and an exact binomial test of exceedances, and says in one
  sentence what it concluded, the error rate it controls and the assumption it rests on.

Example:
    >>> rng = np.random.default_rng(0)
    >>> null = rng.normal(0, 1, 2000)                      # held-out non-members
    >>> members = rng.normal(0.8, 1, 100)                  # a query set of members
    >>> t = dataset_test(members, null)
    >>> t.reject, t.n_null
    (True, 2000)
    >>> bool(dataset_test(rng.normal(0, 1, 100), null).reject)   # non-members: almost always False
    False
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mintaudit.errors import EvaluationError

__all__ = [
    "ASSUMPTION",
    "DECISIONS",
    "Decision",
    "DatasetTest",
    "SampleDecisions",
    "benjamini_hochberg",
    "conformal_pvalues",
    "dataset_test",
    "format_p",
    "sample_decisions",
]

Decision = Literal["mann-whitney", "bonferroni", "binomial"]
DECISIONS: tuple[str, ...] = get_args(Decision)

ASSUMPTION = (
    "query samples that are not members are exchangeable with the null reference "
    "(drawn from the same distribution as those held-out non-members and scored by the same fixed method)"
)
"""The one assumption every p-value here rests on."""

_DECISION_TEXT = {
    "bonferroni": "Mann-Whitney U and exact binomial exceedance tests, one-sided, Bonferroni-combined",
    "mann-whitney": "one-sided Mann-Whitney U test",
    "binomial": "one-sided exact binomial test of exceedances",
}
_HIST_BINS = 30

_FRACTION_LEVEL = 0.5
_ESTIMATOR = (
    "Storey's estimator at lambda = 1/2: (k/n - a) / (1 - a), clipped to [0, 1], where k of the n queries "
    "have a conformal p-value <= 1/2 (score above the null's median) and a = floor((n_null + 1)/2)/(n_null + 1) "
    "is the chance that a non-member does; 95% interval from a 97.5% Clopper-Pearson interval on k/n and a "
    "97.5% interval on a non-member's chance given the finite null (Bonferroni)"
)
_ESTIMATOR_ASSUMES = (
    "that non-member queries are exchangeable with the null reference and that every member scores above the "
    "null's median; members that do not are not counted, so with a weak membership signal it is a lower estimate"
)


# --------------------------------------------------------------------------------------------
# per-sample p-values and decisions


def conformal_pvalues(query_scores: ArrayLike, null_scores: ArrayLike) -> NDArray[np.float64]:
    """Conformal p-values of query scores against a null reference (higher score = more member-like).

    ``p(s) = (1 + #{null scores >= s}) / (n_null + 1)``. If a query sample is not a member and
    is exchangeable with the null reference, ``P(p <= a) <= a`` for every ``a`` in [0, 1];
    ties count against the query (conservative). The smallest possible p-value is
    ``1 / (n_null + 1)``: state the null's size next to any p-value.

    Args:
        query_scores: float array (N,), may be empty.
        null_scores: float array (M,), M >= 1, scores of held-out non-members.

    Returns:
        float64 array (N,) of p-values in ``[1 / (M + 1), 1]``.

    Raises:
        EvaluationError: arrays that are not 1-D, non-finite scores or an empty null.

    Example:
        >>> conformal_pvalues([0.5, 3.0, -9.0], [0.0, 1.0, 2.0]).tolist()
        [0.75, 0.25, 1.0]
    """
    query = _scores(query_scores, "query_scores", allow_empty=True)
    null = np.sort(_scores(null_scores, "null_scores"))
    n_at_or_above = null.size - np.searchsorted(null, query, side="left")
    return (1.0 + n_at_or_above) / (null.size + 1.0)


def benjamini_hochberg(pvalues: ArrayLike, q: float = 0.05) -> NDArray[np.bool_]:
    """Which hypotheses the Benjamini-Hochberg step-up procedure rejects at false discovery rate ``q``.

    Sort the N p-values, find the largest i with ``p_(i) <= q * i / N``, and reject the i
    smallest. For independent or positively dependent (PRDS) p-values, such as conformal
    p-values against one shared null, the expected share of false flags among the flagged
    is at most ``q`` times the share of true nulls.

    Args:
        pvalues: float array (N,) in [0, 1]; may be empty.
        q: the target false discovery rate, in (0, 1].

    Returns:
        bool array (N,): True where rejected (flagged as a member).

    Example:
        >>> benjamini_hochberg([0.001, 0.04, 0.03, 0.9], q=0.05).tolist()
        [True, False, False, False]
        >>> benjamini_hochberg([0.01, 0.02, 0.03, 0.04], q=0.05).tolist()
        [True, True, True, True]
    """
    _rate(q, "q", allow_one=True)
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise EvaluationError(f"pvalues must be a 1-D array (N,); given shape {p.shape}; flatten it with .ravel()")
    if p.size and (not np.all(np.isfinite(p)) or p.min() < 0.0 or p.max() > 1.0):
        raise EvaluationError("pvalues must lie in [0, 1]; given values outside it (or NaN); pass p-values, not scores")
    if p.size == 0:
        return np.zeros(0, dtype=bool)
    ranked = np.sort(p)
    below = ranked <= q * np.arange(1, p.size + 1) / p.size
    if not below.any():
        return np.zeros(p.size, dtype=bool)
    cutoff = ranked[np.flatnonzero(below)[-1]]
    return p <= cutoff


@dataclass(frozen=True)
class SampleDecisions:
    """Per-sample p-values and flags of one query set against one null reference.

    Attributes:
        p_values: float64 (N,), conformal p-values.
        flagged_bh: bool (N,), flagged by Benjamini-Hochberg at false discovery rate ``fdr``.
        flagged_alpha: bool (N,), flagged at the plain per-sample level ``alpha`` (``p <= alpha``;
            expect at most ``alpha * N`` false flags among N non-members).
        fdr: the false discovery rate of ``flagged_bh``.
        alpha: the per-sample level of ``flagged_alpha``.
        n_null: the size of the null reference (the smallest p-value is ``1 / (n_null + 1)``).
    """

    p_values: NDArray[np.float64]
    flagged_bh: NDArray[np.bool_]
    flagged_alpha: NDArray[np.bool_]
    fdr: float
    alpha: float
    n_null: int

    def to_dict(self) -> dict[str, Any]:
        """The summary (counts, levels, null size) as plain JSON-ready types; no per-sample arrays."""
        return {
            "n_query": int(self.p_values.size),
            "n_null": self.n_null,
            "fdr": self.fdr,
            "alpha": self.alpha,
            "n_flagged_bh": int(self.flagged_bh.sum()),
            "n_flagged_alpha": int(self.flagged_alpha.sum()),
            # a non-member's p-value is <= alpha with probability floor(alpha (n_null + 1)) / (n_null + 1) <= alpha
            "expected_false_flags_alpha": self.p_values.size
            * math.floor(self.alpha * (self.n_null + 1) + 1e-9)
            / (self.n_null + 1),
            "min_p_value": float(self.p_values.min()) if self.p_values.size else None,
            "smallest_possible_p_value": 1.0 / (self.n_null + 1),
            # Benjamini-Hochberg flags a lone sample only when its p-value is <= fdr / n_query; with
            # n_null + 1 < n_query / fdr even the smallest possible p-value is above that
            "bh_lone_threshold": self.fdr / self.p_values.size if self.p_values.size else None,
        }


def sample_decisions(
    query_scores: ArrayLike, null_scores: ArrayLike, *, fdr: float = 0.05, alpha: float = 0.05
) -> SampleDecisions:
    """Conformal p-values of every query sample, flagged under Benjamini-Hochberg and at a plain level.

    Args:
        query_scores: float (N,); null_scores: float (M,), held-out non-members.
        fdr: false discovery rate for Benjamini-Hochberg, in (0, 1].
        alpha: per-sample level, in (0, 1).

    Example:
        >>> d = sample_decisions([5.0, 0.1], np.linspace(-2, 2, 99), fdr=0.05)
        >>> d.p_values.tolist(), d.flagged_bh.tolist()
        ([0.01, 0.48], [True, False])
    """
    _rate(alpha, "alpha")
    p = conformal_pvalues(query_scores, null_scores)
    n_null = int(np.asarray(null_scores).size)
    return SampleDecisions(p, benjamini_hochberg(p, fdr), p <= alpha, float(fdr), float(alpha), n_null)


# --------------------------------------------------------------------------------------------
# the dataset-level test


@dataclass(frozen=True)
class DatasetTest:
    """The answer to "were these N samples, or some of them, used in training?".

    H0: every query sample is a non-member exchangeable with the null reference. H1: the query
    scores are stochastically larger (some or all queries are members). Two one-sided tests:

    - ``mann_whitney``: Mann-Whitney U of the query scores against the null scores
      (``scipy.stats.mannwhitneyu``, ``alternative="greater"``); sensitive when many queries
      are members, even with a weak per-sample signal. Keys ``statistic`` (U of the queries),
      ``auc`` (U / (n_query * n_null): the chance that a query outscores a null sample; 0.5 under
      H0) and ``p_value``.
    - ``binomial``: k = how many queries exceed ``threshold``, the null's empirical upper-alpha
      quantile (its r-th largest score, r = floor(alpha * (n_null + 1))), i.e. how many have a
      conformal p-value <= alpha; a non-member exceeds it with probability a0 = r / (n_null + 1).
      ``p_value`` is exact: given the finite null, k follows a beta-binomial(n, r, n_null - r + 1)
      distribution under H0, which accounts for the threshold being estimated and stays valid
      however large the query set is against the null. ``p_value_binomtest`` is
      ``scipy.stats.binomtest(k, n, a0, alternative="greater")``, which treats the threshold as
      exact: shown for reference, anti-conservative unless n_null >> n_query. Sensitive when a
      few queries are members with a strong signal; conservative when the null's top scores tie
      (LOSS on a model that fits its members to zero loss).

    ``p_value`` is the one that decides, chosen in advance by ``decision``: ``mann-whitney``
    (default: the more powerful one in every setting measured by ``benchmarks/power.py``, member
    fractions 10-100% included), ``bonferroni`` (``min(1, 2 * min(p_mw, p_binomial))``, valid
    whatever the dependence between the two; for when a few strongly memorised members are
    expected) or ``binomial``. ``reject`` is ``p_value <= alpha``; the test wrongly rejects for at
    most a fraction ``alpha`` of query sets made only of non-members.

    Attributes:
        n_query, n_null: sizes of the query set and of the null reference.
        alpha: the level of the test (also the exceedance level of the binomial test).
        decision: which p-value decides (see above).
        p_value: the deciding p-value; reject: ``p_value <= alpha``.
        mann_whitney, binomial: each test's numbers (see above).
        member_fraction: ``{"estimate", "ci95": [lo, hi], "level", "below_level", "estimator",
            "assumes"}``: Storey's estimate of the fraction of members among the queries,
            ``(k/n - a) / (1 - a)`` with k the queries whose p-value is <= 1/2 and a ~ 1/2 the
            chance that a non-member's is; it counts only members that score above the null's
            median, so with a weak signal it is a lower estimate.
        histogram: ``{"edges": [31 floats], "query": [30 ints], "null": [30 ints]}``.
        sentence: the verdict in one sentence: the conclusion, the p-value with the null's
            size, the error rate controlled and the assumption.
        error_rate: the error rate controlled, in words; assumption: :data:`ASSUMPTION`.
    """

    n_query: int
    n_null: int
    alpha: float
    decision: str
    p_value: float
    reject: bool
    mann_whitney: dict[str, float]
    binomial: dict[str, float]
    member_fraction: dict[str, Any]
    histogram: dict[str, list[float]]
    sentence: str
    error_rate: str
    assumption: str = ASSUMPTION

    def to_dict(self) -> dict[str, Any]:
        """A deep copy made of plain JSON-ready python types."""
        return asdict(self)


def dataset_test(
    query_scores: ArrayLike,
    null_scores: ArrayLike,
    *,
    alpha: float = 0.05,
    decision: Decision = "mann-whitney",
) -> DatasetTest:
    """Test whether a query set's scores exceed a null reference of held-out non-members.

    See :class:`DatasetTest` for the two tests, the deciding p-value and the member-fraction
    estimate. Valid (the false rejection rate is at most ``alpha`` over query sets made only of
    non-members) when non-member queries are exchangeable with the null reference; nothing is
    assumed about the score distribution.

    Args:
        query_scores: float (N,), N >= 1, scores of the samples in question.
        null_scores: float (M,), scores of held-out non-members, never used to fit or tune
            anything; M >= 1/alpha - 1 so that a p-value can reach ``alpha``.
        alpha: level of the test, in (0, 1).
        decision: ``mann-whitney``, ``bonferroni`` or ``binomial``: which p-value decides.

    Returns:
        A :class:`DatasetTest`; ``to_dict()`` is ready for ``report["verdict"]``.

    Raises:
        EvaluationError: an empty query set, a null too small for ``alpha``, non-finite
            scores, or an invalid ``alpha`` / ``decision``.

    Example:
        >>> rng = np.random.default_rng(1)
        >>> t = dataset_test(rng.normal(1, 1, 200), rng.normal(0, 1, 1000))
        >>> t.reject, round(t.mann_whitney["auc"], 2), round(t.member_fraction["estimate"], 2)
        (True, 0.77, 0.68)
    """
    from scipy import stats

    _rate(alpha, "alpha")
    if decision not in DECISIONS:
        raise EvaluationError(f"decision must be one of {list(DECISIONS)}; given {decision!r}")
    query = _scores(query_scores, "query_scores")
    null = _scores(null_scores, "null_scores")
    n, m = int(query.size), int(null.size)
    r = math.floor(alpha * (m + 1) + 1e-9)
    if r < 1:
        raise EvaluationError(
            f"a null reference of {m} non-member scores cannot give a p-value <= alpha = {alpha:g} "
            f"(the smallest is 1/{m + 1}); use at least {math.ceil(1 / alpha - 1)} held-out non-members"
        )

    mw = stats.mannwhitneyu(query, null, alternative="greater")
    mann_whitney = {"statistic": float(mw.statistic), "auc": float(mw.statistic) / (n * m), "p_value": float(mw.pvalue)}

    threshold = float(np.sort(null)[m - r])  # the r-th largest null score
    k = int(np.count_nonzero(query > threshold))  # == #{conformal p-value <= alpha}
    a0 = r / (m + 1)
    p_exact = float(stats.betabinom.sf(k - 1, n, r, m - r + 1)) if k > 0 else 1.0
    binomial = {
        "threshold": threshold,
        "exceedances": k,
        "n": n,
        "null_rate": a0,
        "expected_under_null": n * a0,
        "p_value": min(1.0, p_exact),
        "p_value_binomtest": float(stats.binomtest(k, n, a0, alternative="greater").pvalue),
    }

    p_value = {
        "bonferroni": min(1.0, 2.0 * min(mann_whitney["p_value"], binomial["p_value"])),
        "mann-whitney": mann_whitney["p_value"],
        "binomial": binomial["p_value"],
    }[decision]
    reject = bool(p_value <= alpha)
    error_rate = (
        f"at most {_percent(alpha)} of query sets made only of non-members are wrongly declared used "
        "(the test's false-positive rate)"
    )
    return DatasetTest(
        n_query=n,
        n_null=m,
        alpha=float(alpha),
        decision=decision,
        p_value=float(p_value),
        reject=reject,
        mann_whitney=mann_whitney,
        binomial=binomial,
        member_fraction=_member_fraction(query, null),
        histogram=_histogram(query, null),
        sentence=_sentence(reject, n, m, p_value, alpha, decision),
        error_rate=error_rate,
    )


def format_p(p: float, n_null: int | None = None) -> str:
    """A p-value for people, with the null reference's size when given.

    Example:
        >>> format_p(0.01234, 2500), format_p(3e-7)
        ('p = 0.0123 (null reference: 2,500 non-members)', 'p = 3e-07')
    """
    text = f"p = {p:.3g}"
    return text if n_null is None else f"{text} (null reference: {n_null:,} non-members)"


# --------------------------------------------------------------------------------------------
# helpers


def _member_fraction(query: NDArray, null: NDArray) -> dict[str, Any]:
    from scipy import stats

    n, m = query.size, null.size
    r = math.floor(_FRACTION_LEVEL * (m + 1) + 1e-9)
    k = int(np.count_nonzero(query > np.sort(null)[m - r]))  # == #{conformal p-value <= 1/2}
    a = r / (m + 1)
    a_lo, a_hi = (float(v) for v in stats.beta.ppf([0.0125, 0.9875], r, m - r + 1))
    # Clopper-Pearson 97.5% interval of k/n (as binomtest(k, n).proportion_ci(0.975), without its root search)
    share_lo = float(stats.beta.ppf(0.0125, k, n - k + 1)) if k > 0 else 0.0
    share_hi = float(stats.beta.ppf(0.9875, k + 1, n - k)) if k < n else 1.0

    def excess(share: float, null_rate: float) -> float:
        return float(np.clip((share - null_rate) / (1.0 - null_rate), 0.0, 1.0))

    return {
        "estimate": excess(k / n, a),
        "ci95": [excess(share_lo, a_hi), excess(share_hi, a_lo)],
        "level": _FRACTION_LEVEL,
        "below_level": k,
        "estimator": _ESTIMATOR,
        "assumes": _ESTIMATOR_ASSUMES,
    }


def _sentence(reject: bool, n: int, m: int, p: float, alpha: float, decision: str) -> str:
    how = f"{_DECISION_TEXT[decision]}, {format_p(p)} against a null reference of {m:,} held-out non-members"
    samples = f"these {n:,} sample{'s' if n != 1 else ''}"
    if reject:
        return (
            f"Evidence that {samples}, or some of them, were used to train the model ({how}, "
            f"p <= alpha = {alpha:g}): the test declares use wrongly for at most {_percent(alpha)} of query sets "
            f"made only of non-members, provided that {ASSUMPTION}."
        )
    return (
        f"No evidence that {samples} were used to train the model ({how}, p > alpha = {alpha:g}): the test "
        f"declares use wrongly for at most {_percent(alpha)} of query sets made only of non-members, provided "
        f"that {ASSUMPTION}, and it can miss real use when the membership signal is weak or the query set small."
    )


def _percent(a: float) -> str:
    return f"{100 * a:.3g}%"


def _histogram(query: NDArray, null: NDArray) -> dict[str, list[float]]:
    lo, hi = float(min(query.min(), null.min())), float(max(query.max(), null.max()))
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, _HIST_BINS + 1)
    return {
        "edges": edges.tolist(),
        "query": np.histogram(query, edges)[0].tolist(),
        "null": np.histogram(null, edges)[0].tolist(),
    }


def _scores(scores: ArrayLike, argument: str, *, allow_empty: bool = False) -> NDArray[np.float64]:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise EvaluationError(f"{argument} must be a 1-D array (N,); given shape {s.shape}; flatten it with .ravel()")
    if s.size == 0 and not allow_empty:
        raise EvaluationError(f"{argument} is empty; pass at least one score")
    if not np.all(np.isfinite(s)):
        bad = int(np.count_nonzero(~np.isfinite(s)))
        raise EvaluationError(
            f"{argument} must be finite; given {bad} NaN or infinite value(s) of {s.size}; check the method that produced them"
        )
    return s


def _rate(value: Any, name: str, *, allow_one: bool = False) -> None:
    ok = (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0.0 < value < 1.0 + (1e-12 if allow_one else 0.0)
    )
    if not ok:
        upper = "1]" if allow_one else "1)"
        raise EvaluationError(f"{name} must be a number in (0, {upper}; given {value!r}; pass e.g. 0.05")

"""Conformal p-values, Benjamini-Hochberg and the dataset-level test, checked against definitions and references."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats
from scipy.special import comb

from mintaudit.errors import EvaluationError
from mintaudit.evaluation import (
    DatasetTest,
    benjamini_hochberg,
    conformal_pvalues,
    dataset_test,
    sample_decisions,
)
from mintaudit.evaluation.statistics import ASSUMPTION, format_p


def _brute_p(query: np.ndarray, null: np.ndarray) -> np.ndarray:
    return np.array([(1 + sum(1 for z in null if z >= s)) / (len(null) + 1) for s in query])


# --------------------------------------------------------------------------------------------
# conformal p-values


@pytest.mark.parametrize("seed", range(5))
def test_conformal_pvalues_match_the_definition_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    null = rng.integers(0, 12, size=rng.integers(1, 60)).astype(float)  # many ties
    query = np.r_[rng.integers(-2, 14, size=40).astype(float), null[:3]]
    np.testing.assert_allclose(conformal_pvalues(query, null), _brute_p(query, null), rtol=0, atol=1e-15)


def test_conformal_pvalue_range_and_empty_query() -> None:
    null = np.arange(9.0)
    p = conformal_pvalues([-100.0, 100.0, 4.0], null)
    assert p.tolist() == [1.0, 0.1, 0.6]
    assert conformal_pvalues(np.array([]), null).shape == (0,)


def test_exchangeable_null_gives_uniform_pvalues() -> None:
    """A non-member exchangeable with a null of 19 has a p-value uniform on {1/20, ..., 20/20}."""
    rng = np.random.default_rng(0)
    reps, m = 20000, 19
    draws = rng.normal(size=(reps, m + 1))
    p = np.array([conformal_pvalues(row[:1], row[1:])[0] for row in draws])
    counts = np.bincount(np.rint(p * (m + 1)).astype(int) - 1, minlength=m + 1)
    assert stats.chisquare(counts).pvalue > 0.001
    for a in (0.05, 0.1, 0.25, 0.5):
        assert np.mean(p <= a) <= a + 4 * math.sqrt(a * (1 - a) / reps)


def test_pvalues_are_conservative_with_discrete_scores() -> None:
    rng = np.random.default_rng(1)
    p = np.array([conformal_pvalues(rng.integers(0, 3, 1), rng.integers(0, 3, 30))[0] for _ in range(3000)])
    assert np.mean(p <= 0.1) <= 0.1 and np.mean(p <= 0.5) <= 0.5 + 0.03


@pytest.mark.parametrize(
    ("query", "null"),
    [([[1.0]], [0.0]), ([1.0], [[0.0]]), ([np.nan], [0.0]), ([1.0], [np.inf]), ([1.0], [])],
)
def test_conformal_pvalues_reject_bad_input(query, null) -> None:
    with pytest.raises(EvaluationError):
        conformal_pvalues(query, null)


# --------------------------------------------------------------------------------------------
# Benjamini-Hochberg


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("q", [0.01, 0.05, 0.2, 1.0])
def test_benjamini_hochberg_matches_scipy(seed: int, q: float) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    p = np.r_[rng.uniform(size=n // 2), rng.beta(0.2, 5, size=n - n // 2)]
    p[: n // 5] = np.round(p[: n // 5], 2)  # ties
    expected = stats.false_discovery_control(p, method="bh") <= q
    np.testing.assert_array_equal(benjamini_hochberg(p, q), expected)


def test_benjamini_hochberg_edge_cases() -> None:
    assert benjamini_hochberg([], 0.05).shape == (0,)
    assert not benjamini_hochberg(np.ones(10), 0.05).any()
    assert benjamini_hochberg([0.01, 0.02, 0.03, 0.04], 0.05).all()
    assert benjamini_hochberg([0.001, 0.04, 0.03, 0.9], 0.05).tolist() == [True, False, False, False]
    for bad in ([1.5], [-0.1], [np.nan], [[0.1]]):
        with pytest.raises(EvaluationError):
            benjamini_hochberg(bad, 0.05)
    for q in (0.0, -0.1, 1.5, np.nan, True):
        with pytest.raises(EvaluationError):
            benjamini_hochberg([0.1], q)


def test_benjamini_hochberg_controls_the_fdr_with_conformal_pvalues() -> None:
    """Shared-null conformal p-values are PRDS: BH keeps the mean false-discovery proportion <= q."""
    rng = np.random.default_rng(2)
    fdp = []
    for _ in range(400):
        null = rng.normal(size=200)
        query = np.r_[rng.normal(3, 1, 20), rng.normal(size=80)]
        flags = sample_decisions(query, null, fdr=0.1).flagged_bh
        fdp.append(flags[20:].sum() / max(flags.sum(), 1))
    assert np.mean(fdp) <= 0.1 * 0.8 + 3 * np.std(fdp) / math.sqrt(len(fdp))


# --------------------------------------------------------------------------------------------
# per-sample decisions


def test_sample_decisions() -> None:
    null = np.linspace(-2, 2, 99)
    d = sample_decisions([5.0, 0.1, 1.99, -5.0], null, fdr=0.05, alpha=0.05)
    np.testing.assert_allclose(d.p_values, _brute_p(np.array([5.0, 0.1, 1.99, -5.0]), null))
    assert d.flagged_alpha.tolist() == [True, False, True, False]
    assert d.flagged_bh.tolist() == [True, False, True, False]
    summary = d.to_dict()
    assert summary["n_null"] == 99 and summary["n_query"] == 4 and summary["n_flagged_bh"] == 2
    assert summary["smallest_possible_p_value"] == 0.01
    assert summary["expected_false_flags_alpha"] == pytest.approx(4 * 5 / 100)
    json.dumps(summary)
    with pytest.raises(EvaluationError):
        sample_decisions([1.0], null, alpha=1.0)


# --------------------------------------------------------------------------------------------
# the dataset-level test


def test_dataset_test_rejects_a_clear_member_set() -> None:
    rng = np.random.default_rng(0)
    null = rng.normal(size=1000)
    t = dataset_test(rng.normal(1.0, 1, 100), null)
    assert isinstance(t, DatasetTest)
    assert t.reject and t.p_value < 1e-6 and t.n_null == 1000 and t.n_query == 100
    assert t.mann_whitney["auc"] > 0.7 and t.binomial["exceedances"] > 3 * t.binomial["expected_under_null"]
    assert t.sentence.startswith("Evidence that these 100 samples, or some of them, were used")
    assert "1,000 held-out non-members" in t.sentence and "5%" in t.sentence and ASSUMPTION in t.sentence
    assert "5%" in t.error_rate
    d = t.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["decision"] == "mann-whitney" and d["assumption"] == ASSUMPTION


def test_dataset_test_on_non_members_says_no_evidence() -> None:
    rng = np.random.default_rng(3)
    t = dataset_test(rng.normal(size=100), rng.normal(size=1000))
    assert not t.reject and t.p_value > 0.05
    assert t.sentence.startswith("No evidence that these 100 samples were used")
    assert "can miss real use" in t.sentence and "1,000" in t.sentence


def test_deciding_pvalue_follows_the_decision() -> None:
    rng = np.random.default_rng(4)
    q, null = rng.normal(0.3, 1, 50), rng.normal(size=300)
    bonf = dataset_test(q, null, decision="bonferroni")
    mw = dataset_test(q, null)
    binom = dataset_test(q, null, decision="binomial")
    assert mw.p_value == bonf.mann_whitney["p_value"] == stats.mannwhitneyu(q, null, alternative="greater").pvalue
    assert binom.p_value == bonf.binomial["p_value"]
    assert bonf.p_value == min(1.0, 2 * min(mw.p_value, binom.p_value))
    assert bonf.mann_whitney["auc"] == pytest.approx(np.mean(q[:, None] > null[None, :]))


def _exact_exceedance_sf(k: int, n: int, r: int, m: int) -> float:
    """P(K >= k) when n queries and m null samples are exchangeable and K counts queries above the r-th largest null."""
    pmf = [comb(j + r - 1, j, exact=True) * comb(n - j + m - r, n - j, exact=True) for j in range(n + 1)]
    return sum(pmf[k:]) / comb(m + n, n, exact=True)


@pytest.mark.parametrize(("n", "m", "shift"), [(5, 19, 1.0), (12, 40, 0.5), (30, 25, 0.0), (8, 60, 2.0)])
def test_binomial_pvalue_is_the_exact_exchangeable_tail(n: int, m: int, shift: float) -> None:
    rng = np.random.default_rng(n)
    q, null = rng.normal(shift, 1, n), rng.normal(size=m)
    b = dataset_test(q, null).binomial
    r = math.floor(0.05 * (m + 1))
    assert b["threshold"] == np.sort(null)[::-1][r - 1]
    assert b["exceedances"] == int(np.sum(conformal_pvalues(q, null) <= 0.05))
    assert b["p_value"] == pytest.approx(_exact_exceedance_sf(b["exceedances"], n, r, m), rel=1e-9, abs=1e-12)
    assert b["p_value_binomtest"] == pytest.approx(
        stats.binomtest(b["exceedances"], n, r / (m + 1), alternative="greater").pvalue
    )


def test_exact_binomial_stays_valid_when_the_query_outnumbers_the_null() -> None:
    """binomtest treats the estimated threshold as exact and over-rejects; the exact tail does not."""
    rng = np.random.default_rng(5)
    exact, plain, reps = 0, 0, 600
    for _ in range(reps):
        t = dataset_test(rng.normal(size=200), rng.normal(size=40))
        exact += t.binomial["p_value"] <= 0.05
        plain += t.binomial["p_value_binomtest"] <= 0.05
    assert exact / reps <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / reps)
    assert plain / reps > 0.1  # measured ~0.2: the reason the exact tail decides


def test_member_fraction_estimate_and_interval() -> None:
    rng = np.random.default_rng(6)
    null = rng.normal(size=2000)
    query = np.r_[rng.normal(10, 1, 90), rng.normal(size=210)]  # 30% members, perfectly separated
    f = dataset_test(query, null).member_fraction
    assert f["estimate"] == pytest.approx(0.3, abs=0.08)
    assert f["ci95"][0] <= 0.3 <= f["ci95"][1] and f["ci95"][0] > 0.05
    assert f["level"] == 0.5 and "lower estimate" in f["assumes"]
    k, n = f["below_level"], len(query)
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.975, method="exact")
    a = math.floor(0.5 * 2001) / 2001
    a_lo, a_hi = stats.beta.ppf([0.0125, 0.9875], math.floor(0.5 * 2001), 2001 - math.floor(0.5 * 2001))
    assert f["estimate"] == pytest.approx((k / n - a) / (1 - a))
    assert f["ci95"][0] == pytest.approx(max(0.0, (ci.low - a_hi) / (1 - a_hi)))
    assert f["ci95"][1] == pytest.approx(min(1.0, (ci.high - a_lo) / (1 - a_lo)))
    none = dataset_test(rng.normal(size=300), null).member_fraction
    assert none["ci95"][0] == 0.0 and none["estimate"] < 0.15


def test_dataset_test_false_positive_rate_on_synthetic_nulls() -> None:
    rng = np.random.default_rng(7)
    reps = 400
    rejected = sum(dataset_test(rng.normal(size=n), rng.normal(size=300)).reject for n in [10, 50, 200] * (reps // 3))
    assert rejected / (3 * (reps // 3)) <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / reps)


def test_dataset_test_rejects_bad_input() -> None:
    null = np.arange(100.0)
    with pytest.raises(EvaluationError, match="at least 19"):
        dataset_test([1.0], np.arange(18.0))
    dataset_test([1.0], np.arange(19.0))  # the smallest null that can reach 0.05
    with pytest.raises(EvaluationError, match="empty"):
        dataset_test([], null)
    with pytest.raises(EvaluationError, match="decision"):
        dataset_test([1.0], null, decision="fisher")  # type: ignore[arg-type]
    for alpha in (0.0, 1.0, -1, "0.05"):
        with pytest.raises(EvaluationError, match="alpha"):
            dataset_test([1.0], null, alpha=alpha)  # type: ignore[arg-type]
    with pytest.raises(EvaluationError, match="finite"):
        dataset_test([np.nan], null)


def test_format_p() -> None:
    assert format_p(0.01234, 2500) == "p = 0.0123 (null reference: 2,500 non-members)"
    assert format_p(3e-7) == "p = 3e-07" and format_p(1.0) == "p = 1"

"""The usage share's 95% interval covers the true share of synthetic query sets with known shares."""

from __future__ import annotations

import numpy as np
import pytest

from mintaudit.evaluation import usage_share


def _coverage(shares, reps, n_query, n_cal, shift, seed):
    """Share of query sets (``reps`` per share) whose interval holds the set's true share (members / size)."""
    rng = np.random.default_rng(seed)
    hits = 0
    for share in shares:
        n_mem = int(round(share * n_query))
        for rep in range(reps):
            query = np.r_[rng.normal(shift, 1, n_mem), rng.normal(0, 1, n_query - n_mem)]
            s = usage_share(query, rng.normal(shift, 1, n_cal), rng.normal(0, 1, n_cal), n_bootstrap=500, seed=rep)
            hits += s.ci95[0] <= n_mem / n_query <= s.ci95[1]
    return hits / (reps * len(shares))


def test_the_interval_covers_known_shares_including_the_boundaries():
    # 160 sets; a 95% interval covers about 152 of them: 0.85 fails by chance with probability < 1e-4
    assert _coverage((0.0, 0.1, 0.5, 1.0), 40, 200, 300, 1.0, seed=1) >= 0.85


def test_the_interval_carries_the_calibration_sets_noise():
    # few calibration samples, a large query: TPR and FPR are the noisy part; an interval from the
    # query's counts alone covers about half of these sets
    assert _coverage((0.5,), 60, 2000, 40, 1.0, seed=2) >= 0.85


def test_a_known_answer_and_its_rates():
    members = np.r_[np.full(8, 3.0), np.full(2, -3.0)]  # TPR 0.8 above the pooled median 0
    null = np.r_[np.full(2, 3.0), np.full(8, -3.0)]  # FPR 0.2
    query = np.r_[np.full(5, 3.0), np.full(5, -3.0)]  # r = 0.5: (0.5 - 0.2) / (0.8 - 0.2) = 0.5
    s = usage_share(query, members, null)
    assert (s.threshold, s.tpr, s.fpr, s.positive_rate) == (0.0, 0.8, 0.2, 0.5)
    assert s.estimate == pytest.approx(0.5) and s.ci95[0] < 0.5 < s.ci95[1]
    assert usage_share(query, members, null, seed=3) == usage_share(query, members, null, seed=3)


def test_all_members_or_none_sit_at_the_ends():
    rng = np.random.default_rng(4)
    members, null = rng.normal(3, 1, 400), rng.normal(0, 1, 400)
    none = usage_share(rng.normal(0, 1, 300), members, null)
    every = usage_share(rng.normal(3, 1, 300), members, null)
    assert none.estimate < 0.1 and none.ci95[0] == 0.0 and none.ci95[1] < 0.15
    assert every.estimate > 0.9 and every.ci95[1] == 1.0 and every.ci95[0] > 0.85


def test_no_signal_gives_no_estimate_and_the_whole_range():
    rng = np.random.default_rng(5)
    s = usage_share(rng.normal(0, 1, 50), np.full(30, -1.0), np.full(30, 1.0))  # members below the null
    assert s.estimate is None and s.ci95 == [0.0, 1.0] and s.tpr <= s.fpr

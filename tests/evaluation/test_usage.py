"""The usage share (DUCI-style debiasing) and the samples a data owner needs to reveal."""

from __future__ import annotations

import numpy as np
import pytest

from mintaudit.errors import EvaluationError
from mintaudit.evaluation.usage import samples_needed, usage_share


@pytest.mark.parametrize("share", [0.0, 0.3, 1.0])
def test_share_interval_covers_a_known_share(share):
    covered, estimates = 0, []
    for i in range(100):
        rng = np.random.default_rng([i, 1])
        k = int(share * 300)
        query = np.r_[rng.normal(1.0, 1, k), rng.normal(0, 1, 300 - k)]
        s = usage_share(query, rng.normal(1.0, 1, 400), rng.normal(0, 1, 400), n_bootstrap=500, seed=i)
        covered += s.ci95[0] - 1e-9 <= share <= s.ci95[1] + 1e-9
        estimates.append(s.estimate)
    assert covered >= 88  # nominal 95 of 100
    assert np.mean(estimates) == pytest.approx(share, abs=0.06)


def test_share_without_signal_says_so():
    rng = np.random.default_rng(0)
    s = usage_share(rng.normal(0, 1, 100), rng.normal(-1, 1, 100), rng.normal(0, 1, 100))
    assert s.estimate is None and s.ci95 == [0.0, 1.0] and s.tpr <= s.fpr


def test_samples_needed_falls_as_the_signal_rises():
    rng = np.random.default_rng(0)
    null = rng.normal(0, 1, 500)
    found = [samples_needed(rng.normal(d, 1, 500), null) for d in (0.3, 0.6, 1.2)]
    ns = [f.n for f in found]
    assert all(isinstance(n, int) for n in ns) and ns[0] > ns[1] > ns[2] >= 2, ns
    assert [f.auc for f in found] == sorted(f.auc for f in found)
    assert all(f.power_at_n >= 0.9 for f in found)


def test_samples_needed_is_deterministic_and_bounded():
    rng = np.random.default_rng(0)
    members, null = rng.normal(0.8, 1, 300), rng.normal(0, 1, 300)
    assert samples_needed(members, null).to_dict() == samples_needed(members, null).to_dict()
    none = samples_needed(null[::-1].copy(), null, max_n=500)  # no signal: out of reach
    assert none.n is None and none.power_at_n < 0.9


def test_ties_like_zero_losses_are_handled():
    rng = np.random.default_rng(0)
    members = np.r_[np.zeros(150), -rng.exponential(1, 50)]  # many members fitted to zero loss
    null = np.r_[np.zeros(20), -rng.exponential(1, 280)]
    n = samples_needed(members, null).n
    assert n is not None and 2 <= n <= 100


def test_bad_input_is_refused():
    with pytest.raises(EvaluationError):
        usage_share([], [1.0], [0.0])
    with pytest.raises(EvaluationError):
        samples_needed([1.0, np.nan], [0.0])

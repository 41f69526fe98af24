"""The epsilon lower bound and the slices: hand-made scores, randomised response, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from mintaudit.errors import EvaluationError
from mintaudit.evaluation import (
    SampleInfo,
    auc_score,
    clopper_pearson,
    epsilon_lower_bound,
    evaluate_scores,
    min_scores_for_bound,
)


def test_clopper_pearson_matches_scipy_exact_interval() -> None:
    # a one-sided bound at 97.5% is one end of the two-sided exact interval at 95%
    n = 37
    lo, hi = clopper_pearson(np.arange(n + 1), n, 0.975)
    for k in range(n + 1):
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
        assert lo[k] == pytest.approx(ci.low, abs=1e-10) and hi[k] == pytest.approx(ci.high, abs=1e-10)


def test_perfect_separation_matches_the_closed_form() -> None:
    # every member scores 1, every non-member 0: the chosen threshold is 1, the bound half has
    # tp = m, fp = 0, so TPR_lo = c ** (1/m), FPR_hi = 1 - c ** (1/m) with c = 0.025
    b = epsilon_lower_bound([1.0] * 41, [0.0] * 41, delta=1e-5, confidence=0.95)
    m = 41 - 41 // 2
    c = 0.025 ** (1 / m)
    assert (b.n_members, b.n_nonmembers, b.n_selection_members) == (m, m, 20)
    assert b.threshold == 1.0 and (b.true_positives, b.false_positives) == (m, 0)
    assert b.tpr_lower == pytest.approx(c) and b.fpr_upper == pytest.approx(1 - c)
    assert b.epsilon == pytest.approx(math.log((c - 1e-5) / (1 - c)))
    assert b.positive and b.per_rate_confidence == 0.975 and b.confidence == 0.95 and b.delta == 1e-5
    assert "selection half" in b.threshold_half and "other half" in b.threshold_half


def _direct(members: list[float], nonmembers: list[float], delta: float, confidence: float, seed: int) -> float:
    """The bound computed step by step with scipy.stats.beta, one threshold at a time."""
    a = (1 - confidence) / 2
    rng = np.random.default_rng(seed)
    m, n = np.asarray(members)[rng.permutation(len(members))], np.asarray(nonmembers)[rng.permutation(len(nonmembers))]
    sel_m, bnd_m, sel_n, bnd_n = m[: m.size // 2], m[m.size // 2 :], n[: n.size // 2], n[n.size // 2 :]

    def bound(sm: np.ndarray, sn: np.ndarray, t: float) -> float:
        tp, fp = int((sm >= t).sum()), int((sn >= t).sum())
        tpr_lo = 0.0 if tp == 0 else stats.beta.ppf(a, tp, sm.size - tp + 1)
        fpr_hi = 1.0 if fp == sn.size else stats.beta.ppf(1 - a, fp + 1, sn.size - fp)
        forms = [-math.inf]
        if tpr_lo > delta:
            forms.append(math.log((tpr_lo - delta) / fpr_hi))
        if 1 - fpr_hi > delta:
            forms.append(math.log((1 - fpr_hi - delta) / (1 - tpr_lo)))
        return max(forms)

    candidates = sorted(set(sel_m) | set(sel_n), reverse=True)
    best = max(candidates, key=lambda t: bound(sel_m, sel_n, t))  # first maximum from the top, like argmax
    return max(bound(bnd_m, bnd_n, best), 0.0)


@pytest.mark.parametrize(
    ("members", "nonmembers", "seed"),
    [
        ([0.9] * 30 + [0.5] * 10, [0.9] * 5 + [0.5] * 10 + [0.1] * 25, 0),
        ([3.0] * 12 + [2.0] * 8 + [1.0] * 4, [2.0] * 4 + [1.0] * 10 + [0.0] * 10, 7),
        ([3.0] * 30 + [1.0] * 10, [3.0] * 2 + [1.0] * 38, 5),  # positive, by the TPR / FPR form
        ([0.2] * 25 + [0.8] * 25, [0.2] * 30 + [0.8] * 20, 3),  # weak signal
        ([0.0] * 20, [1.0] * 20, 1),  # the wrong way round: nothing to certify
    ],
)
def test_bound_matches_a_direct_computation(members: list[float], nonmembers: list[float], seed: int) -> None:
    b = epsilon_lower_bound(members, nonmembers, delta=1e-3, confidence=0.9, split_seed=seed)
    assert b.epsilon == pytest.approx(_direct(members, nonmembers, 1e-3, 0.9, seed), abs=1e-9)
    assert b.epsilon >= 0.0 and json.loads(json.dumps(b.to_dict(), allow_nan=False)) == b.to_dict()


def test_no_signal_gives_zero_and_says_so() -> None:
    b = epsilon_lower_bound([0.0, 1.0] * 10, [1.0, 0.0] * 10)
    assert b.epsilon == 0.0 and not b.positive and b.form is None and "no threshold" in b.note


@pytest.mark.parametrize("eps", [1.0, 2.0, 4.0])
def test_never_exceeds_randomised_response_epsilon_beyond_its_confidence(eps: float) -> None:
    # randomised response on the membership bit: a member's bit 1 (non-member's 0) is reported
    # truthfully with probability p = e^eps / (1 + e^eps); the score is the reported bit.
    # Its exact (eps(delta), delta) curve: eps(delta) = log((p - delta) / (1 - p)).
    delta, runs, n = 1e-5, 200, 2000
    p = math.exp(eps) / (1 + math.exp(eps))
    true_eps = math.log((p - delta) / (1 - p))
    rng = np.random.default_rng(int(eps * 10))
    bounds = np.array(
        [
            epsilon_lower_bound(
                (rng.random(n) < p).astype(float),
                (rng.random(n) >= p).astype(float),
                delta=delta,
                confidence=0.95,
                split_seed=i,
            ).epsilon
            for i in range(runs)
        ]
    )
    exceeded = int(np.count_nonzero(bounds > true_eps))
    # at most 5% of runs may exceed in expectation; allow the binomial's 99.9% quantile
    assert exceeded <= stats.binom.ppf(0.999, runs, 0.05)
    assert 0.6 * eps < float(np.mean(bounds)) < true_eps  # and it is informative, not trivially 0


def _info(labels: np.ndarray, correct: np.ndarray) -> SampleInfo:
    return SampleInfo(np.asarray(labels), np.asarray(correct, dtype=bool))


def test_slices_add_up_to_the_whole() -> None:
    rng = np.random.default_rng(0)
    m, n = rng.normal(0.5, 1, 700), rng.normal(0, 1, 1000)  # unbalanced: members 700, non-members 700 after balance
    mi = _info(rng.integers(0, 4, 700), rng.random(700) < 0.9)
    ni = _info(rng.integers(0, 4, 1000), rng.random(1000) < 0.7)
    ev = evaluate_scores(m, n, n_bootstrap=20, member_info=mi, nonmember_info=ni)
    s = ev.slices
    assert set(s) == {"class", "correct", "wrong"} and set(s["class"]) == {"0", "1", "2", "3"}
    for side, total in (("n_members", ev.n_members), ("n_nonmembers", ev.n_nonmembers)):
        assert sum(c[side] for c in s["class"].values()) == total == 700
        assert s["correct"][side] + s["wrong"][side] == total
    assert s["correct"]["n_members"] > s["wrong"]["n_members"]
    for part in [*s["class"].values(), s["correct"], s["wrong"]]:
        assert set(part["metrics"]) == {"accuracy", "precision", "recall", "auc", "tpr_at_fpr"}
        lo, hi = part["ci95"]["auc"]
        assert lo <= part["metrics"]["auc"] <= hi
        assert part["epsilon_lower_bound"]["delta"] == 1e-5
    assert json.loads(json.dumps(ev.to_dict(), allow_nan=False)) == ev.to_dict()
    # the whole-set numbers do not move when slices are asked for
    plain = evaluate_scores(m, n, n_bootstrap=20)
    assert (plain.metrics, plain.ci95, plain.epsilon_lower_bound) == (ev.metrics, ev.ci95, ev.epsilon_lower_bound)
    assert plain.slices is None


def test_slice_metrics_are_those_of_the_slice_and_follow_the_balancing() -> None:
    # the class is written into the score: class c members score in [c, c + 0.5), non-members in
    # [c + 0.5, c + 1); a slice that kept its samples' own labels has AUC exactly 0
    rng = np.random.default_rng(1)
    cm, cn = rng.integers(0, 3, 400), rng.integers(0, 3, 900)
    m, n = cm + 0.5 * rng.random(400), cn + 0.5 + 0.5 * rng.random(900)
    ev = evaluate_scores(m, n, n_bootstrap=0, member_info=_info(cm, cm == 0), nonmember_info=_info(cn, cn == 0))
    assert ev.n_nonmembers == 400 and 0.0 < ev.metrics["auc"] < 1.0
    for part in ev.slices["class"].values():
        assert part["metrics"]["auc"] == 0.0
    # without balancing, a slice equals evaluating its own samples
    ev = evaluate_scores(
        m, n, balance=False, n_bootstrap=0, member_info=_info(cm, cm == 0), nonmember_info=_info(cn, cn == 0)
    )
    s = ev.slices["correct"]  # class 0 only
    y = np.r_[np.ones((cm == 0).sum()), np.zeros((cn == 0).sum())]
    assert s["metrics"]["auc"] == auc_score(y, np.r_[m[cm == 0], n[cn == 0]]) == 0.0
    assert (s["n_members"], s["n_nonmembers"]) == (int((cm == 0).sum()), int((cn == 0).sum()))


def test_a_slice_without_one_side_has_no_metrics() -> None:
    m, n = np.linspace(0, 1, 30), np.linspace(0, 1, 30)
    ev = evaluate_scores(
        m,
        n,
        n_bootstrap=0,
        member_info=_info(np.zeros(30, int), np.ones(30)),
        nonmember_info=_info(np.r_[np.zeros(15, int), np.ones(15, int)], np.ones(30)),
    )
    one = ev.slices["class"]["1"]
    assert (one["n_members"], one["n_nonmembers"], one["metrics"], one["epsilon_lower_bound"]) == (0, 15, None, None)
    assert ev.slices["wrong"]["n_members"] == 0 and ev.slices["correct"]["n_members"] == 30


def test_evaluate_scores_reports_the_bound_or_why_not() -> None:
    rng = np.random.default_rng(2)
    m, n = rng.normal(2, 1, 500), rng.normal(0, 1, 500)
    ev = evaluate_scores(m, n, n_bootstrap=0, delta=1e-3, confidence=0.9, seed=4)
    direct = epsilon_lower_bound(m, n, delta=1e-3, confidence=0.9, split_seed=4)
    assert ev.epsilon_lower_bound == direct.to_dict() and direct.epsilon > 0.5
    few = evaluate_scores([0.5, 0.7], [0.1], n_bootstrap=0).epsilon_lower_bound
    assert few["epsilon"] is None and "at least 11" in few["note"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"delta": 0.0}, "delta must be a number strictly between 0 and 1; given 0.0"),
        ({"delta": 1.0}, "delta must be .* given 1.0"),
        ({"delta": -1e-5}, "delta must be"),
        ({"delta": float("nan")}, "delta must be"),
        ({"delta": True}, "delta must be"),
        ({"confidence": 0.0}, "confidence must be .* given 0.0; pass e.g. 0.95"),
        ({"confidence": 1.0}, "confidence must be"),
        ({"confidence": 95}, "confidence must be .* given 95"),
        ({"confidence": "0.95"}, "confidence must be"),
    ],
)
def test_bad_levels_raise_one_clear_line(kwargs: dict, match: str) -> None:
    for call in (
        lambda: epsilon_lower_bound([1.0] * 20, [0.0] * 20, **kwargs),
        lambda: evaluate_scores([1.0] * 20, [0.0] * 20, n_bootstrap=0, **kwargs),
    ):
        with pytest.raises(EvaluationError, match=match) as info:
            call()
        assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("members", "nonmembers", "match"),
    [
        ([1.0] * 10, [0.0] * 20, "needs at least 11 member and 11 non-member scores .* given 10 members and 20"),
        ([1.0] * 20, [0.0] * 3, "needs at least 11 .* given 20 members and 3 non-members; pass more scores"),
        ([], [], "needs at least 11"),
        ([[1.0]] * 20, [0.0] * 20, "1-D"),
        ([1.0] * 19 + [np.inf], [0.0] * 20, "finite"),
    ],
)
def test_bad_scores_raise_one_clear_line(members: list, nonmembers: list, match: str) -> None:
    with pytest.raises(EvaluationError, match=match):
        epsilon_lower_bound(members, nonmembers)


def test_minimum_grows_with_confidence() -> None:
    assert min_scores_for_bound(1e-5, 0.95) == 11
    assert min_scores_for_bound(1e-5, 0.999) > min_scores_for_bound(1e-5, 0.95) > min_scores_for_bound(1e-5, 0.5)
    need = min_scores_for_bound(1e-5, 0.999)
    assert epsilon_lower_bound([1.0] * need, [0.0] * need, confidence=0.999).epsilon > 0
    with pytest.raises(EvaluationError, match=f"at least {need}"):
        epsilon_lower_bound([1.0] * (need - 1), [0.0] * (need - 1), confidence=0.999)


@pytest.mark.parametrize(
    ("member_info", "nonmember_info", "match"),
    [
        (_info(np.zeros(20, int), np.ones(20)), None, "one side only"),
        (None, _info(np.zeros(20, int), np.ones(20)), "one side only"),
        (
            _info(np.zeros(19, int), np.ones(19)),
            _info(np.zeros(20, int), np.ones(20)),
            r"member_info must hold .* \(20\)",
        ),
        (_info(np.zeros(20, int), np.ones(20)), _info(np.zeros(20, int), np.ones(5)), "nonmember_info must hold"),
    ],
)
def test_bad_sample_info_raises(member_info, nonmember_info, match: str) -> None:
    with pytest.raises(EvaluationError, match=match):
        evaluate_scores([1.0] * 20, [0.0] * 20, n_bootstrap=0, member_info=member_info, nonmember_info=nonmember_info)


def test_sample_info_from_logits() -> None:
    info = SampleInfo.from_logits([[2.0, 0.1], [0.0, 1.0], [3.0, -1.0]], [0, 0, 1])
    assert info.labels.tolist() == [0, 0, 1] and info.correct.tolist() == [True, False, False]


def test_passive_results_carry_slices_from_the_signal_cache(tmp_path, toy_dataset, tiny_model) -> None:
    # the one shared place: passive rows (here LOSS and an outputs-only MINT row) slice by the
    # cached labels and the audited model's own predictions on the scored samples
    from mintaudit.detectors import DetectorConfig
    from mintaudit.passive import PassiveSplit, SweepConfig, audit_tap, loss_baseline
    from mintaudit.signals import extract_signals

    split = PassiveSplit(np.arange(0, 30), np.arange(30, 60), np.arange(60, 90), np.arange(90, 120))
    cache = extract_signals(tiny_model, toy_dataset, np.arange(120), [], tmp_path / "cache", show_progress=False)
    config = SweepConfig(detector=DetectorConfig(kind="mlp", epochs=1), n_bootstrap=10)
    out = cache.outputs()
    correct = out["logits"].argmax(1) == out["labels"]
    rows = cache.rows(split.heldout_members), cache.rows(split.test)
    for result in (
        loss_baseline(cache, split, config),
        audit_tap(cache, split, None, config, fuse_outputs=True, show_progress=False)[0],
    ):
        row = result.to_dict()
        s = row["slices"]
        assert (row["n_members"], row["n_nonmembers"]) == (30, 30)
        assert s["correct"]["n_members"] == int(correct[rows[0]].sum())
        assert s["wrong"]["n_nonmembers"] == int((~correct[rows[1]]).sum())
        for c in ("0", "1", "2"):
            assert s["class"][c]["n_members"] == int((toy_dataset.labels[split.heldout_members] == int(c)).sum())
        assert row["epsilon_lower_bound"]["delta"] == 1e-5 and row["epsilon_lower_bound"]["epsilon"] >= 0

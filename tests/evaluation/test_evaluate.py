"""evaluate_scores: point metrics, bootstrap intervals, balancing, ROC and histogram payloads."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
from sklearn import metrics as skm

from mintaudit.errors import EvaluationError
from mintaudit.evaluation import TARGET_FPRS, Evaluation, evaluate_scores, threshold_metrics, tpr_at_fpr
from mintaudit.evaluation.evaluate import _metric_columns, _nest
from mintaudit.evaluation.metrics import curve_from_counts


def _scores(n_members: int, n_nonmembers: int, shift: float = 0.8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    return sig(rng.normal(shift, 1, n_members)), sig(rng.normal(0, 1, n_nonmembers))


def _leaves(tree: dict) -> list:
    return [v for k in tree for v in (_leaves(tree[k]) if isinstance(tree[k], dict) else [tree[k]])]


def test_point_metrics_equal_the_functional_ones() -> None:
    m, n = _scores(700, 700)
    ev = evaluate_scores(m, n, threshold=0.55, n_bootstrap=10)
    y, s = np.r_[np.ones(700), np.zeros(700)], np.r_[m, n]
    assert ev.metrics["auc"] == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    for key, value in threshold_metrics(y, s, 0.55).items():
        assert ev.metrics[key] == pytest.approx(value)
    for t in TARGET_FPRS:
        assert ev.metrics["tpr_at_fpr"][f"{t:g}"] == pytest.approx(tpr_at_fpr(y, s, t))
    assert (ev.n_members, ev.n_nonmembers, ev.threshold, ev.n_bootstrap) == (700, 700, 0.55, 10)


def test_vectorised_resample_metrics_equal_the_functional_ones() -> None:
    """The batch path used by the bootstrap, on resamples drawn here, against the public functions."""
    rng = np.random.default_rng(5)
    m, n = np.round(rng.normal(0.5, 1, 60), 1), np.round(rng.normal(0, 1, 45), 1)
    values, inverse = np.unique(np.r_[m, n], return_inverse=True)
    inv_m, inv_n = inverse[: m.size], inverse[m.size :]
    threshold = 0.2
    idx_m, idx_n = rng.integers(0, m.size, (25, m.size)), rng.integers(0, n.size, (25, n.size))
    pos = np.stack([np.bincount(inv_m[i], minlength=values.size) for i in idx_m])
    neg = np.stack([np.bincount(inv_n[i], minlength=values.size) for i in idx_n])
    columns = _metric_columns(*curve_from_counts(pos, neg), int(np.count_nonzero(values >= threshold)))
    for b in range(25):
        y, s = np.r_[np.ones(m.size), np.zeros(n.size)], np.r_[m[idx_m[b]], n[idx_n[b]]]
        got = _nest(list(columns[b]))
        assert got["auc"] == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
        for key, value in threshold_metrics(y, s, threshold).items():
            assert got[key] == pytest.approx(value)
        for t in TARGET_FPRS:
            assert got["tpr_at_fpr"][f"{t:g}"] == pytest.approx(tpr_at_fpr(y, s, t))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_intervals_contain_the_point_estimate(seed: int) -> None:
    m, n = _scores(1500, 1500, shift=0.6 + 0.3 * seed, seed=seed)
    ev = evaluate_scores(m, n, n_bootstrap=300, seed=seed)
    for point, (lo, hi) in zip(_leaves(ev.metrics), _leaves(ev.ci95)):
        assert lo <= point <= hi


def test_intervals_shrink_with_more_samples() -> None:
    small = evaluate_scores(*_scores(200, 200), n_bootstrap=300)
    large = evaluate_scores(*_scores(5000, 5000), n_bootstrap=300)
    for key in ("accuracy", "auc", "precision", "recall"):
        width = lambda ev: ev.ci95[key][1] - ev.ci95[key][0]  # noqa: E731, B023
        assert width(large) < 0.5 * width(small)


def test_balancing_subsamples_the_larger_side() -> None:
    m, n = _scores(300, 1000)
    ev = evaluate_scores(m, n, n_bootstrap=0)
    assert (ev.n_members, ev.n_nonmembers) == (300, 300)
    assert sum(ev.histogram["members"]) == 300 and sum(ev.histogram["nonmembers"]) == 300
    assert evaluate_scores(m, n, n_bootstrap=0, seed=0).histogram == ev.histogram  # seeded
    assert evaluate_scores(m, n, n_bootstrap=0, seed=1).metrics != ev.metrics  # another subsample
    unbalanced = evaluate_scores(m, n, balance=False, n_bootstrap=0)
    assert (unbalanced.n_members, unbalanced.n_nonmembers) == (300, 1000)


def test_balanced_subsample_is_drawn_from_the_given_scores() -> None:
    m = np.arange(10.0)  # members all above the non-members
    n = np.arange(-1000.0, 0.0)
    ev = evaluate_scores(m, n, threshold=-0.5, n_bootstrap=0)
    assert ev.metrics["auc"] == 1.0 and ev.metrics["accuracy"] == 1.0
    assert ev.n_nonmembers == 10 and ev.histogram["edges"][0] >= -1000.0


def test_equal_seeds_give_equal_results() -> None:
    m, n = _scores(400, 400)
    assert evaluate_scores(m, n, n_bootstrap=50, seed=3) == evaluate_scores(m, n, n_bootstrap=50, seed=3)


def test_no_bootstrap_gives_nan_intervals() -> None:
    ev = evaluate_scores(*_scores(50, 50), n_bootstrap=0)
    assert all(math.isnan(v) for pair in _leaves(ev.ci95) for v in pair)


def test_roc_is_downsampled_and_dense_at_low_fpr() -> None:
    m, n = _scores(5000, 5000, shift=0.5)
    ev = evaluate_scores(m, n, n_bootstrap=0)
    fpr, tpr = np.array(ev.roc["fpr"]), np.array(ev.roc["tpr"])
    assert len(fpr) == len(tpr) <= 310
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert np.count_nonzero(fpr <= 0.01) >= 40  # the part drawn on log axes keeps its detail
    for t in TARGET_FPRS:  # the reported points lie on the kept curve
        assert tpr[fpr <= t].max() == pytest.approx(ev.metrics["tpr_at_fpr"][f"{t:g}"])


def test_histogram_covers_the_pooled_range() -> None:
    m, n = _scores(500, 500)
    h = evaluate_scores(m, n, n_bootstrap=0).histogram
    assert len(h["edges"]) == 41 and len(h["members"]) == len(h["nonmembers"]) == 40
    assert h["edges"][0] == min(m.min(), n.min()) and h["edges"][-1] == max(m.max(), n.max())
    tied = evaluate_scores([0.5, 0.5], [0.5], n_bootstrap=0).histogram
    assert tied["edges"][0] < 0.5 < tied["edges"][-1]


def test_to_dict_is_plain_json() -> None:
    ev = evaluate_scores(*_scores(100, 100), n_bootstrap=20)
    d = ev.to_dict()
    assert set(d) == {f.name for f in Evaluation.__dataclass_fields__.values()}
    assert set(d["metrics"]) == set(d["ci95"]) == {"accuracy", "precision", "recall", "auc", "tpr_at_fpr"}
    assert set(d["metrics"]["tpr_at_fpr"]) == {"0.01", "0.001"}
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    d["metrics"]["auc"] = -1.0  # a copy
    assert ev.metrics["auc"] != -1.0


def test_bootstrap_is_fast() -> None:
    m, n = _scores(2500, 2500)
    evaluate_scores(m, n, n_bootstrap=10)  # warm-up
    start = time.perf_counter()
    evaluate_scores(m, n, n_bootstrap=1000)
    assert time.perf_counter() - start < 3.0


@pytest.mark.parametrize(
    ("m", "n", "match"),
    [
        ([], [0.1], "no members to evaluate"),
        ([0.1], [], "no non-members to evaluate"),
        ([0.1, np.nan], [0.2], "finite"),
        ([[0.1]], [0.2], "1-D"),
    ],
)
def test_invalid_scores_raise(m: list, n: list, match: str) -> None:
    with pytest.raises(EvaluationError, match=match):
        evaluate_scores(m, n)


def test_invalid_options_raise() -> None:
    with pytest.raises(EvaluationError, match="n_bootstrap"):
        evaluate_scores([0.1], [0.2], n_bootstrap=-1)
    with pytest.raises(EvaluationError, match="threshold"):
        evaluate_scores([0.1], [0.2], threshold=float("nan"))

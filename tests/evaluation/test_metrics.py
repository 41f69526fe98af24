"""Functional metrics, checked against scikit-learn and brute-force definitions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from mintaudit.errors import EvaluationError
from mintaudit.evaluation import (
    UndefinedMetricWarning,
    auc_score,
    best_threshold,
    roc_curve,
    threshold_metrics,
    tpr_at_fpr,
)

TARGETS = (0.0, 0.001, 0.01, 0.05, 0.1, 0.5, 1.0)


def _data(seed: int, n: int = 400, decimals: int | None = 1) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores; rounding makes many ties."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = rng.normal(0.0, 1.0, n) + 0.6 * y
    return y, (np.round(s, decimals) if decimals is not None else s)


CASES = {
    "ties": _data(0),
    "heavy-ties": _data(1, decimals=0),
    "no-ties": _data(2, decimals=None),
    "imbalanced": (
        np.r_[np.ones(30, int), np.zeros(300, int)],
        np.round(np.random.default_rng(3).normal(size=330), 1),
    ),
    "perfect": (np.r_[np.ones(5, int), np.zeros(5, int)], np.r_[np.arange(5) + 10.0, np.arange(5.0)]),
    "inverted": (np.r_[np.ones(5, int), np.zeros(5, int)], np.r_[np.arange(5.0), np.arange(5) + 10.0]),
    "all-tied": (np.r_[np.ones(7, int), np.zeros(4, int)], np.full(11, 0.3)),
    "one-pair": (np.array([1, 0]), np.array([0.2, 0.7])),
}


def _brute_tpr_at_fpr(y: np.ndarray, s: np.ndarray, target: float) -> float:
    pos, neg = s[y == 1], s[y == 0]
    best = 0.0  # threshold +inf: (0, 0)
    for t in np.unique(s):
        if np.mean(neg >= t) <= target:
            best = max(best, float(np.mean(pos >= t)))
    return best


@pytest.mark.parametrize("case", CASES)
def test_roc_curve_equals_sklearn(case: str) -> None:
    y, s = CASES[case]
    fpr, tpr, thr = roc_curve(y, s)
    ref_fpr, ref_tpr, ref_thr = skm.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)
    np.testing.assert_array_equal(thr, ref_thr)
    assert (fpr[0], tpr[0], thr[0]) == (0.0, 0.0, np.inf)


@pytest.mark.parametrize("case", CASES)
def test_auc_equals_sklearn(case: str) -> None:
    y, s = CASES[case]
    assert auc_score(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)


def test_auc_edge_values() -> None:
    assert auc_score(*CASES["perfect"]) == 1.0
    assert auc_score(*CASES["inverted"]) == 0.0
    assert auc_score(*CASES["all-tied"]) == 0.5


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("target", TARGETS)
def test_tpr_at_fpr_equals_brute_force(case: str, target: float) -> None:
    y, s = CASES[case]
    assert tpr_at_fpr(y, s, target) == pytest.approx(_brute_tpr_at_fpr(y, s, target), abs=1e-12)


def test_tpr_at_fpr_edge_values() -> None:
    assert tpr_at_fpr(*CASES["perfect"], 0.0) == 1.0
    assert tpr_at_fpr(*CASES["inverted"], 0.5) == 0.0
    assert tpr_at_fpr(*CASES["all-tied"], 0.99) == 0.0  # one threshold: all or nothing
    assert tpr_at_fpr(*CASES["all-tied"], 1.0) == 1.0


@pytest.mark.parametrize("case", CASES)
def test_threshold_metrics_equal_sklearn(case: str) -> None:
    y, s = CASES[case]
    for t in [*np.unique(s)[:: max(1, np.unique(s).size // 7)], s.max() + 1.0, s.min() - 1.0, 0.5]:
        pred = (s >= t).astype(int)
        got = threshold_metrics(y, s, t)
        assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
        assert got["precision"] == pytest.approx(skm.precision_score(y, pred, zero_division=0))
        assert got["recall"] == pytest.approx(skm.recall_score(y, pred, zero_division=0))
        assert all(type(v) is float for v in got.values())


def test_threshold_metrics_without_predicted_member_has_zero_precision() -> None:
    got = threshold_metrics([1, 0, 1], [0.1, 0.2, 0.3], 10.0)
    assert got == {"accuracy": pytest.approx(1 / 3), "precision": 0.0, "recall": 0.0}


@pytest.mark.parametrize("case", CASES)
def test_best_threshold_maximises_balanced_accuracy(case: str) -> None:
    y, s = CASES[case]

    def balanced(c: float) -> float:
        pred = s >= c
        return (np.mean(pred[y == 1]) + np.mean(~pred[y == 0])) / 2

    t = best_threshold(y, s)
    assert np.isfinite(t)
    brute = max(balanced(c) for c in [*np.unique(s), np.inf])
    assert balanced(t) == pytest.approx(brute)


def test_best_threshold_is_not_fooled_by_imbalance() -> None:
    # 10 members, 90 non-members: "nobody is a member" has 90% plain accuracy but is useless
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(10), np.zeros(90)].astype(int)
    s = rng.normal(size=100) + 1.5 * y
    t = best_threshold(y, s)
    assert 0.5 < threshold_metrics(y, s, t)["recall"] <= 1.0


def test_best_threshold_lies_between_the_classes() -> None:
    assert best_threshold([0, 0, 1, 1], [0.1, 0.2, 0.6, 0.8]) == pytest.approx(0.4)
    t = best_threshold([0, 0, 0], [0.1, 0.2, 0.3])  # best is to predict no member at all
    assert t > 0.3 and threshold_metrics([0, 0, 0], [0.1, 0.2, 0.3], t)["accuracy"] == 1.0


def test_bool_labels_are_accepted() -> None:
    y, s = CASES["ties"]
    assert auc_score(y.astype(bool), s) == auc_score(y, s)


@pytest.mark.parametrize("missing", ["members", "non-members"])
def test_degenerate_input_warns_and_returns_nan(missing: str) -> None:
    y = np.zeros(5, int) if missing == "members" else np.ones(5, int)
    s = np.linspace(0, 1, 5)
    with pytest.warns(UndefinedMetricWarning, match=f"without {missing}"):
        assert np.isnan(auc_score(y, s))
    with pytest.warns(UndefinedMetricWarning):
        assert np.isnan(tpr_at_fpr(y, s, 0.01))
    with pytest.warns(UndefinedMetricWarning):
        fpr, tpr, _ = roc_curve(y, s)
    assert np.isnan(tpr if missing == "members" else fpr).all()


@pytest.mark.parametrize(
    ("y", "s", "match"),
    [
        ([0, 1, 1], [0.1, 0.2], "same length"),
        ([0, 1], [0.1, np.nan], "finite"),
        ([0, 1], [np.inf, 0.2], "finite"),
        ([], [], "empty"),
        ([0, 2], [0.1, 0.2], "0 .non-member. and 1"),
        ([[0, 1]], [[0.1, 0.2]], "1-D"),
    ],
)
def test_invalid_input_raises(y: list, s: list, match: str) -> None:
    for fn in (auc_score, roc_curve, best_threshold, lambda a, b: tpr_at_fpr(a, b, 0.01)):
        with pytest.raises(EvaluationError, match=match):
            fn(y, s)
    with pytest.raises(ValueError):  # EvaluationError is also a ValueError
        auc_score(y, s)


def test_target_fpr_out_of_range_raises() -> None:
    with pytest.raises(EvaluationError, match="target_fpr"):
        tpr_at_fpr([0, 1], [0.1, 0.2], 1.5)

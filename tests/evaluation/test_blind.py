"""The blind baseline: model-free features, a cross-validated logistic AUC and its permutation test."""

from __future__ import annotations

import numpy as np
import pytest

from mintaudit.data import load_dataset
from mintaudit.errors import EvaluationError
from mintaudit.evaluation.blind import blind_features, blind_test


@pytest.fixture(scope="module")
def digits():
    images = np.asarray(load_dataset("digits").images)
    order = np.random.default_rng(0).permutation(len(images))
    return images[order[:250]], images[order[250:350]], images[order[350:450]]


def test_flags_a_brightness_shift_and_not_an_iid_query(digits):
    null, iid, other = digits
    same = blind_test(iid, null)
    assert not same.rejects and same.auc < 0.65 and same.p_value > 0.01
    bright = np.clip(other.astype(np.float64) * 1.2, 0, 255).astype(np.uint8)
    shifted = blind_test(bright, null)
    assert shifted.rejects and shifted.auc > 0.8 and shifted.n_permutations == 200
    assert shifted.p_value == pytest.approx(1 / 201)  # no permuted AUC reached the observed one
    assert blind_test(bright, null).to_dict() == shifted.to_dict()  # same seed, same result


def test_iid_queries_stop_once_settled_and_keep_the_decision(digits):
    null, iid, _ = digits
    quick = blind_test(iid, null, seed=3)
    full = blind_test(iid, null, seed=3, n_permutations=200, alpha=0.5)  # alpha 0.5: rarely settled early
    assert quick.rejects == (quick.p_value <= 0.01) and not quick.rejects
    assert quick.n_permutations < 200 and quick.auc == full.auc


def test_auc_agrees_with_scikit_learn(digits):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.preprocessing import StandardScaler

    null, _, other = digits
    q = other[:, ::-1].copy()  # upside down
    x = StandardScaler().fit_transform(np.vstack([blind_features(q), blind_features(null)]))
    y = np.r_[np.ones(len(q)), np.zeros(len(null))]
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    reference = cross_val_score(LogisticRegression(C=1.0, max_iter=2000), x, y, cv=folds, scoring="roc_auc").mean()
    assert blind_test(q, null, n_permutations=10).auc == pytest.approx(reference, abs=0.03)


def test_features_area_average_mean_std_and_histogram():
    img = np.zeros((1, 16, 16, 3), np.uint8)
    img[0, :2, :2, 0] = 255  # one 2x2 block of channel 0 -> one cell of the 8x8 grid
    f = blind_features(img)
    assert f.shape == (1, 3 * 64 + 18)
    assert f[0, 0] == pytest.approx(1.0) and f[0, 1:192].sum() == pytest.approx(0.0)
    assert f[0, 192] == pytest.approx(4 / 768)  # mean of pixel / 255 over all channels
    assert f[0, 194] == pytest.approx(764 / 768) and f[0, 209] == pytest.approx(4 / 768)  # first and last bins
    odd = blind_features(np.full((2, 28, 28), 51, np.uint8))  # 28 is not a multiple of 8: exact area weights
    assert odd.shape == (2, 82) and np.allclose(odd[:, :64], 51 / 255)


@pytest.mark.parametrize(
    "query, null",
    [
        (np.zeros((5, 8, 8), np.uint8), np.zeros((50, 8, 8), np.uint8)),  # too few queries
        (np.zeros((20, 8, 8), np.uint8), np.zeros((20, 9, 9), np.uint8)),  # shapes differ
        (np.zeros((20, 8, 8), np.float32), np.zeros((20, 8, 8), np.float32)),  # not uint8
    ],
)
def test_refuses_what_it_cannot_test(query, null):
    with pytest.raises(EvaluationError):
        blind_test(query, null)

"""MintDetector keeps the scikit-learn estimator contract (issue 13, item 8).

The scikit-learn estimator checks run on a fast configuration (8 epochs, lr 1e-2, hidden 16) on
the plain 2-D float arrays the checks generate. Which checks apply, and why the others do not:

- All the API, input-validation and classifier checks of ``parametrize_with_checks`` (legacy
  included) pass; none is marked as an expected failure (``EXPECTED_FAILED`` is empty).
- Multi-class checks do not apply: a MINT model is binary (member vs external sample). The
  estimator says so with the tag ``classifier_tags.multi_class = False`` (``binary_only`` before
  scikit-learn 1.6), so the checks make their targets binary and run
  ``check_classifier_not_supporting_multiclass`` instead, which expects the refusal.
- ``fit`` takes no ``sample_weight`` and no ``class_weight`` (the classes are re-weighted to
  count equally), so the sample-weight and class-weight checks are not generated.
- 1-D inputs (``check_fit1d``, ``check_fit2d_predict1d``) must be refused: they are, with
  "Reshape your data". The checks only feed 2-D arrays; the (N, C, H, W) activation maps the
  cnn detector reads are covered by tests/test_detectors.py.
- Two checks skip themselves here, by scikit-learn's own choice: the pandas part of
  ``check_classifier_data_not_an_array`` (pandas is not installed; the non-array part runs) and
  ``check_array_api_input`` (needs ``SCIPY_ARRAY_API=1``; the detector works on numpy only).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError as SklearnNotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from mintaudit.detectors import DetectorConfig, MintDetector
from mintaudit.errors import ConfigError, NotFittedError, SignalError

FAST = dict(epochs=8, lr=1e-2, hidden=16, batch_size=32, patience=8, show_progress=False)
EXPECTED_FAILED: dict[str, str] = {}  # check name -> why it does not apply; none today


@parametrize_with_checks([MintDetector(**FAST)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def _data(seed=0, n=120, d=6):
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(n // 2), np.zeros(n // 2)].astype(np.int64)
    X = rng.normal(size=(n, d)).astype(np.float32)
    X[:, 0] += y
    return X, y


def test_clone_get_params_set_params():
    det = MintDetector()
    params = det.get_params()
    fields = {f.name: f.default for f in dataclasses.fields(DetectorConfig)}
    assert params == {**fields, "show_progress": None, "device": None}
    copy = clone(MintDetector(kind="cnn", epochs=3, seed=7))
    assert copy.get_params()["kind"] == "cnn" and copy.get_params()["seed"] == 7
    assert det.set_params(epochs=2, pooling="mean") is det and (det.epochs, det.pooling) == (2, "mean")
    with pytest.raises(ValueError, match="Invalid parameter"):
        det.set_params(config=DetectorConfig())


def test_from_config_has_the_config_values():
    cfg = DetectorConfig(kind="mlp", pooling="flatten", width=8, hidden=16, epochs=3, seed=5)
    det = MintDetector.from_config(cfg, show_progress=False)
    assert det.get_params() == {**dataclasses.asdict(cfg), "show_progress": False, "device": None}
    assert MintDetector.from_config().get_params() == MintDetector().get_params()


def test_hyper_parameters_are_validated_by_fit_not_init():
    det = MintDetector(kind="svm", epochs=0)  # type: ignore[arg-type]
    X, y = _data()
    with pytest.raises(ConfigError, match="detector kind must be one of auto, mlp, cnn"):
        det.fit(X, y)
    assert not hasattr(det, "net_")


@pytest.mark.parametrize("kind, shape", [("mlp", (6,)), ("cnn", (2, 4, 4))])
def test_fit_leaves_the_global_torch_rng_as_it_was(kind, shape):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, *shape)).astype(np.float32)
    y = np.r_[np.ones(40), np.zeros(40)]
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    MintDetector(kind=kind, epochs=2, width=4, hidden=8, show_progress=False).fit(X, y)
    assert torch.equal(torch.get_rng_state(), before)


def test_same_seed_same_scores_whatever_the_global_rng():
    X, y = _data()
    torch.manual_seed(1)
    a = MintDetector(epochs=3, seed=4, show_progress=False).fit(X, y).decision_function(X)
    torch.manual_seed(2)
    torch.rand(10)
    b = MintDetector(epochs=3, seed=4, show_progress=False).fit(X, y).decision_function(X)
    c = MintDetector(epochs=3, seed=5, show_progress=False).fit(X, y).decision_function(X)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_learned_state_is_kept_when_params_change_after_fit():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(80, 3, 4, 4)).astype(np.float32)
    y = np.r_[np.ones(40), np.zeros(40)]
    det = MintDetector(kind="mlp", pooling="mean", epochs=2, show_progress=False).fit(X, y)
    before = det.decision_function(X)
    det.set_params(pooling="meanmax", kind="cnn")
    assert np.array_equal(det.decision_function(X), before)
    assert det.config_.pooling == "mean" and det.n_features_in_ == 48


def test_unfitted_error_is_both_mintaudits_and_sklearns():
    with pytest.raises(NotFittedError, match="call fit first") as info:
        MintDetector().predict(np.zeros((2, 3), np.float32))
    assert isinstance(info.value, SklearnNotFittedError)


def test_any_two_labels_second_is_members_and_save_load_keeps_them(tmp_path):
    X, y = _data()
    names = np.where(y == 1, "member", "external")
    det = MintDetector(epochs=3, show_progress=False).fit(X, names)
    ref = MintDetector(epochs=3, show_progress=False).fit(X, y)
    assert list(det.classes_) == ["external", "member"]
    assert np.array_equal(det.decision_function(X), ref.decision_function(X))
    assert set(det.predict(X)) <= {"external", "member"}
    loaded = MintDetector.load(det.save(tmp_path))
    assert list(loaded.classes_) == ["external", "member"] and loaded.n_features_in_ == 6
    assert np.array_equal(loaded.predict(X), det.predict(X))


@pytest.mark.parametrize(
    "X, y, match",
    [
        (np.zeros((6, 2)), [0, 1, 2, 0, 1, 2], "Only binary classification is supported"),
        (np.zeros((6, 2)), np.linspace(0, 1, 6), "continuous"),
        (np.zeros((6, 2)), None, "target y is None"),
        (np.full((6, 2), np.nan), [0, 1] * 3, "NaN or inf"),
        (np.zeros((0, 2)), [], "0 sample"),
        (np.zeros((6, 0)), [0, 1] * 3, "0 feature"),
        (np.zeros((6, 2)) + 1j, [0, 1] * 3, "Complex data not supported"),
        (np.zeros(6), [0, 1] * 3, "Reshape your data"),
    ],
)
def test_bad_inputs_are_refused_with_signal_error(X, y, match):
    with pytest.raises(SignalError, match=match):
        MintDetector(epochs=1, show_progress=False).fit(X, y)

"""White-box LiRA: its signals against direct computations, the calibration and the ratio on known answers, its row."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mintaudit.attacks.options import parse_attack_options
from mintaudit.attacks.registry import attack_spec
from mintaudit.attacks.run import AttackConfig, attack_scores
from mintaudit.attacks.whitebox import calibrate, whitebox_signals
from mintaudit.attacks.zoo.whitebox import WhiteboxOptions, likelihood_ratio
from mintaudit.errors import ConfigError
from mintaudit.evaluation import auc_score
from mintaudit.training import TrainConfig

CFG = AttackConfig(n_reference=4, reference_train=TrainConfig(epochs=1, batch_size=16), n_bootstrap=50)


def test_signals_equal_direct_computations(small_setup):
    ds, _, model, split = small_setup
    ids = split.known_members[:10]
    x, y = ds.batch(ids), torch.as_tensor(ds.labels[ids], dtype=torch.long)
    X, names = whitebox_signals(model, ds, ids, ["margin", "aug-loss", "grad-norm", "curvature"], blocks="output")
    assert names == ["margin", "aug-loss-mean", "aug-loss-sd", "grad-norm:fc", "curvature"]
    with torch.no_grad():
        z = model(x).double()
    top2 = z.topk(2, 1).values
    true = z[torch.arange(10), y]
    margin = torch.where(true == top2[:, 0], true - top2[:, 1], true - top2[:, 0])
    np.testing.assert_allclose(X[:, 0], margin.numpy(), rtol=1e-6, atol=1e-9)
    shifted = [torch.roll(x, d, dims) for d, dims in ((1, 3), (-1, 3), (1, 2), (-1, 2))]
    for v, (d, dim) in zip(shifted, ((1, 3), (-1, 3), (1, 2), (-1, 2))):  # zeros enter where roll wraps around
        v.select(dim, 0 if d == 1 else -1).zero_()
    with torch.no_grad():
        views = [x, torch.flip(x, [-1]), *shifted]
        losses = torch.stack([F.cross_entropy(model(v).double(), y, reduction="none") for v in views])
    np.testing.assert_allclose(X[:, 1], losses.mean(0).numpy(), rtol=1e-6)
    np.testing.assert_allclose(X[:, 2], losses.std(0, correction=0).numpy(), rtol=1e-5, atol=1e-9)
    Xf, _ = whitebox_signals(model, ds, ids, ["aug-loss"], views="flip")  # the input and its flip only
    np.testing.assert_allclose(Xf[:, 0], losses[:2].mean(0).numpy(), rtol=1e-6)
    # the gradient norm of the last layer's weight, one sample at a time
    for i in range(3):
        model.zero_grad()
        F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        assert X[i, 3] == pytest.approx(float(torch.log(model.fc.weight.grad.norm())), abs=1e-5)
    model.zero_grad()
    # a linear model: the loss is convex in the input, so the Hessian's trace is >= 0
    lin = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3)).eval()
    Xl, _ = whitebox_signals(lin, ds, ids, ["curvature"], probes=8)
    assert np.isfinite(Xl).all() and (Xl > -1e-6).all()  # softmax cross-entropy is convex in the logits: trace >= 0


def test_calibration_is_a_z_score_with_the_variance_shrunk():
    rng = np.random.default_rng(0)
    refs = rng.normal(2.0, 3.0, size=(5, 200, 1))
    target = refs.mean(0) + 3.0 * refs.std(0, ddof=1)
    out = np.ones((5, 200), dtype=bool)
    np.testing.assert_allclose(calibrate(target, refs, out, shrink=0.0), 3.0, rtol=1e-9)
    # shrinking moves each sample's variance toward the median one
    z = calibrate(target, refs, out, shrink=4.0)
    v = refs.var(0, ddof=1)[:, 0]
    expect = 3.0 * np.sqrt(v) / np.sqrt((4 * v + 4 * np.median(v)) / 8)
    np.testing.assert_allclose(z[:, 0], expect, rtol=1e-9)
    # a reference that trained on a sample is left out of that sample's statistics
    out[0, :] = False
    refs[0] = 1e6
    assert np.isfinite(calibrate(target, refs, out, 0.0)).all() and np.abs(calibrate(target, refs, out, 0.0)).max() < 50
    out[1:, 0] = False
    with pytest.raises(ConfigError, match="at least 2 reference models"):
        calibrate(target, refs, out, 4.0)


def test_the_ratio_recovers_the_known_optimal_ranking():
    """Two Gaussian signals, members shifted on both: the fitted ratio ranks as the true log-likelihood ratio does."""
    rng = np.random.default_rng(1)
    n = 4000
    z_in = rng.normal([1.0, 0.5], [1.0, 1.0], size=(n, 2))
    z_out = rng.normal([0.0, 0.0], [1.0, 1.0], size=(n, 2))
    fit = likelihood_ratio(z_in[: n // 2], z_out[: n // 2])
    test = np.r_[z_in[n // 2 :], z_out[n // 2 :]]
    truth = test @ np.array([1.0, 0.5])  # equal variances: the optimal ratio is linear in the means' difference
    rho = np.corrcoef(np.argsort(np.argsort(fit(test))), np.argsort(np.argsort(truth)))[0, 1]
    assert rho > 0.99
    y = np.r_[np.ones(n // 2), np.zeros(n // 2)]
    # two signals beat either alone, as they must when both carry membership
    assert auc_score(y, fit(test)) > auc_score(y, test[:, 0]) + 0.01


def test_options_are_checked_in_one_line():
    assert parse_attack_options(["whitebox-lira.signals=margin+curvature"], {"whitebox-lira": WhiteboxOptions}) == {
        "whitebox-lira": {
            "signals": "margin+curvature",
            "shrink": 4.0,
            "probes": 4,
            "blocks": "combined",
            "views": "flip",
            "covariance": "diagonal",
        }
    }
    with pytest.raises(ConfigError, match="unknown signal 'logits'"):
        WhiteboxOptions(signals="margin+logits")
    with pytest.raises(ConfigError, match="blocks"):
        WhiteboxOptions(blocks="everything")


def test_row_scores_every_set_and_cross_fits_the_auditors_rows(small_setup, tmp_path):
    ds, spec, model, split = small_setup
    a = attack_scores(model, spec, ds, split, ["whitebox-lira"], tmp_path, CFG, show_progress=False)
    sc = a["whitebox-lira"]
    assert attack_spec("whitebox-lira").needs_references
    assert len(sc.members) == len(split.heldout_members) and len(sc.nonmembers) == len(split.test)
    assert np.isfinite(np.r_[sc.members, sc.nonmembers, sc.calibration_members, sc.calibration_nonmembers]).all()
    assert sc.info["signals"] == [
        "margin",
        "aug-loss-mean",
        "aug-loss-sd",
        "grad-norm:conv1",
        "grad-norm:conv2",
        "grad-norm:fc",
    ]
    assert sc.info["n_reference"] == 4 and set(sc.info["seconds_by_signal"]) == {
        "aug-loss",
        "grad-norm",
    }  # the forward: in grad-norm's pass
    y = np.r_[np.ones(len(sc.calibration_members)), np.zeros(len(sc.calibration_nonmembers))]
    assert sc.info["val_auc"] == auc_score(y, np.r_[sc.calibration_members, sc.calibration_nonmembers])
    again = attack_scores(model, spec, ds, split, ["whitebox-lira"], tmp_path, CFG, show_progress=False)
    np.testing.assert_array_equal(again["whitebox-lira"].members, sc.members)
    np.testing.assert_array_equal(again["whitebox-lira"].calibration_members, sc.calibration_members)

"""Calibrated MINT: its features from target and reference logits, its training sets, its row, the CLI path."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import log_softmax

from mintaudit.attacks.registry import attack_spec
from mintaudit.attacks.run import AttackConfig, attack_scores, run_attacks
from mintaudit.attacks.scores import rmia_scores
from mintaudit.attacks.zoo.calibrated_mint import (
    CALIBRATED,
    FEATURES,
    calibrated_signals,
    spread_floors,
    training_rows,
    validation_rows,
)
from mintaudit.cli import main
from mintaudit.detectors import DetectorConfig, MintDetector
from mintaudit.signals import extract_signals
from mintaudit.signals.outputs import true_label_loss
from mintaudit.report import add_result, new_report
from mintaudit.training import TrainConfig

CFG = AttackConfig(n_reference=2, reference_train=TrainConfig(epochs=1, batch_size=16), n_bootstrap=50)


def test_calibrated_signals_equal_a_direct_computation():
    rng = np.random.default_rng(1)
    logits, ref = rng.normal(size=(5, 4)) * 3, rng.normal(size=(3, 5, 4)) * 3
    labels = np.array([0, 1, 2, 3, 1])
    floors = (0.05, 0.3)
    got = calibrated_signals(logits, labels, ref, floors)
    assert got.shape == (5, len(CALIBRATED))
    for n in range(5):
        y = labels[n]
        p = np.exp(log_softmax(logits[n]))[y]
        rp = np.array([np.exp(log_softmax(ref[r, n]))[y] for r in range(3)])
        loss, rloss = -np.log(p), -np.log(rp)
        conf, rconf = np.log(p / (1 - p)), np.log(rp / (1 - rp))
        want = [
            rloss.mean() - loss,
            (rloss.mean() - loss) / max(rloss.std(), floors[0]),
            conf - rconf.mean(),
            (conf - rconf.mean()) / max(rconf.std(), floors[1]),
            rconf.mean(),
            rconf.std(),
        ]
        np.testing.assert_allclose(got[n], want, rtol=1e-9, atol=1e-12)
    # references that agree exactly: the floor, not a division by zero
    same = np.repeat(ref[:1], 3, 0)
    assert np.isfinite(calibrated_signals(logits, labels, same, spread_floors(same, labels))).all()


def test_row_is_fitted_on_the_passive_sets_only_and_reproducible(small_setup, tmp_path):
    ds, spec, model, split = small_setup
    a = attack_scores(model, spec, ds, split, ["calibrated-mint", "rmia"], tmp_path, CFG, show_progress=False)
    sc = a["calibrated-mint"]
    n_m, n_n, n_k = len(split.heldout_members), len(split.test), len(split.known_members)
    n_calib = len(split.external) - len(split.external) // 2
    rows, y = training_rows(n_m, n_n, n_k, n_calib, 0)
    scored = np.concatenate([split.heldout_members, split.test, split.known_members])
    fit_ids = np.r_[scored, np.arange(n_calib)][rows]  # the first n_m + n_n rows are never fitted on
    assert rows.min() == n_m + n_n and len(rows) == n_k + n_calib and y.sum() == n_k
    assert not np.isin(split.known_members, np.r_[split.heldout_members, split.test]).any()
    assert not np.isin(fit_ids[:n_k], np.r_[split.heldout_members, split.test]).any()
    assert (sc.info["n_known_members"], sc.info["n_external"]) == (n_k, n_calib)
    white = ["margin", "aug-loss-mean", "aug-loss-sd", "grad-norm:conv1", "grad-norm:conv2", "grad-norm:fc"]
    assert sc.info["features"] == [*FEATURES, *white, *(f"{c} z" for c in white)] and sc.info["n_reference"] == 2
    assert len(sc.members) == n_m and len(sc.nonmembers) == n_n and np.all((sc.members > 0) & (sc.members < 1))
    val, _ = validation_rows(y, DetectorConfig().val_fraction, 0)
    assert len(sc.calibration_members) + len(sc.calibration_nonmembers) == len(val)  # the validation part only
    assert sc.info["val_auc"] == sc.info["val_auc_by_detector"][sc.info["detector"]]
    again = attack_scores(model, spec, ds, split, ["calibrated-mint"], tmp_path, CFG, show_progress=False)
    np.testing.assert_array_equal(again["calibrated-mint"].members, sc.members)
    np.testing.assert_array_equal(again["calibrated-mint"].nonmembers, sc.nonmembers)


def _losses(model, ds, ids, root):
    out = extract_signals(model, ds, ids, [], root, show_progress=False).outputs()
    return true_label_loss(out["logits"], out["labels"])


@pytest.mark.parametrize("unused", [False, True], ids=["population-external", "population-unused"])
def test_mint_model_is_fitted_on_known_members_vs_unreferenced_external_samples(
    small_setup, tmp_path, monkeypatch, unused
):
    ds, spec, model, split = small_setup
    fitted = {}
    real_fit = MintDetector.fit

    def spy(self, X, y, extra=None):
        fitted["X"], fitted["y"] = np.array(X), np.array(y)
        return real_fit(self, X, y, extra)

    monkeypatch.setattr(MintDetector, "fit", spy)
    taken = np.r_[split.heldout_members, split.known_members, split.external, split.test]
    population = np.setdiff1d(np.arange(len(ds)), taken) if unused else None  # the 10 samples no split uses
    sc = attack_scores(
        model, spec, ds, split, ["calibrated-mint"], tmp_path, CFG, population=population, show_progress=False
    )["calibrated-mint"]
    loss = fitted["X"][:, FEATURES.index("loss")]
    scored = _losses(model, ds, np.r_[split.heldout_members, split.test], tmp_path / "s")
    assert not np.isin(loss, scored).any()  # no held-out member, no test non-member
    known = _losses(model, ds, split.known_members, tmp_path / "s")
    np.testing.assert_array_equal(np.sort(loss[fitted["y"] == 1]), np.sort(known))
    external = _losses(model, ds, split.external, tmp_path / "s")
    neg = loss[fitted["y"] == 0]
    assert np.isin(neg, external).all() and len(neg) == (len(split.external) if unused else len(split.external) // 2)
    assert sc.info["n_external"] == len(neg)


def test_validation_rows_are_the_detectors_own():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4)).astype(np.float32)
    y = (X[:, 0] + rng.normal(size=60) > 0).astype(np.int64)
    det = MintDetector(kind="mlp", epochs=3, seed=3).fit(X, y)
    val, train = validation_rows(y, 0.2, 3)
    assert len(np.intersect1d(val, train)) == 0 and len(val) + len(train) == 60
    from mintaudit.evaluation.metrics import auc_score

    assert det.val_auc_ == pytest.approx(auc_score(y[val], det.decision_function(X[val])))


def test_rmia_column_is_the_rmia_attack(small_setup, tmp_path, monkeypatch):
    """The fused RMIA column is scores.py's RMIA with the rmia attack's population, not a re-derivation."""
    import mintaudit.attacks.zoo.calibrated_mint as cm

    seen = {}

    def spy(*args, **kwargs):
        seen["rmia"] = out = rmia_scores(*args, **kwargs)
        return out

    monkeypatch.setattr(cm, "rmia_scores", spy)
    ds, spec, model, split = small_setup
    a = attack_scores(model, spec, ds, split, ["calibrated-mint", "rmia"], tmp_path, CFG, show_progress=False)
    n = len(split.heldout_members)
    np.testing.assert_array_equal(seen["rmia"][:n], a["rmia"].members)


def test_run_attacks_writes_a_calibrated_mint_row(small_setup, tmp_path):
    ds, spec, model, split = small_setup
    (row,) = run_attacks(model, spec, ds, split, ["calibrated-mint"], tmp_path, CFG, show_progress=False)
    report = new_report(dataset={}, model={}, config={}, command="test")
    add_result(report, row)
    r = report["results"][0]
    assert (r["method"], r["attack"], r["signal"], r["label"]) == (
        "calibrated-mint",
        "calibrated-mint",
        "outputs+white-box+calibrated",
        "calibrated MINT",
    )
    assert r["detector"] in ("mlp", "logistic") and "row" not in r["fit"] and 0.0 <= r["fit"]["val_auc"] <= 1.0
    assert r["threshold_source"].startswith("the MINT model's validation part")
    assert attack_spec("calibrated-mint").needs_references


def _npz(tmp_path, n=100):
    rng = np.random.default_rng(0)
    path = tmp_path / "data.npz"
    np.savez(path, x=rng.integers(0, 256, (n, 8, 8), dtype=np.uint8), y=np.arange(n) % 3)
    return f"npz:{path}"


def test_cli_writes_the_row(tmp_path, capsys):
    data, out = _npz(tmp_path), tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--dataset",
                data,
                "--model",
                "tiny-cnn",
                "--members",
                "40",
                "--external",
                "20",
                "--test",
                "20",
                "--epochs",
                "1",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    ), capsys.readouterr().err
    assert (
        main(
            [
                "attack",
                "--dataset",
                data,
                "--out",
                str(out),
                "--methods",
                "calibrated-mint,rmia",
                "--reference",
                "2",
                "--reference-epochs",
                "1",
                "--bootstrap",
                "20",
                "--quiet",
                "--allow-weak-model",
            ]
        )
        == 0
    ), capsys.readouterr().err
    rows = {r["attack"]: r for r in json.loads((out / "report.json").read_text())["results"]}
    assert rows["calibrated-mint"]["signal"] == "outputs+white-box+calibrated"
    assert rows["calibrated-mint"]["n_members"] == rows["rmia"]["n_members"] > 0


@pytest.mark.parametrize(
    "external, extra, message",
    [
        ("20", ["--reference", "0"], "--reference must be"),
        ("6", [], "6 external samples (the MINT model's non-members): a membership measurement needs at least 20"),
    ],
    ids=["no-reference-models", "too-few-external"],
)
def test_bad_input_is_one_line(tmp_path, refused, capsys, external, extra, message):
    data, out = _npz(tmp_path), tmp_path / "run"
    sizes = ["--members", "40", "--external", external, "--test", "20"]  # 20 a side (mintaudit.sizes)
    assert (
        main(["train", "--dataset", data, "--model", "tiny-cnn", *sizes, "--epochs", "1", "--out", str(out), "--quiet"])
        == 0
    ), capsys.readouterr().err
    argv = [
        "attack",
        "--dataset",
        data,
        *sizes,
        "--out",
        out,
        "--methods",
        "calibrated-mint",
        "--reference",
        "2",
        "--reference-epochs",
        "1",
        "--quiet",
        "--allow-weak-model",
        *extra,
    ]
    # only the audited model's outputs cache (which every later command reuses), no reference model, no report
    assert message in refused(argv, allow_new=("run/cache/*/*",))
    assert not (out / "report.json").exists() and not (out / "cache" / "attacks" / "reference").exists()


def test_white_box_features_are_the_values_and_z_scores_of_whitebox_lira(small_setup, tmp_path):
    """The appended columns are white-box LiRA's signals and its per-sample calibration, on the same rows."""
    from dataclasses import replace

    from mintaudit.attacks.registry import register_attack, unregister_attack
    from mintaudit.attacks.whitebox import calibrate, whitebox_signals
    from mintaudit.attacks.zoo.calibrated_mint import CalibratedMintOptions, features
    from mintaudit.errors import ConfigError

    ds, spec, model, split = small_setup
    seen = {}

    @register_attack("test-cm-features", needs_references=True, options=CalibratedMintOptions)
    def spy(ctx):
        seen["X"], _, _, seen["about"] = features(ctx)
        seen["scored"], seen["refs"] = ctx.scored, ctx.reference("offline")[0]
        return ctx.to_scores(np.zeros(len(ctx.scored)), {"val_auc": 0.5})

    try:
        cfg = replace(CFG, options={"test-cm-features": {"whitebox": "margin+grad-norm"}})
        attack_scores(model, spec, ds, split, ["test-cm-features"], tmp_path, cfg, show_progress=False)
    finally:
        unregister_attack("test-cm-features")
    white = ["margin", "grad-norm:conv1", "grad-norm:conv2", "grad-norm:fc"]
    X, about, rows, refs = seen["X"], seen["about"], seen["scored"], seen["refs"]
    assert about["features"] == [*FEATURES, *white, *(f"{c} z" for c in white)] and X.shape[1] == len(FEATURES) + 8
    t, _ = whitebox_signals(model, ds, rows, ["margin", "grad-norm"])
    r = np.stack([whitebox_signals(m, ds, rows, ["margin", "grad-norm"])[0] for m in refs.models])
    n, k = len(rows), len(FEATURES)
    np.testing.assert_allclose(X[:n, k : k + 4], t, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(X[:n, k + 4 :], calibrate(t, r, ~refs.in_mask(rows), 4.0), rtol=1e-6, atol=1e-9)
    # with the outputs alone: the former features
    plain = replace(CFG, options={"calibrated-mint": {"whitebox": "none"}})
    a = attack_scores(model, spec, ds, split, ["calibrated-mint"], tmp_path, plain, show_progress=False)
    row = a["calibrated-mint"].info
    assert row["features"] == list(FEATURES) and "whitebox" not in row and row["row"]["signal"] == "outputs+calibrated"
    with pytest.raises(ConfigError, match="unknown signal 'logits'"):
        CalibratedMintOptions(whitebox="margin+logits")
    with pytest.raises(ConfigError, match="no signal given"):  # empty is not 'none': say which
        CalibratedMintOptions(whitebox=" + ")

"""Attacks on the passive-MINT sets: valid results, AUC equal to scikit-learn's, real-data behaviour."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from mintaudit.attacks.run import ATTACKS, AttackConfig, attack_scores, run_attacks
from mintaudit.data import make_splits
from mintaudit.errors import ConfigError
from mintaudit.evaluation import evaluate_scores
from mintaudit.models import ModelSpec, build_model
from mintaudit.passive import PassiveSplit, passive_split
from mintaudit.report import add_result, new_report
from mintaudit.training import TrainConfig, train_classifier


def test_every_attack_gives_a_valid_result_with_sklearn_auc(small_setup, tmp_path):
    ds, spec, model, split = small_setup
    cfg = AttackConfig(n_reference=2, reference_train=TrainConfig(epochs=1, batch_size=16), flip=True, n_bootstrap=50)
    scores = attack_scores(model, spec, ds, split, list(ATTACKS), tmp_path, cfg, show_progress=False)
    assert list(scores) == list(ATTACKS)
    for name, sc in scores.items():
        assert len(sc.members) == len(split.heldout_members) and len(sc.nonmembers) == len(split.test)
        y = np.r_[np.ones(len(sc.members)), np.zeros(len(sc.nonmembers))]
        ours = evaluate_scores(sc.members, sc.nonmembers, balance=False, n_bootstrap=0).metrics["auc"]
        assert ours == pytest.approx(roc_auc_score(y, np.r_[sc.members, sc.nonmembers])), name
    report = new_report(dataset={}, model={}, config={}, command="test")
    for result in run_attacks(
        model, spec, ds, split, ["loss", "lira-online", "rmia"], tmp_path, cfg, show_progress=False
    ):
        add_result(report, result)
    assert [r["attack"] for r in report["results"]] == ["loss", "lira-online", "rmia"]
    assert report["results"][1]["method"] == "lira" and report["results"][1]["fit"]["online"]


def test_unknown_attack(small_setup, tmp_path):
    ds, spec, model, split = small_setup
    with pytest.raises(ConfigError, match="unknown attack"):
        attack_scores(model, spec, ds, split, ["lyra"], tmp_path)


@pytest.mark.slow
@pytest.mark.fashion
def test_calibrated_attacks_beat_loss_at_low_fpr_and_null_split_is_chance(tmp_path, fashion_mnist):
    """A small CNN trained to 100% training accuracy on 300 Fashion-MNIST images."""
    ds = fashion_mnist
    splits = make_splits(ds, members=300, external=1200, test=300, seed=0)
    spec = ModelSpec("objcls-cnn", 1, 10, (28, 28), {"dropout": 0.0})
    torch.manual_seed(0)
    model = build_model(spec)
    res = train_classifier(model, ds, splits.members, TrainConfig(epochs=25, batch_size=32), show_progress=False)
    assert res.train_accuracy == 1.0
    split = passive_split(splits, seed=0)
    cfg = AttackConfig(n_reference=4, reference_train=TrainConfig(epochs=25, batch_size=32), n_bootstrap=300)
    by = {
        r.attack: r.to_dict()
        for r in run_attacks(model, spec, ds, split, ["loss", "lira", "rmia"], tmp_path, cfg, show_progress=False)
    }
    # measured: LOSS 0.027, LiRA (offline, 4 models) 0.253, RMIA 0.093
    tpr = {k: r["metrics"]["tpr_at_fpr"]["0.01"] for k, r in by.items()}
    assert tpr["lira"] > tpr["loss"] and tpr["rmia"] > tpr["loss"], tpr

    # null split: the "members" are external samples the model never saw; same reference models
    ext = split.external
    null = PassiveSplit(split.known_members, np.sort(ext[:150]), np.sort(ext[150:]), split.test)
    methods = ["loss", "confidence", "entropy", "modified-entropy", "calibrated-loss", "shokri", "lira", "rmia"]
    for r in run_attacks(model, spec, ds, null, methods, tmp_path / "null", cfg, show_progress=False):
        lo, hi = r.ci95["auc"]
        assert lo <= 0.5 <= hi, (r.attack, r.metrics["auc"], lo, hi)

"""Typed results (mintaudit.results.Result): every method's row, from real tiny runs, round-trips through
to_dict / from_dict (and JSON) unchanged, keys in the report's order; bad values are refused when a
Result is built; add_result takes a Result or a dict."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from mintaudit.workdir import amint_result
from mintaudit.attacks.loss import LOSS_THRESHOLD_SOURCE, loss_split_scores
from mintaudit.attacks.registry import register_attack, unregister_attack
from mintaudit.attacks.run import AttackConfig, run_attacks
from mintaudit.data import ImageDataset, make_splits
from mintaudit.detectors import DetectorConfig
from mintaudit.errors import EvaluationError
from mintaudit.evaluation import SampleInfo, evaluate_scores
from mintaudit.evaluation.metrics import best_threshold
from mintaudit.gradient import GradientSweepConfig, audit_gradients
from mintaudit.models import ModelSpec, build_model
from mintaudit.passive import PassiveSplit, SweepConfig, audit_tap, loss_baseline, passive_split
from mintaudit.report import add_result, new_report
from mintaudit.results import Calibration, GradientSetup, Result
from mintaudit.signals import extract_gradients, extract_signals, sample_infos
from mintaudit.training import TrainConfig, train_classifier

EV = [
    "n_members",
    "n_nonmembers",
    "metrics",
    "ci95",
    "roc",
    "histogram",
    "n_bootstrap",
    "epsilon_lower_bound",
    "slices",
]
ATTACK_KEYS = [
    "method",
    "signal",
    "layer",
    "label",
    "attack",
    "detector",
    "protocol",
    "threshold",
    "threshold_source",
    *EV,
    "fit",
]
ATTACKS = [
    "loss",
    "confidence",
    "entropy",
    "modified-entropy",
    "calibrated-loss",
    "shokri",
    "lira",
    "lira-online",
    "rmia",
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Rows of every method on 120 random 8x8 images and a tiny CNN trained for 2 epochs (a few seconds)."""
    tmp = tmp_path_factory.mktemp("results")
    rng = np.random.default_rng(0)
    ds = ImageDataset("toy", rng.integers(0, 256, size=(120, 8, 8, 1), dtype=np.uint8), np.arange(120) % 3, 3)
    splits = make_splits(ds, members=40, external=40, test=30, seed=0)
    spec = ModelSpec("tiny-cnn", 1, 3, (8, 8))
    torch.manual_seed(0)
    model = build_model(spec)
    train_classifier(model, ds, splits.members, TrainConfig(epochs=2, batch_size=16), show_progress=False)
    split = passive_split(splits, seed=0)
    cfg = SweepConfig(detector=DetectorConfig(epochs=2), n_bootstrap=20)
    cache = extract_signals(model, ds, np.unique(split.all_indices()), ["relu2"], tmp / "cache", show_progress=False)
    rows: dict[str, Result] = {
        "passive": audit_tap(cache, split, "relu2", cfg, label="L2", depth=2, show_progress=False)[0],
        "passive-fused-outputs": audit_tap(cache, split, None, cfg, fuse_outputs=True, show_progress=False)[0],
        "passive-training-members": audit_tap(
            cache,
            PassiveSplit(splits.members, splits.members, splits.external, splits.test),
            "relu2",
            cfg,
            show_progress=False,
        )[0],
        "loss-baseline": loss_baseline(cache, split, cfg),
    }
    gcfg = GradientSweepConfig(
        detector=DetectorConfig(epochs=2, hidden=16),
        n_bootstrap=20,
        protocols=("heldout-members", "training-members"),
        reductions=("mean", "l2"),
    )
    gcache = extract_gradients(
        model,
        ds,
        np.unique(split.all_indices()),
        ["conv1", "fc"],
        tmp / "grads",
        reductions=gcfg.reductions,
        show_progress=False,
    )
    grads, _ = audit_gradients(
        gcache, split, ["conv1", "fc"], gcfg, setup="custom", label="Custom 100%", show_progress=False
    )
    rows |= {f"gmint-{r.protocol}": r for r in grads}
    acfg = AttackConfig(n_reference=2, reference_train=TrainConfig(epochs=1, batch_size=16), n_bootstrap=20)
    attacks = run_attacks(
        model, spec, ds, split, ATTACKS, tmp / "attacks", acfg, signals_root=tmp / "cache", show_progress=False
    )
    rows |= {f"attack-{r.attack}": r for r in attacks}
    pos, neg = rng.uniform(0.3, 1.0, 40), rng.uniform(0.0, 0.7, 30)
    info_m, info_n = (
        SampleInfo(np.arange(40) % 3, np.arange(40) % 4 > 0),
        SampleInfo(np.arange(30) % 3, np.arange(30) % 2 > 0),
    )
    rows["amint"] = amint_result(
        pos,
        neg,
        threshold=0.55,
        aud=0.8,
        label="aMINT middle",
        layers=["a.pool", "b.pool"],
        n_bootstrap=20,
        extra={"setup": "middle", "backbone": "tiny-cnn", "audited_model": "amint"},
        member_info=info_m,
        nonmember_info=info_n,
    )
    rows["amint-no-slices"] = amint_result(
        pos,
        neg,
        threshold=0.55,
        aud=0.8,
        label="aMINT middle",
        layers=["a"],
        n_bootstrap=0,
        extra={"best_epoch": 3, "seconds": 1.0},
    )
    plain = rows["passive-training-members"]
    rows["passive-plain-amint"] = dataclasses.replace(
        plain, extra={**plain.extra, "audited_model": "plain", "aud": 0.7, "backbone": "tiny-cnn", "setup": "middle"}
    )
    return {"rows": rows, "cache": cache, "split": split, "attack_args": (model, spec, ds, split), "tmp": tmp}


ROW_NAMES = [
    "passive",
    "passive-fused-outputs",
    "passive-training-members",
    "loss-baseline",
    "gmint-heldout-members",
    "gmint-training-members",
    *(f"attack-{a}" for a in ATTACKS),
    "amint",
    "amint-no-slices",
    "passive-plain-amint",
]


@pytest.mark.parametrize("name", ROW_NAMES)
def test_every_row_round_trips_through_to_dict_from_dict_and_json(runs, name):
    result = runs["rows"][name]
    assert isinstance(result, Result)
    row = result.to_dict()
    again = Result.from_dict(row)
    assert again.to_dict() == row and list(again.to_dict()) == list(row)
    assert again.gradient == result.gradient and again.calibration == result.calibration
    text = json.dumps(row)  # as report.json holds it (NaN as NaN here; the key order is what is compared)
    assert json.dumps(Result.from_dict(json.loads(text)).to_dict()) == text
    report = new_report(dataset={}, model={}, config={}, command="t")
    add_result(report, result)
    add_result(report, row)
    added = report["results"][0]
    assert json.dumps(added) == json.dumps(report["results"][1])
    # add_result stores the row as it is, plus a words-only ``warnings`` note on a side under 100 samples
    assert json.dumps({k: added[k] for k in row}) == text and set(added) - set(row) <= {"warnings"}
    assert ("warnings" in added) == (min(row["n_members"], row["n_nonmembers"]) < 100)


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("passive", ["method", "signal", "layer", "label", "depth", "detector", "protocol", "threshold", *EV, "fit"]),
        (
            "passive-fused-outputs",
            ["method", "signal", "layer", "label", "detector", "protocol", "threshold", *EV, "fit"],
        ),
        ("loss-baseline", ATTACK_KEYS),
        *((f"attack-{a}", ATTACK_KEYS) for a in ATTACKS),
        (
            "gmint-heldout-members",
            [
                "method",
                "signal",
                "layer",
                "label",
                "setup",
                "budget",
                "reduction",
                "detector",
                "protocol",
                "threshold",
                *EV,
                "fit",
            ],
        ),
        (
            "amint",
            [
                "method",
                "signal",
                "layer",
                "label",
                "detector",
                "protocol",
                "threshold",
                *EV,
                "calibrated_threshold",
                "calibrated_accuracy",
                "calibrated_accuracy_ci95",
                "aud",
                "setup",
                "backbone",
                "audited_model",
            ],
        ),
        (
            "amint-no-slices",
            [
                "method",
                "signal",
                "layer",
                "label",
                "detector",
                "protocol",
                "threshold",
                *EV,
                "calibrated_threshold",
                "calibrated_accuracy",
                "calibrated_accuracy_ci95",
                "aud",
                "best_epoch",
                "seconds",
            ],
        ),
        (
            "passive-plain-amint",
            [
                "method",
                "signal",
                "layer",
                "label",
                "detector",
                "protocol",
                "threshold",
                *EV,
                "fit",
                "audited_model",
                "aud",
                "backbone",
                "setup",
            ],
        ),
    ],
)
def test_rows_keep_the_report_key_order(runs, name, keys):
    assert list(runs["rows"][name].to_dict()) == keys


def test_row_values_are_the_report_values(runs):
    rows = {k: r.to_dict() for k, r in runs["rows"].items()}
    assert rows["passive"]["layer"] == "relu2" and rows["passive"]["depth"] == 2 and rows["passive"]["threshold"] == 0.5
    assert rows["passive-fused-outputs"]["signal"] == "outputs" and rows["passive-fused-outputs"]["layer"] == "outputs"
    assert rows["passive-training-members"]["protocol"] == "training-members"
    assert {k: rows["gmint-heldout-members"][k] for k in ("layer", "setup", "budget", "reduction", "detector")} == {
        "layer": "conv1+fc",
        "setup": "custom",
        "budget": 1.0,
        "reduction": "mean+l2",
        "detector": "mlp",
    }
    assert rows["attack-lira-online"]["method"] == "lira" and rows["attack-lira-online"]["fit"]["online"] is True
    assert rows["amint"]["calibrated_threshold"] == 0.55 and rows["amint"]["aud"] == 0.8
    assert rows["amint"]["slices"] is not None and rows["amint-no-slices"]["slices"] is None
    # the LOSS row is the dict it always was: built here the way attacks/loss.py built it before Result
    cache, split = runs["cache"], runs["split"]
    members, nonmembers, known, external = loss_split_scores(cache, split)
    thr = float(best_threshold(np.r_[np.ones(len(known)), np.zeros(len(external))], np.r_[known, external]))
    m_info, n_info = sample_infos(cache, split.heldout_members, split.test)
    before = {
        "method": "loss",
        "signal": "outputs",
        "layer": "outputs",
        "label": "LOSS",
        "attack": "loss",
        "detector": "threshold",
        "protocol": "heldout-members",
        "threshold": thr,
        "threshold_source": LOSS_THRESHOLD_SOURCE,
        **evaluate_scores(
            members, nonmembers, threshold=thr, n_bootstrap=20, seed=0, member_info=m_info, nonmember_info=n_info
        ).to_dict(),
        "fit": {"n_reference": 0},
    }
    assert json.dumps(rows["loss-baseline"]) == json.dumps(rows["attack-loss"]) == json.dumps(before)


def test_to_dict_is_a_copy(runs):
    result = runs["rows"]["passive"]
    row = result.to_dict()
    row["metrics"]["auc"] = -1.0
    row["fit"]["n_external"] = -1
    assert result.metrics["auc"] != -1.0 and result.to_dict()["fit"]["n_external"] != -1


def _good(**change):
    ev = evaluate_scores(np.linspace(0.4, 1.0, 30), np.linspace(0.0, 0.6, 30), n_bootstrap=10)
    fields = {"method": "passive-mint", "signal": "activations", "protocol": "heldout-members", **ev.to_dict()}
    return {**fields, **change}


BAD = [
    ({"method": "Passive MINT"}, "result\\['method'\\] must be a lower-case report method name"),
    ({"method": 3}, "result\\['method'\\]"),
    ({"signal": ""}, "result\\['signal'\\] must be a non-empty string"),
    ({"protocol": "test-members"}, "protocol.*heldout-members"),
    ({"n_members": -1}, "result\\['n_members'\\] must be an integer >= 0"),
    ({"n_nonmembers": True}, "result\\['n_nonmembers'\\] must be an integer >= 0"),
    ({"n_members": 2.5}, "n_members"),
    ({"metrics": {"auc": 0.5}}, "result\\['metrics'\\] must be a dict with keys"),
    ({"ci95": [0, 1]}, "result\\['ci95'\\] must be a dict"),
    ({"depth": 0}, "result\\['depth'\\] must be an integer >= 1"),
    ({"depth": "2"}, "depth"),
    ({"threshold": float("nan")}, "result\\['threshold'\\] must be a finite number"),
    ({"threshold": float("inf")}, "threshold"),
    ({"threshold": "0.5"}, "threshold"),
    ({"label": 7}, "result\\['label'\\] must be a non-empty string"),
    ({"layer": ""}, "result\\['layer'\\]"),
    ({"n_bootstrap": -1}, "result\\['n_bootstrap'\\] must be an integer >= 0"),
    ({"fit": [1, 2]}, "result\\['fit'\\] must be a dict"),
    ({"epsilon_lower_bound": {"epsilon": -1.0, "delta": 1e-5, "confidence": 0.95}}, "epsilon_lower_bound"),
    ({"slices": {"klass": {}}}, "keys among 'class', 'correct', 'wrong'"),
    ({"extra": {"metrics": {}}}, "Result.extra repeats the typed key\\(s\\) \\['metrics'\\]"),
    ({"extra": {1: "x"}}, "Result.extra must be a dict with string keys"),
    ({"gradient": ("entry", 1.0, "mean")}, "Result.gradient must be a GradientSetup"),
    ({"calibration": 0.5}, "Result.calibration must be a Calibration"),
    (
        {"gradient": GradientSetup("entry", 1.0, "mean"), "extra": {"budget": 0.5}},
        "repeats the typed key\\(s\\) \\['budget'\\]",
    ),
]


@pytest.mark.parametrize(("change", "match"), BAD)
def test_bad_values_are_refused_when_a_result_is_built(change, match):
    with pytest.raises(EvaluationError, match=match):
        Result(**_good(**change))


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: GradientSetup("entry", 0.0, "mean"), "result\\['budget'\\] must be a number in \\(0, 1\\]"),
        (lambda: GradientSetup("entry", 1.5, "mean"), "budget"),
        (lambda: GradientSetup("", 1.0, "mean"), "result\\['setup'\\]"),
        (lambda: GradientSetup("entry", 1.0, None), "result\\['reduction'\\]"),
        (lambda: Calibration(float("nan"), 0.5, [0.4, 0.6]), "result\\['calibrated_threshold'\\] must be a finite"),
        (lambda: Calibration(0.5, 1.5, [0.4, 0.6]), "result\\['calibrated_accuracy'\\] must be a number in \\[0, 1\\]"),
        (lambda: Calibration(0.5, 0.5, [0.4]), "result\\['calibrated_accuracy_ci95'\\] must be an interval"),
        (lambda: Result.from_dict([("method", "loss")]), "a result must be a Result or a dict"),
        (lambda: Result.from_dict({"method": "loss"}), "result lacks required key\\(s\\) \\['signal', 'protocol'"),
        (lambda: Result.from_dict({**_good(), "setup": "entry", "budget": 2.0, "reduction": "mean"}), "budget"),
        (
            lambda: Result.from_dict(
                {
                    **_good(),
                    "calibrated_threshold": 0.5,
                    "calibrated_accuracy": -0.1,
                    "calibrated_accuracy_ci95": [0, 1],
                }
            ),
            "calibrated_accuracy",
        ),
    ],
)
def test_bad_parts_and_rows_are_refused(make, match):
    with pytest.raises(EvaluationError, match=match):
        make()


def test_from_dict_keeps_unknown_keys_as_extras_in_their_order():
    row = {**_good(), "fit": {"seconds": 1.0}, "zeta": 1, "alpha": [2], "setup": "middle"}  # setup alone: an extra
    result = Result.from_dict(row)
    assert result.extra == {"zeta": 1, "alpha": [2], "setup": "middle"} and result.gradient is None
    assert result.to_dict() == row and list(result.to_dict())[-4:] == ["fit", "zeta", "alpha", "setup"]


def test_add_result_accepts_a_result_or_a_dict_and_checks_the_method_is_registered():
    report = new_report(dataset={}, model={}, config={}, command="t")
    result = Result(**_good(label="L1", depth=1))
    add_result(report, result)
    hand_made = {
        "method": "loss",
        "signal": "outputs",
        "protocol": "heldout-members",
        "label": "LOSS",
        **evaluate_scores([0.9, 0.8], [0.1, 0.2], n_bootstrap=0).to_dict(),
    }
    add_result(report, hand_made)
    assert {k: v for k, v in report["results"][0].items() if k != "warnings"} == result.to_dict()
    assert [k for k in report["results"][1] if k != "warnings"] == list(hand_made)  # stored as given (a copy)
    assert report["results"][1] is not hand_made
    with pytest.raises(EvaluationError, match="result\\['method'\\] must be one of \\[.*'passive-mint'"):
        add_result(report, Result(**_good(method="magic")))  # a well-formed name, but no registered method
    with pytest.raises(EvaluationError, match="result\\['depth'\\] must be an integer >= 1"):
        add_result(report, {**hand_made, "depth": 0})
    with pytest.raises(EvaluationError, match="a result must be a Result or a dict"):
        add_result(report, "loss")  # type: ignore[arg-type]
    assert len(report["results"]) == 2


def test_an_attack_whose_own_row_function_returns_a_dict_still_gives_a_result(runs):
    loss_row = runs["rows"]["loss-baseline"].to_dict()
    register_attack("row-as-dict", method="loss", result=lambda *args: {**loss_row, "attack": "row-as-dict"})(
        lambda ctx: None
    )
    try:
        (got,) = run_attacks(*runs["attack_args"], ["row-as-dict"], runs["tmp"] / "plugin", show_progress=False)
    finally:
        unregister_attack("row-as-dict")
    assert isinstance(got, Result) and got.to_dict() == {**loss_row, "attack": "row-as-dict"}

"""One LOSS (issue 13, item 6): one float64 score, one threshold policy, one report row for every command."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from mintaudit.attacks.loss import LOSS_THRESHOLD_SOURCE
from mintaudit.attacks.scores import loss_scores
from mintaudit.cli import main
from mintaudit.signals import extract_signals, output_features


def test_fused_loss_column_and_cached_loss_are_the_float64_loss_cast_once(toy_dataset, tmp_path):
    rng = np.random.default_rng(0)
    logits = (rng.normal(size=(2000, 10)) * 8).astype(np.float32)
    y = rng.integers(0, 10, 2000)
    once = (-loss_scores(logits.astype(np.float64), y)).astype(np.float32)
    assert np.array_equal(output_features(logits, y)[:, 0], once)

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    with torch.no_grad():
        model[1].weight.mul_(40.0)  # confident outputs: where float32 and float64 losses part
    cache = extract_signals(model, toy_dataset, np.arange(60), [], tmp_path, show_progress=False)
    out = cache.outputs()
    want = (-loss_scores(out["logits"].astype(np.float64), out["labels"])).astype(np.float32)
    assert np.array_equal(out["loss"], want)
    assert np.array_equal(output_features(out["logits"], out["labels"])[:, 0], out["loss"])


def _npz(tmp_path, n=100, size=8):  # 40 members: 20 a side (mintaudit.sizes)
    rng = np.random.default_rng(0)
    path = tmp_path / "data.npz"
    np.savez(path, x=rng.integers(0, 256, (n, size, size), dtype=np.uint8), y=np.arange(n) % 3)
    return f"npz:{path}"


def _loss_row(out):
    rows = [r for r in json.loads((out / "report.json").read_text())["results"] if r["method"] == "loss"]
    assert len(rows) == 1, rows
    return rows[0]


def test_the_loss_row_is_the_same_whichever_command_ran_last(tmp_path, capsys):
    data, first = _npz(tmp_path), tmp_path / "a"
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
                str(first),
                "--quiet",
            ]
        )
        == 0
    ), capsys.readouterr().err
    second = tmp_path / "b"
    shutil.copytree(first, second)

    def run(out, verb):
        common = ["--dataset", data, "--out", str(out), "--quiet", "--bootstrap", "20", "--allow-weak-model"]
        argv = {
            "sweep": ["sweep", *common, "--taps", "relu2", "--mint-epochs", "2"],
            "gmint": [
                "sweep",
                *common,
                "--signal",
                "gradients",
                "--setups",
                "entry",
                "--budgets",
                "1",
                "--mint-epochs",
                "2",
            ],
            "attack": ["attack", *common, "--methods", "loss,entropy", "--reference", "1", "--reference-epochs", "1"],
        }[verb]
        assert main(argv) == 0, capsys.readouterr().err
        return _loss_row(out)

    rows = {"sweep": run(first, "sweep")}
    rows["sweep, attack"] = run(first, "attack")
    rows["sweep, attack, gmint"] = run(first, "gmint")
    rows["attack"] = run(second, "attack")
    rows["attack, sweep"] = run(second, "sweep")
    rows["attack, sweep, gmint"] = run(second, "gmint")
    rows["attack, sweep, gmint, attack"] = run(second, "attack")
    want = rows["sweep"]
    for order, row in rows.items():
        assert row == want, order
    assert want["attack"] == "loss" and want["threshold_source"] == LOSS_THRESHOLD_SOURCE
    assert {
        "method",
        "signal",
        "layer",
        "label",
        "detector",
        "protocol",
        "threshold",
        "metrics",
        "ci95",
        "n_members",
        "n_nonmembers",
    } <= set(want)
    # every command's other rows are still there after the LOSS row was rewritten
    methods = [r["method"] for r in json.loads((second / "report.json").read_text())["results"]]
    assert methods.count("loss") == 1 and "passive-mint" in methods and "gmint" in methods and "entropy" in methods


@pytest.mark.parametrize("fixed", ["auto", "no"])
def test_attack_with_one_reference_model_takes_the_explicit_lira_fallback(tmp_path, capsys, fixed):
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
    )
    assert (
        main(
            [
                "attack",
                "--dataset",
                data,
                "--out",
                str(out),
                "--quiet",
                "--bootstrap",
                "20",
                "--allow-weak-model",
                "--methods",
                "lira",
                "--reference",
                "1",
                "--reference-epochs",
                "1",
                "--fixed-variance",
                fixed,
            ]
        )
        == 0
    ), capsys.readouterr().err
    (row,) = [r for r in json.loads((out / "report.json").read_text())["results"] if r["attack"] == "lira"]
    fit = row["fit"]
    assert fit["n_reference"] == 1 and fit["fixed_variance"] is (fixed == "auto")
    # one model per sample: no per-sample variance exists, so every scored sample (20 held-out and 20 known
    # members, 20 test and 10 calibration non-members) takes the spread of all reference statistics
    assert fit["pool"] == {"out": "all reference statistics"} and fit["n_pooled"] == {"out": 70}
    assert 0.0 <= row["metrics"]["auc"] <= 1.0

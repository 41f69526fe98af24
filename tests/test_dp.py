"""DP-SGD targets through Opacus (issue 16, item 2): training, what model.json says, loading back,
the claim beside the measured bound in every later audit, and the bad input."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from torch import nn

from mintaudit.cli import main
from pools import learnable_npz

pytest.importorskip("opacus")

SIZES = ["--members", "60", "--external", "40", "--test", "40"]


def _npz(tmp_path):
    return learnable_npz(tmp_path, 180)


def test_dp_training_records_the_accountant_and_the_replacements(tmp_path, capsys):
    from mintaudit.models import load_model

    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--dataset",
            _npz(tmp_path),
            *SIZES,
            "--model",
            "objcls-cnn",
            "--epochs",
            "2",
            "--batch-size",
            "16",
            "--dp-epsilon",
            "4",
            "--dp-delta",
            "1e-5",
            "--max-grad-norm",
            "0.5",
            "--quiet",
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    meta = json.loads((out / "model" / "model.json").read_text())
    dp = meta["dp"]
    assert dp["epsilon_target"] == 4.0 and dp["delta"] == 1e-5 and dp["max_grad_norm"] == 0.5
    assert dp["accountant"] == "prv" and 0 < dp["epsilon_spent"] <= 4.0 + 0.05
    assert dp["noise_multiplier"] > 0 and dp["steps"] >= 2 and dp["sample_rate"] == pytest.approx(16 / 64)
    # every BatchNorm of objcls-cnn is named as replaced, and nothing else
    assert dp["replaced"] == [f"block{b}.bn{j}: BatchNorm2d -> GroupNorm(32 groups)" for b in (1, 2, 3) for j in (1, 2)]
    assert "epsilon spent" in printed and "block1.bn1: BatchNorm2d -> GroupNorm" in printed
    assert not (out / "model" / "checkpoint.pt").exists()  # DP runs write no checkpoint
    # it loads back as the architecture it was trained as: GroupNorm, no BatchNorm, weights intact
    net, spec, _ = load_model(out / "model")
    kinds = {type(m) for m in net.modules()}
    assert nn.GroupNorm in kinds and nn.BatchNorm2d not in kinds and spec.name == "objcls-cnn"
    from safetensors.torch import load_file

    saved = load_file(str(out / "model" / "model.safetensors"))
    assert all(torch.equal(saved[k], v) for k, v in net.state_dict().items())


def test_dp_training_is_seeded(tmp_path):
    from mintaudit.data import load_dataset, make_splits
    from mintaudit.dp import DPConfig
    from mintaudit.workdir import train_model
    from mintaudit.training import TrainConfig

    ds = load_dataset(_npz(tmp_path))
    splits = make_splits(ds, members=60, external=40, test=40, seed=0)
    cfg, dp = TrainConfig(epochs=1, batch_size=16, seed=3), DPConfig(epsilon=2.0, delta=1e-5)
    a, ia = train_model(tmp_path / "a", ds, splits, model="tiny-cnn", config=cfg, dp=dp, show_progress=False)
    b, ib = train_model(tmp_path / "b", ds, splits, model="tiny-cnn", config=cfg, dp=dp, show_progress=False)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert ia["dp"]["replaced"] == [] and ia["dp"]["epsilon_spent"] == ib["dp"]["epsilon_spent"] <= 2.0 + 0.05
    # Opacus leaves nothing on the model: no hooks, no per-sample gradients
    assert not any(hasattr(p, "grad_sample") for p in a.parameters())
    assert not any(m._forward_hooks or m._backward_hooks for m in a.modules())


def test_later_audits_show_the_claim_beside_the_measured_bound(tmp_path, capsys):
    out = tmp_path / "run"
    data = _npz(tmp_path)
    assert (
        main(
            [
                "train",
                "--dataset",
                data,
                *SIZES,
                "--model",
                "objcls-cnn",
                "--epochs",
                "1",
                "--batch-size",
                "16",
                "--dp-epsilon",
                "8",
                "--dp-delta",
                "1e-5",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert (
        main(
            [
                "attack",
                "--dataset",
                data,
                "--methods",
                "loss",
                "--bootstrap",
                "0",
                "--allow-weak-model",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    claim = json.loads((out / "model" / "model.json").read_text())["dp"]
    assert report["model"]["dp"] == claim
    assert report["results"] and "epsilon_lower_bound" in report["results"][0]
    assert (
        f"DP-SGD claim: epsilon {claim['epsilon_spent']:.3f}" in printed and "largest measured lower bound" in printed
    )
    html = (out / "report.html").read_text()
    assert "Claimed &epsilon; (accountant)" in html and f"{claim['epsilon_spent']:.3f}" in html


def test_the_plain_path_records_no_dp(tmp_path):
    assert (
        main(
            [
                "train",
                "--dataset",
                _npz(tmp_path),
                *SIZES,
                "--model",
                "tiny-cnn",
                "--epochs",
                "1",
                "--quiet",
                "--out",
                str(tmp_path / "run"),
            ]
        )
        == 0
    )
    meta = json.loads((tmp_path / "run" / "model" / "model.json").read_text())
    assert "dp" not in meta and (tmp_path / "run" / "model" / "checkpoint.pt").is_file()


class _Scaled(nn.Module):
    """A trainable layer with a buffer: Opacus refuses it and ModuleValidator.fix has no fixer for it."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))
        self.register_buffer("calls", torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight


def unfixable(in_channels: int, num_classes: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 64, num_classes), _Scaled())


def _train(tmp_path, *extra):
    return [
        "train",
        "--dataset",
        _npz(tmp_path),
        *SIZES,
        "--model",
        "tiny-cnn",
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "run"),
        *extra,
    ]


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--dp-epsilon", "8"], ["--dp-epsilon needs --dp-delta", "--dp-delta 1e-5"]),
        (["--dp-delta", "1e-5"], ["--dp-delta needs --dp-epsilon"]),
        (["--max-grad-norm", "1"], ["--max-grad-norm applies to DP-SGD", "--dp-epsilon"]),
        (["--dp-epsilon", "8", "--dp-delta", "0"], ["--dp-delta must be", "(0, 1)"]),
        (["--dp-epsilon", "8", "--dp-delta", "1"], ["--dp-delta must be", "(0, 1)"]),
        (["--dp-epsilon", "8", "--dp-delta", "1.5"], ["--dp-delta must be", "(0, 1)"]),
        (["--dp-epsilon", "8", "--dp-delta=-1e-5"], ["--dp-delta must be"]),
        (["--dp-epsilon", "0", "--dp-delta", "1e-5"], ["--dp-epsilon must be", "> 0"]),
        (["--dp-epsilon", "nan", "--dp-delta", "1e-5"], ["--dp-epsilon must be"]),
        (["--dp-epsilon", "8", "--dp-delta", "1e-5", "--max-grad-norm", "0"], ["--max-grad-norm must be", "> 0"]),
        (["--dp-epsilon", "8", "--dp-delta", "1e-5", "--max-grad-norm=-1"], ["--max-grad-norm must be"]),
        (["--dp-epsilon", "8", "--dp-delta", "1e-5", "--resume"], ["--resume does not apply to DP-SGD"]),
    ],
)
def test_bad_dp_options(refused, tmp_path, extra, words):
    line = refused(_train(tmp_path, *extra))
    for w in words:
        assert w in line, line


def test_a_model_opacus_cannot_make_private_is_named(refused, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "dp_unfixable", sys.modules[__name__])
    argv = _train(tmp_path, "--dp-epsilon", "8", "--dp-delta", "1e-5")
    argv[argv.index("tiny-cnn")] = "dp_unfixable:unfixable"
    # refused once the data are known (the model is built for their shape): the splits are the only file
    line = refused(argv, allow_new=("splits.json",))
    assert "Opacus cannot make this model private" in line and "layer 2 (_Scaled)" in line and "buffers (calls)" in line


def test_missing_opacus_says_how_to_install(refused, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "opacus", None)  # import opacus -> ImportError
    line = refused(_train(tmp_path, "--dp-epsilon", "8", "--dp-delta", "1e-5"))
    assert "needs Opacus" in line and "pip install 'mintaudit[dp]'" in line

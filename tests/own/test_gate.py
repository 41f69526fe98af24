"""The sanity gate: a model at chance on its own members is refused, in one line, before any audit."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from mintaudit.data import ImageDataset
from mintaudit.errors import WeakModelError
from mintaudit.gate import check_model_accuracy


class _Constant(nn.Module):
    """Predicts class 0 for everything: at chance on a balanced pool."""

    def __init__(self, k: int = 4) -> None:
        super().__init__()
        self.fc = nn.Linear(1, k)
        with torch.no_grad():
            self.fc.weight.zero_()
            self.fc.bias.copy_(torch.arange(k, 0, -1).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(1, 2, 3)).unsqueeze(1) * 0)


def _pool(n=80, k=4):
    return ImageDataset("p", np.zeros((n, 4, 4, 1), np.uint8), np.arange(n) % k, k)


def test_a_blind_model_is_refused_with_the_numbers_and_the_fix():
    ds = _pool()
    with pytest.raises(WeakModelError) as e:
        check_model_accuracy(_Constant(), ds, np.arange(40), np.arange(40, 80))
    msg = str(e.value)
    assert "accuracy 0.250" in msg and "chance is 0.250" in msg and "4 classes" in msg
    assert "--mean/--std" in msg and "--allow-weak-model" in msg and "label order" in msg and "\n" not in msg


def test_allowed_weak_model_is_measured_and_flagged():
    check = check_model_accuracy(_Constant(), _pool(), np.arange(40), np.arange(40, 80), allow_weak_model=True)
    assert check.members_accuracy == check.test_accuracy == 0.25 and check.weak and check.weak_model_allowed


def test_the_boundary_is_chance_plus_0_1():
    ds = _pool(n=100, k=4)  # chance 0.25: a members' accuracy of 0.35 is refused, above it passes

    class Oracle(nn.Module):
        def __init__(self, right: np.ndarray) -> None:
            super().__init__()
            self.right = torch.from_numpy(right)
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # right on the first samples of each batch
            n = len(x)
            out = torch.zeros(n, 4)
            out[torch.arange(n), self.right[:n]] = 1.0
            return out

    labels = ds.labels[:100]
    for n_right, refused in ((35, True), (36, False)):
        guess = (labels + 1) % 4
        guess[:n_right] = labels[:n_right]
        if refused:
            with pytest.raises(WeakModelError):
                check_model_accuracy(Oracle(guess), ds, np.arange(100), np.arange(100))
        else:
            assert check_model_accuracy(Oracle(guess), ds, np.arange(100), np.arange(100)).members_accuracy == 0.36


def _random_work(tmp_path, capsys):
    from mintaudit.cli import main

    rng = np.random.default_rng(0)
    path = tmp_path / "data.npz"
    np.savez(path, x=rng.integers(0, 256, (100, 8, 8), dtype=np.uint8), y=np.arange(100) % 3)  # 20 a side
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--dataset",
                f"npz:{path}",
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
    capsys.readouterr()
    return f"npz:{path}", out


@pytest.mark.parametrize(
    "verb",
    [
        ["sweep", "--taps", "relu1"],
        ["fit", "--layer", "relu1"],
        ["attack", "--methods", "loss"],
        ["test", "--query", "test"],
    ],
)
def test_every_audit_verb_refuses_a_model_at_chance_and_writes_no_report(tmp_path, capsys, refused, verb):
    data, out = _random_work(tmp_path, capsys)
    line = refused([*verb, "--dataset", data, "--out", out, "--quiet"])
    assert "classifies its own members at accuracy" in line and "chance is 0.333" in line
    assert not (out / "report.json").exists()


def test_allow_weak_model_goes_on_and_the_report_says_so(tmp_path, capsys):
    from mintaudit.cli import main

    data, out = _random_work(tmp_path, capsys)
    assert (
        main(
            [
                "sweep",
                "--taps",
                "relu1",
                "--dataset",
                data,
                "--out",
                str(out),
                "--quiet",
                "--mint-epochs",
                "1",
                "--bootstrap",
                "10",
                "--allow-weak-model",
            ]
        )
        == 0
    )
    model = json.loads((out / "report.json").read_text())["model"]
    assert model["weak_model_allowed"] is True and model["chance_accuracy"] == pytest.approx(1 / 3)
    assert 0 <= model["train_accuracy"] <= 1 and 0 <= model["task_accuracy"] <= 1

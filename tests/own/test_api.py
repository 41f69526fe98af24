"""mintaudit.audit on the user's own data: the same figures as the command line, and clear refusals."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import mintaudit
from mintaudit.data import load_dataset
from mintaudit.errors import DataError, ModelError, WeakModelError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained():
    """examples/own_model's network trained on 300 digits with the owner's x / 255."""
    sys.path.insert(0, str(ROOT / "examples" / "own_model"))
    try:
        from model import build
    finally:
        sys.path.pop(0)
        sys.modules.pop("model", None)
    torch.manual_seed(0)
    ds = load_dataset("digits")
    rng = np.random.default_rng(0)
    order = rng.permutation(len(ds))
    members, external, test = np.sort(order[:300]), order[300:600], order[600:900]
    x = torch.from_numpy(ds.images).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(ds.labels)
    net = build(1, 10)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for _ in range(6):
        net.train()
        for i in range(0, 300, 50):
            b = members[i : i + 50]
            loss = nn.functional.cross_entropy(net(x[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    return net, x, y, members, external, test


def test_api_equals_the_cli_on_the_same_samples(trained, tmp_path, capsys, monkeypatch):
    from mintaudit.cli import main

    net, x, y, members, external, test = trained
    api = mintaudit.audit(
        net,
        members=DataLoader(TensorDataset(x[members], y[members]), batch_size=64),
        external=TensorDataset(x[external], y[external]),
        test=(x[test], y[test]),
        taps=["stage2"],
        fusion="outputs",
        n_bootstrap=50,
        show_progress=False,
        detector=mintaudit.api.DetectorConfig(epochs=3),
    )
    # the same model, weights file and sample lists through the command line
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "w.safetensors"))
    for role, idx in (("members", members), ("external", external), ("test", test)):
        (tmp_path / f"{role}.txt").write_text("".join(f"{i}\n" for i in idx))
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "own_model"))
    out = tmp_path / "run"
    assert (
        main(
            [
                "sweep",
                "--dataset",
                "digits",
                "--model",
                "model:build",
                "--weights",
                str(tmp_path / "w.safetensors"),
                "--members-file",
                str(tmp_path / "members.txt"),
                "--external-file",
                str(tmp_path / "external.txt"),
                "--test-file",
                str(tmp_path / "test.txt"),
                "--mean",
                "0",
                "--std",
                "1",
                "--taps",
                "stage2",
                "--fusion",
                "outputs",
                "--bootstrap",
                "50",
                "--mint-epochs",
                "3",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    sys.modules.pop("model", None)
    cli = json.loads((out / "report.json").read_text())
    assert cli["model"]["task_accuracy"] == pytest.approx(api.check.test_accuracy)
    assert cli["model"]["train_accuracy"] == pytest.approx(api.check.members_accuracy)
    pairs = list(zip(cli["results"], api.report["results"]))
    assert len(pairs) == 3 and [a["method"] for a, _ in pairs] == ["passive-mint", "passive-mint", "loss"]
    for a, b in pairs:
        assert (a["layer"], a["signal"]) == (b["layer"], b["signal"])
        for k in ("auc", "accuracy"):
            assert a["metrics"][k] == pytest.approx(b["metrics"][k], abs=1e-9), (a["layer"], k)


def test_a_weak_model_is_refused_by_the_api_too(trained):
    net, x, y, members, external, test = trained
    with pytest.raises(WeakModelError, match="classifies its own members"):
        shifted = (y + 1) % 10  # the labels in another order than the model's classes
        mintaudit.audit(
            net,
            members=(x[members], shifted[members]),
            external=(x[external], shifted[external]),
            test=(x[test], shifted[test]),
        )


class _NoLogits(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 3)

    def forward(self, x):
        return x, self.fc(x.flatten(1))  # the logits second: the rule reads the first item


@pytest.mark.parametrize(
    "model, sets, error, needle",
    [
        (_NoLogits(), None, ModelError, "returned shape (2, 1, 8, 8)"),
        (nn.Sequential(nn.Flatten(), nn.Linear(10, 3)), None, ModelError, "fails on a batch"),
        (nn.Sequential(nn.Flatten(), nn.Linear(64, 3)), "flat", DataError, "inputs of shape (40, 64)"),
        (nn.Sequential(nn.Flatten(), nn.Linear(64, 3)), "float-labels", DataError, "integer class indices"),
        (nn.Sequential(nn.Flatten(), nn.Linear(64, 3)), "not-pairs", DataError, "must yield (x, y) pairs"),
    ],
)
def test_bad_models_and_sets_are_refused(model, sets, error, needle):
    def role(seed):
        g = torch.Generator().manual_seed(seed)
        x, y = torch.rand(40, 1, 8, 8, generator=g), torch.arange(40) % 3
        return {
            None: (x, y),
            "flat": (x.flatten(1), y),
            "float-labels": (x, y.float() + 0.5),
            "not-pairs": [x[:10], x[10:20], x[20:]],
        }[sets]

    with pytest.raises(error, match=needle.replace("(", r"\(").replace(")", r"\)")):
        mintaudit.audit(model, members=role(0), external=role(1), test=role(2))

"""``mintaudit audit``: the whole audit in one command, on a factory model trained here on digits.

The model is the user's (a factory in a module of its own, weights in a safetensors file, trained
on x / 255 by a plain loop), its members a file of pool indices; the verb finds its classifier
head's input as the default tap, runs passive MINT with the output signals and LOSS, gives the
verdict on the query, and prints the answer first.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from mintaudit.cli import main
from mintaudit.data import load_dataset
from mintaudit.workdir.oneshot import head_input

_FACTORY = """
from torch import nn


def build(in_channels=1, num_classes=10):
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 16, 64), nn.ReLU(), nn.Linear(64, num_classes),
    )
"""


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """A factory model trained on 250 digits samples (x / 255): 150 listed as members, 100 suspects the auditor
    does not know were used; files of members, suspects, external and test samples (pool indices)."""
    root = tmp_path_factory.mktemp("own")
    (root / "auditmod.py").write_text(_FACTORY)
    sys.path.insert(0, str(root))
    try:
        import auditmod

        ds = load_dataset("digits")
        order = np.random.default_rng(0).permutation(len(ds))
        members, suspects, external, test = (np.sort(a) for a in np.split(order[:1050], [150, 250, 650]))
        trained = np.concatenate([members, suspects])  # the suspects were used too, unknown to the auditor
        x = torch.from_numpy(ds.images[trained]).permute(0, 3, 1, 2).float() / 255
        y = torch.from_numpy(ds.labels[trained]).long()
        torch.manual_seed(0)
        net = auditmod.build()
        shuffle = torch.randperm(len(x))
        x, y = x[shuffle], y[shuffle]
        opt = torch.optim.Adam(net.parameters(), 3e-3)
        for _ in range(60):
            for i in range(0, len(x), 32):
                loss = nn.functional.cross_entropy(net(x[i : i + 32]), y[i : i + 32])
                opt.zero_grad()
                loss.backward()
                opt.step()
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(root / "model.safetensors"))
        for name, ids in (("members", members), ("suspects", suspects), ("external", external), ("test", test)):
            (root / f"{name}.txt").write_text("\n".join(map(str, ids)) + "\n")
        yield root
    finally:
        sys.path.remove(str(root))
        sys.modules.pop("auditmod", None)


def _argv(own, out, *more):
    base = ["audit", "--dataset", "digits", "--model", "auditmod:build", "--weights", own / "model.safetensors"]
    base += [
        "--mean",
        "0",
        "--std",
        "1",
        "--members-file",
        own / "members.txt",
        "--external-file",
        own / "external.txt",
    ]
    base += ["--test-file", own / "test.txt", "--out", out, "--quiet"]
    return [str(a) for a in [*base, *more]]


def test_head_input_is_the_layer_feeding_the_last_linear():
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 8), nn.ReLU(), nn.Linear(8, 3)
    )
    assert head_input(net, torch.randn(2, 1, 8, 8)) == "4"
    hooks = [len(m._forward_hooks) for m in net.modules()]
    assert not any(hooks)  # every hook removed


def test_head_input_across_a_functional_flatten():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(torch.flatten(self.pool(self.conv(x)), 1))

    assert head_input(Net(), torch.randn(2, 1, 8, 8)) == "pool"
    assert head_input(nn.Sequential(nn.Conv2d(1, 3, 8), nn.Flatten()), torch.randn(2, 1, 8, 8)) is None


def test_audit_verb_answers_first_on_a_factory_model(own, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "audit"
    fast = ["--mint-epochs", "10", "--bootstrap", "50"]
    assert main(_argv(own, out, *fast)) == 0  # no query: the best rows, and how to get a verdict
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("No verdict: give --query"), printed
    assert "taps: 5)" in printed[1]  # the head's input: the ReLU feeding the last Linear
    assert any(line.startswith("  passive MINT: passive-mint ") for line in printed), printed
    assert any("attacks without reference models: loss" in line for line in printed)
    assert not (out / "verdict.csv").exists()

    assert main(_argv(own, out, "--query", own / "suspects.txt", *fast)) == 0
    printed = capsys.readouterr().out.splitlines()
    # the verdict in words first (on 100 suspects of a model at test accuracy ~0.96 it may go either way)
    assert printed[0].split(" that these 100 samples ")[0] in ("Evidence", "No evidence"), printed[:3]
    assert printed[1].lstrip().startswith("p = ")
    assert any(line.lstrip().startswith("share of the queries used") for line in printed[:4])
    assert printed[-1].startswith("wrote ") and "report.html" in printed[-1]
    report = json.loads((out / "report.json").read_text())
    assert {r["method"] for r in report["results"]} == {"passive-mint", "loss"}
    assert {r["layer"] for r in report["results"] if r["method"] == "passive-mint"} >= {"5", "outputs"}
    assert report["verdict"]["n_query"] == 100 and (out / "verdict.csv").is_file()
    assert report["dataset"]["members"] == 150

    # --references 2: RMIA and LiRA with two reference models of the factory, added beside the earlier rows
    assert main(_argv(own, out, "--references", "2", "--reference-epochs", "2", *fast)) == 0
    printed = capsys.readouterr().out.splitlines()
    assert any(line.startswith("  reference attacks: ") for line in printed), printed
    report = json.loads((out / "report.json").read_text())
    assert {r["method"] for r in report["results"]} == {"passive-mint", "loss", "rmia", "lira"}
    assert report["verdicts"][0]["n_query"] == 100  # the verdict of the earlier run is kept


def test_audit_verb_refusals_are_one_line(own, tmp_path, refused):
    line = refused(_argv(own, tmp_path / "r1", "--references", "1"))
    assert "--references" in line
    line = refused(_argv(own, tmp_path / "r2", "--query", tmp_path / "missing.txt"))
    assert "missing.txt" in line


def test_references_are_refused_for_a_model_with_no_fresh_copy(own, tmp_path, refused):
    """A scheme whose target cannot be rebuilt untrained (no spec): RMIA/LiRA refused before any model runs."""
    from safetensors.torch import load_file

    from mintaudit.targets import ModuleTarget, register_scheme, unregister_scheme

    import auditmod

    def opener(path, *, input_shape, num_classes, kwargs=None):
        net = auditmod.build(input_shape[0], num_classes)
        net.load_state_dict(load_file(path))
        return ModuleTarget(net.eval(), f"frozen:{path}", kind="frozen")

    register_scheme("frozen", opener)
    try:
        argv = _argv(own, tmp_path / "r3", "--references", "2")
        at = argv.index("auditmod:build")
        argv[at : at + 3] = [f"frozen:{own / 'model.safetensors'}"]  # the scheme carries its weights
        line = refused(argv, allow_new=("splits.json",))  # the splits are written first, nothing else
        assert "cannot build a fresh untrained copy" in line and "reference models" in line
        assert not (tmp_path / "r3" / "report.json").exists()
    finally:
        unregister_scheme("frozen")

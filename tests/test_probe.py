"""The preprocessing probe: the x / 255 example model read with the default preprocessing is refused, naming the fix."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from mintaudit.cli import main
from mintaudit.data import load_dataset
from mintaudit.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "own_model"
_NET: dict[str, torch.nn.Module] = {}


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """The example's model class (width 8), trained on x / 255 as examples/own_model/train.py does, on 300 digits."""
    sys.path.insert(0, str(EXAMPLE))
    try:
        from model import ResNetSmall
    finally:
        sys.path.remove(str(EXAMPLE))
        sys.modules.pop("model", None)
    torch.manual_seed(0)
    ds = load_dataset("digits")
    members = np.arange(300)
    x = torch.from_numpy(ds.images[members]).permute(0, 3, 1, 2).float() / 255.0
    y = torch.from_numpy(ds.labels[members]).long()
    net = ResNetSmall(1, 10, width=8)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    net.train()
    for _ in range(6):
        for i in range(0, 300, 50):
            opt.zero_grad()
            F.cross_entropy(net(x[i : i + 50]), y[i : i + 50]).backward()
            opt.step()
    root = tmp_path_factory.mktemp("own")
    save_file(net.state_dict(), str(root / "model.safetensors"))
    (root / "members.txt").write_text("\n".join(map(str, members)))
    _NET["own"] = net.eval()  # the module itself, for mintaudit.audit
    return root


@pytest.fixture(autouse=True)
def _forget_the_example_module():
    yield
    sys.modules.pop("model", None)  # the factory 'model:ResNetSmall' was imported by name


def _attack(own, out, *extra):
    return [
        "attack",
        "--methods",
        "loss",
        "--dataset",
        "digits",
        "--model",
        "model:ResNetSmall",
        "--model-arg",
        "width=8",
        "--weights",
        own / "model.safetensors",
        "--members-file",
        own / "members.txt",
        "--external",
        "100",
        "--test",
        "100",
        "--out",
        out,
        "--quiet",
        *extra,
    ]


def test_the_x_255_example_under_the_default_is_refused_naming_mean_0_std_1(own, refused, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    line = refused(_attack(own, "out"), allow_new=("splits.json",))
    assert "with x / 255" in line and "give --mean 0 --std 1" in line, line
    assert "--accept-preprocessing" in line and "95% CI" in line


def test_the_right_flags_pass_and_accept_preprocessing_is_recorded(own, tmp_path, monkeypatch, capsys, refused):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    assert main([str(a) for a in _attack(own, tmp_path / "ok", "--mean", "0", "--std", "1")]) == 0
    probe = json.loads((tmp_path / "ok" / "report.json").read_text())["model"]["probe"]
    assert probe["declared_accuracy"] > 0.8 and probe["better"] is None and not probe["accepted"]
    assert {c["candidate"] for c in probe["candidates"]} == {"mean/std 0.5", "the data set's own mean/std"}
    # C043: a later verdict on the same OUT that forgets --mean 0 --std 1 reads them from the audit record
    # (never the default), and judges the held-out members as the model saw them
    verdict = ["test", "--query", "heldout-members", "--method", "loss", *_attack(own, tmp_path / "ok")[3:]]
    assert main([str(a) for a in verdict if a not in ("--external", "--test", "100")]) == 0
    report = json.loads((tmp_path / "ok" / "report.json").read_text())
    assert report["model"]["preprocess"]["mean"] == [0.0] and report["verdict"]["method"] == "loss"
    capsys.readouterr()
    assert main([str(a) for a in _attack(own, tmp_path / "acc", "--accept-preprocessing")]) == 0
    capsys.readouterr()
    probe = json.loads((tmp_path / "acc" / "report.json").read_text())["model"]["probe"]
    assert probe["accepted"] and probe["better"] == "x / 255"
    assert probe["declared"] == {"mean": [0.5], "std": [0.5], "grey_to_rgb": False}


def test_model_arg_values_are_typed_and_a_bad_one_is_one_line(own, refused, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    line = refused([*_attack(own, "o2")[:8], "width", *_attack(own, "o2")[9:]])
    assert "--model-arg takes KEY=VALUE" in line
    line = refused([*_attack(own, "o3")[:8], "width=9", *_attack(own, "o3")[9:]], allow_new=("splits.json",))
    assert "model:ResNetSmall" in line or "weights" in line  # the weights do not fit a width-9 model: one line


def test_python_callers_passing_raw_pixels_and_preprocess_are_probed(own):
    import mintaudit
    from mintaudit.errors import DataError
    from mintaudit.preprocess import Preprocess

    ds = load_dataset("digits")

    def raw(ids):
        return torch.from_numpy(ds.images[ids]).permute(0, 3, 1, 2), torch.from_numpy(ds.labels[ids]).long()

    net = _NET["own"]
    sets = {"members": raw(np.arange(300)), "external": raw(np.arange(300, 400)), "test": raw(np.arange(400, 500))}
    with pytest.raises(ConfigError, match=r"with x / 255 .* give preprocess=Preprocess\(mean=0, std=1\)"):
        mintaudit.audit(net, **sets, fusion="outputs", preprocess=Preprocess())
    result = mintaudit.audit(net, **sets, fusion="outputs", preprocess=Preprocess(mean=0, std=1))
    probe = result.report["model"]["probe"]
    assert probe["better"] is None and probe["declared_accuracy"] == pytest.approx(result.check.members_accuracy)
    x, y = sets["members"]
    with pytest.raises(DataError, match="raw pixels"):
        mintaudit.audit(
            net, members=(x / 255.0, y), external=sets["external"], test=sets["test"], preprocess=Preprocess()
        )

"""A user's model that cannot be imported, built or run ends in one line and exit 2, never a traceback."""

from __future__ import annotations

import os
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from mintaudit.cli import main
from mintaudit.data import load_dataset, make_splits
from mintaudit.errors import ModelError
from mintaudit.models import ModelSpec, build_model

_HEAD = "import torch\nfrom torch import nn\n"

# name -> (module source, what the error line must say)
_CASES = {
    "factory-raises-runtimeerror": (
        "def build(**kw):\n    raise RuntimeError('no GPU here')\n",
        ["building model", "RuntimeError: no GPU here", "fix the factory"],
    ),
    "factory-raises-keyerror": (
        "def build(**kw):\n    return {}['depth']\n",
        ["building model", "KeyError: 'depth'"],
    ),
    "syntax-error": (
        "def build(:\n    pass\n",
        ["importing module", "SyntaxError", "fix the module"],
    ),
    "raises-at-import": (
        "raise ValueError('config.yaml missing')\ndef build(**kw):\n    return nn.Linear(1, 1)\n",
        ["importing module", "ValueError: config.yaml missing"],
    ),
    "exits-at-import": (
        "import sys\nsys.exit(3)\n",
        ["importing module", "SystemExit: 3"],
    ),
    "missing-dependency": (
        "import no_such_dependency_xyz\ndef build(**kw):\n    return nn.Linear(1, 1)\n",
        ["No module named 'no_such_dependency_xyz'", "install 'no_such_dependency_xyz'"],
    ),
    "not-a-module": (
        "def build(**kw):\n    return {'weight': torch.zeros(3)}\n",
        ["returned dict, expected a torch.nn.Module"],
    ),
    "wrong-number-of-outputs": (
        "def build(in_channels, num_classes):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 64, num_classes + 2))\n",
        ["returned shape (2, 5)", "expected (B, 3) logits", "one float score per class"],
    ),
    "fails-on-the-input-size": (
        "def build(in_channels, num_classes):\n    return nn.Sequential(nn.Flatten(), nn.Linear(10, num_classes))\n",
        ["fails on a batch of shape (2, 1, 8, 8)", "RuntimeError", "--image-size"],
    ),
    "dict-output-without-logits": (
        "class Net(nn.Module):\n"
        "    def __init__(self, num_classes):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(64, num_classes)\n"
        "    def forward(self, x):\n"
        "        return {'scores': self.fc(x.flatten(1))}\n"
        "def build(num_classes):\n    return Net(num_classes)\n",
        ["returned a dict without a 'logits' tensor (keys: 'scores')", "a tuple whose first item is the logits"],
    ),
    "one-dimensional-output": (
        "def build(in_channels, num_classes):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 64, 1), nn.Flatten(0))\n",
        ["returned shape (2,)", "expected (B, 3) logits"],
    ),
}


@pytest.fixture
def pool(tmp_path):
    """An 8x8 grey npz pool of 60 images in 3 classes, and saved splits (so a refused run writes nothing)."""
    rng = np.random.default_rng(0)
    path = tmp_path / "data.npz"
    np.savez(path, x=rng.integers(0, 256, (60, 8, 8), dtype=np.uint8), y=np.arange(60) % 3)
    data = f"npz:{path}"
    make_splits(load_dataset(data), members=20, external=20, test=20, seed=0).save(tmp_path / "splits.json")
    return data, tmp_path / "splits.json"


def _user_module(tmp_path, monkeypatch, case: str) -> str:
    name = "usermod_" + case.replace("-", "_")
    (tmp_path / f"{name}.py").write_text(_HEAD + _CASES[case][0])
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)  # and removed again afterwards
    return name


@pytest.mark.parametrize("verb", ["train", "extract"])
@pytest.mark.parametrize("case", list(_CASES))
def test_bad_user_model_is_one_line(case, verb, pool, tmp_path, monkeypatch, refused):
    data, splits = pool
    ref = f"{_user_module(tmp_path, monkeypatch, case)}:build"
    argv = [verb, "--dataset", data, "--model", ref, "--splits", splits, "--out", tmp_path / "run", "--quiet"]
    if verb == "train":
        argv += ["--epochs", "1"]
    else:
        try:  # weights that fit, so the check that fails is the one under test
            state = {k: v.contiguous() for k, v in build_model(ModelSpec(ref, 1, 3, (8, 8))).state_dict().items()}
        except ModelError:
            state = {"unused": torch.zeros(1)}
        sys.modules.pop(ref.partition(":")[0], None)
        save_file(state, str(tmp_path / "w.safetensors"))
        argv += ["--weights", tmp_path / "w.safetensors"]
    line = refused(argv)
    assert ref in line or ref.partition(":")[0] in line, line
    for part in _CASES[case][1]:
        assert part in line, line


def test_malicious_pt_through_the_cli_is_one_line_and_does_not_run(pool, tmp_path, refused):
    data, splits = pool
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    state = build_model(ModelSpec("tiny-cnn", 1, 3, (8, 8))).state_dict()
    torch.save({**state, "x": Evil()}, tmp_path / "w.pt")
    line = refused(
        [
            "extract",
            "--dataset",
            data,
            "--model",
            "tiny-cnn",
            "--weights",
            tmp_path / "w.pt",
            "--splits",
            splits,
            "--out",
            tmp_path / "run",
            "--quiet",
        ]
    )
    assert not marker.exists()
    assert "system" in line and "trusted environment" in line and ".safetensors" in line
    assert "weights_only" not in line and "safe_globals" not in line


def test_a_good_user_model_trains_and_its_weights_extract(pool, tmp_path, monkeypatch, capsys):
    data, splits = pool
    (tmp_path / "usermod_good.py").write_text(
        _HEAD
        + textwrap.dedent("""
        def build(in_channels, num_classes):
            return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 64, 8), nn.ReLU(), nn.Linear(8, num_classes))
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "usermod_good", raising=False)
    out = tmp_path / "run"
    common = ["--dataset", data, "--model", "usermod_good:build", "--splits", str(splits), "--quiet"]
    assert main(["train", *common, "--epochs", "1", "--out", str(out)]) == 0, capsys.readouterr().err
    assert (
        main(
            [
                "extract",
                *common,
                "--weights",
                str(out / "model" / "model.safetensors"),
                "--taps",
                "all",
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 0
    ), capsys.readouterr().err
    assert (tmp_path / "x" / "cache").is_dir()

"""examples/own_model end to end: a model trained elsewhere on x / 255, audited by the command line.

With the default normalisation the model is blind (its members at chance) and the audit is
refused in one line, writing no report; with the owner's preprocessing (--mean 0 --std 1) the
report's task accuracy is the one the training script measured, and LOSS finds its members.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.fashion]


def _run(args, cwd, env):
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def test_own_model_example_end_to_end(fashion_mnist, tmp_path):
    path = os.pathsep.join(
        p for p in (str(ROOT / "examples" / "own_model"), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")) if p
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    own = tmp_path / "own"
    p = _run(
        [
            str(ROOT / "examples" / "own_model" / "train.py"),
            "--dataset",
            "fashion-mnist",
            "--members",
            "600",
            "--test",
            "400",
            "--epochs",
            "10",
            "--out",
            str(own),
        ],
        tmp_path,
        env,
    )
    assert p.returncode == 0, p.stderr
    measured = json.loads((own / "metrics.json").read_text())
    sweep = [
        "-m",
        "mintaudit.cli",
        "sweep",
        "--dataset",
        "fashion-mnist",
        "--model",
        "model:build",
        "--weights",
        str(own / "model.safetensors"),
        "--members-file",
        str(own / "members.txt"),
        "--test-file",
        str(own / "test.txt"),
        "--external",
        "600",
        "--taps",
        "head.3",
        "--mint-epochs",
        "5",
        "--bootstrap",
        "50",
        "--quiet",
    ]

    blind = _run([*sweep, "--out", str(tmp_path / "blind")], tmp_path, env)
    assert blind.returncode == 2, blind.stderr
    lines = blind.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in blind.stderr
    # the probe (mintaudit.probe) refuses first: x / 255 classifies the members clearly better, and it names the flags
    assert "classifies its members at" in lines[0] and "give --mean 0 --std 1" in lines[0], lines[0]
    assert "--mean/--std" in lines[0]
    assert not (tmp_path / "blind" / "report.json").exists()

    seeing = _run([*sweep, "--mean", "0", "--std", "1", "--out", str(tmp_path / "seeing")], tmp_path, env)
    assert seeing.returncode == 0, seeing.stderr
    report = json.loads((tmp_path / "seeing" / "report.json").read_text())
    assert report["model"]["task_accuracy"] == pytest.approx(measured["test_accuracy"], abs=0.005)
    assert report["model"]["train_accuracy"] == pytest.approx(measured["train_accuracy"], abs=0.005)
    assert report["model"]["preprocess"] == {"mean": [0.0], "std": [1.0], "grey_to_rgb": False}
    (loss,) = [r for r in report["results"] if r["method"] == "loss"]
    assert loss["metrics"]["auc"] > 0.5

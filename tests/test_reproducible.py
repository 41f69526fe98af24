"""Same seed, same model, same figures: across two ``mintaudit train`` processes, and after a SIGKILL + ``--resume``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import mintaudit
from mintaudit.cli import main

EPOCHS = 6
TRAIN = [
    "train",
    "--dataset",
    "digits",
    "--model",
    "tiny-cnn",
    "--members",
    "200",
    "--external",
    "100",
    "--test",
    "100",
    "--epochs",
    str(EPOCHS),
    "--batch-size",
    "4",
    "--seed",
    "3",
    "--quiet",
]


def _cli(args: list[str], cwd: Path) -> subprocess.Popen:
    """``python -m mintaudit.cli ARGS`` in a fresh process, one torch thread, importing the package under test."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONPATH": str(Path(mintaudit.__file__).parent.parent),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "mintaudit.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _train(out: Path, *extra: str) -> None:
    p = _cli([*TRAIN, "--out", str(out), *extra], out.parent)
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 0, stderr


def _assert_same_model(a: Path, b: Path) -> None:
    wa, wb = load_file(str(a / "model" / "model.safetensors")), load_file(str(b / "model" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert wa[k].dtype == wb[k].dtype and torch.equal(wa[k], wb[k]), k  # bit for bit
    ja, jb = (json.loads((d / "model" / "model.json").read_text()) for d in (a, b))
    ja.pop("seconds"), jb.pop("seconds")
    assert ja == jb  # fingerprint, accuracies and every history row


@pytest.mark.slow
def test_two_processes_with_the_same_seed_give_the_same_model_and_figures(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    _train(a)
    _train(b)
    _assert_same_model(a, b)
    reports = []
    for out in (a, b):
        assert (
            main(
                [
                    "sweep",
                    "--dataset",
                    "digits",
                    "--out",
                    str(out),
                    "--taps",
                    "relu1",
                    "--mint-epochs",
                    "2",
                    "--bootstrap",
                    "20",
                    "--seed",
                    "3",
                    "--quiet",
                ]
            )
            == 0
        )
        reports.append(json.loads((out / "report.json").read_text()))
    capsys.readouterr()
    ra, rb = reports
    assert ra["model"] == rb["model"] and ra["dataset"] == rb["dataset"]
    figures = [[(r["method"], r.get("layer"), r["metrics"], r.get("ci95")) for r in rep["results"]] for rep in reports]
    assert figures[0] and figures[0] == figures[1]


@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    _train(full)
    killed.mkdir()
    p = _cli([*TRAIN, "--out", str(killed)], tmp_path)
    ckpt = killed / "model" / "checkpoint.pt"
    deadline = time.monotonic() + 300
    while not ckpt.is_file() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    os.kill(p.pid, signal.SIGKILL)  # right after epoch 1's checkpoint appeared
    p.communicate()
    assert p.returncode == -signal.SIGKILL
    done = torch.load(ckpt, map_location="cpu", weights_only=True)["epoch"]
    assert 1 <= done < EPOCHS and not (killed / "model" / "model.json").exists()
    _train(killed, "--resume")
    _assert_same_model(full, killed)
    assert not list((killed / "model").glob(".*.tmp"))  # what the killed writer left is gone

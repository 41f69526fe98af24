"""The command line: help with examples, and bad input -> one line, exit 2, nothing partial."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest

from mintaudit.cli import build_parser, main

VERBS = ["demo", "audit", "train", "layers", "extract", "fit", "sweep", "attack", "active", "report"]


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_help_with_an_example(verb, capsys):
    with pytest.raises(SystemExit) as e:
        main([verb, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "Examples:" in out and f"mintaudit {verb}" in out


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "mintaudit.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "mintaudit 0.1.0" in out.stdout


def _error(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mintaudit: error: ") and "Traceback" not in err
    return lines[0]


def _npz(tmp_path, n=60, size=8):
    rng = np.random.default_rng(0)
    path = tmp_path / "data.npz"
    np.savez(path, x=rng.integers(0, 256, (n, size, size), dtype=np.uint8), y=np.arange(n) % 3)
    return f"npz:{path}"


@pytest.fixture
def trained(tmp_path, capsys):
    """A tiny-cnn trained for one epoch on a 100-sample npz data set, in a work directory (20 a side: mintaudit.sizes)."""
    data = _npz(tmp_path, n=100)
    out = tmp_path / "run"
    args = [
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
    assert main(args) == 0, capsys.readouterr().err
    capsys.readouterr()
    return data, out


def test_unknown_layer(trained, capsys):
    data, out = trained
    line = _error(
        capsys, ["fit", "--dataset", data, "--out", str(out), "--layer", "relu", "--quiet", "--allow-weak-model"]
    )
    assert "no layer 'relu'" in line and "Closest: relu" in line and "relu1" in line
    assert not (out / "report.json").exists() and not (out / "detectors").exists()


def test_sizes_larger_than_the_data_and_empty_split(tmp_path, capsys):
    data = _npz(tmp_path)
    line = _error(
        capsys,
        [
            "train",
            "--dataset",
            data,
            "--members",
            "50",
            "--external",
            "50",
            "--test",
            "50",
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert "has 60 samples" in line and "ask for fewer" in line
    _error(
        capsys,
        ["train", "--dataset", data, "--members", "0", "--external", "5", "--test", "5", "--out", str(tmp_path / "r")],
    )
    assert not (tmp_path / "r" / "splits.json").exists()


def test_missing_dataset_says_where_it_looked(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MINTAUDIT_DATA", str(tmp_path))
    line = _error(capsys, ["layers", "objcls-cnn", "--dataset", "cifar10"])
    assert str(tmp_path) in line


def test_overlapping_splits_refused(trained, capsys):
    data, out = trained
    splits = json.loads((out / "splits.json").read_text())
    splits["test"][0] = splits["members"][0]
    (out / "bad.json").write_text(json.dumps(splits))
    line = _error(capsys, ["sweep", "--dataset", data, "--out", str(out), "--splits", str(out / "bad.json"), "--quiet"])
    assert "leaked" in line or "share" in line
    assert "OUT/splits.json" in line and "--members" in line  # the CLI fix, not only a Python call


def test_weights_that_do_not_fit_and_pickle_as_safetensors(trained, tmp_path, capsys):
    data, out = trained
    line = _error(
        capsys,
        [
            "sweep",
            "--dataset",
            data,
            "--out",
            str(tmp_path / "x"),
            "--model",
            "objcls-cnn",
            "--weights",
            str(out / "model" / "model.safetensors"),
            "--splits",
            str(out / "splits.json"),
            "--quiet",
        ],
    )
    assert "do not fit the architecture" in line
    fake = tmp_path / "evil.safetensors"
    fake.write_bytes(pickle.dumps({"w": 1}))
    line = _error(
        capsys,
        [
            "sweep",
            "--dataset",
            data,
            "--out",
            str(tmp_path / "y"),
            "--model",
            "tiny-cnn",
            "--weights",
            str(fake),
            "--splits",
            str(out / "splits.json"),
            "--quiet",
        ],
    )
    assert "pickle" in line
    assert not (tmp_path / "y" / "report.json").exists()


def test_nan_weights_give_a_signal_error_and_no_cache(trained, tmp_path, capsys):
    import torch
    from safetensors.torch import load_file, save_file

    data, out = trained
    state = load_file(str(out / "model" / "model.safetensors"))
    state["conv1.weight"][0, 0, 0, 0] = float("nan")
    save_file(state, str(tmp_path / "nan.safetensors"))
    line = _error(
        capsys,
        [
            "extract",
            "--dataset",
            data,
            "--out",
            str(tmp_path / "z"),
            "--model",
            "tiny-cnn",
            "--weights",
            str(tmp_path / "nan.safetensors"),
            "--taps",
            "relu1",
            "--splits",
            str(out / "splits.json"),
            "--quiet",
        ],
    )
    assert "NaN" in line
    assert not any((tmp_path / "z" / "cache").glob("*/manifest.json"))
    del torch


def test_truncated_idx_file(tmp_path, capsys):
    root = tmp_path / "mnist"
    root.mkdir()
    for name in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"):
        (root / name).write_bytes(
            b"\x00\x00\x08\x03" + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\x00" * 100
        )
    for name in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
        (root / name).write_bytes(b"\x00\x00\x08\x01" + (10).to_bytes(4, "big") + b"\x00" * 10)
    line = _error(capsys, ["layers", "objcls-cnn", "--dataset", "mnist", "--data-root", str(root)])
    assert "truncated" in line or "bytes" in line


def test_debug_shows_the_traceback(tmp_path):
    from mintaudit.errors import MintauditError

    with pytest.raises(MintauditError):
        main(["layers", "objcls-cnn", "--dataset", "nope-data", "--debug"])


def test_config_file_and_unknown_key(trained, tmp_path, capsys):
    data, out = trained
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"dataset: '{data}'\nlayer: relu2\nmint-epochs: 2\nbootstrap: 50\nallow-weak-model: true\n")
    assert main(["fit", "--config", str(cfg), "--out", str(out), "--quiet"]) == 0
    saved = json.loads((out / "fit.config.json").read_text())
    assert saved["layer"] == "relu2" and saved["mint_epochs"] == 2
    report = json.loads((out / "report.json").read_text())
    assert [r["layer"] for r in report["results"]] == ["relu2"]
    cfg.write_text("layre: relu2\n")
    line = _error(capsys, ["fit", "--config", str(cfg), "--out", str(out), "--layer", "relu2"])
    assert "unknown option(s) layre" in line and "did you mean layer?" in line


def test_layers_lists_index_name_type_shape(capsys):
    assert main(["layers", "objcls-cnn", "--dataset", "digits"]) == 0
    out = capsys.readouterr().out
    assert "block1.relu1" in out and "ReLU" in out and "32x8x8" in out and "fc_relu" in out


def test_parser_lists_all_verbs():
    text = build_parser().format_help()
    for verb in VERBS:
        assert verb in text


def test_attack_verb_adds_rows_and_replaces_its_own(trained, capsys):
    data, out = trained
    args = [
        "attack",
        "--dataset",
        data,
        "--out",
        str(out),
        "--methods",
        "loss,entropy,rmia",
        "--reference",
        "2",
        "--reference-epochs",
        "1",
        "--bootstrap",
        "50",
        "--quiet",
        "--allow-weak-model",
    ]
    assert main(args) == 0, capsys.readouterr().err
    assert main(args[:6] + ["loss"] + args[7:]) == 0
    report = json.loads((out / "report.json").read_text())
    assert sorted(r["attack"] for r in report["results"]) == ["entropy", "loss", "rmia"]
    assert report["config"]["attacks"]["n_reference"] == 2
    line = _error(capsys, args[:6] + ["loss,lyra"] + args[7:])
    assert "unknown attack(s) lyra" in line


def test_fit_refuses_a_glob_matching_several_layers(trained, capsys):
    data, out = trained
    line = _error(
        capsys, ["fit", "--dataset", data, "--out", str(out), "--layer", "relu*", "--quiet", "--allow-weak-model"]
    )
    assert "matches 2 layers" in line

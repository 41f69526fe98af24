"""The audited model's preprocessing: one value applied in one place, recorded where the model goes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mintaudit.data import ImageDataset
from mintaudit.errors import ConfigError
from mintaudit.preprocess import DEFAULT_PREPROCESS, Preprocess


def _pool(n=12, c=1, size=6):
    rng = np.random.default_rng(0)
    return ImageDataset("p", rng.integers(0, 256, (n, size, size, c), dtype=np.uint8), np.arange(n) % 3, 3)


def test_default_is_exactly_the_old_x_over_127_5_minus_1():
    ds = _pool()
    old = torch.from_numpy(ds.images).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    assert torch.equal(ds.batch(np.arange(len(ds))), old)  # bit for bit: no result of before moves
    assert DEFAULT_PREPROCESS.is_default and ds.preprocess is DEFAULT_PREPROCESS


def test_mean_std_per_channel_and_grey_to_rgb():
    ds = _pool(c=3)
    p = Preprocess.parse("0.1,0.2,0.3", "0.5,0.25,1")
    got = ds.with_preprocess(p).batch(np.arange(4))
    x = torch.from_numpy(ds.images[:4]).permute(0, 3, 1, 2).double() / 255
    want = (x - torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)) / torch.tensor([0.5, 0.25, 1.0]).view(1, 3, 1, 1)
    assert torch.allclose(got.double(), want, atol=1e-6)
    grey = _pool(c=1).with_preprocess(Preprocess.parse("0", "1", grey_to_rgb=True))
    assert grey.image_shape == (3, 6, 6)
    b = grey.batch(np.arange(2))
    assert b.shape == (2, 3, 6, 6) and torch.equal(b[:, 0], b[:, 2])
    assert torch.allclose(b[:, 0], torch.from_numpy(grey.images[:2, :, :, 0]).float() / 255)


def test_the_view_keeps_the_pool_and_its_fingerprint():
    ds = _pool()
    view = ds.with_preprocess(Preprocess(mean=0.0, std=1.0))
    assert view.images is ds.images and view.fingerprint() == ds.fingerprint()
    assert Preprocess.from_dict(view.preprocess.to_dict()) == view.preprocess
    assert Preprocess.from_dict(None) == DEFAULT_PREPROCESS  # files from before the record


@pytest.mark.parametrize(
    "mean, std, needle",
    [
        ("0.5,0.5", "0.5", "one value or three"),
        ("0.5", "0", "must be > 0"),
        ("0.5", "-1", "must be > 0"),
        ("abc", "0.5", "takes one number or one per channel"),
        ("nan", "0.5", "must be finite"),
        ([0.1, True], "0.5", "takes one number or one per channel"),
    ],
)
def test_bad_mean_std(mean, std, needle):
    with pytest.raises(ConfigError, match=needle):
        Preprocess.parse(mean, std)


def test_three_values_for_a_grey_model_are_refused():
    with pytest.raises(ConfigError, match="model sees 1 channel"):
        _pool(c=1).with_preprocess(Preprocess.parse("0.1,0.2,0.3", "1"))


def _npz(tmp_path, n=60, size=8):
    # learnable: the class sets the brightness, so a tiny model passes the sanity gate after a few epochs
    rng = np.random.default_rng(0)
    y = np.arange(n) % 3
    x = (rng.integers(0, 40, (n, size, size)) + 100 * y[:, None, None]).astype(np.uint8)
    path = tmp_path / "data.npz"
    np.savez(path, x=x, y=y)
    return f"npz:{path}"


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--mean", "0.1,0.2"], "one value or three"),
        (["--std", "0"], "--std must be > 0"),
        (["--mean", "x"], "--mean takes one number"),
        (["--mean", "0.1,0.2,0.3"], "model sees 1 channel"),
    ],
)
def test_bad_preprocessing_options_are_one_line(tmp_path, refused, argv, needle):
    line = refused(
        ["train", "--dataset", _npz(tmp_path), "--model", "tiny-cnn", "--epochs", "1", "--out", "run", *argv]
    )
    assert needle in line


def test_preprocessing_is_recorded_and_reused_and_enters_the_cache_key(tmp_path, capsys):
    from mintaudit.cli import main

    data, out = _npz(tmp_path, n=90), tmp_path / "run"  # a sweep needs 20 a side (mintaudit.sizes)
    common = ["--dataset", data, "--members", "40", "--external", "20", "--test", "20", "--quiet"]
    assert (
        main(
            [
                "train",
                *common,
                "--model",
                "tiny-cnn",
                "--epochs",
                "30",
                "--lr",
                "0.01",
                "--mean",
                "0",
                "--std",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    ), capsys.readouterr().err
    info = json.loads((out / "model" / "model.json").read_text())
    assert info["preprocess"] == {"mean": [0.0], "std": [1.0], "grey_to_rgb": False}
    # later verbs read the model through the recorded preprocessing without being told
    assert (
        main(
            [
                "sweep",
                *common[:2],
                "--out",
                str(out),
                "--taps",
                "relu2",
                "--mint-epochs",
                "2",
                "--bootstrap",
                "10",
                "--quiet",
            ]
        )
        == 0
    ), capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report["model"]["preprocess"] == info["preprocess"]
    assert report["model"]["train_accuracy"] == pytest.approx(info["train_accuracy"])
    manifests = [json.loads(p.read_text()) for p in (out / "cache").glob("*/manifest.json")]
    assert manifests and all(m["preprocess"] == info["preprocess"] for m in manifests)
    # another preprocessing for that model is refused, naming both
    capsys.readouterr()
    assert main(["sweep", *common[:2], "--out", str(out), "--taps", "relu2", "--mean", "0.5", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--mean 0.5 contradicts the audit record" in err and "(--mean 0 there)" in err


def test_cache_key_depends_on_the_preprocessing(tmp_path, tiny_model, toy_dataset):
    from mintaudit.signals import extract_signals

    idx = np.arange(10)
    a = extract_signals(tiny_model, toy_dataset, idx, ["relu1"], tmp_path, show_progress=False)
    b = extract_signals(
        tiny_model,
        toy_dataset.with_preprocess(Preprocess(mean=0.0, std=1.0)),
        idx,
        ["relu1"],
        tmp_path,
        show_progress=False,
    )
    assert a.path != b.path
    assert not np.array_equal(a.activations("relu1"), b.activations("relu1"))
    assert json.loads((b.path / "manifest.json").read_text())["preprocess"]["std"] == [1.0]


def test_pool_batches_have_plain_layout_and_score_like_a_dataloaders_tensors():
    """A grey batch permuted from NHWC keeps a channel stride of 1, which sends CPU convolutions down another
    kernel; the pool's batches are plain NCHW, so the same samples score alike from a pool and from tensors."""
    from torch import nn

    ds = _pool(n=64, size=12)
    view = ds.with_preprocess(Preprocess(mean=0.0, std=1.0))
    x = view.batch(np.arange(64))
    assert x.stride() == (144, 144, 12, 1)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 16, 3), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 8, 3)).eval()
    theirs = torch.stack([torch.from_numpy(ds.images[i]).permute(2, 0, 1).float() / 255 for i in range(64)])
    with torch.no_grad():
        assert torch.equal(net(x), net(theirs))

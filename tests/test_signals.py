import numpy as np
import pytest
import torch
from torch import nn

from mintaudit.errors import SignalError
from mintaudit.models import model_fingerprint
from mintaudit.signals import SignalCache, extract_signals, output_features
from mintaudit.taps import Recorder


def test_cache_matches_direct_recording(toy_dataset, tiny_model, tmp_path):
    from mintaudit._tensor import to_tensor

    idx = np.array([5, 3, 90, 17])
    cache = extract_signals(tiny_model, toy_dataset, idx, ["relu1", "fc"], tmp_path, batch_size=3)
    x = to_tensor(toy_dataset.images[idx])
    with torch.no_grad(), Recorder(tiny_model, ["relu1", "fc"]) as rec:
        logits = tiny_model(x)
        acts = rec.pop()
    assert np.allclose(cache.activations("relu1"), acts["relu1"].numpy(), atol=1e-6)
    assert np.allclose(cache.activations("fc"), acts["fc"].numpy(), atol=1e-6)
    out = cache.outputs()
    assert np.allclose(out["logits"], logits.numpy(), atol=1e-6)
    y = torch.from_numpy(toy_dataset.labels[idx])
    assert np.allclose(out["loss"], nn.functional.cross_entropy(logits, y, reduction="none").numpy(), atol=1e-5)
    assert list(cache.indices) == list(idx)
    assert list(cache.rows(np.array([90, 5]))) == [2, 0]
    assert isinstance(cache.activations("relu1"), np.memmap)


def test_cache_reused_only_when_everything_matches(toy_dataset, tiny_model, tmp_path):
    a = extract_signals(tiny_model, toy_dataset, np.arange(10), ["relu1"], tmp_path)
    mtime = (a.path / "manifest.json").stat().st_mtime_ns
    b = extract_signals(tiny_model, toy_dataset, np.arange(10), ["relu1"], tmp_path)
    assert b.path == a.path and (b.path / "manifest.json").stat().st_mtime_ns == mtime
    assert extract_signals(tiny_model, toy_dataset, np.arange(11), ["relu1"], tmp_path).path != a.path
    assert extract_signals(tiny_model, toy_dataset, np.arange(10), ["relu2"], tmp_path).path != a.path
    with torch.no_grad():
        tiny_model.fc.bias.add_(1.0)
    assert extract_signals(tiny_model, toy_dataset, np.arange(10), ["relu1"], tmp_path).path != a.path


def test_model_unchanged_and_float16(toy_dataset, tiny_model, tmp_path):
    tiny_model.train()
    fp = model_fingerprint(tiny_model)
    cache = extract_signals(tiny_model, toy_dataset, np.arange(20), ["relu2"], tmp_path, dtype="float16")
    assert cache.activations("relu2").dtype == np.float16
    assert tiny_model.training and model_fingerprint(tiny_model) == fp
    assert sum(len(m._forward_hooks) for m in tiny_model.modules()) == 0


def test_nan_activations_refused_and_no_partial_cache(toy_dataset, tiny_model, tmp_path):
    with torch.no_grad():
        tiny_model.conv1.weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(SignalError, match="NaN or infinite"):
        extract_signals(tiny_model, toy_dataset, np.arange(10), ["relu1"], tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_output_features():
    logits = np.array([[10.0, 0.0], [0.0, 0.0]], np.float32)
    f = output_features(logits, np.array([0, 1]))
    assert f.shape == (2, 5)
    assert f[0, 0] < 1e-3 and abs(f[1, 0] - np.log(2)) < 1e-5  # loss
    assert abs(f[1, 1]) < 1e-5  # logit-scaled confidence of p = 0.5 is 0
    assert f[0, 4] == 1.0


def test_open_incomplete_cache_refused(tmp_path):
    from mintaudit.errors import CacheError

    (tmp_path / "x").mkdir()
    with pytest.raises(CacheError, match="extract again"):
        SignalCache.open(tmp_path / "x")

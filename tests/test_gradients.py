"""gMINT: per-sample gradients (batched == plain loop), the gradient cache, budgets, the sweep, the CLI."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from torch import nn

from mintaudit.data import make_splits
from mintaudit.detectors import DetectorConfig
from mintaudit.errors import CacheError, ConfigError, LayerNotFoundError, SignalError
from mintaudit.gradient import GradientSweepConfig, budget_split, parse_budgets, resolve_setups, run_gradient_sweep
from mintaudit.passive import SweepConfig, loss_baseline, passive_split
from mintaudit.signals import (
    REDUCTIONS,
    extract_gradients,
    extract_signals,
    gradient_layers,
    gradient_vectors,
    per_sample_gradients,
    reduce_per_filter,
    weighted_layers,
)

LAYERS = ["conv1", "conv2", "fc"]  # the "combined" setup of the small CNN


class SmallCNN(nn.Module):
    """conv-BN-ReLU-pool-dropout, conv-ReLU, global average, linear: BN buffers and dropout exercise eval mode."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.relu1 = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout(0.5)
        self.conv2 = nn.Conv2d(4, 6, 3)
        self.relu2 = nn.ReLU()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.pool(self.relu1(self.bn1(self.conv1(x)))))
        return self.fc(self.gap(self.relu2(self.conv2(x))).flatten(1))


@pytest.fixture
def small_cnn() -> SmallCNN:
    torch.manual_seed(0)
    m = SmallCNN()
    with torch.no_grad():  # running statistics unlike a fresh BN, so eval and train modes differ
        m.bn1.running_mean.uniform_(-0.5, 0.5)
        m.bn1.running_var.uniform_(0.5, 2.0)
        m.bn1.weight.uniform_(0.5, 1.5)
        m.bn1.num_batches_tracked.fill_(7)
    return m.eval()


def _loop_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor, layers: list[str]) -> dict[str, np.ndarray]:
    """The reference: plain autograd, one sample at a time, on a copy of the model in eval mode."""
    ref = copy.deepcopy(model).eval()
    params = dict(ref.named_parameters())
    out: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    for i in range(len(x)):
        loss = nn.functional.cross_entropy(ref(x[i : i + 1]), y[i : i + 1])
        grads = torch.autograd.grad(loss, [params[f"{layer}.weight"] for layer in layers])
        for layer, g in zip(layers, grads):
            out[layer].append(g.double().numpy())
    return {layer: np.stack(gs) for layer, gs in out.items()}


def _reduce_reference(g: np.ndarray, reduction: str) -> np.ndarray:
    flat = g.reshape(g.shape[0], g.shape[1], -1)
    return {
        "mean": lambda: flat.mean(-1),
        "abs-mean": lambda: np.abs(flat).mean(-1),
        "l2": lambda: np.sqrt((flat**2).sum(-1)),
        "std": lambda: flat.std(-1),
    }[reduction]()


def _batch(toy_dataset, idx):
    from mintaudit._tensor import to_tensor

    return to_tensor(toy_dataset.images[idx]), torch.from_numpy(toy_dataset.labels[idx])


def test_batched_per_sample_gradients_equal_the_loop(small_cnn, toy_dataset):
    idx = np.arange(0, 40, 3)
    x, y = _batch(toy_dataset, idx)
    grads, logits = per_sample_gradients(small_cnn, x, y, LAYERS)
    ref = _loop_gradients(small_cnn, x, y, LAYERS)
    for layer in LAYERS:
        assert tuple(grads[layer].shape) == (len(idx), *getattr(small_cnn, layer).weight.shape)
        np.testing.assert_allclose(grads[layer].numpy(), ref[layer], rtol=0, atol=1e-5)
    with torch.no_grad():
        np.testing.assert_allclose(logits.numpy(), small_cnn(x).numpy(), atol=1e-5)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cached_reduced_gradients_equal_the_loop(small_cnn, toy_dataset, tmp_path, reduction):
    idx = np.array([5, 3, 90, 17, 44, 61, 2, 100, 8, 71, 33])
    cache = extract_gradients(small_cnn, toy_dataset, idx, LAYERS, tmp_path, reductions=[reduction], batch_size=4)
    ref = _loop_gradients(small_cnn, *_batch(toy_dataset, idx), LAYERS)
    assert cache.signal == "gradients" and cache.manifest["reductions"] == [reduction]
    for layer in LAYERS:
        got = cache.gradients(layer)
        assert isinstance(got, np.memmap) and got.dtype == np.float32
        assert got.shape == (len(idx), getattr(small_cnn, layer).weight.shape[0])
        np.testing.assert_allclose(got, _reduce_reference(ref[layer], reduction), rtol=0, atol=1e-5)
    out = cache.outputs()
    assert list(cache.indices) == list(idx) and list(out["labels"]) == list(toy_dataset.labels[idx])


def test_several_reductions_are_concatenated_reduction_major(small_cnn, toy_dataset, tmp_path, monkeypatch):
    import mintaudit.signals.gradients as gradients_module

    idx = np.arange(6)
    cache = extract_gradients(small_cnn, toy_dataset, idx, ["conv2"], tmp_path, reductions="mean,std")
    ref = _loop_gradients(small_cnn, *_batch(toy_dataset, idx), ["conv2"])["conv2"]
    expected = np.concatenate([_reduce_reference(ref, "mean"), _reduce_reference(ref, "std")], 1)
    np.testing.assert_allclose(cache.gradients("conv2"), expected, rtol=0, atol=1e-5)
    # a memory cap smaller than a batch's raw gradients: vmap runs in chunks, same numbers
    monkeypatch.setattr(gradients_module, "_RAW_BYTES", 2 * 4 * small_cnn.conv2.weight.numel())
    chunked = extract_gradients(small_cnn, toy_dataset, idx, ["conv2"], tmp_path / "chunked", reductions="mean,std")
    np.testing.assert_allclose(chunked.gradients("conv2"), expected, rtol=0, atol=1e-5)
    g = torch.randn(2, 6, 4, 3, 3)
    assert reduce_per_filter(g, ["l2", "abs-mean"]).shape == (2, 12)
    vectors, _ = gradient_vectors(small_cnn, *_batch(toy_dataset, idx), ["conv2"], "mean,std")
    np.testing.assert_allclose(vectors["conv2"].numpy(), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("start_training", [False, True])
def test_model_is_left_exactly_as_it_was(small_cnn, toy_dataset, tmp_path, start_training):
    small_cnn.train(start_training)
    params = {k: (id(p), p.detach().clone(), p.requires_grad) for k, p in small_cnn.named_parameters()}
    buffers = {k: b.detach().clone() for k, b in small_cnn.named_buffers()}
    modes = {k: m.training for k, m in small_cnn.named_modules()}
    x, y = _batch(toy_dataset, np.arange(8))
    per_sample_gradients(small_cnn, x, y, LAYERS)
    gradient_vectors(small_cnn, x, y, LAYERS, REDUCTIONS)
    extract_gradients(small_cnn, toy_dataset, np.arange(12), LAYERS, tmp_path, reductions=REDUCTIONS, batch_size=5)
    for k, p in small_cnn.named_parameters():
        assert id(p) == params[k][0] and torch.equal(p, params[k][1]) and p.requires_grad == params[k][2]
        assert p.grad is None
    for k, b in small_cnn.named_buffers():
        assert torch.equal(b, buffers[k]), k
    assert {k: m.training for k, m in small_cnn.named_modules()} == modes
    assert all(not m._forward_hooks and not m._backward_hooks for m in small_cnn.modules())


def test_the_cache_is_reused_and_keyed_by_layers_and_reductions(small_cnn, toy_dataset, tmp_path):
    idx = np.arange(10)
    a = extract_gradients(small_cnn, toy_dataset, idx, ["conv1"], tmp_path)
    mtime = (a.path / "manifest.json").stat().st_mtime_ns
    b = extract_gradients(small_cnn, toy_dataset, idx, ["conv1"], tmp_path)
    assert b.path == a.path and (b.path / "manifest.json").stat().st_mtime_ns == mtime
    assert extract_gradients(small_cnn, toy_dataset, idx, ["conv1"], tmp_path, reductions="l2").path != a.path
    assert extract_gradients(small_cnn, toy_dataset, idx, ["conv1"], tmp_path, reductions="mean,l2").path != a.path
    assert extract_gradients(small_cnn, toy_dataset, idx, ["conv2"], tmp_path).path != a.path
    acts = extract_signals(small_cnn, toy_dataset, idx, ["conv1"], tmp_path)
    assert acts.path != a.path and acts.signal == "activations"
    with pytest.raises(CacheError, match="holds gradients, not activations"):
        a.activations("conv1")
    with pytest.raises(CacheError, match="holds activations, not gradients"):
        acts.gradients("conv1")
    # the same forward pass gives the same output signals in both kinds of cache
    np.testing.assert_allclose(a.outputs()["loss"], acts.outputs()["loss"], atol=1e-5)


def test_nan_gradients_refused_and_no_partial_cache(small_cnn, toy_dataset, tmp_path):
    with torch.no_grad():
        small_cnn.conv2.weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(SignalError, match="NaN or infinite gradients"):
        extract_gradients(small_cnn, toy_dataset, np.arange(10), ["conv1"], tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_setups_and_layer_selection(small_cnn):
    from mintaudit.models.zoo import ObjClsCNN

    big = ObjClsCNN(1, 10, 28)
    assert weighted_layers(small_cnn) == LAYERS
    presets = {s: gradient_layers(big, s) for s in ("entry", "middle", "output", "combined")}
    assert presets == {
        "entry": ["block1.conv1"],
        "middle": ["block2.conv2"],
        "output": ["head"],
        "combined": ["block1.conv1", "block2.conv2", "head"],
    }
    assert gradient_layers(big, "block1.*") == ["block1.conv1", "block1.conv2"]  # a glob keeps weighted layers
    assert gradient_layers(small_cnn, "fc,0") == ["fc", "conv1"]
    with pytest.raises(LayerNotFoundError, match="owns no weight matrix or kernel"):
        gradient_layers(small_cnn, "bn1")
    with pytest.raises(ConfigError, match="keeps no layer"):
        gradient_layers(small_cnn, "relu*")
    with pytest.raises(LayerNotFoundError, match="owns no weight"):
        extract_gradients(small_cnn, None, np.arange(2), ["relu1"], "unused")  # type: ignore[arg-type]
    assert [k for k, _, _ in resolve_setups(small_cnn, "entry, combined")] == ["entry", "combined"]
    with pytest.raises(ConfigError, match="unknown gMINT setup 'entyr'"):
        resolve_setups(small_cnn, "entyr")


def test_options_are_validated():
    assert parse_budgets("1,0.1,0.01") == [1.0, 0.1, 0.01] and parse_budgets("100%,2.5%") == [1.0, 0.025]
    for bad, words in (
        ("0", "(0, 1]"),
        ("1.5", "(0, 1]"),
        ("ten", "not a number"),
        ("0.1,0.1", "twice"),
        ("", "at least one"),
    ):
        with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace("]", r"\]")):
            parse_budgets(bad)
    with pytest.raises(ConfigError, match="unknown gradient reduction 'median'"):
        GradientSweepConfig(reductions="mean,median")
    with pytest.raises(ConfigError, match="mlp detector"):
        GradientSweepConfig(detector=DetectorConfig(kind="cnn"))
    with pytest.raises(ConfigError, match="protocols"):
        GradientSweepConfig(protocols="heldout")
    assert GradientSweepConfig(protocols="training-members,heldout-members").protocols == (
        "heldout-members",
        "training-members",
    )


def test_budgets_subsample_only_the_training_side(toy_dataset):
    splits = make_splits(toy_dataset, members=40, external=40, test=30, seed=0)
    split = passive_split(splits, known_fraction=0.5, seed=0)
    labels = toy_dataset.labels
    whole = budget_split(split, labels, 1.0)
    assert np.array_equal(whole.known_members, split.known_members) and np.array_equal(whole.external, split.external)
    subsets = {b: budget_split(split, labels, b, min_per_class=2, seed=0) for b in (0.5, 0.1)}
    for b, sub in subsets.items():
        assert np.array_equal(sub.heldout_members, split.heldout_members) and np.array_equal(sub.test, split.test)
        for part, full in ((sub.known_members, split.known_members), (sub.external, split.external)):
            assert set(part) <= set(full) and len(part) < len(full)
            for c in np.unique(labels[full]):  # stratified, at least min_per_class of every class
                n_c = int((labels[full] == c).sum())
                assert int((labels[part] == c).sum()) == max(min(2, n_c), round(b * n_c))
    assert set(subsets[0.1].known_members) <= set(subsets[0.5].known_members)  # nested
    again = budget_split(split, labels, 0.5, min_per_class=2, seed=0)
    assert np.array_equal(again.external, subsets[0.5].external)
    assert not np.array_equal(budget_split(split, labels, 0.5, min_per_class=2, seed=1).external, again.external)


def test_sweep_results_and_the_same_loss_baseline_as_passive_mint(tiny_model, toy_dataset, tmp_path):
    splits = make_splits(toy_dataset, members=30, external=30, test=30, seed=0)
    cfg = GradientSweepConfig(
        detector=DetectorConfig(epochs=2, hidden=16), n_bootstrap=20, protocols=("heldout-members", "training-members")
    )
    results = [
        r.to_dict()
        for r in run_gradient_sweep(
            tiny_model, toy_dataset, splits, ["entry", "combined"], [1.0, 0.5], tmp_path, cfg, show_progress=False
        )
    ]
    gm = [r for r in results if r["method"] == "gmint"]
    assert [(r["label"], r["protocol"]) for r in gm][:2] == [
        ("Entry 100%", "heldout-members"),
        ("Entry 100%", "training-members"),
    ]
    assert [r["label"] for r in gm[::2]] == ["Entry 100%", "Entry 50%", "Combined 100%", "Combined 50%"]
    first = gm[0]
    assert {k: first[k] for k in ("signal", "layer", "setup", "budget", "reduction", "detector", "threshold")} == {
        "signal": "gradients",
        "layer": "conv1",
        "setup": "entry",
        "budget": 1.0,
        "reduction": "mean",
        "detector": "mlp",
        "threshold": 0.5,
    }
    assert gm[4]["layer"] == "conv1+conv2+fc" and gm[4]["fit"]["n_features"] == 8 + 16 + 3
    held = [r for r in gm if r["protocol"] == "heldout-members"]
    assert all(r["n_members"] == r["n_nonmembers"] == 15 for r in held)  # evaluation sets never budgeted
    assert gm[2]["fit"]["n_known_members"] < gm[0]["fit"]["n_known_members"] == 15
    loss = results[-1]
    assert loss["method"] == "loss"
    passive_cfg = SweepConfig(n_bootstrap=20)
    split = passive_split(splits, known_fraction=0.5, seed=0)
    acts = extract_signals(tiny_model, toy_dataset, np.unique(split.all_indices()), [], tmp_path / "acts")
    assert loss["metrics"] == loss_baseline(acts, split, passive_cfg).metrics


# ---- the command line --------------------------------------------------------------------------


def _npz(tmp_path, n=60, size=8):
    rng = np.random.default_rng(0)
    path = tmp_path / "data.npz"
    np.savez(path, x=rng.integers(0, 256, (n, size, size), dtype=np.uint8), y=np.arange(n) % 3)
    return f"npz:{path}"


def test_cli_sweep_gradients_end_to_end(tmp_path, capsys):
    from mintaudit.cli import main

    data, out = _npz(tmp_path, n=100), tmp_path / "run"  # 40 members: 20 a side (mintaudit.sizes)
    base = [
        "--dataset",
        data,
        "--out",
        str(out),
        "--quiet",
        "--mint-epochs",
        "2",
        "--bootstrap",
        "20",
        "--allow-weak-model",
    ]
    assert (
        main(
            [
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
        )
        == 0
    )
    assert main(["sweep", *base, "--taps", "relu2"]) == 0  # passive MINT first: gMINT joins its report
    assert (
        main(
            [
                "sweep",
                *base,
                "--signal",
                "gradients",
                "--setups",
                "entry,combined",
                "--budgets",
                "1,0.5",
                "--reductions",
                "mean,l2",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "Combined 50%" in printed and "gmint" in printed
    report = json.loads((out / "report.json").read_text())
    methods = [r["method"] for r in report["results"]]
    assert methods == ["passive-mint", "loss", "gmint", "gmint", "gmint", "gmint"]  # LOSS recomputed in its place
    gm = [r for r in report["results"] if r["method"] == "gmint"]
    assert [r["label"] for r in gm] == ["Entry 100%", "Entry 50%", "Combined 100%", "Combined 50%"]
    assert all(r["reduction"] == "mean+l2" and r["protocol"] == "heldout-members" for r in gm)
    assert report["config"]["gmint"]["setups"] == {"entry": ["conv1"], "combined": ["conv1", "conv2", "fc"]}
    assert (out / "report.html").read_text().count("Combined 50%") >= 1
    code = main(["sweep", *base, "--signal", "gradients", "--setups", "entyr"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "unknown gMINT setup 'entyr'" in err[0]
    code = main(["sweep", *base, "--signal", "gradients", "--fusion", "outputs"])
    assert code == 2 and "--setups" in capsys.readouterr().err

"""What a tap stores (full, pooled, grid:k) under a byte budget: stored values, the budget's picks, keys, detectors, bad input."""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings

import numpy as np
import pytest
import torch

from mintaudit.detectors import DetectorConfig
from mintaudit.errors import ConfigError
from mintaudit.models import ObjClsCNN, TinyCNN, model_fingerprint
from mintaudit.signals import (
    DEFAULT_TAP_BUDGET,
    choose_mode,
    extract_signals,
    parse_tap_budget,
    parse_tap_mode,
    reduce_activations,
    resolve_tap_modes,
)
from mintaudit.signals.reduce import probe_shapes
from mintaudit.taps import Recorder, select_layers

IDX = np.array([5, 3, 90, 17, 40, 41, 2])


def _raw(model, dataset, layer):
    """The tap's whole output for IDX, recorded directly (no reduction)."""
    x = dataset.batch(IDX)
    with torch.no_grad(), Recorder(model, [layer]) as rec:
        model(x)
        return rec.pop()[layer]


@pytest.mark.parametrize(
    "mode, shape", [("full", (8, 8, 8)), ("pooled", (16,)), ("grid:1", (8, 1, 1)), ("grid:3", (8, 3, 3))]
)
def test_every_mode_stores_the_public_reduction_of_the_conv_activations(mode, shape, tiny_model, toy_dataset, tmp_path):
    cache = extract_signals(
        tiny_model, toy_dataset, IDX, ["relu1"], tmp_path, batch_size=3, tap_mode=mode, show_progress=False
    )
    stored = np.asarray(cache.activations("relu1"))
    raw = _raw(tiny_model, toy_dataset, "relu1")
    assert stored.shape == (len(IDX), *shape)
    np.testing.assert_allclose(stored, reduce_activations(raw, mode).numpy(), rtol=1e-6, atol=1e-6)
    assert cache.tap_mode("relu1") == mode and cache.tap_modes == {"relu1": mode}
    # the reduction itself is what the modes say: [mean | max] per channel, k x k cell averages
    if mode == "pooled":
        np.testing.assert_allclose(stored, torch.cat([raw.mean((2, 3)), raw.amax((2, 3))], 1).numpy(), atol=1e-6)
    if mode == "grid:1":
        np.testing.assert_allclose(stored[:, :, 0, 0], raw.mean((2, 3)).numpy(), atol=1e-6)
    if mode == "grid:3":  # 8 px into 3 cells: rows [0, 3), [2, 6), [5, 8)
        np.testing.assert_allclose(stored[:, :, 1, 2], raw[:, :, 2:6, 5:8].mean((2, 3)).numpy(), atol=1e-6)


def test_pooled_vit_tokens_reduce_over_the_tokens(toy_dataset, tmp_path):
    from mintaudit.models.backbones import ViT

    torch.manual_seed(0)
    vit = ViT(1, 3, 8, patch_size=4, dim=16, depth=2, heads=2).eval()
    layer = "blocks.1"
    raw = _raw(vit, toy_dataset, layer)
    assert raw.dim() == 3  # (B, N, D)
    cache = extract_signals(vit, toy_dataset, IDX, [layer], tmp_path, tap_mode="pooled", show_progress=False)
    stored = np.asarray(cache.activations(layer))
    assert stored.shape == (len(IDX), 2 * raw.shape[2])
    np.testing.assert_allclose(stored, reduce_activations(raw, "pooled").numpy(), atol=1e-5)
    np.testing.assert_allclose(stored, torch.cat([raw.mean(1), raw.amax(1)], 1).numpy(), atol=1e-5)


def test_a_vector_tap_is_kept_full_and_says_so(tiny_model, toy_dataset, tmp_path):
    with pytest.warns(UserWarning, match="stored full"):
        cache = extract_signals(tiny_model, toy_dataset, IDX, ["fc"], tmp_path, tap_mode="pooled", show_progress=False)
    assert cache.tap_mode("fc") == "full"
    np.testing.assert_allclose(cache.activations("fc"), _raw(tiny_model, toy_dataset, "fc").numpy(), atol=1e-6)


def test_the_recorder_never_clones_a_reduced_map(tiny_model, monkeypatch):
    clones: list[tuple[int, ...]] = []
    real = torch.Tensor.clone

    def spy(self, *a, **k):
        clones.append(tuple(self.shape))
        return real(self, *a, **k)

    monkeypatch.setattr(torch.Tensor, "clone", spy)
    with (
        torch.no_grad(),
        Recorder(tiny_model, ["relu1", "relu2"], reduce={"relu1": lambda t: reduce_activations(t, "pooled")}) as rec,
    ):
        tiny_model(torch.zeros(2, 1, 8, 8))
        out = rec.pop()
    assert out["relu1"].shape == (2, 16) and out["relu2"].shape == (2, 16, 4, 4)
    assert clones == [(2, 16, 4, 4)]  # only the full tap was copied


@pytest.mark.parametrize(
    "shape, budget, itemsize, mode",
    [
        ((8, 8, 8), 2048, 4, "full"),  # 512 values fit exactly
        ((8, 8, 8), 2047, 4, "grid:7"),  # the largest k >= 2 that fits: 8 * 7 * 7 * 4 = 1568
        ((8, 8, 8), 1024, 2, "full"),  # float16 counts 2 bytes
        ((32, 64, 64), 64 * 1024, 4, "grid:22"),
        ((16, 4, 4), 128, 4, "pooled"),  # 2C values, no 2 x 2 grid (256 bytes)
        ((16, 4, 4), 100, 4, "grid:1"),  # C values
        ((17, 16), 4 * 16 * 4, 4, "grid:2"),  # tokens (N=17, D=16): 4 token groups
        ((17, 16), 2 * 16 * 4, 4, "pooled"),
        ((10,), 4, 4, "full"),  # a vector is always stored full
    ],
)
def test_the_budget_picks_full_then_grid_then_pooled_then_grid_1(shape, budget, itemsize, mode):
    assert choose_mode("t", shape, budget, itemsize) == mode


def test_a_budget_below_one_value_per_channel_is_refused():
    with pytest.raises(ConfigError, match=r"tap 'block1.relu1' has 32 channels.*--tap-budget 128 or more"):
        choose_mode("block1.relu1", (32, 28, 28), 127, 4)


@pytest.mark.parametrize(
    "text, value", [("65536", 65536), ("64K", 65536), ("64KiB", 65536), ("1m", 2**20), (4096, 4096)]
)
def test_budgets_read_plain_bytes_and_binary_suffixes(text, value):
    assert parse_tap_budget(text) == value


@pytest.mark.parametrize("model", ["objcls-cnn", "tiny-cnn"])
@pytest.mark.parametrize("px, channels", [(28, 1), (32, 3), (64, 3)])
def test_the_default_budget_keeps_every_zoo_cnn_tap_full(model, px, channels):
    net = (ObjClsCNN(channels, 10, px) if model == "objcls-cnn" else TinyCNN(channels, 10, px)).eval()
    layers = select_layers(net, "all")
    shapes = probe_shapes(net, torch.zeros(1, channels, px, px), layers)
    assert set(shapes) == set(layers)
    assert set(resolve_tap_modes(shapes).values()) == {"full"}
    assert set(resolve_tap_modes(shapes, None, DEFAULT_TAP_BUDGET, 2).values()) == {"full"}


def _old_key(model, dataset, indices, layers, dtype="float32"):
    """The cache key as it was computed before tap modes existed."""
    h = hashlib.sha256()
    for part in (model_fingerprint(model), dataset.fingerprint(), ",".join(layers), dtype):
        h.update(part.encode() + b"\0")
    h.update(np.ascontiguousarray(indices, dtype=np.int64).data)
    return h.hexdigest()[:16]


def test_full_caches_keep_their_old_key_and_manifest_and_reduced_ones_do_not(tiny_model, toy_dataset, tmp_path):
    full = extract_signals(tiny_model, toy_dataset, IDX, ["relu1", "relu2"], tmp_path, show_progress=False)
    assert full.path.name == _old_key(tiny_model, toy_dataset, IDX, ["relu1", "relu2"])
    manifest = json.loads((full.path / "manifest.json").read_text())
    assert "tap_modes" not in manifest and "tap_budget" not in manifest
    assert full.tap_modes == {"relu1": "full", "relu2": "full"}
    # an explicit full is the same cache; a reduced tap is another one, its mode in key and manifest
    assert (
        extract_signals(tiny_model, toy_dataset, IDX, ["relu1", "relu2"], tmp_path, tap_mode="full").path == full.path
    )
    grid = extract_signals(tiny_model, toy_dataset, IDX, ["relu1", "relu2"], tmp_path, tap_mode="relu1=grid:2")
    assert grid.path != full.path and grid.tap_modes == {"relu1": "grid:2", "relu2": "full"}
    assert json.loads((grid.path / "manifest.json").read_text())["tap_modes"] == {"relu1": "grid:2"}
    small = extract_signals(tiny_model, toy_dataset, IDX, ["relu1", "relu2"], tmp_path, tap_budget=200)
    assert small.tap_modes == {"relu1": "grid:2", "relu2": "pooled"} and small.path not in (full.path, grid.path)


def _split():
    from mintaudit.data.splits import PassiveSplit

    ids = np.arange(120)
    return PassiveSplit(known_members=ids[:30], heldout_members=ids[30:60], external=ids[60:90], test=ids[90:])


def test_the_mlp_fits_a_pooled_tap_and_the_cnn_a_grid_tap(tiny_model, toy_dataset, tmp_path):
    from mintaudit.passive import SweepConfig, audit_tap

    split = _split()
    ids = np.arange(120)
    cache = extract_signals(
        tiny_model, toy_dataset, ids, ["relu1", "relu2"], tmp_path, tap_mode="relu1=pooled,relu2=grid:2"
    )
    cfg = SweepConfig(detector=DetectorConfig(epochs=1), n_bootstrap=0)
    pooled, det = audit_tap(cache, split, "relu1", cfg)
    assert pooled.detector == "mlp" and pooled.to_dict()["tap_mode"] == "pooled" and det.input_shape_ == (16,)
    grid, det = audit_tap(cache, split, "relu2", cfg)
    assert grid.detector == "cnn" and grid.to_dict()["tap_mode"] == "grid:2" and det.input_shape_ == (16, 2, 2)
    mlp_grid, det = audit_tap(
        cache, split, "relu2", SweepConfig(detector=DetectorConfig(kind="mlp", epochs=1), n_bootstrap=0)
    )
    assert mlp_grid.detector == "mlp" and det.mean_.shape == (64,)  # the grid, flattened
    with pytest.raises(ConfigError, match="--detector mlp.*--tap-mode grid:k"):
        audit_tap(cache, split, "relu1", SweepConfig(detector=DetectorConfig(kind="cnn", epochs=1), n_bootstrap=0))
    full = extract_signals(tiny_model, toy_dataset, ids, ["relu1"], tmp_path)
    assert "tap_mode" not in audit_tap(full, split, "relu1", cfg)[0].to_dict()


# ---------------------------------------------------------------------------------------------
# the command line


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A work directory with splits and a 1-epoch tiny-cnn, on a 120-image 8x8 npz pool."""
    from mintaudit.cli import main

    root = tmp_path_factory.mktemp("modes")
    rng = np.random.default_rng(0)
    np.savez(root / "d.npz", images=rng.integers(0, 256, (120, 8, 8, 1), dtype=np.uint8), labels=np.arange(120) % 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert (
            main(
                [
                    "train",
                    "--dataset",
                    f"npz:{root / 'd.npz'}",
                    "--members",
                    "40",
                    "--external",
                    "40",
                    "--test",
                    "40",
                    "--model",
                    "tiny-cnn",
                    "--epochs",
                    "1",
                    "--out",
                    str(root / "run"),
                    "--quiet",
                ]
            )
            == 0
        )
    return root


def _copy(workdir, tmp_path):
    shutil.copy(workdir / "d.npz", tmp_path / "d.npz")
    shutil.copytree(workdir / "run", tmp_path / "run")
    return [
        "--dataset",
        "npz:d.npz",
        "--out",
        "run",
        "--allow-weak-model",
        "--quiet",
        "--mint-epochs",
        "1",
        "--bootstrap",
        "0",
    ]


@pytest.mark.parametrize(
    "argv, needle",
    [
        (
            ["--tap-budget", "8"],
            "tap 'relu1' has 8 channels: a --tap-budget of 8 bytes holds less than one value per "
            "channel; give --tap-budget 32 or more",
        ),
        (["--tap-budget", "12Q"], "--tap-budget must be a whole number of bytes"),
        (["--tap-budget", "0"], "--tap-budget must be at least 1 byte"),
        (["--tap-mode", "grid:0"], "grid:K needs K >= 1"),
        (["--tap-mode", "grid:x"], "is not grid:K with K a whole number"),
        (["--tap-mode", "maxpool"], "unknown tap mode 'maxpool'; use full, pooled"),
        (
            ["--taps", "relu1", "--tap-mode", "relu2=pooled"],
            "--tap-mode names 'relu2', which is not a selected tap (relu1)",
        ),
        (
            ["--tap-mode", "pooled", "--detector", "cnn"],
            "use --detector mlp (or auto), or keep maps with --tap-mode grid:k",
        ),
        (
            ["--tap-budget", "200", "--detector", "cnn"],
            "use --detector mlp (or auto)",
        ),  # the budget picks pooled for relu2
    ],
)
def test_bad_tap_storage_is_one_line_and_writes_nothing(argv, needle, workdir, tmp_path, refused):
    common = _copy(workdir, tmp_path)
    line = refused(["sweep", *common, *argv])
    assert needle in line, line


def test_a_pooled_sweep_reports_its_modes_and_budget(workdir, tmp_path, monkeypatch, capsys):
    from mintaudit.cli import main

    common = _copy(workdir, tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", *common, "--tap-mode", "relu1=pooled", "--tap-budget", "64K"]) == 0
    table = capsys.readouterr().out
    assert "relu1 [pooled]" in table and "relu2 [" not in table
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    rows = {r.get("layer"): r for r in report["results"]}
    assert rows["relu1"]["tap_mode"] == "pooled" and rows["relu1"]["detector"] == "mlp"
    assert "tap_mode" not in rows["relu2"] and rows["relu2"]["detector"] == "cnn"
    assert report["config"]["tap_budget"] == 65536 and report["config"]["tap_mode"] == "relu1=pooled"
    assert "(pooled)" in (tmp_path / "run" / "report.html").read_text()


def test_the_verdict_reads_the_tap_as_the_sweep_stored_it(workdir, tmp_path, monkeypatch):
    """`test` reuses the sweep's pooled cache, with or without `--tap-mode pooled` (the audit record keeps it)."""
    from mintaudit.cli import main

    common = _copy(workdir, tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", *common, "--taps", "relu1", "--tap-mode", "pooled"]) == 0
    caches = lambda: {p.parent for p in (tmp_path / "run" / "cache").glob("*/manifest.json")}  # noqa: E731
    before = caches()
    query = ["test", *common, "--query", "heldout-members", "--layer", "relu1"]
    assert main([*query, "--tap-mode", "pooled"]) == 0
    assert caches() == before  # the pooled cache was reused, nothing extracted again
    verdict = json.loads((tmp_path / "run" / "report.json").read_text())["verdict"]
    assert verdict["n_query"] > 0
    assert main(query) == 0  # C144: without --tap-mode, the mode the sweep stored (in the audit record) is reused
    assert caches() == before
    assert main([*query, "--tap-mode", "full"]) == 2  # a contradicting mode is refused


def test_modes_parse_and_normalise():
    assert parse_tap_mode(" Grid:03 ") == "grid:3" and parse_tap_mode("POOLED") == "pooled"
    with pytest.raises(ConfigError, match="unknown tap mode"):
        parse_tap_mode("mean")


def test_the_api_takes_a_tap_mode_and_a_budget(tiny_model, toy_dataset, tmp_path):
    import mintaudit

    x, y = toy_dataset.batch(np.arange(120)), torch.from_numpy(toy_dataset.labels)
    parts = {role: (x[i::3], y[i::3]) for i, role in enumerate(("members", "external", "test"))}
    detector = DetectorConfig(epochs=1)
    result = mintaudit.audit(
        tiny_model,
        **parts,
        taps=["relu1", "relu2"],
        fusion="none",
        detector=detector,
        n_bootstrap=0,
        allow_weak_model=True,
        tap_mode={"relu1": "pooled"},
        tap_budget="256",
        work_dir=tmp_path,
        show_progress=False,
    )
    rows = {r.layer: r.to_dict() for r in result.rows}
    assert rows["relu1"]["tap_mode"] == "pooled" and rows["relu2"]["tap_mode"] == "grid:2"  # 16 x 2 x 2 x 4 = 256 bytes
    assert result.report["config"]["tap_budget"] == 256
    with pytest.raises(ConfigError, match="not a selected tap"):
        mintaudit.audit(
            tiny_model,
            **parts,
            taps=["relu1"],
            fusion="none",
            detector=detector,
            n_bootstrap=0,
            allow_weak_model=True,
            tap_mode="relu2=pooled",
            work_dir=tmp_path,
            show_progress=False,
        )


def test_yaml_keys_take_the_same_values_and_are_named_in_errors(workdir, tmp_path, refused):
    common = _copy(workdir, tmp_path)
    (tmp_path / "c.yaml").write_text("tap-mode: grid:0\ntap-budget: 64K\n")
    line = refused(["sweep", *common, "--config", "c.yaml"])
    assert "c.yaml': tap-mode: tap mode 'grid:0' has no cells" in line, line
    (tmp_path / "c.yaml").write_text("tap_mode: pooled\ntap_budget: 65536\ndetector: cnn\n")
    assert "use --detector mlp" in refused(["sweep", *common, "--config", "c.yaml"])

"""The four registries: a thing registered in one file is usable everywhere its kind is read.

Attacks (``mintaudit attack --methods``, the report schema), data sets (``load_dataset``, the
``--dataset`` help), zoo models (``build_model``, published and aMINT taps) and detector kinds
(``MintDetector(kind=...)``, ``audit_tap(detector=...)``); a duplicate name is refused and an
unknown name lists the registered ones.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap

import numpy as np
import pytest
from torch import nn

from mintaudit.attacks import ATTACKS, attack_spec, register_attack, unregister_attack
from mintaudit.cli import build_parser, main
from mintaudit.data import (
    DATASET_NAMES,
    DATASET_PREFIXES,
    ImageDataset,
    load_dataset,
    register_dataset,
    unregister_dataset,
)
from mintaudit.detectors import (
    DETECTOR_KINDS,
    Detector,
    DetectorConfig,
    MintDetector,
    register_detector,
    unregister_detector,
)
from mintaudit.errors import ConfigError, DataError, DataNotFoundError, EvaluationError, ModelError
from mintaudit.models import (
    ACTIVE_TAPS,
    MODEL_NAMES,
    ModelSpec,
    TinyCNN,
    active_taps,
    build_model,
    published_taps,
    register_model,
    unregister_model,
)
from mintaudit.passive import PassiveSplit, SweepConfig, audit_tap
from mintaudit.report import add_result, new_report
from mintaudit.signals import extract_signals

# ---------------------------------------------------------------------------------------------- attacks

_ATTACK_FILE = '''
"""A new attack in one file: the largest logit."""

import numpy as np

from mintaudit.attacks.registry import AttackContext, register_attack


@register_attack("max-logit", method="max-logit", label="max logit")
def max_logit(ctx: AttackContext) -> np.ndarray:
    return ctx.logits.max(1)
'''


def _npz(tmp_path, n=100, size=8):  # 40 members: 20 a side (mintaudit.sizes)
    rng = np.random.default_rng(0)
    path = tmp_path / "data.npz"
    np.savez(path, x=rng.integers(0, 256, (n, size, size), dtype=np.uint8), y=np.arange(n) % 3)
    return f"npz:{path}"


@pytest.fixture
def trained(tmp_path, capsys):
    """A tiny-cnn trained for one epoch on a 100-sample npz data set, in a work directory."""
    data, out = _npz(tmp_path), tmp_path / "run"
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


@pytest.fixture
def attack_file(tmp_path):
    """Import the one-file attack above; unregister it afterwards."""
    path = tmp_path / "max_logit_attack.py"
    path.write_text(textwrap.dedent(_ATTACK_FILE))

    def load():
        spec = importlib.util.spec_from_file_location("max_logit_attack", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["max_logit_attack"] = module
        spec.loader.exec_module(module)
        return module

    yield load
    sys.modules.pop("max_logit_attack", None)
    if "max-logit" in ATTACKS:
        unregister_attack("max-logit")


def _row(method):
    return {
        "method": method,
        "signal": "outputs",
        "protocol": "heldout-members",
        "n_members": 1,
        "n_nonmembers": 1,
        "metrics": {"accuracy": 0.5, "precision": 0.5, "recall": 0.5, "auc": 0.5, "tpr_at_fpr": {}},
        "ci95": {},
    }


def test_an_attack_in_one_file_is_runnable_from_the_cli_and_accepted_by_the_report(
    trained, attack_file, refused, capsys
):
    data, out = trained
    args = [
        "attack",
        "--dataset",
        data,
        "--out",
        str(out),
        "--methods",
        "max-logit,confidence",
        "--bootstrap",
        "20",
        "--quiet",
        "--allow-weak-model",
    ]
    line = refused(args)  # not registered yet: refused, listing the registered attacks
    assert "unknown attack(s) max-logit" in line and "confidence" in line and "lira-online" in line
    with pytest.raises(EvaluationError, match="must be one of"):
        add_result(new_report(dataset={}, model={}, config={}, command="t"), _row("max-logit"))

    attack_file()
    assert ATTACKS[-1] == "max-logit" and attack_spec("max-logit").label == "max logit"
    assert main(args) == 0, capsys.readouterr().err
    rows = {r["attack"]: r for r in json.loads((out / "report.json").read_text())["results"]}
    assert set(rows) == {"max-logit", "confidence"}
    mine = rows["max-logit"]
    assert (mine["method"], mine["label"], mine["detector"], mine["fit"]["n_reference"]) == (
        "max-logit",
        "max logit",
        "threshold",
        0,
    )
    assert mine["n_members"] == rows["confidence"]["n_members"] > 0  # the same scored sets as every attack
    add_result(new_report(dataset={}, model={}, config={}, command="t"), _row("max-logit"))  # accepted now


def test_the_confidence_attack_is_one_file_of_the_attack_zoo():
    spec = attack_spec("confidence")
    assert spec.score.__module__ == "mintaudit.attacks.zoo.confidence"
    assert (spec.method, spec.needs_references, spec.label) == ("confidence", False, "confidence")
    assert [attack_spec(a).method for a in ("modified-entropy", "lira-online")] == ["entropy", "lira"]
    assert [a for a in ATTACKS if attack_spec(a).needs_references] == [
        "calibrated-loss",
        "shokri",
        "lira",
        "lira-online",
        "rmia",
        "calibrated-mint",
        "bavaria",
        "bavaria-n",
        "informia",
        "whitebox-lira",
    ]


# ---------------------------------------------------------------------------------------------- data sets


def _read_toy(name, folder, image_size):
    path = folder / "toy.npz"
    if not path.is_file():
        return None  # the folder does not hold this data set
    with np.load(path) as z:
        return ImageDataset(name, z["x"], z["y"], 2)


@pytest.fixture
def toy_set(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    rng = np.random.default_rng(0)
    np.savez(root / "toy.npz", x=rng.integers(0, 256, (10, 8, 8, 1), dtype=np.uint8), y=np.arange(10) % 2)
    register_dataset("toy-set", _read_toy, files="toy.npz")
    yield root
    unregister_dataset("toy-set")


def test_a_registered_data_set_is_loadable_by_name_and_listed(toy_set, tmp_path, capsys):
    ds = load_dataset("Toy_Set", root=toy_set)  # names are case-insensitive, '_' read as '-'
    assert ds.images.shape == (10, 8, 8, 1) and ds.num_classes == 2 and ds.name == "toy-set"
    assert "toy-set" in DATASET_NAMES
    with pytest.raises(DataNotFoundError, match="looked for toy.npz in"):
        load_dataset("toy-set", root=tmp_path)  # the file is in tmp_path/root
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    assert "tiny-imagenet,toy-set,folder:PATH" in "".join(capsys.readouterr().out.split())  # argparse wraps at '-'
    assert main(["layers", "tiny-cnn", "--dataset", "toy-set", "--data-root", str(toy_set)]) == 0
    assert "relu1" in capsys.readouterr().out


def test_a_registered_prefix_reads_the_path_after_it(tmp_path):
    seen = []

    def read(name, where, image_size):
        seen.append((name, where))
        return ImageDataset("rows", np.zeros((4, 2, 2, 1), np.uint8), np.array([0, 1, 0, 1]), 2)

    register_dataset("rows", read, files="a file of rows", prefix=True)
    try:
        assert "rows:" in DATASET_PREFIXES
        assert load_dataset("rows:/data/x.rows").images.shape == (4, 2, 2, 1)
        assert seen == [("rows", "/data/x.rows")]
    finally:
        unregister_dataset("rows")
    assert "rows:" not in DATASET_PREFIXES


# ---------------------------------------------------------------------------------------------- models


class _TwoConv(nn.Module):
    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv1, self.act1 = nn.Conv2d(in_channels, 4, 3, padding=1), nn.ReLU()
        self.conv2, self.act2 = nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))

    def forward(self, x):
        return self.head(self.act2(self.conv2(self.act1(self.conv1(x)))))


@pytest.fixture
def two_conv():
    register_model(
        "two-conv",
        _TwoConv,
        taps={
            "published": ["act1", "act2"],
            "entry": ["act1"],
            "middle": ["act1", "act2"],
            "output": ["act2", "head.1"],
        },
    )
    yield
    unregister_model("two-conv")


def test_a_registered_model_gives_its_published_and_amint_taps(two_conv, capsys):
    model = build_model(ModelSpec("two-conv", 1, 3, (8, 8)))
    assert isinstance(model, _TwoConv) and "two-conv" in MODEL_NAMES
    assert published_taps("two-conv") == [("L1", "act1"), ("L2", "act2")]
    assert (
        {s: active_taps("two-conv", s, model) for s in ("entry", "middle", "output")}
        == ACTIVE_TAPS["two-conv"]
        == {"entry": ["act1"], "middle": ["act1", "act2"], "output": ["act2", "head.1"]}
    )
    assert main(["layers", "two-conv", "--dataset", "digits"]) == 0
    assert "act2" in capsys.readouterr().out


def test_a_model_without_amint_taps_has_no_preset():
    register_model("plain", TinyCNN)
    try:
        assert published_taps("plain") is None and "plain" not in ACTIVE_TAPS
        with pytest.raises(ConfigError, match="no aMINT tap preset for model 'plain'"):
            active_taps("plain", "middle")
    finally:
        unregister_model("plain")


@pytest.mark.parametrize(
    "taps, message",
    [
        ({"middle": ["relu1"]}, "need all of entry, middle, output"),
        ({"late": ["relu1"]}, "unknown tap key"),
        ({"entry": "relu1", "middle": ["relu1"], "output": ["relu2"]}, "non-empty list of layer names"),
    ],
)
def test_malformed_taps_are_refused(taps, message):
    with pytest.raises(ConfigError, match=message):
        register_model("bad-taps", TinyCNN, taps=taps)
    assert "bad-taps" not in MODEL_NAMES


# ---------------------------------------------------------------------------------------------- detectors


class _MeanDetector:
    """The smallest Detector: the mean feature, no training."""

    def fit(self, X, y, extra=None):
        self.kind_ = "mean"
        return self

    def decision_function(self, X, extra=None):
        return np.asarray(X[np.arange(len(X))], dtype=np.float32).reshape(len(X), -1).mean(1)

    def save(self, out_dir):
        return out_dir

    @classmethod
    def load(cls, path):
        return cls()


@pytest.fixture
def cache_and_split(tmp_path, toy_dataset, tiny_model):
    split = PassiveSplit(np.arange(0, 30), np.arange(30, 60), np.arange(60, 90), np.arange(90, 120))
    return extract_signals(
        tiny_model, toy_dataset, np.arange(120), ["relu2"], tmp_path / "cache", show_progress=False
    ), split


@pytest.mark.parametrize("given", ["factory", "instance"])
def test_audit_tap_fits_the_detector_given(cache_and_split, given):
    cache, split = cache_and_split
    det = _MeanDetector if given == "factory" else _MeanDetector()
    result, fitted = audit_tap(cache, split, "relu2", SweepConfig(n_bootstrap=10), detector=det, show_progress=False)
    assert isinstance(fitted, _MeanDetector) and isinstance(fitted, Detector)
    assert result.detector == "mean" and result.fit["best_epoch"] is None
    assert result.n_members == result.n_nonmembers == 30
    if given == "instance":
        assert fitted is det


def test_audit_tap_refuses_what_is_not_a_detector(cache_and_split):
    cache, split = cache_and_split
    with pytest.raises(ConfigError, match="object lacks fit, decision_function, save, load: pass a detector"):
        audit_tap(cache, split, "relu2", SweepConfig(n_bootstrap=10), detector=lambda: object(), show_progress=False)


def test_a_registered_detector_kind_fits_saves_and_loads(tmp_path):
    @register_detector("pooled-linear", maps=True)
    def pooled_linear(in_dim, in_channels, config):
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), in_channels

    try:
        assert "pooled-linear" in DETECTOR_KINDS and DetectorConfig(kind="pooled-linear").kind == "pooled-linear"
        rng = np.random.default_rng(0)
        X = rng.normal(size=(60, 3, 4, 4)).astype(np.float32)
        y = np.arange(60) % 2
        X[y == 1] += 1.0
        det = MintDetector(kind="pooled-linear", epochs=2, show_progress=False).fit(X, y)
        assert det.kind_ == "pooled-linear" and det.net_.body[0].__class__ is nn.AdaptiveAvgPool2d
        again = MintDetector.load(det.save(tmp_path / "det"))
        np.testing.assert_array_equal(again.decision_function(X), det.decision_function(X))
        with pytest.raises(ConfigError, match="the pooled-linear detector reads activation maps"):
            MintDetector(kind="pooled-linear", epochs=1).fit(X.reshape(60, -1), y)
    finally:
        unregister_detector("pooled-linear")
    with pytest.raises(ConfigError, match="detector kind must be one of auto, mlp, cnn; got 'pooled-linear'"):
        DetectorConfig(kind="pooled-linear")


# ---------------------------------------------------------------------------------------------- duplicates, unknowns


@pytest.mark.parametrize(
    "register",
    [
        lambda: register_attack("confidence")(lambda ctx: ctx.logits.max(1)),
        lambda: register_dataset("mnist", _read_toy, files="toy.npz"),
        lambda: register_dataset("npz", _read_toy, files="x", prefix=True),
        lambda: register_model("tiny-cnn", TinyCNN),
        lambda: register_detector("mlp")(lambda in_dim, in_channels, config: (nn.Identity(), in_dim)),
    ],
    ids=["attack", "dataset", "prefix", "model", "detector"],
)
def test_a_duplicate_name_is_refused(register):
    with pytest.raises(ConfigError, match="is already registered; pick another name"):
        register()


@pytest.mark.parametrize(
    "register, message",
    [
        (lambda: register_attack("a,b"), "no comma or space"),
        (lambda: register_dataset("my_set", _read_toy, files="x"), "no '_' or ':'"),
        (lambda: register_model("pkg.mod:fn", TinyCNN), "no ':'"),
        (lambda: register_detector("auto"), "'auto' is reserved"),
    ],
    ids=["attack", "dataset", "model", "detector"],
)
def test_a_malformed_name_is_refused(register, message):
    with pytest.raises(ConfigError, match=message):
        register()


@pytest.mark.parametrize(
    "lookup, error, listed",
    [
        (lambda: attack_spec("lyra"), ConfigError, ["loss", "confidence", "rmia"]),
        (lambda: load_dataset("fashion-mnst"), DataError, ["digits", "fashion-mnist", "folder:PATH", "npz:PATH"]),
        (lambda: build_model(ModelSpec("tiny-cn", 1, 3, (8, 8))), ModelError, ["tiny-cnn", "objcls-cnn", "vit"]),
        (lambda: DetectorConfig(kind="svm"), ConfigError, ["auto", "mlp", "cnn"]),
        (lambda: active_taps("resnet5", "middle"), ConfigError, ["mobilenet", "resnet50", "tiny-cnn"]),
    ],
    ids=["attack", "dataset", "model", "detector", "taps"],
)
def test_an_unknown_name_lists_the_registered_ones(lookup, error, listed):
    with pytest.raises(error) as info:
        lookup()
    assert all(name in str(info.value) for name in listed), str(info.value)


def test_an_unknown_attack_on_the_cli_lists_the_registered_ones(trained, refused):
    data, out = trained
    line = refused(
        ["attack", "--dataset", data, "--out", str(out), "--methods", "lyra", "--quiet", "--allow-weak-model"]
    )
    assert "unknown attack(s) lyra; choose from " + ", ".join(ATTACKS) in line

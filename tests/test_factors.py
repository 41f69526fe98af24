"""The factors study: the grid end to end on the tiny profile, its cache, its report, its options."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from mintaudit.cli import main
from mintaudit.data import load_dataset
from mintaudit.errors import ConfigError
from mintaudit.studies.factors import FACTORS, factors_config, member_pool, parse_grid, run_factors
from mintaudit.models import ModelSpec, build_model
from mintaudit.training import TrainConfig, augment, augment_generator, train_classifier


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models train fastest on one thread (and two threads crawl on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, one_thread):
    out = tmp_path_factory.mktemp("factors")
    doc = run_factors(out, factors_config("tiny"), command=["test"], show_progress=False)
    return out, doc


def _mtimes(out):
    return {p.parent.name: p.stat().st_mtime_ns for p in (out / "factors" / "models").glob("*/model.safetensors")}


def test_grid_runs_end_to_end_and_writes_table_and_plots(tiny_run):
    out, doc = tiny_run
    config = factors_config("tiny")
    assert doc["schema"] == "mintaudit/factors@1"
    assert [e["factor"] for e in doc["effects"]] == list(FACTORS)
    assert len(doc["rows"]) == sum(len(v) for _, v in config.grid)
    # each factor's base value is the same model: trained once
    assert doc["runs"]["models"] == len(doc["runs"]["trained"]) == 1 + sum(len(v) - 1 for _, v in config.grid)
    for row in doc["rows"]:
        for key in ("task_accuracy", "gap", "passive_auc", "passive_tpr_at_1pct_fpr", "loss_auc"):
            assert -1.0 <= row[key] <= 1.0, key
        lo, hi = row["passive_auc_ci95"]
        assert lo <= row["passive_auc"] <= hi
        assert row["n_heldout_members"] == row["n_nonmembers"]  # balanced by construction
        # the best tap is the one with the best validation AUC, never chosen on the test side
        assert row["passive_tap"] == max(row["taps"], key=lambda t: t["val_auc"])["label"]
    for e in doc["effects"]:
        rows = [r for r in doc["rows"] if r["factor"] == e["factor"]]
        assert e["passive_delta_auc"] == pytest.approx(rows[-1]["passive_auc"] - rows[0]["passive_auc"])
        lo, hi = e["passive_delta_auc_ci95"]
        assert lo <= hi and e["sentence"]

    on_disk = json.loads((out / "factors.json").read_text())
    assert on_disk["rows"] == json.loads(json.dumps(doc["rows"]))
    html = (out / "factors.html").read_text()
    assert html.count("<svg") == len(FACTORS)  # one plot per factor
    for factor in FACTORS:  # and each alone, as a standalone SVG document
        svg = (out / "plots" / f"{factor}.svg").read_text()
        assert (
            svg.startswith("<?xml") and 'xmlns="http://www.w3.org/2000/svg"' in svg and svg.rstrip().endswith("</svg>")
        )
    assert "<table" in html and "Effects in brief" in html and "task accuracy" in html
    assert "<script" not in html and not re.search(r'(src|href)="https?:', html)
    for name in ("Epochs", "Members per class", "Dropout", "Weight decay", "Data augmentation", "Label smoothing"):
        assert name in html


def test_rerun_trains_nothing(tiny_run):
    out, _ = tiny_run
    before = _mtimes(out)
    doc = run_factors(out, factors_config("tiny"), show_progress=False)
    assert doc["runs"]["trained"] == [] and doc["runs"]["audited"] == []
    assert not any(r["trained_now"] or r["audited_now"] for r in doc["rows"])
    assert _mtimes(out) == before


def test_a_changed_value_trains_only_that_point(tiny_run):
    out, _ = tiny_run
    doc = run_factors(out, factors_config("tiny", factors="dropout", grid=["dropout=0,0.25,0.5"]), show_progress=False)
    assert [r["value"] for r in doc["rows"]] == [0.0, 0.25, 0.5]
    assert [r["trained_now"] for r in doc["rows"]] == [False, False, True]
    assert len(doc["runs"]["trained"]) == 1


def test_cli_reuses_the_cache(tiny_run, capsys):
    out, _ = tiny_run
    assert main(["factors", "--profile", "tiny", "--factors", "epochs", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "epochs" in printed and "factors.html" in printed
    doc = json.loads((out / "factors.json").read_text())
    assert doc["runs"]["trained"] == [] and [e["factor"] for e in doc["effects"]] == ["epochs"]
    assert (out / "factors.config.json").is_file()


def test_member_pool_is_stratified_and_nested():
    ds = load_dataset("digits")
    pool = member_pool(ds, members_per_class=20, external=100, test=100, seed=0)
    for k in (5, 20):
        counts = np.bincount(ds.labels[pool.members[: k * ds.num_classes]], minlength=ds.num_classes)
        assert (counts == k).all()
    again = member_pool(ds, members_per_class=20, external=100, test=100, seed=0)
    assert np.array_equal(pool.members, again.members) and np.array_equal(pool.test, again.test)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: factors_config("tiny", factors="epoch"), "did you mean epochs"),
        (lambda: factors_config("tiny", factors="colour"), "unknown factor 'colour'"),
        (lambda: factors_config("nope"), "unknown profile"),
        (lambda: parse_grid(["dropout=0.3,2"]), "dropout"),
        (lambda: parse_grid(["epochs"]), "FACTOR=V1,V2"),
        (lambda: factors_config("tiny", grid=["augment=on"]), "at least two values"),
    ],
)
def test_bad_factors_are_refused(call, match):
    with pytest.raises(ConfigError, match=match):
        call()


def test_cli_bad_factor_is_one_line_exit_2(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["factors", "--profile", "tiny", "--factors", "epochs,dropuot", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mintaudit: error: ") and "dropout" in err[0]
    assert not out.exists()


def test_cli_help_has_an_example(capsys):
    with pytest.raises(SystemExit) as e:
        main(["factors", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "Examples:" in text and "mintaudit factors --profile cpu" in text


# ---------------------------------------------------------------------------------------------
# training options used by the grid


def _learnable(toy_dataset):
    from mintaudit.data import ImageDataset

    imgs = toy_dataset.images.copy() // 4
    for i, y in enumerate(toy_dataset.labels):
        imgs[i, y * 2, :, 0] = 255
    return ImageDataset("toy-learnable", imgs, toy_dataset.labels, 3)


def _train(ds, config, checkpoint_dir=None, resume=False):
    torch.manual_seed(0)
    m = build_model(ModelSpec("objcls-cnn", 1, 3, (8, 8)))
    train_classifier(m, ds, np.arange(80), config, checkpoint_dir=checkpoint_dir, resume=resume, show_progress=False)
    return m.state_dict()


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.values(), b.values()))


def test_augmentation_and_label_smoothing_change_training(toy_dataset, one_thread):
    ds = _learnable(toy_dataset)
    plain = _train(ds, TrainConfig(epochs=2, batch_size=16))
    assert _same(plain, _train(ds, TrainConfig(epochs=2, batch_size=16)))  # deterministic
    assert not _same(plain, _train(ds, TrainConfig(epochs=2, batch_size=16, augment=True)))
    assert not _same(plain, _train(ds, TrainConfig(epochs=2, batch_size=16, label_smoothing=0.1)))
    with pytest.raises(ConfigError, match="label_smoothing"):
        TrainConfig(label_smoothing=1.0)


def test_augmented_resume_equals_uninterrupted_run(toy_dataset, tmp_path, one_thread):
    ds = _learnable(toy_dataset)
    full = _train(ds, TrainConfig(epochs=4, batch_size=16, augment=True), checkpoint_dir=tmp_path / "a")
    _train(ds, TrainConfig(epochs=2, batch_size=16, augment=True), checkpoint_dir=tmp_path / "b")
    torch.manual_seed(123)  # other global RNG state: the augmentation must not depend on it
    resumed = _train(ds, TrainConfig(epochs=4, batch_size=16, augment=True), checkpoint_dir=tmp_path / "b", resume=True)
    assert _same(full, resumed)


def test_augment_is_a_flip_and_a_padded_crop():
    x = torch.randn(6, 2, 7, 9)
    out = augment(x, augment_generator(0, 0, 0))
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), value=-1.0)
    padded_flipped = torch.nn.functional.pad(x.flip(3), (2, 2, 2, 2), value=-1.0)
    for i in range(len(x)):
        candidates = [
            p[i, :, dy : dy + 7, dx : dx + 9] for p in (padded, padded_flipped) for dy in range(5) for dx in range(5)
        ]
        assert any(torch.equal(out[i], c) for c in candidates)
    assert torch.equal(out, augment(x, augment_generator(0, 0, 0)))  # a function of (seed, epoch, step)
    assert not torch.equal(out, augment(x, augment_generator(0, 0, 1)))


def test_amint_where_it_applies(tiny_run):
    out, _ = tiny_run
    config = factors_config("tiny", factors="weight_decay,augment", amint=True)
    doc = run_factors(out, config, show_progress=False)
    assert doc["runs"]["trained"] == [] and len(doc["runs"]["amint_trained"]) == 2  # the plain models are cached
    for row in doc["rows"]:
        applies = row["factor"] == "weight_decay"
        assert (row["amint_auc"] is not None) == applies
        if applies:
            assert row["amint_protocol"] == "training-members"
    assert "amint_delta_auc" in doc["effects"][0] and "amint_delta_auc" not in doc["effects"][1]
    assert "aMINT AUC" in (out / "factors.html").read_text()
    again = run_factors(out, config, show_progress=False)
    assert again["runs"]["amint_trained"] == []

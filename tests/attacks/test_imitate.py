"""Imitative references (calibrated-mint.imitators): initialisation, cache, reproducibility, the IN pivots, the off switch."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest
import torch

from mintaudit.attacks.imitate import imitation_features, imitation_taps, reinitialised, train_imitators
from mintaudit.attacks.run import AttackConfig, attack_scores
from mintaudit.attacks.zoo.calibrated_mint import FEATURES
from mintaudit.cli import main
from mintaudit.data import load_dataset, make_splits
from mintaudit.models import ModelSpec, build_model
from mintaudit.passive import passive_split
from mintaudit.training import TrainConfig, train_classifier

SPEC = ModelSpec("tiny-cnn", 1, 10, (8, 8))
IMIT = TrainConfig(epochs=2, batch_size=32, seed=0)


@pytest.fixture(scope="module")
def setup():
    """(digits, a tiny-cnn trained 6 epochs on 150 members from seed 0, the passive split)."""
    ds = load_dataset("digits")
    splits = make_splits(ds, members=150, external=150, test=100, seed=0)
    torch.manual_seed(0)
    model = build_model(SPEC)
    train_classifier(model, ds, splits.members, TrainConfig(epochs=6, batch_size=32), show_progress=False)
    return ds, model.eval(), splits, passive_split(splits, seed=0)


def _logits(model, ds, ids):
    with torch.no_grad():
        return model(ds.batch(ids)).numpy()


def _imitators(setup, root, n=2):
    ds, model, splits, _ = setup
    pop, piv = np.sort(splits.external[:100]), np.r_[splits.members[:60], splits.test[:60]]
    imit = train_imitators(model, ds, pop, _logits(model, ds, pop), piv, _logits(model, ds, piv), n, IMIT, root)
    return imit, piv


def test_the_imitators_start_from_the_targets_initialisation(setup):
    _, model, _, _ = setup
    torch.manual_seed(0)
    fresh = build_model(SPEC)
    state = torch.random.get_rng_state()
    again = reinitialised(model, 0)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's random state is untouched
    for k, v in fresh.state_dict().items():
        torch.testing.assert_close(again.state_dict()[k], v, rtol=0, atol=0)
    assert not torch.equal(again.fc.weight, model.fc.weight)  # the target itself is left as it was trained
    assert imitation_taps(model) == ["relu1", "relu2", "logits"]  # tiny-cnn's published taps, then the logits


def test_imitators_are_cached_reloaded_and_reproducible(setup, tmp_path):
    ds, model, _, _ = setup
    first, piv = _imitators(setup, tmp_path / "a")
    assert first.trained == 4 and len(list((tmp_path / "a" / "imitators").iterdir())) == 4
    again, _ = _imitators(setup, tmp_path / "a")
    assert again.trained == 0  # all four read back, none retrained
    for m, n in zip(first.out + first.inside, again.out + again.inside, strict=True):
        for (k, v), w in zip(m.state_dict().items(), n.state_dict().values(), strict=True):
            assert torch.equal(v, w), k
    other, _ = _imitators(setup, tmp_path / "b")  # the same seed in another cache: the same features
    assert other.trained == 4
    X1, names, about = imitation_features(model, first, ds, piv)
    X2, _, _ = imitation_features(model, other, ds, piv)
    np.testing.assert_array_equal(X1, X2)
    assert X1.shape == (len(piv), 9) and names[:3] == ["imit_out:relu1", "imit_in:relu1", "imit_gap:relu1"]
    np.testing.assert_allclose(X1[:, 2], X1[:, 0] - X1[:, 1])
    # a changed recipe (here: the seed) is another key, trained anew beside the first
    changed = train_imitators(
        model, ds, np.sort(piv[:10]), _logits(model, ds, np.sort(piv[:10])), piv, _logits(model, ds, piv), 1,
        TrainConfig(epochs=1, batch_size=32, seed=5), tmp_path / "a",
    )  # fmt: skip
    assert changed.trained == 2 and len(list((tmp_path / "a" / "imitators").iterdir())) == 6


def test_in_imitators_learned_the_pivots(setup, tmp_path):
    ds, model, splits, _ = setup
    imit, piv = _imitators(setup, tmp_path)
    _, _, about = imitation_features(model, imit, ds, piv)
    fid = about["fidelity"]
    assert fid["in"]["logit_mse"] < fid["out"]["logit_mse"]  # IN imitators continued on exactly these rows
    assert fid["out"]["agreement"] > 0.5  # and the OUT ones imitate the target off their own data too
    # pivot logits the target does not give (as if it had memorised them): only the IN imitators learn them
    pop, other = np.sort(splits.external[:100]), splits.test[60:]
    odd = _logits(model, ds, piv) + np.eye(10, dtype=np.float32)[0] * 3.0  # class 0 raised by 3 on the pivots
    more = TrainConfig(epochs=6, batch_size=16, lr=3e-3)
    bent = train_imitators(model, ds, pop, _logits(model, ds, pop), piv, odd, 1, more, tmp_path / "odd")
    on_piv = [((_logits(m, ds, piv) - odd) ** 2).mean() for m in (bent.out[0], bent.inside[0])]
    assert on_piv[1] < 0.5 * on_piv[0]
    off = [((_logits(m, ds, other) - _logits(model, ds, other)) ** 2).mean() for m in (bent.out[0], bent.inside[0])]
    assert off[1] > off[0]  # elsewhere the IN imitator left the target for the pivots' logits


CFG = AttackConfig(n_reference=2, reference_train=TrainConfig(epochs=2, batch_size=32), n_bootstrap=50)


def test_calibrated_mint_with_and_without_imitators(setup, tmp_path):
    ds, model, _, split = setup
    plain = attack_scores(model, SPEC, ds, split, ["calibrated-mint"], tmp_path, CFG, show_progress=False)
    off = AttackConfig(**{**CFG.__dict__, "options": {"calibrated-mint": {"imitators": 0}}})
    zero = attack_scores(model, SPEC, ds, split, ["calibrated-mint"], tmp_path, off, show_progress=False)
    for a, b in ((plain, zero),):
        np.testing.assert_array_equal(a["calibrated-mint"].members, b["calibrated-mint"].members)
        np.testing.assert_array_equal(a["calibrated-mint"].nonmembers, b["calibrated-mint"].nonmembers)
    info = zero["calibrated-mint"].info
    assert "imitators" not in info and info["features"] == plain["calibrated-mint"].info["features"]
    assert info["features"][: len(FEATURES)] == list(FEATURES)
    on = AttackConfig(**{**CFG.__dict__, "options": {"calibrated-mint": {"imitators": 1}}})
    sc = attack_scores(model, SPEC, ds, split, ["calibrated-mint"], tmp_path, on, show_progress=False)
    info = sc["calibrated-mint"].info
    assert info["imitators"]["n"] == 1 and info["imitators"]["trained"] == 2
    base = plain["calibrated-mint"].info["features"]
    assert info["features"][: len(base)] == base and len(info["features"]) == len(base) + 9
    assert info["features"][-1] == "imit_gap:logits"
    assert 0 <= info["imitators"]["fidelity"]["out"]["agreement"] <= 1 and info["imitators"]["seconds"] >= 0
    assert not np.array_equal(sc["calibrated-mint"].members, plain["calibrated-mint"].members)
    again = attack_scores(model, SPEC, ds, split, ["calibrated-mint"], tmp_path, on, show_progress=False)
    assert again["calibrated-mint"].info["imitators"]["trained"] == 0
    np.testing.assert_array_equal(again["calibrated-mint"].members, sc["calibrated-mint"].members)


def test_a_bad_imitators_value_is_one_line(tmp_path_factory, refused):
    out = tmp_path_factory.mktemp("imit")
    base = ["--dataset", "digits", "--out", str(out), "--quiet"]
    sizes = ["--members", "40", "--external", "40", "--test", "40", "--epochs", "1"]
    assert main(["train", *base, "--model", "tiny-cnn", *sizes]) == 0
    cmd = ["attack", *base, "--methods", "calibrated-mint", "--allow-weak-model", "--attack-opt"]
    line = refused([*cmd, "calibrated-mint.imitators=17"])
    assert "--attack-opt calibrated-mint.imitators must be a whole number in [0, 16], got 17" in line
    assert "must be a whole number" in refused([*cmd, "calibrated-mint.imitators=two"])


CHILD = """
import hashlib, sys, numpy as np, torch
from mintaudit.attacks.imitate import imitation_features, train_imitators
from mintaudit.data import load_dataset
from mintaudit.models import ModelSpec, build_model
from mintaudit.training import TrainConfig
torch.set_num_threads(1)
ds = load_dataset("digits")
model = build_model(ModelSpec("tiny-cnn", 1, 10, (8, 8)))
model.load_state_dict(torch.load(sys.argv[1], weights_only=True))
model.eval()
pop, piv = np.load(sys.argv[2]), np.load(sys.argv[3])
with torch.no_grad():
    lp, lv = model(ds.batch(pop)).numpy(), model(ds.batch(piv)).numpy()
imit = train_imitators(model, ds, pop, lp, piv, lv, 1, TrainConfig(epochs=2, batch_size=32), sys.argv[4])
print(hashlib.sha256(np.ascontiguousarray(imitation_features(model, imit, ds, piv)[0]).data).hexdigest())
"""


def test_the_same_seed_gives_the_same_features_in_another_process(setup, tmp_path):
    ds, model, splits, _ = setup
    pop, piv = np.sort(splits.external[:100]), np.r_[splits.members[:60], splits.test[:60]]
    torch.save(model.state_dict(), tmp_path / "w.pt")
    np.save(tmp_path / "pop.npy", pop)
    np.save(tmp_path / "piv.npy", piv)
    imit = train_imitators(
        model, ds, pop, _logits(model, ds, pop), piv, _logits(model, ds, piv), 1, IMIT, tmp_path / "here"
    )
    here = hashlib.sha256(np.ascontiguousarray(imitation_features(model, imit, ds, piv)[0]).data).hexdigest()
    args = [str(tmp_path / f) for f in ("w.pt", "pop.npy", "piv.npy", "there")]
    out = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == here

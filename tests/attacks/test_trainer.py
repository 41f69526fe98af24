"""Reference models trained by the user's recipe: ``trainer(model, loader) -> model``, from the CLI and from Python.

One tiny work directory per module: tiny-cnn on 160 embedded digits (30 epochs), RMIA with 2 reference
models trained by ``recipe_for_tests.sgd`` (plain SGD, 2 epochs on 40 samples): seconds.
"""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import numpy as np
import pytest
import recipe_for_tests
import torch

import mintaudit
from mintaudit.attacks import ReferenceTrainer, train_reference_models
from mintaudit.attacks.trainers import pool_loader
from mintaudit.cli import main
from mintaudit.data import Splits, load_dataset
from mintaudit.errors import ConfigError, ModelError
from mintaudit.models import ModelSpec, build_model, load_model
from mintaudit.training import TrainConfig
from mintaudit.workdir.verdict import null_split


def _weights(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_the_recipe_is_called_once_per_reference_model_on_a_seeded_loader_and_keys_the_cache(toy_dataset, tmp_path):
    spec = ModelSpec("tiny-cnn", 1, 3, (8, 8))
    population, cfg = np.arange(40, 80), TrainConfig(epochs=1, batch_size=16)
    recipe = ReferenceTrainer.of(recipe_for_tests.sgd, args={"epochs": 2}, batch_size=8)
    recipe_for_tests.CALLS.clear()
    refs = train_reference_models(spec, toy_dataset, population, 2, cfg, tmp_path / "a", trainer=recipe)
    calls = list(recipe_for_tests.CALLS)
    assert [(c["n"], c["batch"], c["epochs"]) for c in calls] == [(20, 8, 2), (20, 8, 2)]  # its half, its batch size
    # the same recipe in another cache: the same weights (torch seeded before build and before the call)
    again = train_reference_models(spec, toy_dataset, population, 2, cfg, tmp_path / "b", trainer=recipe)
    assert [c["seed_draw"] for c in recipe_for_tests.CALLS[2:]] == [c["seed_draw"] for c in calls]
    for a, b in zip(refs.models, again.models):
        assert torch.equal(_weights(a), _weights(b))
    # the package's loop trains other models, under other keys of the same cache
    default = train_reference_models(spec, toy_dataset, population, 2, cfg, tmp_path / "a")
    assert not torch.equal(_weights(default.models[0]), _weights(refs.models[0]))
    assert len(list((tmp_path / "a").iterdir())) == 4
    # cached: no call; another version of the recipe is another model
    recipe_for_tests.CALLS.clear()
    train_reference_models(spec, toy_dataset, population, 2, cfg, tmp_path / "a", trainer=recipe, train=False)
    assert recipe_for_tests.CALLS == []
    with pytest.raises(ConfigError, match="not in the cache"):
        v2 = ReferenceTrainer.of(recipe_for_tests.sgd, args={"epochs": 2}, batch_size=8, version="v2")
        train_reference_models(spec, toy_dataset, population, 2, cfg, tmp_path / "a", trainer=v2, train=False)


def test_pool_loader_shuffles_by_its_seed_only(toy_dataset):
    ids = np.arange(30)
    first = [y.tolist() for _, y in pool_loader(toy_dataset, ids, 7, seed=3)]
    assert first == [y.tolist() for _, y in pool_loader(toy_dataset, ids, 7, seed=3)]
    assert first != [y.tolist() for _, y in pool_loader(toy_dataset, ids, 7, seed=4)]
    assert sorted(sum(first, [])) == sorted(toy_dataset.labels[ids].tolist()) and len(first) == 5


@pytest.fixture(scope="module")
def cli_work(tmp_path_factory):
    """tiny-cnn on digits, RMIA with the user's recipe (``--trainer``), and ``mintaudit test --method rmia``."""
    out = tmp_path_factory.mktemp("work")
    ds = load_dataset("digits")  # the roles in pool order, as audit() reads three sets: the same pool positions
    Splits("digits", ds.fingerprint(), 0, *(np.arange(k, k + 160) for k in (0, 160, 320))).save(out / "splits.json")
    base = ["--dataset", "digits", "--out", str(out), "--quiet"]
    size = ["--members", "160", "--external", "160", "--test", "160"]
    assert main(["train", *base, "--model", "tiny-cnn", *size, "--epochs", "30"]) == 0
    recipe_for_tests.CALLS.clear()
    attack = ["attack", *base, "--methods", "rmia", "--reference", "2", "--batch-size", "32", "--bootstrap", "50"]
    trainer = ["--trainer", "recipe_for_tests:sgd", "--trainer-arg", "epochs=2"]
    assert main([*attack, *trainer, "--allow-weak-model"]) == 0
    cli_calls = len(recipe_for_tests.CALLS)
    assert main(["test", *base, "--query", "heldout-members", "--method", "rmia", "--allow-weak-model"]) == 0
    report = json.loads((out / "report.json").read_text())
    return out, report, cli_calls


def test_cli_attack_trains_references_with_the_trainer_and_records_it(cli_work):
    out, report, cli_calls = cli_work
    assert cli_calls == 2
    recorded = report["config"]["attacks"]["trainer"]
    assert recorded["name"] == "recipe_for_tests:sgd" and recorded["args"] == {"epochs": 2}
    assert recorded["batch_size"] == 32 and len(recorded["version"]) == 16
    assert report["verdict"]["method"] == "rmia"


def test_cli_refuses_a_trainer_arg_without_trainer_and_a_missing_trainer(cli_work, refused):
    out, _, _ = cli_work
    base = ["attack", "--dataset", "digits", "--out", str(out), "--methods", "rmia", "--quiet"]
    assert "--trainer-arg needs --trainer" in refused([*base, "--trainer-arg", "epochs=2"])
    assert "no callable 'nope'" in refused([*base, "--trainer", "recipe_for_tests:nope"])


def test_python_rmia_and_lira_with_the_trainer_and_a_verdict_equal_to_mintaudit_test(cli_work):
    out, report, _ = cli_work
    ds = load_dataset("digits")
    splits = Splits.load(out / "splits.json")
    net, spec, _ = load_model(out / "model")
    roles = {}
    for role in ("members", "external", "test"):
        ids = getattr(splits, role)
        roles[role] = (ds.batch(ids), torch.from_numpy(ds.labels[ids]))
    recipe_for_tests.CALLS.clear()
    result = mintaudit.audit(
        net,
        **roles,
        methods=["rmia", "lira"],
        build=lambda: build_model(spec),
        trainer=lambda model, loader: recipe_for_tests.sgd(model, loader, epochs=2),
        references=2,
        trainer_batch_size=32,
        n_bootstrap=50,
        allow_weak_model=True,
    )
    assert len(recipe_for_tests.CALLS) == 2  # R calls: rmia and offline LiRA share their reference models
    assert {r.method for r in result.rows} >= {"passive-mint", "loss", "rmia", "lira"}
    cli_rmia = next(r for r in report["results"] if r["method"] == "rmia")
    py_rmia = next(r for r in result.rows if r.method == "rmia")
    assert py_rmia.metrics["auc"] == cli_rmia["metrics"]["auc"]
    got = result.verdict("heldout-members", method="rmia")
    assert len(recipe_for_tests.CALLS) == 2  # the verdict reads the cached reference models
    want = report["verdict"]
    assert got["p_value"] == want["p_value"] and got["reject"] == want["reject"]
    assert got["sentence"] == want["sentence"] and got["mann_whitney"] == want["mann_whitney"]
    assert result.verdict("test", method="rmia")["query"]["n"] == 80  # the test set's non-null half
    null, _ = null_split(SimpleNamespace(test=np.arange(320, 480)), seed=0)  # the audit's test set: pool ids 320..479
    with pytest.raises(ConfigError, match="null reference"):
        result.verdict(null[:3], method="rmia")
    # new samples: the test set's non-null half handed over as (x, y) gives the verdict of its pool ids
    x_test, y_test = roles["test"]
    keep = np.isin(np.arange(320, 480), null, invert=True)
    as_samples = result.verdict((x_test[keep], y_test[keep]), method="rmia")
    assert as_samples["p_value"] == pytest.approx(result.verdict("test", method="rmia")["p_value"], rel=1e-9)
    assert as_samples["query"] == {"source": "samples", "n": 80} and len(recipe_for_tests.CALLS) == 2
    unseen = (ds.batch(np.arange(480, 520)), torch.from_numpy(ds.labels[480:520]))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*unseen), batch_size=16)
    assert result.verdict(loader, method="rmia")["query"]["n"] == 40
    with pytest.raises(ConfigError, match="copies of the null reference"):
        result.verdict((x_test[~keep][:3], y_test[~keep][:3]), method="rmia")


def test_a_failing_recipe_is_one_line_and_a_recipe_may_return_none(toy_dataset, tmp_path):
    spec, cfg = ModelSpec("tiny-cnn", 1, 3, (8, 8)), TrainConfig(epochs=1, batch_size=16)

    def broken(model, loader):
        raise RuntimeError("out of memory")

    def wrong(model, loader):
        return "a model"

    for fn, message in ((broken, "failed: RuntimeError: out of memory"), (wrong, "must return the trained model")):
        with pytest.raises(ModelError, match=message):
            recipe = ReferenceTrainer.of(fn)
            train_reference_models(spec, toy_dataset, np.arange(40, 80), 1, cfg, tmp_path / fn.__name__, trainer=recipe)
        assert not (tmp_path / fn.__name__).exists() or not any((tmp_path / fn.__name__).iterdir())
    in_place = ReferenceTrainer.of(lambda model, loader: None)  # trained in place
    refs = train_reference_models(spec, toy_dataset, np.arange(40, 80), 1, cfg, tmp_path / "c", trainer=in_place)
    assert len(refs.models) == 1


def test_python_audit_refuses_bad_attack_arguments_before_any_work(cli_work):
    net = torch.nn.Linear(64, 10)
    data = (torch.zeros(0), torch.zeros(0))  # never read: the arguments are refused first
    cases = [
        ({"methods": ["lyra"]}, "unknown method(s) lyra"),
        ({"methods": ["rmia"]}, "give build="),
        ({"methods": ["rmia"], "build": lambda: net, "references": 0}, "references must be a whole number >= 1"),
        ({"trainer": recipe_for_tests.sgd}, "name the attacks in methods="),
        ({"methods": ["rmia"], "build": lambda: net, "trainer": 3}, "trainer must be a callable"),
        ({"methods": ["rmia"], "build": lambda: net, "trainer_batch_size": 0}, "trainer_batch_size must be"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ConfigError, match=re.escape(message)):
            mintaudit.audit(net, members=data, external=data, test=data, **kwargs)


def test_the_recipe_version_follows_its_source_and_bound_values():
    from functools import partial

    from mintaudit.training import PackageTrainer

    def version(fn):
        return ReferenceTrainer.of(fn).version

    assert version(partial(recipe_for_tests.sgd, epochs=1)) == version(partial(recipe_for_tests.sgd, epochs=1))
    assert version(partial(recipe_for_tests.sgd, epochs=1)) != version(partial(recipe_for_tests.sgd, epochs=2))
    assert version(PackageTrainer(TrainConfig(epochs=1))) != version(PackageTrainer(TrainConfig(epochs=5)))
    assert ReferenceTrainer.of(partial(recipe_for_tests.sgd, epochs=1)).name == "recipe_for_tests:sgd"
    assert ReferenceTrainer.of(recipe_for_tests.sgd, version="v2").version == "v2"

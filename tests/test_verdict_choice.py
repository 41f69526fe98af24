"""``mintaudit test``'s default method: chosen on the auditor's own validation data among MINT rows and attacks.

One tiny work directory per module (random 8x8 npz, tiny-cnn, 1 epoch, a MINT model on relu1, LOSS
and RMIA with 2 reference models of 1 epoch): seconds.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from mintaudit.attacks.registry import AttackScores
from mintaudit.attacks.run import attack_scores
from mintaudit.cli import main
from mintaudit.data import Splits, load_dataset
from mintaudit.passive import passive_split
from mintaudit.workdir import null_split, resolve_model
from mintaudit.workdir.choice import attack_config_of, calibration_auc, choose_method
from mintaudit.workdir.model import model_spec


def _row(method, val=None, *, attack=None, layer="outputs", signal="outputs", heldout_auc=0.5):
    return {
        "method": method,
        "attack": attack,
        "layer": layer,
        "signal": signal,
        "fit": {} if val is None else {"val_auc": val},
        "metrics": {"auc": heldout_auc},
    }


def test_choice_is_by_validation_auc_never_by_the_held_out_auc():
    report = {
        "results": [
            _row("passive-mint", 0.61, layer="relu1", signal="activations", heldout_auc=0.99),  # best held-out AUC
            _row("passive-mint", 0.58, heldout_auc=0.50),
            _row("loss", attack="loss", heldout_auc=0.60),
            _row("rmia", attack="rmia", heldout_auc=0.51),
            _row("lira", attack="lira", heldout_auc=0.97),
        ]
    }
    method, layer, why = choose_method(
        report, {"loss": 0.55, "rmia": 0.66}, unavailable={"lira": "reference models not in the cache"}
    )
    assert (method, layer, why["chosen"], why["val_auc"]) == ("rmia", None, "rmia", 0.66)
    assert [(c["method"], c["val_auc"]) for c in why["candidates"]] == [
        ("passive-mint", 0.61),
        ("passive-mint", 0.58),
        ("loss", 0.55),
        ("rmia", 0.66),
    ]
    assert "lira" not in [c["method"] for c in why["candidates"]] and why["unavailable"] == {
        "lira": "reference models not in the cache"
    }
    assert "rmia" in why["sentence"] and "0.660" in why["sentence"] and "lira" in why["sentence"]
    # without the attacks, the MINT tap with the best validation AUC wins, not the one with the best held-out AUC
    report["results"][0]["fit"]["val_auc"], report["results"][1]["fit"]["val_auc"] = 0.57, 0.59
    assert choose_method(report, {})[:2] == ("passive-mint", None)
    report["results"][0]["fit"]["val_auc"] = 0.60
    method, layer, why = choose_method(report, {})
    assert (method, layer, why["signal"]) == ("passive-mint", "relu1", "activations")
    # a MINT row of an attack (calibrated-mint) brings its own validation AUC
    report["results"].append(_row("calibrated-mint", 0.7, attack="calibrated-mint"))
    assert (
        choose_method(report, {}, unavailable={"calibrated-mint": "reference models not in the cache"})[0]
        == "passive-mint"
    )
    # aMINT's plain twin was measured on another model: its rows are never candidates, however strong
    twin = {**_row("passive-mint", 0.99, layer="relu1", signal="activations"), "audited_model": "plain"}
    assert choose_method({"results": [*report["results"], twin]}, {})[:2] == ("calibrated-mint", None)
    assert choose_method({"results": [twin]})[2]["candidates"] == []
    assert choose_method({"results": []}) == ("passive-mint", None, choose_method({"results": []})[2])
    assert choose_method({"results": []})[2]["candidates"] == []


def test_calibration_auc_reads_the_calibration_sets_only():
    rng = np.random.default_rng(0)
    cm, cn = rng.normal(1, 1, 50), rng.normal(0, 1, 60)
    a = AttackScores(rng.normal(size=30), rng.normal(size=40), cm, cn, {})
    b = AttackScores(rng.normal(5, 1, 30), rng.normal(-5, 1, 40), cm, cn, {})  # other scored / null side
    assert calibration_auc(a) == calibration_auc(b) > 0.6


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("choice")
    rng = np.random.default_rng(0)
    np.savez(root / "data.npz", x=rng.integers(0, 256, (200, 8, 8), dtype=np.uint8), y=np.arange(200) % 3)
    data, out = f"npz:{root / 'data.npz'}", root / "run"
    base = ["--dataset", data, "--out", str(out), "--quiet"]
    assert (
        main(
            [
                "train",
                *base,
                "--model",
                "tiny-cnn",
                "--members",
                "60",
                "--external",
                "40",
                "--test",
                "80",
                "--epochs",
                "1",
            ]
        )
        == 0
    )
    assert main(["fit", *base, "--layer", "relu1", "--mint-epochs", "2", "--allow-weak-model"]) == 0
    only_mint = json.loads((out / "report.json").read_text())
    assert (
        main(
            [
                "attack",
                *base,
                "--methods",
                "loss,rmia",
                "--reference",
                "2",
                "--reference-epochs",
                "1",
                "--bootstrap",
                "0",
                "--allow-weak-model",
            ]
        )
        == 0
    )
    return {"data": data, "out": out, "base": [*base, "--allow-weak-model"], "only_mint": only_mint, "root": root}


def _verdict(out):
    return json.loads((out / "report.json").read_text())["verdict"]


def _csv_scores(out):
    lines = (out / "verdict.csv").read_text().splitlines()[1:]
    return np.array([int(x.split(",")[0]) for x in lines]), np.array([float(x.split(",")[1]) for x in lines])


def _rmia(work, extra=None):
    out = work["out"]
    ds = load_dataset(work["data"])
    splits = Splits.load(out / "splits.json", dataset=ds)
    net, _, _ = resolve_model(out, ds, allow_weak_model=True)
    report = json.loads((out / "report.json").read_text())
    split = passive_split(splits, known_fraction=0.5, seed=0)
    sc = attack_scores(
        net,
        model_spec(out, ds, None, None),
        ds,
        split,
        ["rmia"],
        out / "cache" / "attacks",
        attack_config_of(report),
        signals_root=out / "cache",
        extra=extra,
        train_references=False,
    )
    return sc["rmia"], split, splits


def test_method_rmia_gives_the_attacks_own_scores(work):
    out = work["out"]
    assert main(["test", *work["base"], "--query", "heldout-members", "--method", "rmia"]) == 0
    ids, scores = _csv_scores(out)
    own, split, splits = _rmia(work)
    assert ids.tolist() == split.heldout_members.tolist()
    np.testing.assert_allclose(scores, own.members, rtol=1e-8)
    v = _verdict(out)
    assert v["method"] == "rmia" and v["choice"]["given"] and "reference models" in v["detector"]
    # a query file of samples no attack set holds: scored as extra rows, the attack's sets unchanged
    _, pool = null_split(splits)
    outside = np.setdiff1d(np.arange(200), np.concatenate([splits.members, splits.external, splits.test]))[:7]
    again, _, _ = _rmia(work, extra=np.r_[outside, pool[:3]])
    np.testing.assert_array_equal(again.members, own.members)
    np.testing.assert_array_equal(again.nonmembers, own.nonmembers)
    np.testing.assert_array_equal(again.calibration_members, own.calibration_members)
    np.testing.assert_array_equal(again.calibration_nonmembers, own.calibration_nonmembers)
    rows = [split.test.tolist().index(i) for i in pool[:3]]
    np.testing.assert_allclose(again.extra[7:], own.nonmembers[rows], rtol=1e-9)
    np.save(work["root"] / "outside.npy", outside)
    assert main(["test", *work["base"], "--query", str(work["root"] / "outside.npy"), "--method", "rmia"]) == 0
    ids, scores = _csv_scores(out)
    assert ids.tolist() == outside.tolist()
    np.testing.assert_allclose(scores, again.extra[:7], rtol=1e-8)


def test_default_chooses_on_validation_data_and_records_it(work, capsys):
    out = work["out"]
    report = json.loads((out / "report.json").read_text())
    vals = {}
    for query in ("test", "heldout-members"):
        assert main(["test", *work["base"], "--query", query]) == 0
        vals[query] = _verdict(out)
    printed = capsys.readouterr().out
    c = vals["test"]["choice"]
    assert {x["method"] for x in c["candidates"]} == {"passive-mint", "loss", "rmia"}
    best = max(c["candidates"], key=lambda x: x["val_auc"])
    assert c["chosen"] == best["method"] == vals["test"]["method"] and not c.get("given")
    mint = next(x for x in c["candidates"] if x["method"] == "passive-mint")
    row = next(r for r in report["results"] if r["method"] == "passive-mint")
    assert mint["val_auc"] == row["fit"]["val_auc"] and mint["layer"] == "relu1"
    own, _, _ = _rmia(work)
    assert next(x for x in c["candidates"] if x["method"] == "rmia")["val_auc"] == pytest.approx(calibration_auc(own))
    # the query (and with it the scored side) changes; the choice does not
    assert vals["heldout-members"]["choice"] == c
    assert c["sentence"] in printed and "Method chosen" in c["sentence"]
    # the null reference changes (another fraction of the test split); the choice does not
    from mintaudit.workdir import prepare_data, verdict

    ds, splits = prepare_data(work["data"], out)
    v = verdict(out, ds, splits, query="heldout-members", null_fraction=0.3, allow_weak_model=True, show_progress=False)
    assert v["choice"] == c and v["n_null"] != vals["test"]["n_null"]
    html = (out / "report.html").read_text()
    assert "Method chosen" in html


def test_default_on_a_report_with_only_passive_mint_rows(work, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(work["out"], out, ignore=shutil.ignore_patterns("attacks"))
    (out / "report.json").write_text(json.dumps(work["only_mint"]))
    assert (
        main(["test", "--dataset", work["data"], "--out", str(out), "--quiet", "--allow-weak-model", "--query", "test"])
        == 0
    )
    v = _verdict(out)
    assert v["method"] == "passive-mint" and v["layer"] == "relu1"
    assert "passive-mint" in {x["method"] for x in v["choice"]["candidates"]}
    assert v["choice"]["chosen"] in {x["method"] for x in v["choice"]["candidates"]}


def _files(root):
    return {os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs}


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--query", "heldout-members", "--method", "lira-online"], "run 'mintaudit attack --out"),
        (["--query", "heldout-members", "--method", "lira-online"], "--methods lira-online --reference 2' first"),
        (["--query", "NEW", "--method", "rmia"], "use --method passive-mint or loss"),
        (
            ["--query", "heldout-members", "--method", "no-such-attack"],
            "--method must be passive-mint, amint or an attack",
        ),
        (["--query", "heldout-members", "--method", "rmia", "--layer", "relu1"], "--layer and --fuse-outputs apply"),
        (["--query", "KNOWN", "--method", "rmia"], "calibration and reference data"),
    ],
)
def test_refusals(work, refused, tmp_path, extra, needle):
    new = tmp_path / "new.npz"
    rng = np.random.default_rng(3)
    np.savez(new, x=rng.integers(0, 256, (10, 8, 8), dtype=np.uint8), y=np.arange(10) % 3)
    splits = Splits.load(work["out"] / "splits.json", dataset=load_dataset(work["data"]))
    np.save(tmp_path / "known.npy", splits.external[:4])
    extra = [{"NEW": f"npz:{new}", "KNOWN": str(tmp_path / "known.npy")}.get(a, a) for a in extra]
    before = _files(work["out"])
    line = refused(["test", *work["base"], *extra])
    assert needle in line
    assert _files(work["out"]) == before  # nothing trained or written in the work directory


@pytest.mark.parametrize("recorded", [True, False])  # False: a report written before --population was recorded
def test_reference_models_on_the_unused_population_are_found(tmp_path, recorded):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "data.npz", x=rng.integers(0, 256, (200, 8, 8), dtype=np.uint8), y=np.arange(200) % 3)
    out = tmp_path / "run"
    base = ["--dataset", f"npz:{tmp_path / 'data.npz'}", "--out", str(out), "--quiet", "--allow-weak-model"]
    assert (
        main(
            [
                "train",
                *base[:-1],
                "--model",
                "tiny-cnn",
                "--members",
                "60",
                "--external",
                "40",
                "--test",
                "60",
                "--epochs",
                "1",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "attack",
                *base,
                "--methods",
                "rmia",
                "--reference",
                "2",
                "--reference-epochs",
                "1",
                "--bootstrap",
                "0",
                "--population",
                "unused",
            ]
        )
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["attack_population"] == "unused"
    if not recorded:
        del report["config"]["attack_population"]
        (out / "report.json").write_text(json.dumps(report))
    models = _files(out / "cache" / "attacks" / "reference")
    assert main(["test", *base, "--query", "heldout-members"]) == 0
    v = _verdict(out)
    assert v["method"] == v["choice"]["chosen"] and "rmia" in [c["method"] for c in v["choice"]["candidates"]]
    assert main(["test", *base, "--query", "heldout-members", "--method", "rmia"]) == 0
    assert _files(out / "cache" / "attacks" / "reference") == models  # read, never trained

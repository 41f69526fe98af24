"""aMINT in a work directory: train -> deliver -> evaluate -> compare with passive MINT -> query, via the CLI."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from mintaudit.cli import main
from mintaudit.data import load_dataset

ARGS = ["--dataset", "digits", "--members", "300", "--external", "400", "--test", "300", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("amint")
    code = main(
        [
            "active",
            "train",
            "--out",
            str(out),
            *ARGS,
            "--epochs",
            "4",
            "--lr",
            "1e-3",
            "--batch-size",
            "32",
            "--val-external",
            "100",
            "--bootstrap",
            "50",
        ]
    )
    assert code == 0
    return out


@pytest.mark.parametrize("action", ["train", "eval", "query"])
def test_each_action_has_help_with_an_example(action, capsys):
    with pytest.raises(SystemExit) as e:
        main(["active", action, "--help"])
    assert e.value.code == 0
    assert f"mintaudit active {action}" in capsys.readouterr().out


def test_train_delivers_a_model_and_reports_amint_beside_passive(trained):
    report = json.loads((trained / "report.json").read_text())
    rows = report["results"]
    amint = [r for r in rows if r["method"] == "amint"]
    assert len(amint) == 1
    a = amint[0]
    assert a["protocol"] == "training-members" and a["setup"] == "middle" and a["layer"] == "block2.pool+block3.pool"
    assert a["n_members"] == a["n_nonmembers"] == 300
    assert 0.0 <= a["calibrated_accuracy"] <= 1.0 and 0.0 < a["calibrated_threshold"] < 1.0
    assert 0.0 < a["aud"] <= 1.0 and a["epochs"]["run"] == 4
    plain = [r for r in rows if r.get("audited_model") == "plain"]
    assert sorted(r["protocol"] for r in plain) == ["heldout-members", "training-members"]
    assert all(r["method"] == "passive-mint" and r["layer"] == "block3.pool" for r in plain)
    meta = json.loads((trained / "amint" / "middle" / "amint.json").read_text())
    assert meta["taps"] == ["block2.pool", "block3.pool"] and meta["threshold"] == a["calibrated_threshold"]
    # the plain model is the same backbone trained for the same budget
    plain_info = json.loads((trained / "model" / "model.json").read_text())
    assert plain_info["train"]["epochs"] == 4 and plain_info["train"]["lr"] == 1e-3
    html = (trained / "report.html").read_text()
    assert "aMINT middle" in html and "Passive vs active MINT" in html
    # validation external samples were never trained on: they are disjoint from the training external set
    splits = json.loads((trained / "splits.json").read_text())
    assert set(meta["external_validation"]) <= set(splits["external"])


def test_eval_reproduces_the_training_row(trained, capsys):
    before = next(r for r in json.loads((trained / "report.json").read_text())["results"] if r["method"] == "amint")
    assert main(["active", "eval", "--out", str(trained), *ARGS, "--bootstrap", "50"]) == 0
    rows = json.loads((trained / "report.json").read_text())["results"]
    after = [r for r in rows if r["method"] == "amint"]
    assert len(after) == 1  # replaced, not duplicated
    assert after[0]["metrics"]["auc"] == pytest.approx(before["metrics"]["auc"], abs=1e-9)
    assert after[0]["calibrated_accuracy"] == pytest.approx(before["calibrated_accuracy"], abs=1e-9)


def test_query_prints_and_writes_csv_and_json(trained, tmp_path, capsys):
    ds = load_dataset("digits")
    paths = []
    for i in range(3):
        p = tmp_path / f"d{i}.png"
        Image.fromarray(ds.images[i, :, :, 0]).save(p)
        paths.append(str(p))
    assert (
        main(
            [
                "active",
                "query",
                str(trained / "amint" / "middle"),
                *paths,
                "--csv",
                str(tmp_path / "a.csv"),
                "--json",
                str(tmp_path / "a.json"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.count("membership") == 3
    rows = list(csv.DictReader(open(tmp_path / "a.csv")))
    assert [r["path"] for r in rows] == paths
    assert all(0.0 <= float(r["membership"]) <= 1.0 for r in rows)
    answers = json.loads((tmp_path / "a.json").read_text())["answers"]
    assert [a["label"] for a in answers] == [int(r["label"]) for r in rows]
    assert np.isclose(answers[0]["membership"], float(rows[0]["membership"]))


def test_bad_input_is_one_line_and_exit_2(trained, tmp_path, capsys):
    assert main(["active", "query", str(tmp_path), "x.png"]) == 2
    assert "amint.json" in capsys.readouterr().err
    assert main(["active", "eval", "--out", str(trained), *ARGS, "--setup", "entry"]) == 2
    assert main(["active", "train", "--out", str(tmp_path / "n"), *ARGS, "--backbone", "resnet5O"]) == 2
    err = capsys.readouterr().err
    assert "resnet50" in err and "Traceback" not in err
    assert main(["active", "train", "--out", str(tmp_path / "m"), *ARGS, "--head-widths", "a,b"]) == 2
    assert main(["active", "train", "--out", str(tmp_path / "m"), *ARGS, "--backbone-arg", "dropout"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert main(["active", "train", "--out", str(tmp_path / "m"), *ARGS, "--backbone-arg", "drop=0"]) == 2
    assert "drop" in capsys.readouterr().err


def test_verdict_with_the_delivered_model(trained, capsys):
    """`mintaudit test --method amint`: the delivered model's membership probability, tested against the null."""
    from mintaudit.active import load_active, membership_scores
    from mintaudit.workdir import null_split, prepare_data

    assert main(["test", "--out", str(trained), *ARGS, "--method", "amint", "--query", "heldout-members"]) == 0
    assert "against a null reference" in capsys.readouterr().out
    v = json.loads((trained / "report.json").read_text())["verdict"]
    assert (
        v["method"] == "amint"
        and v["layer"] == "block2.pool+block3.pool"
        and "training members" in v["query"]["description"]
    )
    rows = list(csv.DictReader(open(trained / "verdict.csv")))
    assert len(rows) == v["query"]["n"] > 0
    # the p-values are the conformal ones of the delivered model's scores against the null half of the test split
    ds, splits = prepare_data("digits", trained, members=300, external=400, test=300)
    model, _ = load_active(trained / "amint" / "middle")
    null = membership_scores(model, ds, null_split(splits)[0])
    ids = np.array([int(r["sample_id"]) for r in rows])
    scores = membership_scores(model, ds, ids)
    np.testing.assert_allclose([float(r["score"]) for r in rows], scores, rtol=1e-6)
    expected = (1 + (null[None, :] >= scores[:, None]).sum(1)) / (null.size + 1)
    np.testing.assert_allclose([float(r["p_value"]) for r in rows], expected, rtol=1e-6)
    assert all(int(r["n_null"]) == null.size for r in rows)


def test_verdict_with_the_delivered_model_refuses_bad_input(trained, tmp_path, capsys):
    assert main(["test", "--out", str(trained), *ARGS, "--method", "amint", "--query", "test", "--setup", "entry"]) == 2
    assert "no delivered aMINT model" in capsys.readouterr().err
    assert main(["test", "--out", str(trained), *ARGS, "--method", "amint", "--query", "test", "--layer", "fc"]) == 2
    assert "--layer" in capsys.readouterr().err
    splits = json.loads((trained / "splits.json").read_text())
    (tmp_path / "q.txt").write_text("\n".join(str(i) for i in splits["external"][:5]))
    assert main(["test", "--out", str(trained), *ARGS, "--method", "amint", "--query", str(tmp_path / "q.txt")]) == 2
    assert "external samples the aMINT head was trained on" in capsys.readouterr().err

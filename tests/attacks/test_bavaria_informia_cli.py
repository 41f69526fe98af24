"""``mintaudit attack --methods informia,bavaria,bavaria-n``: report rows, options from the command line and YAML.

One tiny work directory for the module (tiny-cnn, 1 epoch on 40 digits members); 2 reference models, 1 epoch.
"""

from __future__ import annotations

import json

import pytest

from mintaudit.cli import main


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    out = tmp_path_factory.mktemp("newattacks")
    base = ["--dataset", "digits", "--out", str(out), "--quiet"]
    sizes = ["--members", "40", "--external", "40", "--test", "40", "--epochs", "1"]
    assert main(["train", *base, "--model", "tiny-cnn", *sizes]) == 0
    refs = ["--reference", "2", "--reference-epochs", "1", "--bootstrap", "20", "--allow-weak-model"]
    return out, base + refs


def _rows(out):
    return {r["attack"]: r for r in json.loads((out / "report.json").read_text())["results"]}


def test_the_three_attacks_write_their_rows(work):
    out, args = work
    assert main(["attack", *args, "--methods", "informia,bavaria,bavaria-n", "--attack-opt", "bavaria.alpha0=3"]) == 0
    rows = _rows(out)
    assert {a: rows[a]["method"] for a in ("informia", "bavaria", "bavaria-n")} == {
        "informia": "informia",
        "bavaria": "bavaria",
        "bavaria-n": "bavaria",
    }
    for a in ("informia", "bavaria", "bavaria-n"):
        assert rows[a]["fit"]["n_reference"] == 2 and 0.0 <= rows[a]["metrics"]["auc"] <= 1.0
        assert rows[a]["n_members"] == rows[a]["n_nonmembers"] == 20
    fit, fit_n = rows["bavaria"]["fit"], rows["bavaria-n"]["fit"]
    assert (fit["alpha0"], fit["kappa0"], fit["online"], fit["predictive"]) == (3.0, 1.0, False, "student-t")
    assert (fit_n["alpha0"], fit_n["predictive"]) == (1.0, "normal")  # its own options: bavaria's did not leak
    # offline: the IN prior comes from the references' own training halves of the reference population
    assert (
        fit["prior"]["in"]["n_statistics"] > 0
        and fit["prior"]["out"]["n_statistics"] > fit["prior"]["in"]["n_statistics"]
    )
    assert fit["prior"]["in"]["beta0"] == pytest.approx(2 * fit_n["prior"]["in"]["beta0"])  # var * (alpha0 - 1)


def test_online_bavaria_from_yaml_uses_lira_online_references(work, tmp_path):
    out, args = work
    cfg = tmp_path / "attack.yaml"
    cfg.write_text("methods: bavaria\nattack-opt:\n  - bavaria.online=true\n  - bavaria.kappa0=0.5\n")
    assert main(["attack", *args, "--config", str(cfg)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["attacks"]["options"] == {"bavaria": {"kappa0": 0.5, "alpha0": 2.0, "online": True}}
    fit = _rows(out)["bavaria"]["fit"]
    assert (fit["online"], fit["kappa0"], fit["alpha0"]) == (True, 0.5, 2.0)
    # lira-online's references: trained on paired halves around the scored rows, each row IN for exactly one
    prior = fit["prior"]
    assert prior["in"]["n_statistics"] == prior["out"]["n_statistics"] > 0, prior


def test_options_are_in_help_and_bad_values_are_one_line(work, capsys, refused):
    with pytest.raises(SystemExit) as e:
        main(["attack", "--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "bavaria.alpha0 (a number, default 2.0): NIG prior: shape of the variance" in text
    assert "bavaria-n.alpha0 (a number, default 1.0)" in text
    assert "bavaria.online (true or false, default False)" in text
    out, args = work
    cmd = ["attack", *args, "--methods", "bavaria", "--attack-opt"]
    assert "--attack-opt bavaria.kappa0 must be > 0, got 0.0" in refused([*cmd, "bavaria.kappa0=0"])
    assert "bavaria.online must be true or false, got 'maybe'" in refused([*cmd, "bavaria.online=maybe"])
    assert "attack 'informia' has no options" in refused([*cmd, "informia.k=1"])

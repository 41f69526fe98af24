"""An attack with an option, from one file: ``--attack-opt NAME.KEY=VALUE`` and the YAML config, generated from its dataclass.

One tiny work directory per module (tiny-cnn, 1 epoch on 120 digits); the attacks here need no reference model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest

from mintaudit.attacks import ATTACKS, register_attack, unregister_attack
from mintaudit.attacks.options import option
from mintaudit.cli import main
from mintaudit.errors import ConfigError

SEEN: list = []


@dataclass(frozen=True)
class TopOptions:
    k: int = option(3, "how many of the largest logits to add", low=1)
    scale: float = option(1.0, "a factor on the score", low=0.0, high=10.0)


@pytest.fixture
def top_k():
    """The whole plug-in: a dataclass and a decorated score function (registered here, removed after)."""

    @register_attack("top-k-test", options=TopOptions)
    def top(ctx):
        SEEN.append(ctx.options)
        return ctx.options.scale * np.sort(ctx.logits, 1)[:, -ctx.options.k :].sum(1)

    SEEN.clear()
    yield
    unregister_attack("top-k-test")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    out = tmp_path_factory.mktemp("opts")
    base = ["--dataset", "digits", "--out", str(out), "--quiet"]
    sizes = ["--members", "40", "--external", "40", "--test", "40", "--epochs", "1"]
    assert main(["train", *base, "--model", "tiny-cnn", *sizes]) == 0
    return out, base


def test_the_option_is_in_help_and_read_from_yaml(top_k, work, capsys, tmp_path):
    out, base = work
    with pytest.raises(SystemExit) as e:
        main(["attack", "--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "top-k-test.k (a whole number >= 1, default 3): how many of the largest logits to add" in text
    assert "rmia.a (a number in [0.0, 1.0], default 0.33)" in text
    cfg = tmp_path / "attack.yaml"
    cfg.write_text("methods: top-k-test\nattack-opt:\n  - top-k-test.k=2\n  - top-k-test.scale=0.5\nbootstrap: 20\n")
    assert main(["attack", *base, "--config", str(cfg), "--allow-weak-model"]) == 0
    assert SEEN == [TopOptions(k=2, scale=0.5)]
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["attacks"]["options"] == {"top-k-test": {"k": 2, "scale": 0.5}}
    assert any(r.get("attack") == "top-k-test" for r in report["results"])


def test_a_bad_option_is_one_line(top_k, work, refused):
    out, base = work
    cmd = ["attack", *base, "--methods", "top-k-test", "--allow-weak-model", "--attack-opt"]
    assert "--attack-opt top-k-test.k must be a whole number >= 1, got 0" in refused([*cmd, "top-k-test.k=0"])
    assert "must be a whole number, got 'two'" in refused([*cmd, "top-k-test.k=two"])
    assert "--attack-opt rmia.a must be a number in [0.0, 1.0], got 2" in refused([*cmd, "rmia.a=2"])
    assert "has no option b; its options: rmia.a, rmia.gamma" in refused([*cmd, "rmia.b=1"])
    assert "rmia.gamma must be > 0" in refused([*cmd, "rmia.gamma=0"])
    assert "takes ATTACK.KEY=VALUE" in refused([*cmd, "k=2"])
    assert "has no options" in refused([*cmd, "entropy.x=1"])


def test_register_refuses_options_without_defaults():
    @dataclass(frozen=True)
    class NoDefault:
        k: int

    with pytest.raises(ConfigError, match="every option needs a default"):
        register_attack("no-default-test", options=NoDefault)
    assert "no-default-test" not in ATTACKS


def test_rmia_a_is_an_alias_with_one_deprecation_line(work, capsys):
    out, base = work
    assert (
        main(["attack", *base, "--methods", "loss", "--rmia-a", "0.5", "--bootstrap", "20", "--allow-weak-model"]) == 0
    )
    err = capsys.readouterr().err
    assert err.count("deprecated") == 1 and "--attack-opt rmia.a=0.5" in err
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["attacks"]["rmia_a"] == 0.5 and "options" not in report["config"]["attacks"]


def test_lira_variance_is_an_option_in_help_and_yaml_that_wins_over_the_flag(work, capsys, tmp_path, monkeypatch):
    out, base = work
    monkeypatch.setenv("COLUMNS", "10000")  # no wrapping at the hyphens of lira-online and per-sample
    with pytest.raises(SystemExit) as e:
        main(["attack", "--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "lira.variance (one of auto, pooled, per-sample, default auto)" in text
    assert "lira-online.variance (one of auto, pooled, per-sample, default auto)" in text
    cfg = tmp_path / "lira.yaml"
    cfg.write_text("methods: lira\nattack-opt:\n  - lira.variance=per-sample\nreference: 2\nreference-epochs: 1\n")
    # with 2 reference models --fixed-variance auto would pool; yes pools too; the attack's own option wins
    args = ["attack", *base, "--config", str(cfg), "--fixed-variance", "yes", "--bootstrap", "20", "--allow-weak-model"]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["attacks"]["options"] == {"lira": {"variance": "per-sample"}}
    [row] = [r for r in report["results"] if r.get("attack") == "lira"]
    assert row["fit"]["fixed_variance"] is False and row["fit"]["variance"] == "per-sample"


def test_a_bad_lira_variance_is_one_line(work, refused):
    out, base = work
    cmd = ["attack", *base, "--methods", "lira", "--allow-weak-model", "--attack-opt"]
    assert "--attack-opt lira.variance must be one of auto, pooled, per-sample, got 'maybe'" in refused(
        [*cmd, "lira.variance=maybe"]
    )
    assert "has no option flip; its options: lira-online.variance" in refused([*cmd, "lira-online.flip=1"])


def test_text_options_keep_the_text_given():
    from mintaudit.attacks.options import build_options

    @dataclass(frozen=True)
    class Words:
        word: str = option("on", "a word YAML would read as a boolean", choices=("on", "off", "no"))

    assert build_options("w", Words, {"word": " no "}).word == "no"  # not False, not 'False'
    assert build_options("w", Words, {"word": "off"}).word == "off"

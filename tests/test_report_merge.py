"""One merge rule for report.json: a rerun replaces its own rows, a later sweep keeps everything else.

Hostile cases: C171 (a sweep after attack / test / audit-dp kept their rows, verdict and DP audit),
C173 (a refused command leaves the earlier run's config), a sweep of another record refused.
"""

from __future__ import annotations

import json
import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mintaudit.cli import main
from mintaudit.errors import ConfigError
from mintaudit.report.merge import add_verdict, merge_reports, merge_rows, row_key

SIZES = ["--dataset", "digits", "--model", "tiny-cnn", "--members", "100", "--external", "100", "--test", "100"]
WEAK = ["--allow-weak-model", "--mint-epochs", "2", "--bootstrap", "10"]  # a 2-epoch model: the rule, not the numbers


def _row(**kw):
    return {"method": "passive-mint", "signal": "activations", "protocol": "heldout-members", "n_members": 50,
            "n_nonmembers": 50, **kw}  # fmt: skip


def test_row_key_separates_what_the_rule_names():
    base = _row(layer="fc")
    assert row_key(base) == row_key({**base, "metrics": {"auc": 0.9}, "label": "L7"})
    assert row_key(base) == row_key({**base, "tap_mode": "full"})  # full maps: with or without the field
    for other in (
        {"layer": "conv"},
        {"detector": "cnn"},
        {"tap_mode": "pooled"},
        {"protocol": "training-members"},
        {"n_members": 40},
        {"signal": "activations+outputs"},
        {"options": {"a": 1}},
        {"fit": {"n_reference": 4}},
        {"method": "gmint", "setup": "entry", "budget": 0.1, "reduction": "mean"},
    ):
        assert row_key(base) != row_key({**base, **other}), other


def test_merge_rows_replaces_in_place_and_appends_new_keys():
    old = [_row(layer="a", v=1), _row(layer="b", v=1), {**_row(method="rmia", signal="outputs"), "attack": "rmia"}]
    merged = merge_rows(old, [_row(layer="b", v=2), _row(layer="c", v=2)])
    assert [(r["layer"] if "layer" in r else r["method"], r.get("v")) for r in merged] == [
        ("a", 1),
        ("b", 2),
        ("rmia", None),
        ("c", 2),
    ]


def test_merge_reports_keeps_sections_and_refuses_another_record():
    model, data = {"fingerprint": "m1", "preprocess": {"mean": [0.5]}}, {"fingerprint": "d1", "members": 10}
    old = {"schema": "mintaudit/report@1", "model": model, "dataset": data, "results": [_row(layer="a")],
           "verdict": {"method": "loss"}, "dp_audit": {"epsilon": 1.0}, "config": {"attacks": {"n": 2}}}  # fmt: skip
    new = {"schema": "mintaudit/report@1", "model": model, "dataset": data, "results": [_row(layer="b")],
           "verdict": None, "config": {"taps": "b"}}  # fmt: skip
    merged = merge_reports(old, new)
    assert [r["layer"] for r in merged["results"]] == ["a", "b"]
    assert merged["verdict"] == {"method": "loss"} and merged["dp_audit"] == {"epsilon": 1.0}
    assert merged["config"] == {"attacks": {"n": 2}, "taps": "b"}
    for section, change in (("model", {"fingerprint": "m2"}), ("model", {"preprocess": {"mean": [0]}})):
        with pytest.raises(ConfigError, match="another record.*use another --out"):
            merge_reports(old, {**new, section: {**new[section], **change}})


def test_verdicts_are_kept_per_query_and_an_old_single_verdict_joins_them():
    report = {"verdict": {"method": "loss", "query": {"source": "old.txt"}}}  # report@1: one verdict, no list
    add_verdict(report, {"method": "loss", "query": {"source": "q.txt", "sha256": "aa"}})
    add_verdict(report, {"method": "rmia", "query": {"source": "q.txt", "sha256": "aa"}})
    add_verdict(report, {"method": "loss", "query": {"source": "q.txt", "sha256": "aa"}, "p_value": 0.5})
    assert [(v["method"], v["query"]["source"]) for v in report["verdicts"]] == [
        ("loss", "old.txt"),
        ("rmia", "q.txt"),
        ("loss", "q.txt"),
    ]
    assert report["verdict"]["p_value"] == 0.5


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """digits, tiny-cnn (2 epochs, audited with --allow-weak-model): train, sweep relu1, attack entropy, test, audit-dp."""
    out = tmp_path_factory.mktemp("merge") / "run"
    o = ["--out", str(out), "--quiet"]
    assert main(["train", *SIZES, *o, "--epochs", "2", "--lr", "0.01"]) == 0
    assert main(["sweep", *SIZES, *o, *WEAK, "--taps", "relu1"]) == 0
    assert main(["attack", *SIZES, *o, "--methods", "entropy", "--allow-weak-model", "--bootstrap", "10"]) == 0
    assert main(["test", *SIZES, *o, "--query", "heldout-members", "--method", "loss", "--allow-weak-model"]) == 0
    assert main(["audit-dp", *SIZES, *o, "--canaries", "20", "--epochs", "1"]) == 0
    return out


@pytest.fixture
def work(audited, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(audited, out)
    capsys.readouterr()
    return out


def _rows(out):
    report = json.loads((out / "report.json").read_text())
    return report, [(r["method"], r.get("layer")) for r in report["results"]]


def test_a_later_sweep_keeps_attack_rows_verdict_and_dp_audit(work, capsys):
    before, rows = _rows(work)
    assert ("entropy", "outputs") in rows and before["verdict"] and before["sections"]["dp"]["audit"]
    sweep = ["sweep", *SIZES, "--out", str(work), "--quiet", *WEAK]
    assert main([*sweep, "--taps", "fc"]) == 0
    after, rows_after = _rows(work)
    assert rows_after == [*rows, ("passive-mint", "fc")]  # loss recomputed in its place, fc added
    assert after["verdict"] == before["verdict"] and all(
        after["sections"][k] == before["sections"][k] for k in ("dp", "blind")
    )
    assert after["verdicts"] == before["verdicts"] and len(after["verdicts"]) == 1
    assert main([*sweep, "--taps", "relu1,fc"]) == 0  # a rerun replaces, never duplicates
    assert _rows(work)[1] == rows_after
    capsys.readouterr()


def test_a_sweep_of_another_model_is_refused_and_keeps_the_report(work, refused, tmp_path):
    """Another model into the same OUT (here: other weights) is another record: refused, nothing replaced."""
    import torch
    from safetensors.torch import save_file

    from mintaudit.models import TinyCNN

    torch.manual_seed(1)
    save_file(TinyCNN(1, 10).state_dict(), str(tmp_path / "other.safetensors"))
    before = (work / "report.json").read_bytes()
    config = (work / "sweep.config.json").read_bytes()
    line = refused(
        [
            "sweep",
            *SIZES,
            "--out",
            str(work),
            "--taps",
            "fc",
            "--weights",
            str(tmp_path / "other.safetensors"),
            *WEAK,
        ],  # fmt: skip
        allow_new=("*/cache/*", "*/cache/probe/*"),
    )
    # the audit record refuses it first (the weights contradict it); the merge rule's own refusal stays behind it
    assert ("another record" in line or "contradicts the audit record" in line) and "another --out" in line, line
    assert (work / "report.json").read_bytes() == before and (work / "sweep.config.json").read_bytes() == config


def test_a_refused_command_keeps_the_earlier_config(work, refused):
    """C173: the configuration beside the results stays the one of the run that made them."""
    config = (work / "sweep.config.json").read_bytes()
    refused(["sweep", *SIZES, "--out", str(work), "--taps", "nosuch", *WEAK])
    assert (work / "sweep.config.json").read_bytes() == config
    assert json.loads(config)["taps"] == "relu1"


_rows_st = st.lists(
    st.fixed_dictionaries(
        {
            "method": st.sampled_from(["passive-mint", "loss", "gmint"]),
            "signal": st.just("activations"),
            "protocol": st.sampled_from(["heldout-members", "training-members"]),
            "layer": st.sampled_from(["a", "b", None]),
            "n_members": st.integers(1, 3),
            "n_nonmembers": st.just(2),
            "v": st.integers(),
        }
    ),
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(old=_rows_st, new=_rows_st)
def test_merge_rows_loses_no_key_and_is_idempotent(old, new):
    merged = merge_rows(old, new)
    keys = [row_key(r) for r in merged]
    assert set(keys) == {row_key(r) for r in [*old, *new]}  # every measurement kept, once per new key
    latest = {row_key(r): r for r in new}
    assert all(merged[keys.index(k)] == r for k, r in latest.items())  # a rerun's row wins
    assert merge_rows(merged, new) == merged

"""Numbers that mean something (hostile cases C031, C032, C050, C064, C087, C126, C141, C142, C145, C161).

Too few samples on a side of a result row is refused, few is flagged in words (report.json,
terminal, HTML); a grid larger than the map, a tap given two modes, duplicate YAML keys, a DP
delta that allows releasing records, a non-numeric model argument and non-finite weights are
each refused in one line; taps keep their published labels when only some are chosen.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mintaudit.cli import main
from mintaudit.errors import ConfigError
from mintaudit.evaluation import evaluate_scores
from mintaudit.report import format_table, new_report, render_html
from mintaudit.report.schema import add_result
from mintaudit.signals import resolve_tap_modes

DIGITS = ["--dataset", "digits"]


@pytest.fixture(scope="module")
def objcls(tmp_path_factory):
    """An OUT and untrained objcls-cnn weights for digits (no training needed: the gate is waived)."""
    from safetensors.torch import save_file

    from mintaudit.models import ModelSpec, build_model

    root = tmp_path_factory.mktemp("objcls")
    torch.manual_seed(0)
    net = build_model(ModelSpec("objcls-cnn", 1, 10, (8, 8)))
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(root / "w.safetensors"))
    return root


MODEL = ["--model", "objcls-cnn", "--allow-weak-model", "--members", "120", "--external", "120", "--test", "120"]
SWEEP = ["sweep", *DIGITS, *MODEL, "--mint-epochs", "1", "--bootstrap", "20", "--quiet"]


def test_chosen_taps_keep_their_published_labels_and_small_rows_are_flagged(objcls, capsys):  # C145, C032
    out, w = objcls / "run", objcls / "w.safetensors"
    assert main([*SWEEP, "--weights", str(w), "--out", str(out), "--taps", "block1.relu2,fc_relu"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    labels = {r["layer"]: r["label"] for r in report["results"] if r["method"] == "passive-mint"}
    assert labels == {"block1.relu2": "L2", "fc_relu": "L7"}  # the published numbering, not L1, L2
    rows = report["results"]
    assert all(r["n_members"] == 60 for r in rows)
    assert all(any("small sample: 60 members / 60 non-members" in w for w in r["warnings"]) for r in rows)
    assert "! L2: small sample" in printed and "! L7: small sample" in printed
    assert "small sample: 60 members" in (out / "report.html").read_text()


def test_grid_larger_than_the_map_and_a_tap_given_two_modes_are_refused(objcls, refused):  # C142, C141
    base = ["sweep", *DIGITS, *MODEL, "--weights", objcls / "w.safetensors", "--out", objcls / "run"]
    base += ["--taps", "block1.relu2,fc_relu"]
    line = refused([*base, "--tap-mode", "grid:50"])
    assert "grid:50 on tap 'block1.relu2', a 8x8 map" in line and "use grid:8 or less" in line
    line = refused([*base, "--tap-mode", "block1.relu2=pooled,block1.relu2=full"])
    assert "names tap 'block1.relu2' twice" in line


def test_grid_check_of_the_api_and_library():  # C087: tap_mode="grid:100" on a 4x4 map
    with pytest.raises(ConfigError, match="a 4x4 map: a grid larger than the map"):
        resolve_tap_modes({"stage2": (64, 4, 4)}, "grid:100")
    with pytest.raises(ConfigError, match="16 tokens"):
        resolve_tap_modes({"blocks.1": (16, 32)}, "grid:5")
    assert resolve_tap_modes({"stage2": (64, 4, 4), "blocks.1": (16, 32)}, "grid:4") == {
        "stage2": "grid:4",
        "blocks.1": "grid:4",
    }


@pytest.mark.parametrize(
    "sizes, side",
    [
        (["--members", "200", "--external", "1", "--test", "200"], "1 external samples"),  # C031
        (["--members", "30", "--external", "100", "--test", "100"], "15 known members"),
        (["--members", "100", "--external", "100", "--test", "19"], "19 test samples"),
    ],
)
def test_too_few_samples_on_a_side_are_refused(sizes, side, refused):  # C031
    line = refused(["sweep", *DIGITS, *sizes, "--out", "o"], allow_new=("o/splits.json",))
    assert side in line and "at least 20 samples on each side" in line


def test_two_line_member_list_is_refused_before_any_row(tmp_path, refused):  # C032
    (tmp_path / "m.txt").write_text("3\n5\n")
    line = refused(
        ["attack", *DIGITS, "--members-file", "m.txt", "--methods", "loss", "--out", "o"],
        allow_new=("o/splits.json",),
    )
    assert "1 known members" in line and "at least 20" in line


def test_rows_under_100_a_side_carry_a_warning_and_larger_ones_none():
    rng = np.random.default_rng(0)
    report = new_report(dataset={"name": "x"}, model={"name": "m"}, config={}, command="test")
    for n in (40, 100):
        ev = evaluate_scores(rng.normal(1, 1, n), rng.normal(0, 1, n), n_bootstrap=20)
        add_result(report, {"method": "loss", "signal": "outputs", "protocol": "heldout-members", **ev.to_dict()})
    small, large = report["results"]
    assert small["warnings"] == [
        "small sample: 40 members / 40 non-members (under 100 a side): the numbers are imprecise, read the interval"
    ]
    assert "warnings" not in large
    table = format_table(report)
    assert table.count("small sample") == 1 and "40 members / 40 non-members" in table
    assert render_html(report).count("small sample: 40 members") == 1


def test_duplicate_yaml_keys_are_refused(tmp_path, refused):  # C064
    (tmp_path / "dup.yaml").write_text("members: 100\nmembers: 200\n")
    line = refused(["splits", *DIGITS, "--config", "dup.yaml", "--out", "o"])
    assert "dup.yaml, line 2" in line and "'members' is given twice" in line


def test_dp_delta_at_or_above_one_over_members_is_refused(refused):  # C161
    argv = ["train", *DIGITS, "--members", "400", "--external", "400", "--test", "400", "--epochs", "1"]
    line = refused([*argv, "--dp-epsilon", "8", "--dp-delta", "0.01", "--out", "d"], allow_new=("d/splits.json",))
    assert "--dp-delta 0.01 is not below 1 / 400 training samples" in line and "--dp-delta 0.0001" in line


def test_non_numeric_backbone_argument_is_named(refused):  # C126
    argv = ["active", "train", *DIGITS, "--members", "100", "--external", "100", "--test", "100"]
    line = refused([*argv, "--backbone-arg", "dropout=abc", "--out", "a"], allow_new=("a/*",))
    assert "argument dropout='abc' must be a number (default 0.25)" in line


def test_weights_holding_nan_are_refused_naming_the_tensor(objcls, tmp_path, refused):  # C050
    from safetensors.torch import load_file, save_file

    state = load_file(str(objcls / "w.safetensors"))
    state["block1.conv1.weight"][0, 0, 0, 0] = float("nan")
    save_file(state, str(tmp_path / "nan.safetensors"))
    argv = ["sweep", *DIGITS, "--model", "objcls-cnn", "--weights", "nan.safetensors", "--taps", "fc_relu"]
    line = refused([*argv, "--out", "w"], allow_new=("w/*", "w/*/*", "w/*/*/*"))
    assert "'block1.conv1.weight' holds 1 NaN or infinite value(s)" in line and "preprocessing" not in line
    assert torch.isnan(state["block1.conv1.weight"]).sum() == 1


@pytest.mark.parametrize("threshold", [float("nan"), 2.0, -0.1, "abc", None])
def test_amint_thresholds_lie_in_0_1_on_export_and_on_load(tmp_path, threshold):  # C111, C119 (thresholds in [0, 1])
    from mintaudit.active import ActiveModel, export_active, load_active
    from mintaudit.errors import ModelError
    from mintaudit.models import ModelSpec, build_model

    spec = ModelSpec("tiny-cnn", 1, 3, (8, 8))
    model = ActiveModel(build_model(spec), ["relu2"], example=torch.zeros(2, 1, 8, 8)).eval()
    with pytest.raises(ModelError, match=r"threshold must be a number in \[0, 1\]"):
        export_active(model, spec, tmp_path / "bad", threshold=threshold)
    assert not (tmp_path / "bad").exists()
    folder = export_active(model, spec, tmp_path / "m", threshold=1.0)
    meta = json.loads((folder / "amint.json").read_text())
    meta["threshold"] = threshold
    (folder / "amint.json").write_text(json.dumps(meta))  # NaN is written as the JSON extension NaN
    with pytest.raises(ModelError, match=r"'threshold' in .*amint.json' must be a number in \[0, 1\]"):
        load_active(folder)

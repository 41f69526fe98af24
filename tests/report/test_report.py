"""The report: schema, validation, write / load round trip, HTML page and terminal table."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mintaudit
from mintaudit.errors import CorruptFileError, DataNotFoundError, EvaluationError
from mintaudit.evaluation import SampleInfo, evaluate_scores
from mintaudit.report import (
    METHODS,
    SCHEMA,
    add_result,
    format_table,
    load_report,
    new_report,
    render_html,
    write_report,
)
from mintaudit.report.svg import Plot, Scale

INJECTION = "<script>alert(1)</script>"


def _result(seed: int, *, method: str = "passive-mint", protocol: str = "heldout-members", **extra: Any) -> dict:
    rng = np.random.default_rng(seed)
    m, n = rng.normal(0.2 * seed, 1, 300), rng.normal(0, 1, 300)
    signal = "activations" if method in ("passive-mint", "amint") else "outputs"
    return {
        "method": method,
        "signal": signal,
        "protocol": protocol,
        **extra,
        **evaluate_scores(m, n, threshold=0.0, n_bootstrap=30, seed=seed).to_dict(),
    }


@pytest.fixture
def report() -> dict:
    r = new_report(
        dataset={"name": "toy", "members": 300, "seed": 0},
        model={"name": "mlp", "task_accuracy": 0.9},
        config={"detector": "mlp", "epochs": 2},
        command=["mintaudit", "sweep", "--out", "a b"],
    )
    for depth in (1, 2, 3):
        add_result(r, _result(depth, layer=f"net.{depth}", depth=depth, label=f"L{depth}", detector="mlp"))
    add_result(r, _result(0, method="loss"))
    return r


def test_new_report_has_the_design_fields(report: dict) -> None:
    empty = new_report(dataset={}, model={}, config={}, command="mintaudit demo")
    assert empty["schema"] == SCHEMA == "mintaudit/report@2" and empty["sections"] == {}
    assert empty["mintaudit_version"] == mintaudit.__version__
    assert empty["results"] == [] and empty["verdict"] is None and empty["command"] == "mintaudit demo"
    assert empty["created"].endswith("Z")
    datetime.fromisoformat(empty["created"].replace("Z", "+00:00"))
    assert report["command"] == "mintaudit sweep --out 'a b'"
    assert set(report) >= {
        "schema",
        "created",
        "mintaudit_version",
        "dataset",
        "model",
        "results",
        "verdict",
        "config",
        "command",
    }


def test_add_result_stores_a_copy(report: dict) -> None:
    result = _result(5, layer="x", depth=4)
    add_result(report, result)
    result["layer"] = "changed"
    assert report["results"][-1]["layer"] == "x"


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"protocol": "test-members"}, "protocol.*heldout-members"),
        ({"method": "magic"}, "method.*passive-mint"),
        ({"n_members": -1}, "n_members"),
        ({"metrics": {"auc": 0.5}}, "metrics"),
        ({"ci95": [0, 1]}, "ci95"),
        ({"depth": 0}, "depth"),
    ],
)
def test_add_result_refuses_bad_results(report: dict, change: dict, match: str) -> None:
    with pytest.raises(EvaluationError, match=match):
        add_result(report, {**_result(1), **change})
    assert len(report["results"]) == 4


def test_add_result_names_missing_keys(report: dict) -> None:
    bad = _result(1)
    del bad["signal"]
    with pytest.raises(ValueError, match="signal"):  # EvaluationError is a ValueError
        add_result(report, bad)


def test_every_listed_method_is_accepted(report: dict) -> None:
    for method in METHODS:
        add_result(report, {**_result(1), "method": method})


def test_write_and_load_round_trip(report: dict, tmp_path: Path) -> None:
    json_path, html_path = write_report(report, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.html", "report.json"]
    assert (json_path.name, html_path.name) == ("report.json", "report.html")
    assert load_report(json_path) == report
    assert load_report(tmp_path / "out") == report  # a directory holding report.json


def test_nan_metrics_are_written_as_null_and_rendered(report: dict, tmp_path: Path) -> None:
    report["results"][0]["metrics"]["auc"] = float("nan")
    json_path, _ = write_report(report, tmp_path)
    loaded = load_report(json_path)
    assert loaded["results"][0]["metrics"]["auc"] is None
    assert "–" in render_html(loaded) and "–" in format_table(loaded)


def test_load_report_refuses_other_files(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_report(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(CorruptFileError, match="not valid JSON"):
        load_report(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"schema": "something/else@2"}))
    with pytest.raises(CorruptFileError, match="expected 'mintaudit/report@2' \\(or 'mintaudit/report@1'\\)"):
        load_report(tmp_path / "other.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(ValueError, match="schema"):
        load_report(tmp_path / "list.json")


def test_html_is_self_contained(report: dict) -> None:
    page = render_html(report)
    assert page.startswith("<!DOCTYPE html>") and page.count("<html") == 1
    for outside in ("http", "src=", "<link", "@import", "url(", "<script", "<iframe"):
        assert outside not in page.lower()


def test_html_has_every_plot_kind(report: dict) -> None:
    page = render_html(report)
    titles = re.findall(r"<svg[^>]*><title>([^<]*)</title>", page)
    assert "ROC curves, heldout-members" in titles
    assert sum(t.startswith(("L1:", "L2:", "L3:", "loss:")) for t in titles) == 4  # one histogram per result
    assert {"AUC by depth, heldout-members", "Accuracy by depth, heldout-members"} <= set(titles)
    assert "(loss, no depth)" in page  # the baseline as a dashed line in the depth plots
    assert "Best result" in page and "How this was made" in page and "How to read this" in page
    assert "mintaudit sweep --out &#x27;a b&#x27;" in page and "&quot;epochs&quot;: 2" in page


def test_html_escapes_report_strings(report: dict) -> None:
    report["results"][0]["layer"] = INJECTION
    report["results"][1]["label"] = INJECTION
    report["dataset"]["name"] = INJECTION
    report["config"]["note"] = INJECTION
    report["command"] = INJECTION
    page = render_html(report)
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_html_separates_protocols_and_shows_the_verdict_first(report: dict) -> None:
    add_result(report, _result(4, method="amint", protocol="training-members", layer="head", depth=2))
    report["verdict"] = {"decision": "members detected", "p_value": 0.001}
    page = render_html(report)
    assert "ROC curves, heldout-members" in page and "ROC curves, training-members" in page
    assert page.index("Verdict") < page.index("<h2>Results</h2>")
    assert "members detected" in page


def test_empty_report_renders() -> None:
    empty = new_report(dataset={}, model={}, config={}, command=[])
    assert "No results yet" in render_html(empty)
    assert format_table(empty) == "(no results)"


def test_format_table(report: dict) -> None:
    table = format_table(report)
    lines = table.splitlines()
    assert len(lines) == 2 + 4
    assert lines[0].split()[:5] == ["result", "layer", "signal", "method", "protocol"]
    assert set(lines[1]) <= {"-", " "}
    assert lines[3].split()[:2] == ["L2", "net.2"] and "300/300" in table
    auc = report["results"][0]["metrics"]["auc"]
    assert f"{auc:.3f} [" in lines[2]
    column = lines[0].index("method")
    assert all(line[column - 2 : column] == "  " for line in lines)  # fixed width columns


def test_scale_and_ticks() -> None:
    log = Scale(1e-3, 1.0, 0.0, 300.0, log=True)
    assert log.ticks() == [1e-3, 1e-2, 1e-1, 1.0]
    assert (log(1e-3), log(0.0), log(1.0), log(5.0)) == (0.0, 0.0, 300.0, 300.0)  # clamped
    assert Scale(0.0, 1.0, 0.0, 100.0).ticks() == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    svg = Plot((0.0, 1.0), (0.0, 1.0), title=INJECTION).render()
    assert svg.startswith("<svg") and "<script" not in svg


def _sliced_result(seed: int, **extra: Any) -> dict:
    """A result with an epsilon bound and slices (3 classes, correct / wrong)."""
    rng = np.random.default_rng(seed)
    m, n = rng.normal(1.0, 1, 300), rng.normal(0, 1, 300)
    info = [SampleInfo(rng.integers(0, 3, 300), rng.random(300) < 0.8) for _ in range(2)]
    ev = evaluate_scores(m, n, threshold=0.5, n_bootstrap=30, seed=seed, member_info=info[0], nonmember_info=info[1])
    return {
        "method": "loss",
        "signal": "outputs",
        "protocol": "heldout-members",
        "label": "LOSS",
        **extra,
        **ev.to_dict(),
    }


def test_epsilon_bound_and_slices_reach_json_html_and_terminal(report: dict, tmp_path: Path) -> None:
    add_result(report, _sliced_result(5))
    write_report(report, tmp_path)
    loaded = load_report(tmp_path)
    row = loaded["results"][-1]
    eps = row["epsilon_lower_bound"]
    assert eps["epsilon"] > 0 and (eps["delta"], eps["confidence"], eps["per_rate_confidence"]) == (1e-5, 0.95, 0.975)
    assert "selection half" in eps["threshold_half"]
    assert set(row["slices"]["class"]) == {"0", "1", "2"} and row["slices"]["correct"]["n_members"] > 0
    assert all(r["epsilon_lower_bound"]["epsilon"] is not None for r in loaded["results"])  # every result has one
    page = render_html(loaded)
    assert "<th>&epsilon; LB</th>" in page and f"{eps['epsilon']:.2f}" in page and "&delta;=1e-05, 95%" in page
    assert "<h2>Slices</h2>" in page and "<summary>LOSS</summary>" in page and "class 2" in page
    titles = re.findall(r"<svg[^>]*><title>([^<]*)</title>", page)
    assert "LOSS" in titles  # the small-multiples plot of the sliced result
    assert "No slices for L1, L2, L3" in page  # results made without sample information say so
    table = format_table(loaded)
    assert "eps LB" in table.splitlines()[0] and f"{eps['epsilon']:.2f}" in table.splitlines()[-1]


def test_report_without_slices_has_no_slice_section(report: dict) -> None:
    assert "<h2>Slices</h2>" not in render_html(report)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"epsilon_lower_bound": {"epsilon": -1.0, "delta": 1e-5, "confidence": 0.95}}, "epsilon_lower_bound"),
        ({"epsilon_lower_bound": {"epsilon": 1.0, "delta": 0.0, "confidence": 0.95}}, "'delta' and 'confidence' in"),
        ({"epsilon_lower_bound": {"epsilon": 1.0, "delta": 1e-5, "confidence": 1.5}}, "epsilon_lower_bound"),
        ({"epsilon_lower_bound": {"delta": 1e-5, "confidence": 0.95}}, "epsilon_lower_bound"),
        ({"epsilon_lower_bound": 1.2}, "epsilon_lower_bound"),
        ({"slices": {"klass": {}}}, "keys among 'class', 'correct', 'wrong'"),
        ({"slices": [1, 2]}, "result\\['slices'\\] must be a dict"),
        (
            {"slices": {"class": {"0": {"n_members": -1, "n_nonmembers": 3, "metrics": None}}}},
            "result\\['slices'\\]\\['class'\\]\\['0'\\] must be a dict with integer",
        ),
        ({"slices": {"correct": {"n_members": 3, "n_nonmembers": 3, "metrics": 0.5}}}, "'metrics'"),
        (
            {
                "slices": {
                    "wrong": {
                        "n_members": 3,
                        "n_nonmembers": 3,
                        "metrics": None,
                        "epsilon_lower_bound": {"epsilon": 1.0, "delta": 2.0, "confidence": 0.9},
                    }
                }
            },
            "\\['wrong'\\]\\['epsilon_lower_bound'\\]",
        ),
    ],
)
def test_add_result_refuses_bad_bounds_and_slices(report: dict, change: dict, match: str) -> None:
    with pytest.raises(EvaluationError, match=match):
        add_result(report, {**_result(1), **change})
    assert len(report["results"]) == 4

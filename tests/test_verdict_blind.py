"""``mintaudit test`` on digits: the blind baseline turns "Evidence" into "Inconclusive" for a shifted query.

A tiny CNN is over-fitted on 150 digits; its held-out members are queried as they are (the
blind baseline sees nothing: "Evidence") and brightened x1.2 as new samples (the LOSS test still
rejects, but a classifier that never sees the model tells them from the null: "Inconclusive").
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from mintaudit.cli import main
from mintaudit.data import Splits, load_dataset
from mintaudit.passive import passive_split


@pytest.fixture(scope="module")
def audit(tmp_path_factory):
    root = tmp_path_factory.mktemp("blind")
    out = root / "run"
    train = ["train", "--dataset", "digits", "--model", "tiny-cnn", "--out", str(out), "--quiet"]
    sizes = ["--members", "150", "--external", "100", "--test", "300"]
    assert main([*train, *sizes, "--epochs", "30", "--lr", "0.01", "--batch-size", "16"]) == 0
    ds = load_dataset("digits")
    held = passive_split(Splits.load(out / "splits.json", dataset=ds), known_fraction=0.5, seed=0).heldout_members
    bright = np.clip(np.asarray(ds.images[held], dtype=np.float64) * 1.2, 0, 255).astype(np.uint8)
    np.savez(root / "bright.npz", x=bright[..., 0], y=ds.labels[held])
    return out, f"npz:{root / 'bright.npz'}"


def _test(out, query, capsys):
    argv = ["test", "--dataset", "digits", "--out", str(out), "--query", query, "--method", "loss", "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    return printed, json.loads((out / "report.json").read_text())["verdict"]


def test_iid_members_keep_their_evidence_and_show_the_blind_auc(audit, capsys):
    out, _ = audit
    printed, v = _test(out, "heldout-members", capsys)
    assert v["reject"] and v["conclusion"] == "evidence" and v["sentence"].startswith("Evidence")
    b = v["blind"]
    assert not b["rejects"] and 0.0 <= b["auc"] <= 1.0 and b["p_value"] > 0.01 and b["n_query"] == v["n_query"]
    assert f"cross-validated AUC {b['auc']:.3f}" in printed
    share, need = v["usage_share"], v["samples_needed"]
    assert share["tpr"] > share["fpr"] and 0 < share["estimate"] <= 1 and share["tpr_measured_on_query"]
    assert share["ci95"][0] <= share["estimate"] <= share["ci95"][1]
    assert isinstance(need["n"], int) and need["n"] >= 2 and f"{need['n']:,} members" in printed
    assert "share of the queries used" in printed and "Storey" in printed


def test_a_brightened_query_is_inconclusive_everywhere(audit, capsys):
    out, bright = audit
    printed, v = _test(out, bright, capsys)
    assert v["reject"] and v["blind"]["rejects"] and v["blind"]["auc"] > 0.9 and v["conclusion"] == "inconclusive"
    first = printed.splitlines()[0]
    assert first.startswith("Inconclusive: the query differs in distribution from the reference (blind AUC ")
    assert v["sentence"] == first and v["test_sentence"].startswith("Evidence")
    html = (out / "report.html").read_text()
    latest = html.split("Earlier verdicts")[0]  # the iid query's verdict, when kept, is folded below the latest
    assert '<h2>Verdict <span class="badge maybe">Inconclusive</span></h2>' in latest
    assert "Evidence of use" not in latest
    assert "Blind baseline" in html and f"{v['blind']['auc']:.3f}" in html


def test_a_tiny_query_gets_its_verdict_with_the_blind_baseline_skipped_in_words():
    from mintaudit.data import ImageDataset
    from mintaudit.report.verdict_text import verdict_check_lines
    from mintaudit.workdir.verdict_checks import add_verdict_checks

    rng = np.random.default_rng(0)
    ds = ImageDataset("toy", rng.integers(0, 256, (60, 8, 8, 1), dtype=np.uint8), np.arange(60) % 2, 2)
    v = {"reject": True, "sentence": "Evidence that ...", "n_query": 3, "n_null": 40, "p_value": 0.01}
    add_verdict_checks(
        v,
        q_ds=ds,
        q_ids=np.arange(3),
        ds=ds,
        null_idx=np.arange(20, 60),
        q_scores=np.array([3.0, 2.0, 1.0]),
        null_scores=rng.normal(0, 1, 40),
        member_ids=np.arange(3, 20),
        member_scores=rng.normal(1, 1, 17),
    )
    assert v["conclusion"] == "evidence" and v["blind"]["auc"] is None and "at least 10" in v["blind"]["skipped"]
    assert v["usage_share"]["tpr_measured_on_query"] is False and v["usage_share"]["n_members"] == 17
    assert {"n", "power_at_n", "auc"} <= set(v["samples_needed"]) and v["samples_needed"]["n_null"] == 40
    lines = verdict_check_lines(v)
    assert lines[0].startswith("  blind baseline not computed: the blind baseline needs at least 10 images")
    assert len(lines) == 3

"""A report with results of every family and two verdicts, made with the real scoring and verdict code."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from mintaudit.data import ImageDataset
from mintaudit.evaluation import SampleInfo, dataset_test, evaluate_scores, sample_decisions
from mintaudit.report import add_result, new_report
from mintaudit.report.merge import add_verdict
from mintaudit.workdir.verdict_checks import add_verdict_checks


def _row(shift: float, method: str, protocol: str = "heldout-members", *, seed: int = 0, **extra: Any) -> dict:
    """A result row scored by evaluate_scores: members shifted by ``shift`` standard deviations."""
    rng = np.random.default_rng(seed)
    members, nonmembers = rng.normal(shift, 1, 200), rng.normal(0, 1, 200)
    info = {
        "member_info": SampleInfo(rng.integers(0, 3, 200), rng.random(200) < 0.9),
        "nonmember_info": SampleInfo(rng.integers(0, 3, 200), rng.random(200) < 0.9),
    }
    ev = evaluate_scores(members, nonmembers, threshold=0.0, n_bootstrap=30, seed=seed, **info)
    signal = {"passive-mint": "activations", "amint": "activations", "gmint": "gradients"}.get(method, "outputs")
    return {"method": method, "signal": signal, "protocol": protocol, **extra, **ev.to_dict()}


def _verdict(shift: float, source: str, method: str) -> dict:
    """A verdict as ``mintaudit test`` makes it: the dataset-level test, then the blind baseline, share, samples."""
    rng = np.random.default_rng(1)
    q, null, held = rng.normal(shift, 1, 60), rng.normal(0, 1, 200), rng.normal(0.8, 1, 80)
    images = rng.integers(0, 256, (340, 8, 8, 1), dtype=np.uint8)  # one distribution: the blind baseline sees nothing
    ds = ImageDataset("toy", images, np.arange(340) % 3, 3)
    v = dataset_test(q, null).to_dict()
    v.update(
        method=method,
        signal="outputs",
        layer="outputs",
        query={"source": source, "description": f"the {source} query", "n": 60},
        null_reference={"source": "held-out non-members", "n": 200},
        per_sample=sample_decisions(q, null).to_dict(),
        choice={
            "chosen": method,
            "given": False,
            "sentence": f"Method chosen: {method}, the best validation AUC (0.640) among 2 candidate(s).",
        },
    )
    return add_verdict_checks(
        v,
        q_ds=ds,
        q_ids=np.arange(60),
        ds=ds,
        null_idx=np.arange(60, 260),
        q_scores=q,
        null_scores=null,
        member_ids=np.arange(260, 340),
        member_scores=held,
    )


@pytest.fixture(scope="session")
def _audit_report() -> dict:
    r = new_report(
        dataset={"name": "toy", "members": 200, "seed": 0},
        model={"name": "tiny-cnn", "task_accuracy": 0.9},
        config={"detector": "cnn", "seed": 0},
        command=["mintaudit", "attack", "--out", "runs/my audit", "--dataset", "digits"],
    )
    for depth, shift in ((1, 0.2), (2, 0.6)):
        add_result(r, _row(shift, "passive-mint", seed=depth, layer=f"relu{depth}", label=f"L{depth}", depth=depth))
    # the plain model's training-members row beats the held-out ones, but passive MINT's best is taken held out
    add_result(r, _row(1.5, "passive-mint", "training-members", seed=3, layer="relu2", audited_model="plain"))
    add_result(r, _row(0.4, "gmint", seed=4, layer="fc", label="G1", depth=1))
    add_result(r, _row(1.2, "amint", "training-members", seed=5, layer="relu2", label="aMINT middle", setup="middle"))
    add_result(r, _row(0.3, "loss", seed=6, label="LOSS"))
    add_result(r, _row(0.5, "rmia", seed=7, label="RMIA"))
    add_verdict(r, _verdict(0.0, "test", "loss"))  # earlier: non-members, no evidence
    add_verdict(r, _verdict(1.0, "heldout-members", "rmia"))  # latest: members, evidence
    return r


@pytest.fixture
def audit_report(_audit_report: dict) -> dict:
    """A fresh copy of the report: results of the four families, the latest verdict and an earlier one."""
    return copy.deepcopy(_audit_report)

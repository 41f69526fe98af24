"""The one-run canary audit (issue 16, item 3): the bound against direct computations, its validity on
randomised response, the guesses, the verb and its bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mintaudit.canary import (
    check_audit,
    draw_canaries,
    epsilon_one_run,
    guess_grid,
    min_canaries,
    one_run_bound,
    p_value,
)
from mintaudit.cli import main
from mintaudit.errors import ConfigError
from pools import learnable_npz


def _tail(r: int, v: int, q: float) -> float:
    """P[Binomial(r, q) >= v], summed term by term."""
    return sum(math.comb(r, j) * q**j * (1 - q) ** (r - j) for j in range(v, r + 1))


def _p_direct(m: int, r: int, v: int, eps: float, delta: float) -> float:
    """The paper's Appendix-D p-value, written as its loop."""
    q = 1 / (1 + math.exp(-eps))
    pmf = [math.comb(r, j) * q**j * (1 - q) ** (r - j) for j in range(r + 1)]
    alpha, acc = 0.0, 0.0
    for i in range(1, v + 1):
        acc += pmf[v - i]
        alpha = max(alpha, acc / i)
    return min(_tail(r, v, q) + 2 * m * delta * alpha, 1.0)


@pytest.mark.parametrize(
    "m, r, v, eps, delta",
    [
        (10, 10, 10, 1.0, 0.0),
        (50, 20, 15, 0.5, 0.0),
        (50, 20, 15, 0.5, 1e-3),
        (200, 40, 30, 2.0, 1e-5),
        (30, 30, 0, 1.0, 1e-2),
    ],
)
def test_p_value_is_the_papers(m, r, v, eps, delta):
    assert p_value(m, r, v, eps, delta) == pytest.approx(_p_direct(m, r, v, eps, delta), rel=1e-9, abs=1e-15)


def test_all_right_guesses_by_hand():
    # r = v = 10, delta 0: q^10 = 0.05  ->  eps = logit(0.05 ** 0.1)
    q = 0.05**0.1
    assert epsilon_one_run(10, 10, 10, delta=0.0, confidence=0.95) == pytest.approx(math.log(q / (1 - q)), abs=1e-5)


@pytest.mark.parametrize("m, r, v, delta", [(100, 40, 35, 0.0), (100, 40, 35, 1e-4), (1000, 200, 130, 1e-5)])
def test_the_bound_is_the_largest_eps_below_the_level(m, r, v, delta):
    eps = epsilon_one_run(m, r, v, delta=delta, confidence=0.95)
    assert eps > 0
    assert _p_direct(m, r, v, eps, delta) < 0.05 <= _p_direct(m, r, v, eps + 1e-4, delta)


def test_all_right_guesses_grow_with_r_and_chance_level_gives_zero():
    bounds = [epsilon_one_run(1000, r, r, delta=1e-5) for r in (10, 20, 50, 100, 200)]
    assert all(a < b for a, b in zip(bounds, bounds[1:])) and bounds[0] > 0
    assert epsilon_one_run(1000, 200, 100, delta=1e-5) == 0.0  # 50% right: no evidence
    assert epsilon_one_run(1000, 200, 80, delta=0.0) == 0.0  # worse than chance
    assert epsilon_one_run(1000, 0, 0) == 0.0
    # delta only weakens the bound
    assert epsilon_one_run(1000, 200, 170, delta=1e-3) < epsilon_one_run(1000, 200, 170, delta=0.0)


def _randomised_response(eps: float, m: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """An (eps, 0)-DP release of each canary's bit, and the bits: the auditor's score is the released bit."""
    included = rng.random(m) < 0.5
    keep = rng.random(m) < math.exp(eps) / (1 + math.exp(eps))
    released = np.where(keep, included, ~included)
    return released + 0.01 * rng.random(m), included  # the jitter only orders ties


@pytest.mark.parametrize("eps", [1.0, 2.0, 4.0])
def test_randomised_response_bound_exceeds_the_true_eps_at_most_5_percent(eps):
    rng = np.random.default_rng(int(eps * 10))
    m, runs = 500, 200
    fixed = [
        one_run_bound(*_randomised_response(eps, m, rng), delta=0.0, guesses=(50, 50)).epsilon for _ in range(runs)
    ]
    assert np.mean(np.array(fixed) > eps) <= 0.08  # 5% expected at most; 16 of 200 leaves room for the draw
    assert np.mean(fixed) > 0.3 * eps  # and the audit has power: the bound is clearly positive
    if eps == 2.0:  # the grid with its Bonferroni correction stays valid too
        grid = [one_run_bound(*_randomised_response(eps, m, rng), delta=0.0).epsilon for _ in range(runs)]
        assert np.mean(np.array(grid) > eps) <= 0.08 and np.mean(grid) > 0.3 * eps


def test_one_run_bound_counts_the_guesses():
    included = np.array([True, False] * 50)
    scores = included.astype(float)  # a perfect attack
    b = one_run_bound(scores, included, delta=0.0, guesses=(10, 10))
    assert (b.correct_pos, b.correct_neg, b.guesses, b.m, b.included) == (10, 10, 20, 100, 50)
    assert b.epsilon == pytest.approx(epsilon_one_run(100, 20, 20))
    g = one_run_bound(scores, included, delta=0.0)
    assert g.chosen.startswith("best of a grid of") and len(g.grid) == len(guess_grid(100))
    assert g.epsilon > b.epsilon  # more right guesses beat the Bonferroni cost here
    inverted = one_run_bound(-scores, included, delta=0.0, guesses=(10, 10))
    assert inverted.correct == 0 and inverted.epsilon == 0.0


def test_draw_canaries_is_seeded_and_fair():
    pool = np.arange(100, 2100)
    a, ia = draw_canaries(pool, 1000, seed=3)
    b, ib = draw_canaries(pool, 1000, seed=3)
    assert np.array_equal(a, b) and np.array_equal(ia, ib) and len(np.unique(a)) == 1000 and np.isin(a, pool).all()
    assert 430 < ia.sum() < 570
    with pytest.raises(ConfigError, match="exceeds the 2000 external samples"):
        draw_canaries(pool, 2001)


def test_check_audit():
    need = min_canaries(confidence=0.95, delta=1e-5)
    check_audit(need, guesses=None, confidence=0.95, delta=1e-5)
    with pytest.raises(ConfigError, match=f"at least {need}"):
        check_audit(need - 1, guesses=None, confidence=0.95, delta=1e-5)
    with pytest.raises(ConfigError, match="more than the 50 canaries"):
        check_audit(50, guesses=(30, 30), confidence=0.95, delta=1e-5)


# ---------------------------------------------------------------------------------------------
# the verb


def _npz(tmp_path):
    return learnable_npz(tmp_path, 300)


SIZES = ["--members", "60", "--external", "150", "--test", "60"]


@pytest.mark.parametrize("method", ["loss", "passive-mint"])
def test_audit_dp_writes_the_bound(tmp_path, capsys, method):
    out = tmp_path / "run"
    code = main(
        [
            "audit-dp",
            "--dataset",
            _npz(tmp_path),
            *SIZES,
            "--model",
            "tiny-cnn",
            "--epochs",
            "2",
            "--canaries",
            "100",
            "--method",
            method,
            "--quiet",
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    doc = json.loads((out / "audit-dp.json").read_text())
    assert doc["m"] == 100 == len(doc["canary_indices"]) and doc["method"] == method and doc["confidence"] == 0.95
    assert doc["included"] == sum(doc["canary_included"]) and doc["epsilon"] >= 0 and doc["delta"] == 1e-5
    splits = json.loads((out / "splits.json").read_text())
    assert set(doc["canary_indices"]) <= set(splits["external"])
    report = json.loads((out / "report.json").read_text())
    audit = report["sections"]["dp"]["audit"]
    assert audit["epsilon"] == doc["epsilon"] and audit["model"]["dp"] is None
    assert (out / "audit-dp" / "model" / "model.json").is_file()
    assert "one-run audit" in printed and "epsilon lower bound" in printed and "trained without DP" in printed
    assert "One-run canary audit" in (out / "report.html").read_text()


def test_audit_dp_under_dp_stays_below_the_accountant(tmp_path, capsys):
    pytest.importorskip("opacus")
    out = tmp_path / "run"
    assert (
        main(
            [
                "audit-dp",
                "--dataset",
                _npz(tmp_path),
                *SIZES,
                "--model",
                "tiny-cnn",
                "--epochs",
                "1",
                "--batch-size",
                "32",
                "--canaries",
                "100",
                "--dp-epsilon",
                "1",
                "--dp-delta",
                "1e-5",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    doc = json.loads((out / "audit-dp.json").read_text())
    claim = doc["model"]["dp"]
    assert claim["epsilon_spent"] <= 1.05 and doc["epsilon"] <= claim["epsilon_spent"] and doc["delta"] == 1e-5
    assert "DP-SGD claim: epsilon" in capsys.readouterr().out


def _audit(tmp_path, *extra):
    return [
        "audit-dp",
        "--dataset",
        _npz(tmp_path),
        *SIZES,
        "--model",
        "tiny-cnn",
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "run"),
        *extra,
    ]


@pytest.mark.parametrize(
    "extra, words",
    [
        (
            ["--canaries", "4"],
            ["4 canaries cannot give a positive epsilon bound", "at least 8", "--canaries 8 or more"],
        ),
        (["--canaries", "50", "--guesses", "30,30"], ["60 guesses, more than the 50 canaries"]),
        (
            ["--canaries", "50", "--guesses", "2,1"],
            ["3 guesses (k+ + k-) cannot give a positive", "at least 5", "make k+ + k- at least 5"],
        ),
        (["--guesses", "ten,ten"], ["--guesses takes two whole numbers"]),
        (["--guesses", "0,0"], ["--guesses takes K+,K-"]),
        (["--confidence", "1"], ["--confidence must be", "(0, 1)"]),
        (["--confidence", "0"], ["--confidence must be"]),
        (["--canaries", "0"], ["--canaries must be"]),
        (["--dp-epsilon", "1"], ["--dp-epsilon needs --dp-delta"]),
        (["--dp-epsilon", "1", "--dp-delta", "2"], ["--dp-delta must be", "(0, 1)"]),
        (["--dp-epsilon", "1", "--dp-delta", "1e-5", "--max-grad-norm", "0"], ["--max-grad-norm must be"]),
    ],
)
def test_bad_audit_options(refused, tmp_path, extra, words):
    line = refused(_audit(tmp_path, *extra))
    for w in words:
        assert w in line, line


def test_more_canaries_than_external_samples(refused, tmp_path):
    line = refused(_audit(tmp_path, "--canaries", "151"), allow_new=("splits.json",))
    assert "--canaries 151 exceeds the 150 external samples" in line


def test_audit_dp_help_has_an_example(capsys):
    with pytest.raises(SystemExit) as e:
        main(["audit-dp", "--help"])
    text = capsys.readouterr().out
    assert e.value.code == 0 and "Examples:" in text and "mintaudit audit-dp --dataset" in text and "--canaries" in text

"""The one-run privacy audit with canaries (Steinke, Nasr and Jagielski, "Privacy auditing with
one (1) training run", NeurIPS 2023).

``m`` canaries are drawn (seeded) from samples no model was trained on; each joins the training
set independently with probability 1/2, beside the ordinary members; the model is trained
once. Every canary is then scored (higher = more likely trained on); the auditor guesses "in"
for the ``k+`` top-scored and "out" for the ``k-`` bottom-scored canaries and abstains on the
rest. If training is ``(epsilon, delta)``-DP, the number ``W`` of right guesses among the
``r = k+ + k-`` is stochastically dominated as in the paper's Theorem 3.1 / Appendix D:

    P[W >= v] <= P[Binomial(r, q) >= v] + 2 m delta max_{i=1..v} P[v - i <= Binomial(r, q) < v] / i,
    q = exp(epsilon) / (1 + exp(epsilon)),

so the largest ``epsilon`` whose p-value is still below ``1 - confidence`` is a lower bound on
the true epsilon that holds with probability ``confidence`` (:func:`epsilon_one_run`; the paper's
numeric procedure, a bisection on this p-value). With ``delta = 0`` the tail is exactly the
binomial one of randomised response.

Choosing ``(k+, k-)``: either fixed in advance (``guesses``), or the best of a small grid
(:func:`guess_grid`: ``k+ = k- = k``, ``k+ = 0`` and ``k- = 0``, with ``k`` = 1%, 2.5%, 5%, 10%, 25%
and 50% of ``m``), each
evaluated at ``(1 - confidence) / len(grid)`` (Bonferroni), so the best one still holds at
``confidence``.

Example:
    >>> round(epsilon_one_run(m=10, r=10, v=10, delta=0.0, confidence=0.95), 3)
    1.052
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import binom

from mintaudit.errors import ConfigError, EvaluationError

__all__ = [
    "p_value",
    "epsilon_one_run",
    "min_canaries",
    "guess_grid",
    "OneRunBound",
    "one_run_bound",
    "draw_canaries",
    "check_audit",
    "GRID_FRACTIONS",
]

GRID_FRACTIONS = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
"""Shares of the canaries guessed (half "in", half "out") that :func:`guess_grid` tries."""


def p_value(m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """P[>= ``v`` right guesses out of ``r``] under an ``(epsilon, delta)``-DP training on ``m`` canaries (the paper's bound)."""
    if not 0 <= v <= r <= m:
        raise EvaluationError(f"need 0 <= right guesses <= guesses <= canaries, got v={v}, r={r}, m={m}")
    if v == 0:
        return 1.0
    q = 1.0 / (1.0 + math.exp(-epsilon))
    beta = float(binom.sf(v - 1, r, q))  # P[Binomial(r, q) >= v]
    if delta == 0.0:
        return min(beta, 1.0)
    pmf = binom.pmf(np.arange(v - 1, -1, -1), r, q)  # P[B = v-1], P[B = v-2], ..., P[B = 0]
    alpha = float(np.max(np.cumsum(pmf) / np.arange(1, v + 1)))  # max_i P[v-i <= B < v] / i
    return min(beta + 2.0 * m * delta * alpha, 1.0)


def epsilon_one_run(
    m: int, r: int, v: int, *, delta: float = 0.0, confidence: float = 0.95, tol: float = 1e-6
) -> float:
    """The largest epsilon whose :func:`p_value` stays below ``1 - confidence``: a lower bound, 0 when none.

    Args:
        m: canaries (each trained on with probability 1/2).
        r: guesses made (``k+ + k-``), ``<= m``.
        v: right guesses, ``<= r``.
        delta: the delta the bound is stated for.
        confidence: probability that the bound holds, in (0, 1).
        tol: bisection tolerance on epsilon.
    """
    if not 0.0 < confidence < 1.0:
        raise EvaluationError(f"confidence must lie in (0, 1), got {confidence}; e.g. 0.95")
    if not 0.0 <= delta < 1.0:
        raise EvaluationError(f"delta must lie in [0, 1), got {delta}; e.g. 1e-5")
    p = 1.0 - confidence
    if p_value(m, r, v, 0.0, delta) >= p:
        return 0.0
    lo, hi = 0.0, 1.0
    while p_value(m, r, v, hi, delta) < p:  # p_value grows with epsilon (to 1 as q -> 1, or P[B >= v] -> 1)
        lo, hi = hi, 2.0 * hi
        if hi > 1e4:
            return lo
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if p_value(m, r, v, mid, delta) < p else (lo, mid)
    return lo


def guess_grid(m: int) -> list[tuple[int, int]]:
    """The ``(k+, k-)`` pairs tried when none is fixed: with ``k = round(f m / 2)`` for f in :data:`GRID_FRACTIONS`,
    ``(k, k)``, ``(0, k)`` (only "out" guesses: the highest-loss canaries are the surest non-members) and ``(k, 0)``."""
    out: list[tuple[int, int]] = []
    for f in GRID_FRACTIONS:
        k = max(1, int(round(f * m / 2)))
        for pair in ((k, k), (0, k), (k, 0)):
            if sum(pair) <= m and pair not in out:
                out.append(pair)
    return out


def min_canaries(*, confidence: float = 0.95, delta: float = 0.0, guesses: tuple[int, int] | None = None) -> int:
    """The fewest canaries for which all-right guesses give a bound > 0 (with the grid's correction when ``guesses`` is None).

    With fixed ``guesses`` the count is of guesses ``k+ + k-`` (canaries >= that).
    """
    for m in range(1, 100_000):
        if guesses is not None:
            r, tests = m, 1
        else:
            grid = guess_grid(m)
            if not grid:
                continue
            r, tests = max(a + b for a, b in grid), len(grid)
        level = 1.0 - (1.0 - confidence) / tests
        if epsilon_one_run(m, r, r, delta=delta, confidence=level) > 0:
            return m
    raise ConfigError(
        f"no number of canaries gives a positive bound at confidence {confidence} and delta {delta}; "
        "lower --confidence or delta"
    )


def check_audit(m: int, *, guesses: tuple[int, int] | None, confidence: float, delta: float) -> None:
    """Refuse (ConfigError) an audit that cannot give a bound: too few canaries, or more guesses than canaries."""
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"--confidence must lie in (0, 1), got {confidence}; e.g. --confidence 0.95")
    if not 0.0 <= delta < 1.0:
        raise ConfigError(f"the bound's delta must lie in [0, 1), got {delta}; e.g. 1e-5")
    if guesses is not None:
        kp, kn = guesses
        if kp < 0 or kn < 0 or kp + kn == 0:
            raise ConfigError(f"--guesses takes K+,K- (>= 0, not both 0), got {kp},{kn}; e.g. --guesses 50,50")
        if kp + kn > m:
            raise ConfigError(
                f"--guesses {kp},{kn} makes {kp + kn} guesses, more than the {m} canaries; make k+ + k- "
                f"at most {m}, or give more --canaries"
            )
    need = min_canaries(confidence=confidence, delta=delta, guesses=guesses)
    have = m if guesses is None else sum(guesses)
    what = "canaries" if guesses is None else "guesses (k+ + k-)"
    if have < need:
        fix = f"use --canaries {need} or more" if guesses is None else f"make k+ + k- at least {need} in --guesses"
        raise ConfigError(
            f"{have} {what} cannot give a positive epsilon bound at confidence {confidence:g} (delta "
            f"{delta:g}): even all-right guesses need at least {need}; {fix}"
        )


@dataclass(frozen=True)
class OneRunBound:
    """The one-run audit's result: the bound and the guesses behind it."""

    epsilon: float
    confidence: float
    delta: float
    m: int
    included: int
    k_pos: int
    k_neg: int
    guesses: int
    correct: int
    correct_pos: int
    correct_neg: int
    chosen: str  # "fixed" or "grid (Bonferroni over N)"
    grid: list[dict[str, Any]] = field(default_factory=list)
    theorem: str = (
        "Steinke, Nasr, Jagielski 2023, Theorem 3.1 / Appendix D: P[>= v right of r] <= "
        "P[Bin(r, e^eps/(1+e^eps)) >= v] + 2 m delta max_i P[v-i <= Bin < v]/i"
    )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _guess(scores: np.ndarray, included: np.ndarray, kp: int, kn: int, rng_order: np.ndarray) -> tuple[int, int]:
    """Right "in" guesses among the ``kp`` top scores and right "out" among the ``kn`` bottom ones (ties in a seeded order)."""
    order = np.lexsort((rng_order, scores))  # ascending score; ties broken by a fixed random order
    out_guess, in_guess = order[:kn], order[len(order) - kp :] if kp else order[:0]
    return int(included[in_guess].sum()), int((~included[out_guess]).sum())


def one_run_bound(
    scores: ArrayLike,
    included: ArrayLike,
    *,
    delta: float = 0.0,
    confidence: float = 0.95,
    guesses: tuple[int, int] | None = None,
    seed: int = 0,
) -> OneRunBound:
    """The epsilon lower bound of the one-run audit from the canaries' scores and whether each was trained on.

    Args:
        scores: float (m,), higher = more likely trained on.
        included: bool (m,), the coin of each canary.
        delta, confidence: what the bound is stated for.
        guesses: ``(k+, k-)`` fixed in advance; None scans :func:`guess_grid` with the Bonferroni correction.
        seed: the order that breaks score ties.
    """
    s = np.asarray(scores, dtype=np.float64)
    inc = np.asarray(included, dtype=bool)
    if s.ndim != 1 or s.shape != inc.shape or not len(s):
        raise EvaluationError(
            f"scores and included must be two non-empty 1-D arrays of one length, got {s.shape} and {inc.shape}"
        )
    if not np.isfinite(s).all():
        raise EvaluationError(f"{int((~np.isfinite(s)).sum())} canary scores are not finite; check the model's outputs")
    m = len(s)
    tie = np.random.default_rng([seed, 17]).permutation(m)
    pairs = [guesses] if guesses is not None else guess_grid(m)
    if not pairs or any(a + b > m for a, b in pairs):
        raise ConfigError(f"{m} canaries are too few for the guesses {pairs}; give more canaries")
    level = 1.0 - (1.0 - confidence) / len(pairs)
    rows = []
    for kp, kn in pairs:
        cp, cn = _guess(s, inc, kp, kn, tie)
        eps = epsilon_one_run(m, kp + kn, cp + cn, delta=delta, confidence=level)
        rows.append({"k_pos": kp, "k_neg": kn, "correct_pos": cp, "correct_neg": cn, "epsilon": eps})
    best = max(rows, key=lambda r: r["epsilon"])
    return OneRunBound(
        epsilon=best["epsilon"],
        confidence=confidence,
        delta=delta,
        m=m,
        included=int(inc.sum()),
        k_pos=best["k_pos"],
        k_neg=best["k_neg"],
        guesses=best["k_pos"] + best["k_neg"],
        correct=best["correct_pos"] + best["correct_neg"],
        correct_pos=best["correct_pos"],
        correct_neg=best["correct_neg"],
        chosen="fixed in advance"
        if guesses is not None
        else f"best of a grid of {len(pairs)} (Bonferroni: each at confidence {level:.4g})",
        grid=rows,
    )


def draw_canaries(pool: ArrayLike, m: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``m`` canaries drawn from ``pool`` (pool indices) and each one's fair coin (trained on or not), both seeded.

    Returns:
        (canaries: int64 (m,) sorted, included: bool (m,)).
    """
    pool = np.asarray(pool, dtype=np.int64)
    if m > len(pool):
        raise ConfigError(
            f"--canaries {m} exceeds the {len(pool)} external samples they are drawn from; give fewer "
            "--canaries or more --external"
        )
    rng = np.random.default_rng([seed, 16])
    canaries = np.sort(rng.choice(pool, size=m, replace=False))
    return canaries, rng.random(m) < 0.5

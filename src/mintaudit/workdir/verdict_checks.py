"""What every verdict adds to the dataset-level test: the blind baseline, the usage share, the samples needed.

- ``blind``: :func:`mintaudit.evaluation.blind_test` of the query images against the null
  reference's; when it rejects and the membership test does too, the conclusion is
  "Inconclusive: the query differs in distribution from the reference" instead of "Evidence".
- ``usage_share``: :func:`mintaudit.evaluation.usage_share` of the query scores, debiased with the
  rates measured on the held-out members' and the null's scores (beside Storey's
  ``member_fraction``, which the dataset-level test already gives).
- ``samples_needed``: :func:`mintaudit.evaluation.samples_needed` from the same held-out scores.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mintaudit.data import ImageDataset
from mintaudit.errors import EvaluationError
from mintaudit.evaluation import blind_test
from mintaudit.evaluation import samples_needed, usage_share

__all__ = ["BLIND_CAP", "add_verdict_checks", "conclusion_of"]

BLIND_CAP = 2000
"""At most this many images per side enter the blind baseline (a seeded draw beyond it)."""

_MIN_MEMBERS = 20


def add_verdict_checks(
    result: dict[str, Any],
    *,
    q_ds: ImageDataset,
    q_ids: np.ndarray,
    ds: ImageDataset,
    null_idx: np.ndarray,
    q_scores: np.ndarray,
    null_scores: np.ndarray,
    member_ids: np.ndarray | None,
    member_scores: np.ndarray | None,
    seed: int = 0,
) -> dict[str, Any]:
    """Add ``blind``, ``usage_share``, ``samples_needed`` and ``conclusion`` to a verdict dict (changed in place).

    Args:
        result: the verdict (``dataset_test(...).to_dict()`` and the verdict's fields).
        q_ds, q_ids: the query's data set and its sample ids there; ds, null_idx: the null's.
        q_scores, null_scores: the method's scores of the query and the null reference.
        member_ids, member_scores: held-out members (never fitted on by the method) and their
            scores, in ``ds``; None when the method has none.
        seed: the audit's seed (folds, permutations, bootstrap draws).

    Returns:
        ``result``.
    """
    rng = np.random.default_rng([seed, 23])
    q_pick = _cap(np.asarray(q_ids), rng)
    n_pick = _cap(np.asarray(null_idx), rng)
    try:
        blind = blind_test(
            np.asarray(q_ds.images[np.sort(q_pick)]), np.asarray(ds.images[np.sort(n_pick)]), seed=seed
        ).to_dict()
    except EvaluationError as e:
        blind = {"auc": None, "p_value": None, "rejects": False, "n_permutations": 0, "skipped": str(e)}
    result["blind"] = blind
    if blind["rejects"] and result.get("reject"):
        result["test_sentence"] = result["sentence"]
        result["sentence"] = (
            f"Inconclusive: the query differs in distribution from the reference (blind AUC {blind['auc']:.3f}, "
            f"p {blind['p_value']:.3g}): a classifier that never sees the model tells these {result['n_query']:,} "
            f"samples from the {result['n_null']:,} held-out non-members, so the membership test's rejection "
            f"(p = {result['p_value']:.3g}) may reflect that difference rather than use in training."
        )
    result["conclusion"] = conclusion_of(result)

    if member_ids is None or member_scores is None or len(member_scores) == 0:
        reason = "the method has no held-out members' scores"
        result["usage_share"] = {"estimate": None, "skipped": reason}
        result["samples_needed"] = {"n": None, "skipped": reason}
        return result
    member_scores = np.asarray(member_scores, dtype=np.float64)
    on_query = False
    if q_ds is ds:
        outside = ~np.isin(member_ids, q_ids)
        if outside.sum() >= _MIN_MEMBERS:
            member_scores = member_scores[outside]
        else:
            on_query = bool((~outside).any())
    share = usage_share(q_scores, member_scores, null_scores, seed=seed).to_dict()
    result["usage_share"] = {**share, "tpr_measured_on_query": on_query}
    result["samples_needed"] = samples_needed(member_scores, null_scores, seed=seed).to_dict()
    return result


def conclusion_of(verdict: dict[str, Any]) -> str:
    """``evidence``, ``no-evidence`` or ``inconclusive`` (the membership test rejects, the blind baseline too)."""
    if not verdict.get("reject"):
        return "no-evidence"
    return "inconclusive" if (verdict.get("blind") or {}).get("rejects") else "evidence"


def _cap(ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return ids if len(ids) <= BLIND_CAP else rng.choice(ids, BLIND_CAP, replace=False)

"""The LOSS attack's report row: one score, one threshold policy, one code path.

``mintaudit sweep``, ``mintaudit gmint`` and ``mintaudit attack`` all report the LOSS attack
(Yeom et al. 2018) through :func:`loss_audit`, so the ``loss`` row of a report is the same
whichever of them ran last:

- score: :func:`~mintaudit.attacks.scores.loss_scores` (minus the loss on the true label) in
  float64, from the float32 logits of an outputs-only signal cache of every sample of the split
  (the cache key has no batch size or taps, so every command reads the same file);
- threshold: the balanced-accuracy one on the MINT-training data, known members against all
  external samples (LOSS needs no reference models, so no external sample is held back);
- evaluation: held-out members against the non-member test split, the sets of every MINT row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import nn

from mintaudit.attacks.scores import loss_scores
from mintaudit.data._base import ImageDataset
from mintaudit.data.splits import PassiveSplit
from mintaudit.evaluation import evaluate_scores
from mintaudit.evaluation.metrics import best_threshold
from mintaudit.results import Result
from mintaudit.signals import SignalCache, extract_signals, sample_infos

__all__ = ["LOSS_THRESHOLD_SOURCE", "loss_split_scores", "loss_result", "loss_cache", "loss_audit", "sample_infos"]

LOSS_THRESHOLD_SOURCE = "known members vs external (MINT-training data)"


def loss_split_scores(cache: SignalCache, split: PassiveSplit) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """float64 LOSS scores of (held-out members, test, known members, external) from ``cache``'s logits."""
    out = cache.outputs()
    rows = [cache.rows(ids) for ids in (split.heldout_members, split.test, split.known_members, split.external)]
    return tuple(loss_scores(out["logits"][r].astype(np.float64), out["labels"][r]) for r in rows)  # type: ignore[return-value]


def loss_result(cache: SignalCache, split: PassiveSplit, *, n_bootstrap: int = 1000, seed: int = 0) -> Result:
    """The ``loss`` report row from a signal cache holding every sample of ``split`` (see the module docstring)."""
    members, nonmembers, known, external = loss_split_scores(cache, split)
    thr = float(best_threshold(np.r_[np.ones(len(known)), np.zeros(len(external))], np.r_[known, external]))
    infos = sample_infos(cache, split.heldout_members, split.test)
    return Result.from_evaluation(
        evaluate_scores(
            members,
            nonmembers,
            threshold=thr,
            n_bootstrap=n_bootstrap,
            seed=seed,
            member_info=infos[0],
            nonmember_info=infos[1],
        ),
        method="loss",
        signal="outputs",
        protocol="heldout-members",
        layer="outputs",
        label="LOSS",
        attack="loss",
        detector="threshold",
        threshold_source=LOSS_THRESHOLD_SOURCE,
        fit={"n_reference": 0},
    )


def loss_cache(
    model: nn.Module,
    dataset: ImageDataset,
    split: PassiveSplit,
    cache_root: str | Path,
    *,
    batch_size: int = 256,
    show_progress: bool | None = None,
) -> SignalCache:
    """The outputs-only signal cache of every sample of ``split`` under ``cache_root`` (made once, then reused)."""
    return extract_signals(
        model,
        dataset,
        np.unique(split.all_indices()),
        [],
        cache_root,
        batch_size=batch_size,
        show_progress=show_progress,
    )


def loss_audit(
    model: nn.Module,
    dataset: ImageDataset,
    split: PassiveSplit,
    cache_root: str | Path,
    *,
    batch_size: int = 256,
    n_bootstrap: int = 1000,
    seed: int = 0,
    show_progress: bool | None = None,
) -> Result:
    """The LOSS attack on ``model`` as a report row, the same for every command (see the module docstring).

    Args:
        model: the audited model (not modified); dataset: the pool; split: the passive roles.
        cache_root: the folder of the audited model's signal caches (a work directory's ``cache``).
        batch_size: for the forward pass when the outputs are not cached yet.
        n_bootstrap, seed: of the evaluation (balancing and intervals).

    Returns:
        The :class:`~mintaudit.results.Result` (``method: loss``).

    Example:
        >>> row = loss_audit(model, ds, passive_split(splits), "runs/x/cache")  # doctest: +SKIP
    """
    cache = loss_cache(model, dataset, split, cache_root, batch_size=batch_size, show_progress=show_progress)
    return loss_result(cache, split, n_bootstrap=n_bootstrap, seed=seed)

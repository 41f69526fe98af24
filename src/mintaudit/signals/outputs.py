"""Output signals of a model per sample (the loss on the true label, confidence, entropy...), for caches and fusion."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from mintaudit.evaluation.evaluate import SampleInfo

if TYPE_CHECKING:
    from mintaudit.signals.reader import SignalCache

__all__ = ["output_features", "sample_infos", "true_label_loss"]


def true_label_loss(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """float32 (N,): the loss on the true label, computed once in float64 and cast once.

    It is minus :func:`mintaudit.attacks.scores.loss_scores` (the one LOSS of the package),
    so ``loss.npy`` of a cache and the loss column of :func:`output_features` equal the LOSS
    attack's score cast to float32. Rows with non-finite logits give NaN (the cache writer
    refuses them with its own message).
    """
    from mintaudit.attacks.scores import loss_scores  # imported here: mintaudit.attacks imports this package

    z = np.asarray(logits, dtype=np.float64)
    finite = np.isfinite(z).all(axis=1)
    loss = np.full(len(z), np.nan)
    if finite.any():
        loss[finite] = -loss_scores(z[finite], np.asarray(labels)[finite])
    return loss.astype(np.float32)


def output_features(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-sample output signals for fusion with activations.

    Args:
        logits: float (N, K); labels: int (N,).

    Returns:
        float32 (N, 5): loss on the true label (:func:`true_label_loss`: float64, cast once),
        logit-scaled confidence of the true label (``log p_y - log(1 - p_y)``, as LiRA uses),
        max probability, prediction entropy, and whether the prediction is correct.
    """
    z = torch.as_tensor(np.asarray(logits, dtype=np.float32))
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    logp = torch.log_softmax(z, dim=1)
    logp_y = logp.gather(1, y[:, None])[:, 0]
    log1m = torch.log1p(-logp_y.exp().clamp(max=1 - 1e-7))
    p = logp.exp()
    entropy = -(p * logp).sum(1)
    loss = torch.from_numpy(true_label_loss(logits, labels))
    feats = torch.stack([loss, logp_y - log1m, p.max(1).values, entropy, (z.argmax(1) == y).float()], 1)
    return feats.numpy().astype(np.float32)


def sample_infos(cache: SignalCache, members: np.ndarray, nonmembers: np.ndarray) -> tuple[SampleInfo, SampleInfo]:
    """True labels and the audited model's correctness of the scored samples (for a result's slices), from ``cache``."""
    out = cache.outputs()
    info = SampleInfo.from_logits(out["logits"], out["labels"])
    return info.take(cache.rows(members)), info.take(cache.rows(nonmembers))

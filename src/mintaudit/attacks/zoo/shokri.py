"""Shokri et al. 2017: a classifier on output vectors, trained on shadow models' IN/OUT data.

The shadow models are the offline reference models: model r's outputs on its own population
are IN for its training half and OUT for the other half, so no scored sample trains the
attack. One attack model for all classes (the paper trains one per class).
"""

import numpy as np
from scipy.special import log_softmax

from mintaudit.attacks.reference import reference_logits
from mintaudit.attacks.registry import AttackContext, register_attack
from mintaudit.detectors import DetectorConfig, MintDetector


def shokri_features(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """float32 (N, K + 1): softmax probabilities sorted high to low, and log p of the true label."""
    logp = log_softmax(logits, axis=1)
    probs = -np.sort(-np.exp(logp), axis=1)
    return np.c_[probs, logp[np.arange(len(labels)), labels]].astype(np.float32)


@register_attack("shokri", needs_references=True)
def shokri(ctx: AttackContext) -> np.ndarray:
    ref_set, _ = ctx.reference("offline")
    population = ctx.reference_population
    pop_logits = reference_logits(ref_set, ctx.dataset, population, ctx.cache_root / "signals")  # (R, P, K)
    pop_labels = ctx.dataset.labels[population]
    X = np.concatenate([shokri_features(pl.astype(np.float64), pop_labels) for pl in pop_logits])
    y = ref_set.in_mask(population).reshape(-1).astype(np.int64)
    det = MintDetector.from_config(DetectorConfig(kind="mlp", seed=ctx.config.seed), show_progress=False).fit(X, y)
    return det.decision_function(shokri_features(ctx.logits, ctx.labels)).astype(np.float64)

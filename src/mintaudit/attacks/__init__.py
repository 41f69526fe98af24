"""Baseline membership inference attacks: score functions and the reference models they need."""

from mintaudit.attacks.loss import loss_audit, loss_result
from mintaudit.attacks.reference import ReferenceSet, reference_logits, train_reference_models
from mintaudit.attacks.scores import (
    calibrated_loss_scores,
    confidence_scores,
    entropy_scores,
    lira_scores,
    lira_variance,
    logit_confidence,
    loss_scores,
    modified_entropy_scores,
    rmia_scores,
)

__all__ = [
    "ReferenceSet",
    "calibrated_loss_scores",
    "confidence_scores",
    "entropy_scores",
    "lira_scores",
    "lira_variance",
    "logit_confidence",
    "loss_audit",
    "loss_result",
    "loss_scores",
    "modified_entropy_scores",
    "reference_logits",
    "rmia_scores",
    "train_reference_models",
]

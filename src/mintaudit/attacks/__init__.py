"""Baseline membership inference attacks: score functions, the reference models they need, the registry."""

from mintaudit.attacks import zoo  # noqa: F401  (registers the built-in attacks, one file each)
from mintaudit.attacks.loss import loss_audit, loss_result
from mintaudit.attacks.reference import ReferenceSet, reference_logits, train_reference_models
from mintaudit.attacks.trainers import ReferenceTrainer
from mintaudit.attacks.registry import (
    ATTACKS,
    AttackContext,
    AttackSpec,
    attack_spec,
    register_attack,
    unregister_attack,
)
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
    "ATTACKS",
    "AttackContext",
    "AttackSpec",
    "ReferenceSet",
    "ReferenceTrainer",
    "attack_spec",
    "register_attack",
    "unregister_attack",
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

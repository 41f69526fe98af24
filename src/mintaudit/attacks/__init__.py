"""Baseline membership inference attacks: score functions, the reference models they need, the registry."""

from typing import Any

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
from mintaudit.attacks.options import methods_help, options_help, parse_attack_options, split_legacy
from mintaudit.attacks.registry import AttackScores, attack_options
from mintaudit.attacks.trainers import load_trainer


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
    "methods_help",
    "options_help",
    "parse_attack_options",
    "split_legacy",
    "AttackScores",
    "attack_options",
    "AttackConfig",
    "attack_scores",
    "run_attacks",
    "load_trainer",
]

_RUN = ("AttackConfig", "attack_scores", "run_attacks")


def __getattr__(name: str) -> Any:
    """The loop over the registry (:mod:`mintaudit.attacks.run`), imported when first used: it imports passive MINT,
    which imports this package."""
    if name in _RUN:
        from mintaudit.attacks import run

        return getattr(run, name)
    raise AttributeError(f"module 'mintaudit.attacks' has no attribute {name!r}")

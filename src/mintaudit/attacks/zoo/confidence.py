"""Confidence (Salem et al. 2019): the maximum softmax probability, the smallest attack file."""

import numpy as np

from mintaudit.attacks.registry import AttackContext, register_attack
from mintaudit.attacks.scores import confidence_scores


@register_attack("confidence", method="confidence", needs_references=False, label="confidence")
def confidence(ctx: AttackContext) -> np.ndarray:
    """Scores over ``ctx.scored``: float (N,), higher = more likely a member."""
    return confidence_scores(ctx.logits)

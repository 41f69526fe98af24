"""Entropy attacks (Salem et al. 2019; Song & Mittal 2021), both reported as ``entropy``."""

import numpy as np

from mintaudit.attacks.registry import AttackContext, register_attack
from mintaudit.attacks.scores import entropy_scores, modified_entropy_scores


@register_attack("entropy")
def entropy(ctx: AttackContext) -> np.ndarray:
    return entropy_scores(ctx.logits)


@register_attack("modified-entropy", method="entropy")
def modified_entropy(ctx: AttackContext) -> np.ndarray:
    return modified_entropy_scores(ctx.logits, ctx.labels)

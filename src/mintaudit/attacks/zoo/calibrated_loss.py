"""Difficulty-calibrated loss (Watson et al. 2022), on the offline reference models."""

import numpy as np

from mintaudit.attacks.registry import AttackContext, register_attack
from mintaudit.attacks.scores import calibrated_loss_scores


@register_attack("calibrated-loss", needs_references=True)
def calibrated_loss(ctx: AttackContext) -> np.ndarray:
    _, rl = ctx.reference("offline")
    return calibrated_loss_scores(ctx.logits, ctx.labels, rl[:, 0])

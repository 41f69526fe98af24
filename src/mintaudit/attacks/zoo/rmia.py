"""RMIA (Zarifzadeh et al. 2024), offline; its population samples z are the calibration half of the external samples."""

from typing import Any

import numpy as np

from mintaudit.attacks.registry import AttackContext, register_attack
from mintaudit.attacks.scores import rmia_scores


@register_attack("rmia", needs_references=True, label="RMIA")
def rmia(ctx: AttackContext) -> tuple[np.ndarray, dict[str, Any]]:
    _, rl = ctx.reference("offline")
    cfg, logits, labels = ctx.config, ctx.logits, ctx.labels
    z = slice(ctx.n_members + ctx.n_nonmembers + ctx.n_known, None)  # the calibration half of the external samples
    s = rmia_scores(
        logits, labels, rl[:, 0], logits[z], labels[z], rl[:, 0, z], offline_a=cfg.rmia_a, gamma=cfg.rmia_gamma
    )
    return s, {"offline_a": cfg.rmia_a, "gamma": cfg.rmia_gamma, "population": int(len(ctx.calibration_external))}

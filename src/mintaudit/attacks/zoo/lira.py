"""LiRA (Carlini et al. 2022), offline (``lira``) and online (``lira-online``), both reported as ``lira``."""

from typing import Any

import numpy as np

from mintaudit.attacks.registry import AttackContext, register_attack
from mintaudit.attacks.scores import lira_scores, lira_variance


def _lira(ctx: AttackContext, online: bool) -> tuple[np.ndarray, dict[str, Any]]:
    cfg = ctx.config
    ref_set, rl = ctx.reference("online" if online else "offline")
    target = np.stack([ctx.logits, *([ctx.target_logits(ctx.views[1])] if cfg.flip else [])])
    per_side = cfg.n_reference // 2 if online else cfg.n_reference
    fixed = cfg.fixed_variance if cfg.fixed_variance is not None else per_side < 8
    ref_in = ref_set.in_mask(ctx.scored)
    s = lira_scores(target, ctx.labels, rl, ref_in, online=online, fixed_variance=fixed)
    return s, {
        "online": online,
        "fixed_variance": fixed,
        "flip": cfg.flip,
        **lira_variance(ref_in, online=online, fixed_variance=fixed),
    }


@register_attack("lira", needs_references=True, label="LIRA")
def lira(ctx: AttackContext) -> tuple[np.ndarray, dict[str, Any]]:
    return _lira(ctx, online=False)


@register_attack("lira-online", method="lira", needs_references=True)
def lira_online(ctx: AttackContext) -> tuple[np.ndarray, dict[str, Any]]:
    return _lira(ctx, online=True)

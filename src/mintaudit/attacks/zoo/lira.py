"""LiRA (Carlini et al. 2022), offline (``lira``) and online (``lira-online``), both reported as ``lira``."""

from dataclasses import dataclass
from typing import Any

import numpy as np

from mintaudit.attacks.options import option
from mintaudit.attacks.registry import AttackContext, register_attack
from mintaudit.attacks.scores import lira_scores, lira_variance


@dataclass(frozen=True)
class LiraOptions:
    """``--attack-opt lira.variance=pooled`` (and ``lira-online.variance``)."""

    variance: str = option(
        "auto",
        "the Gaussians' variance: pooled (one per side, for all samples), per-sample, "
        "or auto (as --fixed-variance says: pooled when fewer than 8 models per side)",
        choices=("auto", "pooled", "per-sample"),
    )


def _lira(ctx: AttackContext, online: bool) -> tuple[np.ndarray, dict[str, Any]]:
    cfg = ctx.config
    ref_set, rl = ctx.reference("online" if online else "offline")
    target = np.stack([ctx.logits, *([ctx.target_logits(ctx.views[1])] if cfg.flip else [])])
    per_side = cfg.n_reference // 2 if online else cfg.n_reference
    given = {"pooled": True, "per-sample": False}.get(ctx.options.variance) if ctx.options is not None else None
    chosen = given if given is not None else cfg.fixed_variance  # the attack's option, then --fixed-variance
    fixed = chosen if chosen is not None else per_side < 8
    ref_in = ref_set.in_mask(ctx.scored)
    s = lira_scores(target, ctx.labels, rl, ref_in, online=online, fixed_variance=fixed)
    return s, {
        "online": online,
        "fixed_variance": fixed,
        "flip": cfg.flip,
        **lira_variance(ref_in, online=online, fixed_variance=fixed),
    }


@register_attack("lira", needs_references=True, label="LIRA", options=LiraOptions)
def lira(ctx: AttackContext) -> tuple[np.ndarray, dict[str, Any]]:
    return _lira(ctx, online=False)


@register_attack("lira-online", method="lira", needs_references=True, options=LiraOptions)
def lira_online(ctx: AttackContext) -> tuple[np.ndarray, dict[str, Any]]:
    return _lira(ctx, online=True)

"""RMIA (Zarifzadeh et al. 2024), offline; its population samples z are the calibration half of the external samples."""

from dataclasses import dataclass
from typing import Any

import numpy as np

from mintaudit.attacks.options import option
from mintaudit.attacks.registry import AttackContext, register_attack
from mintaudit.attacks.scores import rmia_scores
from mintaudit.errors import ConfigError


@dataclass(frozen=True)
class RmiaOptions:
    """``--attack-opt rmia.a=0.33`` and ``rmia.gamma=1``."""

    a: float = option(
        0.33, "offline coefficient: Pr(x) ~ ((1 + a) p_out + 1 - a) / 2", low=0.0, high=1.0, legacy="rmia_a"
    )
    gamma: float = option(1.0, "likelihood-ratio threshold against the population samples z", legacy="rmia_gamma")

    def __post_init__(self) -> None:
        if not self.gamma > 0:
            raise ConfigError(f"--attack-opt rmia.gamma must be > 0, got {self.gamma}; e.g. rmia.gamma=1")


@register_attack("rmia", needs_references=True, label="RMIA", options=RmiaOptions)
def rmia(ctx: AttackContext) -> tuple[np.ndarray, dict[str, Any]]:
    _, rl = ctx.reference("offline")
    opts, logits, labels = ctx.options, ctx.logits, ctx.labels
    z = slice(ctx.n_members + ctx.n_nonmembers + ctx.n_known, None)  # the calibration half of the external samples
    s = rmia_scores(logits, labels, rl[:, 0], logits[z], labels[z], rl[:, 0, z], offline_a=opts.a, gamma=opts.gamma)
    return s, {"offline_a": opts.a, "gamma": opts.gamma, "population": int(len(ctx.calibration_external))}

"""LOSS (Yeom et al. 2018): scored and reported through :mod:`mintaudit.attacks.loss`, the row every sweep shares."""

from pathlib import Path
from typing import Any

from torch import nn

from mintaudit.attacks.loss import loss_cache, loss_result, loss_split_scores
from mintaudit.attacks.registry import AttackContext, AttackScores, register_attack
from mintaudit.results import Result


def _row(
    model: nn.Module, dataset: Any, split: Any, signals_root: Path, config: Any, show_progress: bool | None
) -> Result:
    cache = loss_cache(model, dataset, split, signals_root, batch_size=config.batch_size, show_progress=show_progress)
    return loss_result(cache, split, n_bootstrap=config.n_bootstrap, seed=config.seed)


@register_attack("loss", label="LOSS", result=_row)
def loss(ctx: AttackContext) -> AttackScores:
    """On every split sample: calibrated on known members vs all external samples."""
    cache = loss_cache(
        ctx.model,
        ctx.dataset,
        ctx.split,
        ctx.signals_root,
        batch_size=ctx.config.batch_size,
        show_progress=ctx.show_progress,
    )
    return AttackScores(*loss_split_scores(cache, ctx.split), {"n_reference": 0})

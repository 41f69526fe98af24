"""One-line refusals for the aMINT loop helpers a Python caller drives (make_auditable, paired_batches, AmintLoss)."""

from __future__ import annotations

import numbers
from typing import Any

import torch

from mintaudit.errors import ConfigError, DataError

__all__ = ["check_example", "example_failure", "loss_inputs"]


def check_example(example: Any) -> None:
    """Refuse an example that is not a batch the model could take: not a tensor, raw uint8 pixels, or empty."""
    if not isinstance(example, torch.Tensor):
        raise ConfigError(f"make_auditable: example must be a tensor batch (B, C, H, W), got {type(example).__name__}")
    if example.dtype == torch.uint8:
        raise ConfigError(
            "make_auditable: example is uint8 (raw pixels); give an input batch as the model takes it, after your "
            "transform (e.g. x.float() / 255, then your normalisation)"
        )
    if example.dim() == 0 or len(example) == 0:
        raise ConfigError(f"make_auditable: example holds no sample (shape {tuple(example.shape)}); give a batch")


def example_failure(example: torch.Tensor, error: BaseException) -> ConfigError:
    """The error for a model that fails on ``example`` (a 3-D image without its batch axis named as such)."""
    hint = (
        "; it looks like one sample without the batch axis: give example[None] or a batch x[:2]"
        if example.dim() == 3
        else ""
    )
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return ConfigError(
        f"make_auditable: the model fails on example of shape {tuple(example.shape)} {str(example.dtype)[6:]} "
        f"({type(error).__name__}: {first}){hint}; give an input batch as the model takes it"
    )


def loss_inputs(
    logits: Any, labels: Any, membership: Any, n_members: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Check :class:`~mintaudit.active.AmintLoss`'s arguments; membership logits (B, 1) are read as (B,).

    Raises:
        DataError: shapes, dtypes or ``n_members`` that do not fit together, in one line.
    """
    for name, t in (("logits", logits), ("labels", labels), ("membership", membership)):
        if not isinstance(t, torch.Tensor):
            raise DataError(f"AmintLoss: {name} must be a tensor, got {type(t).__name__}")
    if membership.dim() == 2 and membership.shape[1] == 1:
        membership = membership[:, 0]  # one logit per sample, as (B, 1) heads give it
    if membership.dim() != 1 or not membership.is_floating_point():
        raise DataError(
            f"AmintLoss: membership must be float logits (B_m + B_e,) or (B, 1), got {tuple(membership.shape)} "
            f"{str(membership.dtype)[6:]}"
        )
    if logits.dim() != 2 or not logits.is_floating_point():
        raise DataError(f"AmintLoss: logits must be float (B_m, K), got {tuple(logits.shape)} {str(logits.dtype)[6:]}")
    if labels.is_floating_point() or labels.dtype == torch.bool or labels.dim() != 1:
        raise DataError(
            f"AmintLoss: labels must be integer class indices (B_m,), got {tuple(labels.shape)} "
            f"{str(labels.dtype)[6:]}; use y.long()"
        )
    if not isinstance(n_members, numbers.Integral) or isinstance(n_members, bool):
        raise DataError(f"AmintLoss: n_members must be a whole number, got {n_members!r}")
    n = int(n_members)
    if not 1 <= n < len(membership):
        raise DataError(
            f"AmintLoss: n_members={n} for {len(membership)} membership logits; the members come first and at least "
            "one external sample must follow (1 <= n_members < len(membership))"
        )
    if len(logits) != n or len(labels) != n:
        raise DataError(
            f"AmintLoss: {len(logits)} logits and {len(labels)} labels for n_members={n}; give the members' class "
            "logits and labels only (logits[:n_members])"
        )
    return logits, labels.long(), membership, n

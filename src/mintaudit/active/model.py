"""The auditable model: any classifier plus a MINT head on chosen layers, forward untouched."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mintaudit._logits import logits_of
from mintaudit.active.head import HeadConfig, MintHead
from mintaudit.errors import ConfigError
from mintaudit.targets.saved import require_gradients
from mintaudit.taps import Recorder, select_layers

__all__ = ["ActiveModel"]


class ActiveModel(nn.Module):
    """A classifier with a second output: the probability that the input was a training sample.

    The backbone's ``forward`` is not edited: the taps are read through forward hooks that
    live for one call (:class:`~mintaudit.taps.Recorder` with the graph kept), so the class
    logits are exactly the backbone's and gradients of the MINT loss flow back into the
    tapped layers and the layers before them, never into the layers after them.

    Args:
        backbone: the classifier, float (B, C, H, W) -> logits (B, K).
        taps: layer names (or anything :func:`~mintaudit.taps.select_layers` takes).
        example: one input batch, float (B, C, H, W), used once to learn the taps' shapes.
        head: the head's widths and preset.
        shapes: the taps' shapes (without batch) instead of ``example`` (for loading).

    Example:
        >>> from mintaudit.models import TinyCNN
        >>> m = ActiveModel(TinyCNN(1, 10, 8), ["relu1", "relu2"], example=torch.zeros(1, 1, 8, 8))
        >>> logits, membership = m(torch.zeros(4, 1, 8, 8))
        >>> logits.shape, membership.shape
        (torch.Size([4, 10]), torch.Size([4]))
    """

    def __init__(
        self,
        backbone: nn.Module,
        taps: str | int | Sequence[str | int],
        *,
        example: torch.Tensor | None = None,
        head: HeadConfig | None = None,
        shapes: Sequence[Sequence[int]] | None = None,
    ) -> None:
        require_gradients(backbone, "aMINT")
        super().__init__()
        self.backbone = backbone
        self.taps = select_layers(backbone, taps)
        if shapes is None:
            if example is None:
                raise ConfigError("ActiveModel needs an example input batch (or the taps' shapes) to size its head")
            shapes = self._tap_shapes(example)
        self.head = MintHead(shapes, head)

    def _tap_shapes(self, example: torch.Tensor) -> list[tuple[int, ...]]:
        was_training = self.backbone.training
        self.backbone.eval()
        try:
            with torch.no_grad(), Recorder(self.backbone, self.taps) as rec:
                self.backbone(example[:2])
                out = rec.pop()
        finally:
            self.backbone.train(was_training)
        return [tuple(out[name].shape[1:]) for name in self._check(out)]

    def _check(self, outputs: dict[str, torch.Tensor]) -> list[str]:
        missing = [t for t in self.taps if t not in outputs]
        if missing:
            raise ConfigError(
                f"tap {missing[0]!r} produced no tensor in the forward pass; tap a layer the forward calls"
            )
        return self.taps

    def forward(self, x: torch.Tensor, mint_grad_scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """float (B, C, H, W) -> (class logits (B, K), membership logits (B,)).

        ``mint_grad_scale`` scales the gradient that the membership output sends into the
        backbone (the head's own gradient is untouched; the values are the same): 1 trains the
        backbone for membership as published, 0 leaves it to the task loss alone.
        """
        with Recorder(self.backbone, self.taps, detach=False) as rec:
            logits = logits_of(self.backbone(x))
            out = rec.pop()
        feats = [out[name] for name in self._check(out)]
        if mint_grad_scale != 1.0:
            feats = [
                f.detach() if mint_grad_scale == 0.0 else f.detach() + mint_grad_scale * (f - f.detach()) for f in feats
            ]
        return logits, self.head(feats)

    @property
    def tap_shapes(self) -> list[tuple[int, ...]]:
        return list(self.head.shapes)

    @property
    def head_config(self) -> HeadConfig:
        return self.head.config

"""The MINT head of active MINT: one branch per tap, concatenated, then a small MLP to one logit.

A branch turns one tap's output into a vector:

- 4-D taps (B, C, H, W): conv 3x3 -> BatchNorm -> ReLU -> 2x2 max-pool -> conv 3x3 ->
  global max-pool (the ``default`` preset), or the published head's two kernel-2 padding-2
  convolutions of widths 1024 and 2048 with no non-linearity between them, then global
  max-pool (the ``paper`` preset).
- 3-D taps (B, N, D), the tokens of a ViT: LayerNorm -> linear -> GELU -> linear, max over
  tokens (``default``), or one linear layer over the flattened tokens (``paper``, as published).
- 2-D taps (B, D), a dense layer: linear -> ReLU.

The vectors are concatenated and go through linear -> ReLU -> linear to one logit
(``default``), or straight through one linear layer (``paper``). The head is built from the
taps' shapes, which are saved with a delivered model so that it can be rebuilt exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn

from mintaudit.errors import ConfigError

__all__ = ["HeadConfig", "MintHead"]

Preset = Literal["default", "paper"]


@dataclass(frozen=True)
class HeadConfig:
    """Widths of the MINT head.

    Args:
        preset: ``default`` (light, with BatchNorm) or ``paper`` (the published head).
        widths: (first conv, second conv) widths of each branch; the ``paper`` preset uses
            (1024, 2048) unless given.
        hidden: width of the MLP's hidden layer (``default`` only).
    """

    preset: Preset = "default"
    widths: tuple[int, int] | None = None
    hidden: int = 256

    def __post_init__(self) -> None:
        if self.preset not in ("default", "paper"):
            raise ConfigError(f"head preset must be 'default' or 'paper', got {self.preset!r}")
        if self.widths is not None:
            if len(self.widths) != 2 or min(int(w) for w in self.widths) < 1:
                raise ConfigError(f"head widths must be two positive integers, got {self.widths!r}")
            object.__setattr__(self, "widths", (int(self.widths[0]), int(self.widths[1])))
        if self.hidden < 1:
            raise ConfigError(f"head hidden width must be >= 1, got {self.hidden}")

    @property
    def branch_widths(self) -> tuple[int, int]:
        if self.widths is not None:
            return self.widths
        return (1024, 2048) if self.preset == "paper" else (128, 256)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["widths"] = list(self.branch_widths)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HeadConfig:
        widths = d.get("widths")
        return cls(
            preset=d.get("preset", "default"),
            widths=tuple(widths) if widths else None,
            hidden=int(d.get("hidden", 256)),
        )


def _conv_branch(channels: int, cfg: HeadConfig) -> nn.Sequential:
    w1, w2 = cfg.branch_widths
    if cfg.preset == "paper":
        return nn.Sequential(
            nn.Conv2d(channels, w1, 2, padding=2),
            nn.Conv2d(w1, w2, 2, padding=2),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
        )
    return nn.Sequential(
        nn.Conv2d(channels, w1, 3, padding=1),
        nn.BatchNorm2d(w1),
        nn.ReLU(),
        nn.MaxPool2d(2, ceil_mode=True),
        nn.Conv2d(w1, w2, 3, padding=1),
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
    )


class _TokenMax(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=1)


def _token_branch(tokens: int, dim: int, cfg: HeadConfig) -> nn.Sequential:
    w1, w2 = cfg.branch_widths
    if cfg.preset == "paper":
        return nn.Sequential(nn.Flatten(), nn.Linear(tokens * dim, w2))
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, w1), nn.GELU(), nn.Linear(w1, w2), _TokenMax())


def _vector_branch(dim: int, cfg: HeadConfig) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, cfg.branch_widths[1]), nn.ReLU())


class MintHead(nn.Module):
    """One branch per tap, concatenated, then an MLP to one membership logit.

    Args:
        shapes: per tap, the output shape without the batch dimension: (C, H, W), (N, D) or (D,).
        config: widths and preset.

    Example:
        >>> head = MintHead([(32, 14, 14), (64, 7, 7)])
        >>> head([torch.zeros(2, 32, 14, 14), torch.zeros(2, 64, 7, 7)]).shape
        torch.Size([2])
    """

    def __init__(self, shapes: Sequence[Sequence[int]], config: HeadConfig | None = None) -> None:
        super().__init__()
        self.config = config or HeadConfig()
        self.shapes = [tuple(int(s) for s in shape) for shape in shapes]
        if not self.shapes:
            raise ConfigError("the MINT head needs at least one tap")
        branches = []
        for shape in self.shapes:
            if len(shape) == 3:
                branches.append(_conv_branch(shape[0], self.config))
            elif len(shape) == 2:
                branches.append(_token_branch(shape[0], shape[1], self.config))
            elif len(shape) == 1:
                branches.append(_vector_branch(shape[0], self.config))
            else:
                raise ConfigError(
                    f"a tap output of shape {shape} (without batch) cannot feed the MINT head; "
                    "tap a layer that outputs (C, H, W) maps, (N, D) tokens or (D,) vectors"
                )
        self.branches = nn.ModuleList(branches)
        width = self.config.branch_widths[1] * len(branches)
        if self.config.preset == "paper":
            self.mlp = nn.Sequential(nn.Linear(width, 1))
        else:
            self.mlp = nn.Sequential(nn.Linear(width, self.config.hidden), nn.ReLU(), nn.Linear(self.config.hidden, 1))

    def forward(self, taps: Sequence[torch.Tensor]) -> torch.Tensor:
        """Tap outputs, in the order of ``shapes`` -> membership logits, float (B,)."""
        if len(taps) != len(self.branches):
            raise ConfigError(f"the MINT head expects {len(self.branches)} tap outputs, got {len(taps)}")
        vectors = []
        for branch, shape, x in zip(self.branches, self.shapes, taps):
            if tuple(x.shape[1:]) != shape:
                raise ConfigError(
                    f"a tap output has shape {tuple(x.shape[1:])} but the head was built for {shape}; "
                    "feed images of the size the model was trained on"
                )
            if x.dim() == 4:  # same math; the small convs run about 15% faster on channels-last maps (CPU, oneDNN)
                x = x.contiguous(memory_format=torch.channels_last)
            vectors.append(branch(x))
        return self.mlp(torch.cat(vectors, dim=1)).squeeze(1)

"""Xception for aMINT."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from mintaudit.models.backbones.layers import Stem, check_positive, image_hw, scaled, small_stem

__all__ = ["Xception"]


class _SeparableConv(nn.Module):
    """3x3 depthwise conv then 1x1 pointwise conv, no bias, no activation between them."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class _XceptionBlock(nn.Module):
    """``reps`` x (ReLU, separable conv, BN), optional 3x3 stride-2 max-pool, plus a shortcut.

    The shortcut is the identity when shape is kept, else a strided 1x1 conv + BN. The first
    ReLU is left out when ``start_with_relu`` is False (after the stem's own ReLU); the width
    changes at the first conv (``grow_first``) or at the last one.
    """

    def __init__(self, cin: int, cout: int, reps: int, stride: int, start_with_relu: bool, grow_first: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = cin
        for i in range(reps):
            target = cout if (grow_first and i == 0) or (not grow_first and i == reps - 1) else c
            if i > 0 or start_with_relu:
                layers.append(nn.ReLU())
            layers += [_SeparableConv(c, target), nn.BatchNorm2d(target)]
            c = target
        if stride != 1:
            layers.append(nn.MaxPool2d(3, stride, 1))
        self.residual = nn.Sequential(*layers)
        self.shortcut: nn.Module = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.shortcut(x)


class Xception(nn.Module):
    """Xception (Chollet 2017): entry flow, a middle flow of 8 residual separable blocks, exit flow.

    Modules: ``entry`` with ``entry.stem`` (conv 32 + conv 64, each BN + ReLU; the first has
    stride 1 on small inputs, 2 with the ImageNet stem), ``entry.block1`` (128, /2),
    ``entry.block2`` (256, /2), ``entry.block3`` (728; /2 only with the ImageNet stem, as in
    the published small-input code which keeps the resolution there); ``middle`` (``middle.0``
    .. ``middle.7``, 728 channels); ``exit`` with ``exit.block`` (728 -> 1024, /2) and
    ``exit.conv`` (separable 1536 and 2048, each BN + ReLU); ``pool`` (global average,
    (B, C, 1, 1)), ``flatten``, ``fc``.

    Args:
        in_channels: input channels.
        num_classes: number of classes.
        image_size: input height/width in pixels; picks the stem.
        width: channel multiplier (1.0 is the paper's 32 ... 2048; 0.125 for tests).
        middle_blocks: residual blocks of the middle flow (8 in the paper).
        stem: ``auto``, ``small`` or ``imagenet``.

    Example:
        >>> Xception(1, 10, 28, width=0.125)(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int | tuple[int, int],
        width: float = 1.0,
        middle_blocks: int = 8,
        stem: Stem = "auto",
    ) -> None:
        super().__init__()
        check_positive(
            "Xception", width=width, middle_blocks=middle_blocks, in_channels=in_channels, num_classes=num_classes
        )
        small = small_stem(stem, image_hw(image_size, "Xception"), "Xception")
        c32, c64, c128, c256, c728, c1024, c1536, c2048 = (
            scaled(n, width) for n in (32, 64, 128, 256, 728, 1024, 1536, 2048)
        )
        self.entry = nn.Sequential(
            OrderedDict(
                stem=nn.Sequential(
                    OrderedDict(
                        conv1=nn.Conv2d(in_channels, c32, 3, 1 if small else 2, 1, bias=False),
                        bn1=nn.BatchNorm2d(c32),
                        relu1=nn.ReLU(),
                        conv2=nn.Conv2d(c32, c64, 3, 1, 1, bias=False),
                        bn2=nn.BatchNorm2d(c64),
                        relu2=nn.ReLU(),
                    )
                ),
                block1=_XceptionBlock(c64, c128, 2, 2, start_with_relu=False, grow_first=True),
                block2=_XceptionBlock(c128, c256, 2, 2, start_with_relu=True, grow_first=True),
                block3=_XceptionBlock(c256, c728, 2, 1 if small else 2, start_with_relu=True, grow_first=True),
            )
        )
        self.middle = nn.Sequential(
            *[_XceptionBlock(c728, c728, 3, 1, start_with_relu=True, grow_first=True) for _ in range(middle_blocks)]
        )
        self.exit = nn.Sequential(
            OrderedDict(
                block=_XceptionBlock(c728, c1024, 2, 2, start_with_relu=True, grow_first=False),
                conv=nn.Sequential(
                    _SeparableConv(c1024, c1536),
                    nn.BatchNorm2d(c1536),
                    nn.ReLU(),
                    _SeparableConv(c1536, c2048),
                    nn.BatchNorm2d(c2048),
                    nn.ReLU(),
                ),
            )
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c2048, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) of float images (B, C, H, W)."""
        x = self.exit(self.middle(self.entry(x)))
        return self.fc(self.flatten(self.pool(x)))

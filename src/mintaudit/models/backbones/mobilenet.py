"""MobileNet v1 for aMINT."""

from __future__ import annotations

import torch
from torch import nn

from mintaudit.models.backbones.layers import Stem, check_positive, conv_bn_relu, image_hw, scaled, small_stem

__all__ = ["MobileNetV1"]


class _DepthwiseSeparable(nn.Module):
    """3x3 depthwise conv + BN + ReLU, then 1x1 pointwise conv + BN + ReLU."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.depthwise = conv_bn_relu(cin, cin, 3, stride, groups=cin)
        self.pointwise = conv_bn_relu(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class MobileNetV1(nn.Module):
    """MobileNet v1 (Howard et al. 2017): a 3x3 conv and 13 depthwise-separable blocks.

    Stages as in the published aMINT code: ``stem`` (conv 32 + separable 64), ``conv1``
    (128, /2), ``conv2`` (256, /2), ``conv3`` (512, /2, six blocks), ``conv4`` (1024, /2);
    then ``pool`` (global average, (B, C, 1, 1)), ``flatten`` and ``fc``. The first conv has
    stride 1 on small inputs and stride 2 (the original) with the ImageNet stem.

    Args:
        in_channels: input channels (1 grey, 3 colour).
        num_classes: number of classes.
        image_size: input height/width in pixels (square or (H, W)); picks the stem.
        width: the width multiplier alpha (channels scale by it; 0.25 for tests).
        stem: ``auto`` (small below 64 px), ``small`` (stride 1) or ``imagenet`` (stride 2).

    Example:
        >>> MobileNetV1(1, 10, 28, width=0.25)(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int | tuple[int, int],
        width: float = 1.0,
        stem: Stem = "auto",
    ) -> None:
        super().__init__()
        check_positive("MobileNetV1", width=width, in_channels=in_channels, num_classes=num_classes)
        small = small_stem(stem, image_hw(image_size, "MobileNetV1"), "MobileNetV1")
        c = [scaled(n, width) for n in (32, 64, 128, 256, 512, 1024)]
        self.stem = nn.Sequential(
            conv_bn_relu(in_channels, c[0], 3, 1 if small else 2), _DepthwiseSeparable(c[0], c[1], 1)
        )
        self.conv1 = nn.Sequential(_DepthwiseSeparable(c[1], c[2], 2), _DepthwiseSeparable(c[2], c[2], 1))
        self.conv2 = nn.Sequential(_DepthwiseSeparable(c[2], c[3], 2), _DepthwiseSeparable(c[3], c[3], 1))
        self.conv3 = nn.Sequential(
            _DepthwiseSeparable(c[3], c[4], 2), *[_DepthwiseSeparable(c[4], c[4], 1) for _ in range(5)]
        )
        self.conv4 = nn.Sequential(_DepthwiseSeparable(c[4], c[5], 2), _DepthwiseSeparable(c[5], c[5], 1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c[5], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) of float images (B, C, H, W)."""
        x = self.conv4(self.conv3(self.conv2(self.conv1(self.stem(x)))))
        return self.fc(self.flatten(self.pool(x)))

"""ResNet-50/101 (bottleneck) for aMINT."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from mintaudit.errors import ModelError
from mintaudit.models.backbones.layers import Stem, check_positive, conv_bn_relu, image_hw, small_stem

__all__ = ["ResNet", "resnet50", "resnet101"]


class _Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand (x4), each with BN; identity or projection shortcut."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )
        self.relu3 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        return self.relu3(self.bn3(self.conv3(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet with bottleneck blocks (He et al. 2016; stride on the 3x3 conv, "v1.5").

    Modules: ``stem`` (3x3 stride-1 conv + BN + ReLU on small inputs; 7x7 stride-2 conv + BN +
    ReLU + 3x3 stride-2 max-pool with the ImageNet stem), ``layer1`` .. ``layer4`` (widths
    base, 2 base, 4 base, 8 base, times 4 at the output; strides 1, 2, 2, 2), ``pool`` (global
    average, (B, C, 1, 1)), ``flatten``, ``fc``.

    Args:
        in_channels: input channels.
        num_classes: number of classes.
        image_size: input height/width in pixels; picks the stem.
        layers: bottleneck blocks per stage, e.g. (3, 4, 6, 3) for ResNet-50.
        base_width: channels of ``layer1``'s 3x3 convs (64 in the paper; 8 for tests).
        stem: ``auto``, ``small`` or ``imagenet`` (see the module docstring).

    Example:
        >>> ResNet(1, 10, 28, (1, 1, 1, 1), base_width=8)(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int | tuple[int, int],
        layers: Sequence[int] = (3, 4, 6, 3),
        base_width: int = 64,
        stem: Stem = "auto",
    ) -> None:
        super().__init__()
        check_positive("ResNet", base_width=base_width, in_channels=in_channels, num_classes=num_classes)
        if len(layers) != 4 or min(layers) < 1:
            raise ModelError(f"ResNet: layers must be four block counts >= 1, got {tuple(layers)!r}")
        small = small_stem(stem, image_hw(image_size, "ResNet"), "ResNet")
        if small:
            self.stem = conv_bn_relu(in_channels, base_width, 3)
        else:
            self.stem = nn.Sequential(
                OrderedDict(
                    conv=nn.Conv2d(in_channels, base_width, 7, 2, 3, bias=False),
                    bn=nn.BatchNorm2d(base_width),
                    relu=nn.ReLU(),
                    maxpool=nn.MaxPool2d(3, 2, 1),
                )
            )
        cin = base_width
        stages = []
        for i, blocks in enumerate(layers):
            planes = base_width * 2**i
            stage = []
            for j in range(blocks):
                stage.append(_Bottleneck(cin, planes, 2 if (i > 0 and j == 0) else 1))
                cin = planes * _Bottleneck.expansion
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) of float images (B, C, H, W)."""
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        return self.fc(self.flatten(self.pool(x)))


def resnet50(
    in_channels: int, num_classes: int, image_size: int | tuple[int, int], base_width: int = 64, stem: Stem = "auto"
) -> ResNet:
    """ResNet-50: bottleneck blocks (3, 4, 6, 3). See :class:`ResNet`."""
    return ResNet(in_channels, num_classes, image_size, (3, 4, 6, 3), base_width, stem)


def resnet101(
    in_channels: int, num_classes: int, image_size: int | tuple[int, int], base_width: int = 64, stem: Stem = "auto"
) -> ResNet:
    """ResNet-101: bottleneck blocks (3, 4, 23, 3). See :class:`ResNet`."""
    return ResNet(in_channels, num_classes, image_size, (3, 4, 23, 3), base_width, stem)

"""DenseNet-121 for aMINT."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from mintaudit.errors import ModelError
from mintaudit.models.backbones.layers import Stem, check_positive, conv_bn_relu, image_hw, small_stem

__all__ = ["DenseNet", "densenet121"]


class _DenseLayer(nn.Module):
    """BN-ReLU-conv 1x1 (bn_size x growth) - BN-ReLU-conv 3x3 (growth): the new features only."""

    def __init__(self, cin: int, growth_rate: int, bn_size: int) -> None:
        super().__init__()
        inner = bn_size * growth_rate
        self.norm1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(cin, inner, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(inner)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(inner, growth_rate, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))


class _DenseBlock(nn.ModuleDict):
    """Dense layers, each fed the concatenation of the block input and all earlier outputs."""

    def __init__(self, num_layers: int, cin: int, growth_rate: int, bn_size: int) -> None:
        super().__init__(
            {f"layer{i + 1}": _DenseLayer(cin + i * growth_rate, growth_rate, bn_size) for i in range(num_layers)}
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.values():
            x = torch.cat([x, layer(x)], dim=1)
        return x


class _Transition(nn.Module):
    """BN-ReLU-conv 1x1 (compression) then 2x2 average pooling (skipped on a 1-pixel map)."""

    def __init__(self, cin: int, cout: int, downsample: bool) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(cin)
        self.relu = nn.ReLU()
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.pool: nn.Module = nn.AvgPool2d(2) if downsample else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(self.relu(self.norm(x))))


class DenseNet(nn.Module):
    """DenseNet-BC (Huang et al. 2017): dense blocks joined by compressing transitions.

    Modules: ``stem`` (3x3 stride-1 conv to 2 x growth channels + BN + ReLU on small inputs;
    7x7 stride-2 conv + BN + ReLU + 3x3 stride-2 max-pool with the ImageNet stem), ``dense1``,
    ``transition1``, ``dense2``, ``transition2``, ``dense3``, ``transition3``, ``dense4``, then
    ``norm`` (BN), ``relu``, ``pool`` (global average, (B, C, 1, 1)), ``flatten``, ``fc``.
    A transition halves the resolution unless the map is already 1 pixel high or wide.

    Args:
        in_channels: input channels.
        num_classes: number of classes.
        image_size: input height/width in pixels; picks the stem and the transitions' pooling.
        blocks: dense layers per block, (6, 12, 24, 16) for DenseNet-121.
        growth_rate: channels each dense layer adds (32 in the paper; 4 for tests).
        bn_size: bottleneck width factor of the 1x1 convs.
        compression: channel factor of the transitions (0 < compression <= 1).
        stem: ``auto``, ``small`` or ``imagenet``.

    Example:
        >>> DenseNet(1, 10, 28, (2, 2, 2, 2), growth_rate=4)(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int | tuple[int, int],
        blocks: Sequence[int] = (6, 12, 24, 16),
        growth_rate: int = 32,
        bn_size: int = 4,
        compression: float = 0.5,
        stem: Stem = "auto",
    ) -> None:
        super().__init__()
        check_positive(
            "DenseNet",
            growth_rate=growth_rate,
            bn_size=bn_size,
            compression=compression,
            in_channels=in_channels,
            num_classes=num_classes,
        )
        if compression > 1:
            raise ModelError(f"DenseNet: compression must be in (0, 1], got {compression!r}")
        if len(blocks) != 4 or min(blocks) < 1:
            raise ModelError(f"DenseNet: blocks must be four layer counts >= 1, got {tuple(blocks)!r}")
        h, w = image_hw(image_size, "DenseNet")
        c = 2 * growth_rate
        if small_stem(stem, (h, w), "DenseNet"):
            self.stem = conv_bn_relu(in_channels, c, 3)
        else:
            self.stem = nn.Sequential(
                OrderedDict(
                    conv=nn.Conv2d(in_channels, c, 7, 2, 3, bias=False),
                    bn=nn.BatchNorm2d(c),
                    relu=nn.ReLU(),
                    maxpool=nn.MaxPool2d(3, 2, 1),
                )
            )
            h, w = (h + 1) // 2, (w + 1) // 2
            h, w = (h + 1) // 2, (w + 1) // 2
        dense: list[_DenseBlock] = []
        transitions: list[_Transition] = []
        for i, n in enumerate(blocks):
            dense.append(_DenseBlock(n, c, growth_rate, bn_size))
            c += n * growth_rate
            if i < len(blocks) - 1:
                cout = max(1, int(c * compression))
                down = min(h, w) >= 2
                transitions.append(_Transition(c, cout, down))
                c = cout
                if down:
                    h, w = h // 2, w // 2
        # assigned in forward order, so named_modules() lists them as the data flows
        self.dense1, self.transition1 = dense[0], transitions[0]
        self.dense2, self.transition2 = dense[1], transitions[1]
        self.dense3, self.transition3 = dense[2], transitions[2]
        self.dense4 = dense[3]
        self.norm = nn.BatchNorm2d(c)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) of float images (B, C, H, W)."""
        x = self.transition1(self.dense1(self.stem(x)))
        x = self.transition3(self.dense3(self.transition2(self.dense2(x))))
        x = self.relu(self.norm(self.dense4(x)))
        return self.fc(self.flatten(self.pool(x)))


def densenet121(
    in_channels: int,
    num_classes: int,
    image_size: int | tuple[int, int],
    growth_rate: int = 32,
    bn_size: int = 4,
    compression: float = 0.5,
    stem: Stem = "auto",
) -> DenseNet:
    """DenseNet-121: dense blocks (6, 12, 24, 16). See :class:`DenseNet`."""
    return DenseNet(in_channels, num_classes, image_size, (6, 12, 24, 16), growth_rate, bn_size, compression, stem)

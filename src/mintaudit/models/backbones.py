"""Compact backbones for active MINT (aMINT) on 28-64 px images, and their tap presets.

Five classifiers written from ``torch.nn`` alone: :class:`MobileNetV1`, :class:`ResNet`
(:func:`resnet50`, :func:`resnet101`), :class:`DenseNet` (:func:`densenet121`),
:class:`Xception` and :class:`ViT`. Each takes ``(in_channels, num_classes, image_size, ...)``,
maps a float tensor (B, C, H, W) to logits (B, num_classes), and works for 1 or 3 channels.

Inputs under 64 px get a small-input stem (3x3 stride-1 convolution, no max-pool), as in the
published aMINT code; inputs of 64 px and more get the ImageNet stem of each architecture
(``stem="auto"``; force one with ``stem="small"`` or ``stem="imagenet"``). Every CNN ends with
adaptive average pooling, so any input size gives a feature map of at least 1x1.

The stages are named modules whose forward returns one tensor, so a forward hook
(:class:`mintaudit.taps.Recorder`) sees (B, C, H, W) for the CNNs and (B, N, D) for the ViT. No
module works in place, so gradients flow through recorded taps (``Recorder(detach=False)``).

Tap presets (:data:`ACTIVE_TAPS`, :func:`active_taps`), registered with each model by
:func:`~mintaudit.models.catalog.register_model` at the end of this file, come in three setups:

- **Middle**: the published aMINT taps (DeAlcala et al., ICCV 2025, and its code):
  MobileNet v1 ``conv2`` + ``conv3``; ResNet-50/101 ``layer2`` + ``layer3``; DenseNet-121
  ``transition2`` + ``transition3``; Xception the middle-flow output (``middle``, one tap); ViT
  the tokens after block 8 of 12 (``blocks.7``, one tap). For 64 px data the published
  DenseNet code taps ``stem`` + ``transition1`` instead, which is our DenseNet Entry preset.
- **Entry** (early stages) and **Output** (last stage and the pre-logit embedding) are our
  reconstruction: the papers do not name them. Output's pre-logit embedding is the global
  average pool, kept 4-D (B, C, 1, 1) for the CNNs; for the ViT it is the final LayerNorm's
  tokens (``norm``).

The presets of the older zoo models follow the same pattern; ``blockK.pool`` is a block's
output *before* its dropout, on purpose, so that the MINT head sees what the next block sees
at evaluation time.

Example:
    >>> m = resnet50(3, 10, 32, base_width=8)
    >>> m(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    >>> active_taps("resnet50", "middle")
    ['layer2', 'layer3']
"""

from __future__ import annotations

import difflib
import math
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from mintaudit.errors import ConfigError, LayerNotFoundError, ModelError
from mintaudit.models.catalog import MODEL_NAMES, SETUPS, model_entry, register_model

__all__ = [
    "ACTIVE_TAPS",
    "SETUPS",
    "DenseNet",
    "MobileNetV1",
    "ResNet",
    "ViT",
    "Xception",
    "active_taps",
    "densenet121",
    "resnet50",
    "resnet101",
]

Stem = Literal["auto", "small", "imagenet"]
Setup = Literal["entry", "middle", "output"]
_STEMS: tuple[str, ...] = ("auto", "small", "imagenet")


# --------------------------------------------------------------------------- shared helpers


def _size(image_size: int | Sequence[int], model: str) -> tuple[int, int]:
    if isinstance(image_size, int):
        h = w = image_size
    else:
        try:
            h, w = (int(s) for s in image_size)
        except (TypeError, ValueError) as e:
            raise ModelError(f"{model}: image_size must be an int or (height, width), got {image_size!r}") from e
    if min(h, w) < 1:
        raise ModelError(f"{model}: image_size must be positive, got {h}x{w}")
    return h, w


def _small_stem(stem: str, size: tuple[int, int], model: str) -> bool:
    if stem not in _STEMS:
        raise ModelError(f"{model}: stem must be one of {', '.join(_STEMS)}, got {stem!r}")
    return stem == "small" or (stem == "auto" and min(size) < 64)


def _check_positive(model: str, **values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ModelError(f"{model}: {name} must be > 0, got {value!r}")


def _scaled(channels: int, width: float) -> int:
    return max(1, int(channels * width))


def _conv_bn_relu(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            bn=nn.BatchNorm2d(cout),
            relu=nn.ReLU(),
        )
    )


# --------------------------------------------------------------------------- MobileNet v1


class _DepthwiseSeparable(nn.Module):
    """3x3 depthwise conv + BN + ReLU, then 1x1 pointwise conv + BN + ReLU."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.depthwise = _conv_bn_relu(cin, cin, 3, stride, groups=cin)
        self.pointwise = _conv_bn_relu(cin, cout, 1)

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
        _check_positive("MobileNetV1", width=width, in_channels=in_channels, num_classes=num_classes)
        small = _small_stem(stem, _size(image_size, "MobileNetV1"), "MobileNetV1")
        c = [_scaled(n, width) for n in (32, 64, 128, 256, 512, 1024)]
        self.stem = nn.Sequential(
            _conv_bn_relu(in_channels, c[0], 3, 1 if small else 2), _DepthwiseSeparable(c[0], c[1], 1)
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


# --------------------------------------------------------------------------- ResNet


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
        _check_positive("ResNet", base_width=base_width, in_channels=in_channels, num_classes=num_classes)
        if len(layers) != 4 or min(layers) < 1:
            raise ModelError(f"ResNet: layers must be four block counts >= 1, got {tuple(layers)!r}")
        small = _small_stem(stem, _size(image_size, "ResNet"), "ResNet")
        if small:
            self.stem = _conv_bn_relu(in_channels, base_width, 3)
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


# --------------------------------------------------------------------------- DenseNet


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
        _check_positive(
            "DenseNet", growth_rate=growth_rate, bn_size=bn_size, compression=compression,
            in_channels=in_channels, num_classes=num_classes,
        )
        if compression > 1:
            raise ModelError(f"DenseNet: compression must be in (0, 1], got {compression!r}")
        if len(blocks) != 4 or min(blocks) < 1:
            raise ModelError(f"DenseNet: blocks must be four layer counts >= 1, got {tuple(blocks)!r}")
        h, w = _size(image_size, "DenseNet")
        c = 2 * growth_rate
        if _small_stem(stem, (h, w), "DenseNet"):
            self.stem = _conv_bn_relu(in_channels, c, 3)
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


# --------------------------------------------------------------------------- Xception


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
        _check_positive(
            "Xception", width=width, middle_blocks=middle_blocks, in_channels=in_channels, num_classes=num_classes
        )
        small = _small_stem(stem, _size(image_size, "Xception"), "Xception")
        c32, c64, c128, c256, c728, c1024, c1536, c2048 = (
            _scaled(n, width) for n in (32, 64, 128, 256, 728, 1024, 1536, 2048)
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
                    _SeparableConv(c1024, c1536), nn.BatchNorm2d(c1536), nn.ReLU(),
                    _SeparableConv(c1536, c2048), nn.BatchNorm2d(c2048), nn.ReLU(),
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


# --------------------------------------------------------------------------- ViT


class _Attention(nn.Module):
    """Multi-head self-attention: one qkv projection, scaled dot product, output projection."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, d)))


class _Mlp(nn.Module):
    """Linear -> GELU -> linear, with dropout after each."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop2 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class _Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)); returns (B, N, D)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = _Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = _Mlp(dim, max(1, int(dim * mlp_ratio)), dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """A small Vision Transformer, as in the published aMINT code (patch 4, dim 64, depth 12, 8 heads).

    Modules: ``patch_embed`` (conv, kernel = stride = patch size), learnable ``cls_token``
    (1, 1, D) and ``pos_embed`` (1, 1 + N, D) with N = (H // patch) x (W // patch) (pixels past
    the last whole patch are ignored), ``pos_drop``, ``blocks`` (``blocks.0`` ..
    ``blocks.{depth-1}``, each returning tokens (B, 1 + N, D)), ``norm`` (final LayerNorm,
    tokens (B, 1 + N, D)) and ``head`` (linear on the cls token).

    Args:
        in_channels: input channels.
        num_classes: number of classes.
        image_size: input height/width in pixels; sizes the position embedding, so inputs
            must have this size.
        patch_size: patch side in pixels.
        dim: token width D.
        depth: number of transformer blocks.
        heads: attention heads; must divide ``dim``.
        mlp_ratio: hidden width of each block's MLP, as a multiple of ``dim``.
        dropout: dropout of tokens, attention and MLPs (0 as published).

    Example:
        >>> ViT(1, 10, 28, dim=16, depth=4, heads=2)(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int | tuple[int, int],
        patch_size: int = 4,
        dim: int = 64,
        depth: int = 12,
        heads: int = 8,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        _check_positive(
            "ViT", patch_size=patch_size, dim=dim, depth=depth, heads=heads, mlp_ratio=mlp_ratio,
            in_channels=in_channels, num_classes=num_classes,
        )
        if dim % heads:
            raise ModelError(f"ViT: heads ({heads}) must divide dim ({dim}); e.g. dim={heads * max(1, dim // heads)}")
        if not 0 <= dropout < 1:
            raise ModelError(f"ViT: dropout must be in [0, 1), got {dropout!r}")
        h, w = _size(image_size, "ViT")
        if min(h, w) < patch_size:
            raise ModelError(
                f"ViT: image_size {h}x{w} is smaller than one {patch_size}x{patch_size} patch; lower patch_size"
            )
        self.image_size = (h, w)
        num_patches = (h // patch_size) * (w // patch_size)
        self.patch_embed = nn.Conv2d(in_channels, dim, patch_size, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + num_patches, dim))
        self.pos_drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(_Block(dim, heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) of float images (B, C, H, W) of the size given at construction."""
        if tuple(x.shape[-2:]) != self.image_size:
            raise ModelError(
                f"ViT was built for {self.image_size[0]}x{self.image_size[1]} inputs, got "
                f"{x.shape[-2]}x{x.shape[-1]}; rebuild it with image_size={tuple(x.shape[-2:])}"
            )
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        tokens = self.pos_drop(tokens + self.pos_embed)
        for block in self.blocks:
            tokens = block(tokens)
        return self.head(self.norm(tokens)[:, 0])


# --------------------------------------------------------------------------- tap presets

class _Presets(Mapping[str, dict[str, list[str]]]):
    """A live, read-only view of the registered aMINT presets: name -> setup -> layers (copies)."""

    def _names(self) -> list[str]:
        return [n for n in MODEL_NAMES if (e := model_entry(n)) is not None and e.active]

    def __getitem__(self, name: str) -> dict[str, list[str]]:
        entry = model_entry(name)
        if entry is None or not entry.active:
            raise KeyError(name)
        return {setup: list(entry.active[setup]) for setup in SETUPS}

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __repr__(self) -> str:
        return repr(dict(self))


ACTIVE_TAPS: Mapping[str, dict[str, list[str]]] = _Presets()
"""Zoo model name -> setup (entry / middle / output) -> layer names to tap (read from :func:`register_model`).

Middle holds the published aMINT taps; Entry and Output are our reconstruction (see the module
docstring). The ViT entry is for its default depth of 12; :func:`active_taps` rescales it to
a built model's depth.
"""


def _vit_taps(depth: int) -> dict[str, list[str]]:
    """ViT taps after block ceil(f x depth) (1-based): entry f = 1/6, 1/3; middle 2/3; output 1 + norm."""

    def after(fraction: float) -> str:
        return f"blocks.{max(1, math.ceil(fraction * depth - 1e-9)) - 1}"

    entry = list(dict.fromkeys([after(1 / 6), after(1 / 3)]))
    return {"entry": entry, "middle": [after(2 / 3)], "output": [after(1.0), "norm"]}


def _vit_scaled(model: nn.Module) -> dict[str, list[str]]:
    """The ViT presets of a built model, from its number of blocks."""
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.ModuleList) or len(blocks) == 0:
        raise ConfigError(f"the 'vit' tap preset needs a model with a non-empty 'blocks' list, got {type(model).__name__}")
    return _vit_taps(len(blocks))


def active_taps(name: str, setup: Setup, model: nn.Module | None = None) -> list[str]:
    """The layer names aMINT taps for a zoo model in one setup.

    For the ViT the block indices scale with depth: the taps follow the blocks ending at
    fractions 1/6 and 1/3 of the depth (Entry), 2/3 (Middle, the published block 8 of 12) and
    the last block plus the final ``norm`` (Output). Without ``model`` the 12-block default
    is assumed; with it, ``len(model.blocks)`` is used.

    Args:
        name: a zoo model name registered with aMINT taps (a key of :data:`ACTIVE_TAPS`).
        setup: ``entry`` (early stages), ``middle`` (the published taps) or ``output`` (last
            stage and pre-logit embedding).
        model: the built model, optional; when given, the taps are checked to exist in it.

    Returns:
        A new list of qualified module names, in forward order.

    Raises:
        ConfigError: unknown name or setup (the message lists the valid ones), or a ViT
            without ``blocks``.
        LayerNotFoundError: ``model`` lacks one of the preset's layers.

    Example:
        >>> active_taps("vit", "middle")
        ['blocks.7']
        >>> active_taps("densenet121", "entry")
        ['stem', 'transition1']
    """
    entry = model_entry(name)
    if entry is None or not entry.active:
        close = difflib.get_close_matches(name, list(ACTIVE_TAPS), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"no aMINT tap preset for model {name!r}; choose one of {', '.join(ACTIVE_TAPS)}.{hint}")
    if setup not in SETUPS:
        raise ConfigError(f"unknown tap setup {setup!r} for {name!r}; choose one of {', '.join(SETUPS)}")
    if entry.scale_taps is not None and model is not None:
        taps = list(entry.scale_taps(model)[setup])
    else:
        taps = list(entry.active[setup])
    if model is not None:
        names = {n for n, _ in model.named_modules() if n}
        missing = [t for t in taps if t not in names]
        if missing:
            close = difflib.get_close_matches(missing[0], sorted(names), n=5, cutoff=0.4)
            hint = f" Closest: {', '.join(close)}." if close else ""
            raise LayerNotFoundError(
                f"the {name!r} {setup} preset taps {missing[0]!r}, which {type(model).__name__} lacks; "
                f"is it a {name!r} model?{hint}"
            )
    return taps


# --------------------------------------------------------------------------- registrations (factory + taps)

_RESNET_TAPS = {"entry": ["stem", "layer1"], "middle": ["layer2", "layer3"], "output": ["layer4", "pool"]}
register_model("mobilenet", MobileNetV1,
               taps={"entry": ["stem", "conv1"], "middle": ["conv2", "conv3"], "output": ["conv4", "pool"]})
register_model("resnet50", resnet50, taps=_RESNET_TAPS)
register_model("resnet101", resnet101, taps=_RESNET_TAPS)
register_model("densenet121", densenet121,
               taps={"entry": ["stem", "transition1"], "middle": ["transition2", "transition3"], "output": ["dense4", "pool"]})
register_model("xception", Xception,
               taps={"entry": ["entry.block1", "entry.block2"], "middle": ["middle"], "output": ["exit", "pool"]})
register_model("vit", ViT, taps={"entry": ["blocks.1", "blocks.3"], "middle": ["blocks.7"], "output": ["blocks.11", "norm"]},
               scale_taps=_vit_scaled)

"""What the backbones share: input size and stem checks, width scaling, conv + BN + ReLU."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Literal

from torch import nn

from mintaudit.errors import ModelError

__all__ = ["Stem", "STEMS", "check_positive", "conv_bn_relu", "image_hw", "scaled", "small_stem"]


Stem = Literal["auto", "small", "imagenet"]
STEMS: tuple[str, ...] = ("auto", "small", "imagenet")


def image_hw(image_size: int | Sequence[int], model: str) -> tuple[int, int]:
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


def small_stem(stem: str, size: tuple[int, int], model: str) -> bool:
    if stem not in STEMS:
        raise ModelError(f"{model}: stem must be one of {', '.join(STEMS)}, got {stem!r}")
    return stem == "small" or (stem == "auto" and min(size) < 64)


def check_positive(model: str, **values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ModelError(f"{model}: {name} must be > 0, got {value!r}")


def scaled(channels: int, width: float) -> int:
    return max(1, int(channels * width))


def conv_bn_relu(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            bn=nn.BatchNorm2d(cout),
            relu=nn.ReLU(),
        )
    )

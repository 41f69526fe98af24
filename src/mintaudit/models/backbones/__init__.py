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
:func:`~mintaudit.models.catalog.register_model` in ``presets.py``, come in three setups:

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

One module per family (``mobilenet``, ``resnet``, ``densenet``, ``xception``, ``vit``), the pieces
they share in ``layers``, the presets and registrations in ``presets``; this package gathers them.

Example:
    >>> import torch
    >>> m = resnet50(3, 10, 32, base_width=8)
    >>> m(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    >>> active_taps("resnet50", "middle")
    ['layer2', 'layer3']
"""

from __future__ import annotations

from mintaudit.models.backbones.densenet import DenseNet, densenet121
from mintaudit.models.backbones.layers import Stem  # noqa: F401  (kept importable from here)
from mintaudit.models.backbones.mobilenet import MobileNetV1
from mintaudit.models.backbones.presets import ACTIVE_TAPS, Setup, active_taps  # noqa: F401  (Setup: kept importable)
from mintaudit.models.backbones.resnet import ResNet, resnet50, resnet101
from mintaudit.models.backbones.vit import ViT
from mintaudit.models.backbones.xception import Xception
from mintaudit.models.catalog import SETUPS

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

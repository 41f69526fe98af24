"""What a tap stores: ``full`` maps, ``pooled`` per-channel statistics, or a ``grid:k`` of averages, under a byte budget.

A tap's *storage mode* is chosen per tap and applied on the model's device, inside the forward
hook, before anything is cloned or copied to the host (:class:`mintaudit.taps.Recorder` takes
the reduction as its ``reduce``):

- ``full``: the whole output, as today;
- ``pooled``: per-channel mean then max, ``2C`` values: for maps (B, C, H, W) over the pixels,
  for ViT tokens (B, N, D) over the tokens (D channels); stored as (B, 2C);
- ``grid:k`` (k >= 1): adaptive average pooling to k x k: maps (B, C, k, k); tokens are pooled,
  in order, into k*k groups, (B, k*k, D). ``grid:1`` is the per-channel mean, C values.

A vector output (B, F) has no channels to pool: it is always stored ``full`` (a warning says
so when another mode was asked for or it exceeds the budget).

With no mode given, the per-sample byte budget of each tap (values x the storage dtype's size)
picks: ``full`` if it fits, else ``grid:k`` with the largest k >= 2 that fits, else ``pooled``,
else ``grid:1``, else the tap is refused. The default budget, :data:`DEFAULT_TAP_BUDGET`
(512 KiB), keeps every objcls-cnn and tiny-cnn tap in full up to 64-px colour inputs, so their
caches, keys and reports are as they always were.

Example:
    >>> x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    >>> reduce_activations(x, "pooled").shape, reduce_activations(x, "grid:2").shape
    (torch.Size([2, 6]), torch.Size([2, 3, 2, 2]))
    >>> choose_mode("conv", (32, 64, 64), parse_tap_budget("64K"), 4)
    'grid:22'
"""

from __future__ import annotations

import contextlib
import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mintaudit._tensor import autocast, resolve_device, to_device
from mintaudit.data._base import ImageDataset
from mintaudit.errors import ConfigError, SignalError
from mintaudit.taps import Recorder

__all__ = [
    "DEFAULT_TAP_BUDGET",
    "TAP_MODE_HELP",
    "parse_tap_mode",
    "parse_tap_modes",
    "parse_tap_budget",
    "reduce_activations",
    "stored_shape",
    "choose_mode",
    "resolve_tap_modes",
    "probe_shapes",
    "plan_tap_modes",
    "reducers",
]

DEFAULT_TAP_BUDGET = 512 * 1024
"""Bytes per sample per tap: objcls-cnn's largest map at 64 px RGB (32 x 64 x 64 float32) still stores in full."""

TAP_MODE_HELP = "full, pooled (per-channel mean and max) or grid:K (K x K average pooling, K >= 1)"

_GRID = re.compile(r"^grid:(\d+)$")
_SIZE = re.compile(r"^(\d+)\s*([kmgt]?)(i?b)?$", re.IGNORECASE)


def parse_tap_mode(text: str, *, name: str = "--tap-mode") -> str:
    """One storage mode, normalised (``"grid:03"`` -> ``"grid:3"``); ``name`` says where it came from in errors.

    Raises:
        ConfigError: an unknown mode, ``grid:0`` or ``grid:`` followed by anything but a whole number.
    """
    mode = str(text).strip().lower()
    if mode in ("full", "pooled"):
        return mode
    if mode.startswith("grid:"):
        m = _GRID.match(mode)
        if m is None:
            raise ConfigError(
                f"{name}: tap mode {text!r} is not grid:K with K a whole number of cells per side; write e.g. grid:4"
            )
        if int(m.group(1)) < 1:
            raise ConfigError(
                f"{name}: tap mode {text!r} has no cells; grid:K needs K >= 1: use grid:1 (the "
                "per-channel mean) or more, e.g. grid:4"
            )
        return f"grid:{int(m.group(1))}"
    raise ConfigError(f"{name}: unknown tap mode {text!r}; use {TAP_MODE_HELP}, e.g. grid:4")


def parse_tap_modes(
    spec: str | Mapping[str, str] | None, *, name: str = "--tap-mode"
) -> tuple[str | None, dict[str, str]]:
    """A ``--tap-mode`` value: one mode for all taps, and/or ``layer=mode`` pairs, comma-separated.

    Returns:
        (the mode of every tap not named, or None; layer -> mode of the named ones).
    """
    if spec is None:
        return None, {}
    items = (
        list(spec.items())
        if isinstance(spec, Mapping)
        else [
            tuple(part.rsplit("=", 1)) if "=" in part else (None, part)
            for part in (p.strip() for p in str(spec).split(","))
            if part
        ]
    )
    default: str | None = None
    per: dict[str, str] = {}
    for layer, mode in items:
        if layer is None:
            if default is not None:
                raise ConfigError(f"{name} {spec!r} gives two modes for all taps; give one, and layer=mode for others")
            default = parse_tap_mode(mode, name=name)
        elif not str(layer).strip():
            raise ConfigError(f"{name} {spec!r}: a layer=mode pair lacks its layer; write e.g. block1.relu1=pooled")
        else:
            key = str(layer).strip()
            if key in per:
                raise ConfigError(
                    f"{name} {spec!r} names tap {key!r} twice ({per[key]} and {mode.strip()}); give each tap one mode"
                )
            per[key] = parse_tap_mode(mode, name=name)
    if default is None and not per:
        raise ConfigError(f"{name} is empty; give a mode ({TAP_MODE_HELP}) or layer=mode pairs")
    return default, per


def parse_tap_budget(value: str | int, *, name: str = "--tap-budget") -> int:
    """Bytes from ``65536``, ``64K``, ``64KiB``, ``1M``, ``2G`` (binary units: K = 1024).

    Raises:
        ConfigError: not a whole number of bytes with an optional K, M, G or T, or below 1.
    """
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a number of bytes, got {value!r}; e.g. 64K")
    m = _SIZE.match(str(value).strip())
    if m is None:
        raise ConfigError(
            f"{name} must be a whole number of bytes with an optional K, M or G (x1024), got {value!r}; "
            "e.g. 65536 or 64K"
        )
    n = int(m.group(1)) * 1024 ** "_kmgt".index(m.group(2).lower() or "_")
    if n < 1:
        raise ConfigError(f"{name} must be at least 1 byte, got {value!r}; e.g. 64K")
    return n


def _kind(shape: Sequence[int]) -> str:
    """``maps`` (C, H, W), ``tokens`` (N, D), or ``vector`` (anything else: stored full)."""
    return {3: "maps", 2: "tokens"}.get(len(shape), "vector")


def reduce_activations(x: torch.Tensor, mode: str) -> torch.Tensor:
    """The values a tap stores in ``mode``, from its batch of outputs (on ``x``'s device, float32 or wider).

    Args:
        x: float tensor (B, C, H, W) maps, (B, N, D) tokens, or (B, F) vectors (returned as they are).
        mode: ``full``, ``pooled`` or ``grid:k``.

    Returns:
        ``full``: ``x``; ``pooled``: (B, 2C) = [mean | max] per channel (D channels for tokens);
        ``grid:k``: (B, C, k, k) for maps, (B, k*k, D) for tokens.
    """
    mode = parse_tap_mode(mode)
    if mode == "full" or _kind(x.shape[1:]) == "vector":
        return x
    if not x.is_floating_point() or x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    if _kind(x.shape[1:]) == "tokens":  # (B, N, D): channels last
        if mode == "pooled":
            return torch.cat([x.mean(1), x.amax(1)], 1)
        k = int(mode[5:])
        return F.adaptive_avg_pool1d(x.transpose(1, 2), k * k).transpose(1, 2).contiguous()
    if mode == "pooled":
        return torch.cat([x.mean((2, 3)), x.amax((2, 3))], 1)
    k = int(mode[5:])
    return F.adaptive_avg_pool2d(x, (k, k)).contiguous()


def stored_shape(shape: Sequence[int], mode: str) -> tuple[int, ...]:
    """The per-sample shape a tap of output ``shape`` (no batch) stores in ``mode``."""
    shape = tuple(int(s) for s in shape)
    kind = _kind(shape)
    if mode == "full" or kind == "vector":
        return shape
    channels = shape[0] if kind == "maps" else shape[1]
    if mode == "pooled":
        return (2 * channels,)
    k = int(mode[5:])
    return (channels, k, k) if kind == "maps" else (k * k, channels)


def choose_mode(layer: str, shape: Sequence[int], budget: int, itemsize: int) -> str:
    """The mode the byte ``budget`` picks for a tap of output ``shape`` (no batch) stored at ``itemsize`` bytes.

    ``full`` if it fits, else ``grid:k`` with the largest k >= 2 that fits, else ``pooled``, else ``grid:1``.

    Raises:
        ConfigError: not even one value per channel fits (names the tap, its channels and the minimum budget).
    """
    shape = tuple(int(s) for s in shape)
    kind = _kind(shape)
    if kind == "vector" or math.prod(shape) * itemsize <= budget:
        return "full"
    channels, cells = (shape[0], max(shape[1:])) if kind == "maps" else (shape[1], shape[0])
    k = math.isqrt(budget // (channels * itemsize))
    k = min(k, cells if kind == "maps" else math.isqrt(cells))
    if k >= 2:
        return f"grid:{k}"
    if 2 * channels * itemsize <= budget:
        return "pooled"
    if channels * itemsize <= budget:
        return "grid:1"
    raise ConfigError(
        f"tap {layer!r} has {channels} channels: a --tap-budget of {budget} bytes holds less than one "
        f"value per channel; give --tap-budget {channels * itemsize} or more (2x for pooled)"
    )


def resolve_tap_modes(
    shapes: Mapping[str, Sequence[int]],
    tap_mode: str | Mapping[str, str] | None = None,
    budget: int | None = None,
    itemsize: int = 4,
) -> dict[str, str]:
    """Each tap's storage mode: the one given for it, else the one given for all, else the budget's pick.

    Args:
        shapes: layer -> its output shape without the batch (from :func:`probe_shapes`).
        tap_mode: a ``--tap-mode`` value (see :func:`parse_tap_modes`), or None: the budget picks.
        budget: bytes per sample per tap (default :data:`DEFAULT_TAP_BUDGET`).
        itemsize: bytes per stored value (4 for float32, 2 for float16).

    Raises:
        ConfigError: a per-tap mode for a layer that is not selected, a grid with more cells than the tap
            (it would only upsample), or a budget below one value per channel.
    """
    budget = DEFAULT_TAP_BUDGET if budget is None else budget
    default, per = parse_tap_modes(tap_mode)
    unknown = [layer for layer in per if layer not in shapes]
    if unknown:
        raise ConfigError(
            f"--tap-mode names {unknown[0]!r}, which is not a selected tap ({', '.join(shapes) or 'none'}); "
            "select it with --taps, or give a mode for one of those"
        )
    out: dict[str, str] = {}
    for layer, shape in shapes.items():
        asked = per.get(layer, default)
        mode = asked or choose_mode(layer, shape, budget, itemsize)
        if _kind(shape) == "vector" and (asked not in (None, "full") or math.prod(shape) * itemsize > budget):
            warnings.warn(
                f"tap {layer!r} outputs a vector of {math.prod(shape)} values: pooled and grid apply to maps "
                "and tokens only, so it is stored full",
                stacklevel=2,
            )
            mode = "full"
        _check_grid(layer, shape, mode)
        out[layer] = mode
    return out


def _check_grid(layer: str, shape: Sequence[int], mode: str) -> None:
    """Refuse ``grid:k`` with more cells than the tap has (k > H or W of a map, k*k > tokens): it upsamples."""
    if not mode.startswith("grid:") or _kind(shape) == "vector":
        return
    k = int(mode[5:])
    if _kind(shape) == "maps" and k > min(shape[1], shape[2]):
        raise ConfigError(
            f"--tap-mode {mode} on tap {layer!r}, a {shape[1]}x{shape[2]} map: a grid larger than the map only "
            f"copies values; use grid:{min(shape[1], shape[2])} or less, or full"
        )
    if _kind(shape) == "tokens" and k * k > shape[0]:
        raise ConfigError(
            f"--tap-mode {mode} on tap {layer!r} of {shape[0]} tokens: {k * k} cells is more than the tokens; "
            f"use grid:{math.isqrt(shape[0])} or less, or full"
        )


@torch.no_grad()
def probe_shapes(model: nn.Module, x: torch.Tensor, layers: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """Each tap's output shape (no batch) on the input batch ``x`` (one sample is enough), in eval mode (mode restored)."""
    was_training = model.training
    model.eval()
    try:
        with Recorder(model, layers, reduce={layer: _shape_only for layer in layers}) as rec:
            model(x)
            got = rec.pop()
    finally:
        model.train(was_training)
    return {layer: tuple(int(s) for s in got[layer].shape[1:]) for layer in layers if layer in got}


def _shape_only(x: torch.Tensor) -> torch.Tensor:
    """A stand-in of ``x`` with its shape and no data (nothing is cloned while probing shapes)."""
    return torch.empty(x.shape, device="meta")


def reducers(modes: Mapping[str, str]) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """layer -> its reduction, for the taps whose mode is not ``full`` (a :class:`~mintaudit.taps.Recorder`'s ``reduce``)."""
    return {layer: partial(reduce_activations, mode=mode) for layer, mode in modes.items() if mode != "full"}


def plan_tap_modes(
    model: nn.Module,
    dataset: ImageDataset,
    indices: np.ndarray,
    layers: Sequence[str],
    tap_mode: str | Mapping[str, str] | None = None,
    tap_budget: int | None = None,
    dtype: str = "float32",
    device: str | torch.device | None = None,
) -> dict[str, str]:
    """Each tap's storage mode for :func:`~mintaudit.signals.extract_signals`, from one sample's forward pass (nothing is written).

    Returns:
        layer -> ``full``, ``pooled`` or ``grid:k`` (see :func:`mintaudit.signals.reduce.resolve_tap_modes`).
    """
    layers = list(layers)
    if not layers:
        return {}
    dev = resolve_device(device, model)
    x = to_device(dataset.batch(np.asarray(indices, dtype=np.int64)[:1]), dev)
    with autocast(dev) if dev.type == "cuda" else contextlib.nullcontext():
        shapes = probe_shapes(model, x, layers)
    missing = [layer for layer in layers if layer not in shapes]
    if missing:
        raise SignalError(f"layer {missing[0]!r} produced no tensor output; choose another layer")
    return resolve_tap_modes(shapes, tap_mode, tap_budget, np.dtype(dtype).itemsize)

"""Turning uint8 image pools into normalised float batches (the one place this is done), and devices."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from mintaudit.data._base import ImageDataset
from mintaudit.errors import ConfigError
from mintaudit.preprocess import DEFAULT_PREPROCESS

__all__ = ["to_tensor", "iter_batches", "use_device", "resolve_device", "device_of", "autocast", "to_device"]

_DEVICE: list[torch.device | None] = [None]  # the process default set by use_device (the command line's --device)


def to_tensor(images: np.ndarray, device: torch.device | None = None) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float32 (N, C, H, W) with the default preprocessing (mean 0.5 / std 0.5).

    A data set view applies its own model's preprocessing: ``dataset.batch(indices)``.
    """
    return DEFAULT_PREPROCESS(images, device)


def iter_batches(
    dataset: ImageDataset,
    indices: np.ndarray,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, np.ndarray]]:
    """Yield ``(x, y, idx)`` batches over ``indices`` of ``dataset``.

    Args:
        dataset: the pool.
        indices: int array (N,) of pool indices to visit.
        batch_size: samples per batch.
        generator: when given, the order is shuffled with it; otherwise kept.
        device: where ``x`` and ``y`` go (default: CPU).

    Yields:
        x: float32 (B, C, H, W); y: int64 (B,); idx: the pool indices of the batch.
    """
    indices = np.asarray(indices, dtype=np.int64)
    if generator is not None:
        order = torch.randperm(len(indices), generator=generator).numpy()
        indices = indices[order]
    if hasattr(dataset, "stream"):  # a pool read from sources (mintaudit.audit): batch by batch, never whole
        yield from dataset.stream(indices, batch_size, device)
        return
    for start in range(0, len(indices), batch_size):
        idx = indices[start : start + batch_size]
        y = torch.from_numpy(dataset.labels[idx])
        yield dataset.batch(idx, device), (y if device is None else y.to(device, non_blocking=True)), idx


@contextlib.contextmanager
def use_device(device: str | torch.device | None) -> Iterator[None]:
    """Within the block, training and extraction run on ``device`` unless told otherwise (None: leave as is)."""
    previous = _DEVICE[0]
    if device is not None:
        _DEVICE[0] = resolve_device(device)
    try:
        yield
    finally:
        _DEVICE[0] = previous


def device_of(module: nn.Module) -> torch.device:
    """The device of ``module``'s first parameter or buffer (CPU when it has none)."""
    for t in (*module.parameters(), *module.buffers()):
        return t.device
    return torch.device("cpu")


def resolve_device(device: str | torch.device | None, module: nn.Module | None = None) -> torch.device:
    """The device to compute on: ``device``, else the one set by :func:`use_device`, else ``module``'s.

    ``cuda`` without an index means this process's GPU (torchrun's ``LOCAL_RANK``).

    Raises:
        ConfigError: an unknown device, or CUDA asked for where there is none.
    """
    if device is None:
        if _DEVICE[0] is not None:
            return _DEVICE[0]
        return device_of(module) if module is not None else torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ConfigError(f"device must be cpu, cuda or cuda:N, got {device!r}") from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {str(device)!r} asked for, but this PyTorch sees no CUDA GPU "
                "(CPU-only build or no driver); use --device cpu"
            )
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
    elif dev.type != "cpu":
        raise ConfigError(f"device must be cpu, cuda or cuda:N, got {device!r}")
    return dev


def autocast(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """bfloat16 autocast on a CUDA device that supports it; nothing elsewhere (CPU stays float32)."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` on ``device``; image batches (4-D) on CUDA in channels-last layout."""
    if device.type == "cpu":
        return x if x.device.type == "cpu" else x.cpu()
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x

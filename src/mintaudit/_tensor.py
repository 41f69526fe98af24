"""Turning uint8 image pools into normalised float batches (the one place this is done)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from mintaudit.data._base import ImageDataset

__all__ = ["to_tensor", "iter_batches"]


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float32 (N, C, H, W) normalised with mean 0.5 / std 0.5."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return x.div_(127.5).sub_(1.0)


def iter_batches(
    dataset: ImageDataset,
    indices: np.ndarray,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, np.ndarray]]:
    """Yield ``(x, y, idx)`` batches over ``indices`` of ``dataset``.

    Args:
        dataset: the pool.
        indices: int array (N,) of pool indices to visit.
        batch_size: samples per batch.
        generator: when given, the order is shuffled with it; otherwise kept.

    Yields:
        x: float32 (B, C, H, W); y: int64 (B,); idx: the pool indices of the batch.
    """
    indices = np.asarray(indices, dtype=np.int64)
    if generator is not None:
        order = torch.randperm(len(indices), generator=generator).numpy()
        indices = indices[order]
    for start in range(0, len(indices), batch_size):
        idx = indices[start : start + batch_size]
        yield to_tensor(dataset.images[idx]), torch.from_numpy(dataset.labels[idx]), idx

"""The default :class:`mintaudit.protocols.Source`: a pool read by position through its preprocessing."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from mintaudit.data._base import ImageDataset

__all__ = ["PoolSource"]


class PoolSource:
    """An :class:`ImageDataset` (or the part of it named by ``ids``) as a :class:`~mintaudit.protocols.Source`.

    Position ``i`` of the source is pool index ``ids[i]`` (every pool index when ``ids`` is None).
    Batches go through the pool's preprocessing, exactly as :meth:`ImageDataset.batch` does.

    Example:
        >>> ds = ImageDataset("toy", np.zeros((4, 8, 8, 1), np.uint8), np.array([0, 1, 0, 1]), 2)
        >>> x, y = next(PoolSource(ds).batches(np.arange(4)))
        >>> tuple(x.shape), y.tolist()
        ((4, 1, 8, 8), [0, 1, 0, 1])
    """

    def __init__(self, dataset: ImageDataset, ids: np.ndarray | None = None) -> None:
        self.dataset = dataset
        self.ids = np.arange(len(dataset)) if ids is None else np.asarray(ids, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def labels(self) -> np.ndarray:
        return self.dataset.labels[self.ids]

    def fingerprint(self) -> str:
        if len(self.ids) == len(self.dataset) and np.array_equal(self.ids, np.arange(len(self.dataset))):
            return self.dataset.fingerprint()
        import hashlib

        h = hashlib.sha256(self.dataset.fingerprint().encode())
        h.update(np.ascontiguousarray(self.ids).data)
        return h.hexdigest()[:16]

    def batches(self, ids: np.ndarray, batch_size: int = 256) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        pool_ids = self.ids[np.asarray(ids, dtype=np.int64)]
        for start in range(0, len(pool_ids), batch_size):
            chunk = pool_ids[start : start + batch_size]
            yield self.dataset.batch(chunk), torch.from_numpy(self.dataset.labels[chunk])

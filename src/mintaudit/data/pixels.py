"""Raw pixels handed from Python with a ``preprocess=``: the pool the audited model reads through it."""

from __future__ import annotations

import numpy as np

from mintaudit.data._base import ImageDataset
from mintaudit.errors import DataError
from mintaudit.preprocess import Preprocess

__all__ = ["pixel_pool"]


def pixel_pool(name: str, x: np.ndarray, y: np.ndarray, num_classes: int, preprocess: Preprocess) -> ImageDataset:
    """An :class:`ImageDataset` of raw pixels ``x`` (float (N, C, H, W) holding whole values 0-255), read through ``preprocess``.

    Raises:
        DataError: ``x`` is not whole numbers in [0, 255] (already transformed: drop ``preprocess=``).
    """
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise DataError(f"preprocess= takes raw images (N, C, H, W) with C = 1 or 3, got shape {x.shape}")
    if x.size and (x.min() < 0 or x.max() > 255 or not np.array_equal(x, np.round(x))):
        raise DataError(
            f"preprocess= takes raw pixels (whole numbers 0-255, e.g. uint8 tensors), got values in "
            f"[{float(x.min()):.3g}, {float(x.max()):.3g}]; drop preprocess= for samples already transformed"
        )
    images = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).astype(np.uint8)
    return ImageDataset(name, images, np.asarray(y, dtype=np.int64), int(num_classes), preprocess=preprocess)

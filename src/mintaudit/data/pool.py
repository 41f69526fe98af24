"""The pieces every format reader shares: reading (maybe gzipped) bytes, the canonical image
layout, integer labels, image-size checks, and gathering parts into one :class:`ImageDataset` pool."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mintaudit.data._base import ImageDataset
from mintaudit.errors import CorruptFileError, DataError, DataNotFoundError

__all__ = ["GZIP_MAGIC", "PathLike", "as_labels", "canonical_images", "check_image_size", "make_pool", "read_bytes"]

PathLike = str | Path

#: The first two bytes of a gzip stream.
GZIP_MAGIC = b"\x1f\x8b"


def read_bytes(path: Path) -> bytes:
    """Read a file, transparently gunzipping it when it starts with the gzip magic 1f 8b."""
    if not path.is_file():
        raise DataNotFoundError(f"{path}: no such file; check the path")
    raw = path.read_bytes()
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise CorruptFileError(f"{path}: damaged gzip stream ({exc}); download the file again") from None


def canonical_images(images: np.ndarray, where: str) -> np.ndarray:
    """Turn (N, H, W), (N, H, W, C) or (N, C, H, W) with C in {1, 3} into (N, H, W, C).

    Channels-last wins when both readings are possible. The dtype is left unchanged.
    """
    if images.ndim == 3:
        return images[..., None]
    if images.ndim == 4 and images.shape[3] in (1, 3):
        return images
    if images.ndim == 4 and images.shape[1] in (1, 3):
        return np.ascontiguousarray(images.transpose(0, 2, 3, 1))
    raise DataError(
        f"{where}: images must be (N, H, W), (N, H, W, C) or (N, C, H, W) with C = 1 or 3, "
        f"got shape {images.shape}; reshape them to one of these layouts"
    )


def as_labels(labels: Any, where: str) -> np.ndarray:
    """Integer labels (N,) or (N, 1) -> int64 (N,); anything else raises DataError."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"{where}: labels must be integers of shape (N,), got {labels.dtype} {labels.shape}; "
            "store one integer class index per image"
        )
    if labels.size and labels.min() < 0:
        raise DataError(f"{where}: labels must be >= 0, got {labels.min()}; use class indices 0..K-1")
    return labels.astype(np.int64, copy=False)


def make_pool(
    name: str,
    parts: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    with_test: bool,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
) -> ImageDataset:
    """Concatenate (images, labels) parts (train[, test]) into an ImageDataset.

    When ``with_test`` is true the last part is the official test split.
    """
    images = parts[0][0] if len(parts) == 1 else np.concatenate([p[0] for p in parts])
    labels = parts[0][1] if len(parts) == 1 else np.concatenate([p[1] for p in parts])
    official = None
    if with_test:
        official = np.zeros(len(labels), dtype=bool)
        official[len(labels) - len(parts[-1][1]) :] = True
    k = num_classes if num_classes is not None else int(labels.max()) + 1 if labels.size else 1
    names = tuple(class_names) if class_names is not None else None
    return ImageDataset(
        name,
        images,
        labels,
        k,
        official_test=official,
        class_names=names,
        sources=tuple(sources) if sources is not None else None,
    )


def check_image_size(image_size: int | None) -> None:
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1):
        raise DataError(f"image_size must be a positive integer, got {image_size!r}; e.g. image_size=32")

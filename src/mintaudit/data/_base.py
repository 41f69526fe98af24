"""The one in-memory data set type every stage of mintaudit consumes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from mintaudit.data.store import PoolArray
from mintaudit.errors import DataError
from mintaudit.preprocess import DEFAULT_PREPROCESS, Preprocess

__all__ = ["ImageDataset"]


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """A labelled image data set held as one pool of samples.

    The pool is the concatenation of the official training part and, where the data set has
    one, the official test part; ``official_test`` marks the latter. Splits index this pool.

    Attributes:
        name: registry name (``"fashion-mnist"``, ``"folder:/data/x"``...).
        images: uint8 array (N, H, W, C), C in {1, 3}: an ndarray, or a
            :class:`~mintaudit.data.store.PoolArray` read on demand (a pool store on disk, a lazy
            view), indexed like an array; :meth:`batch` and :meth:`fingerprint` never load it whole.
        labels: int64 array (N,), values in [0, num_classes).
        num_classes: number of classes.
        official_test: bool array (N,); True for samples of the official test split.
        class_names: optional names, one per class.
        preprocess: how the model reading this view turns pixels into its input tensor
            (:class:`mintaudit.preprocess.Preprocess`; default mean 0.5 / std 0.5). Set with
            :meth:`with_preprocess`; it does not change the pool or its fingerprint.
        sources: optional per-sample names (for image folders: paths relative to the root),
            so a member list can name files.

    Example:
        >>> ds = ImageDataset("toy", np.zeros((4, 8, 8, 1), np.uint8), np.array([0, 1, 0, 1]), 2)
        >>> ds.image_shape
        (1, 8, 8)
    """

    name: str
    images: np.ndarray | PoolArray
    labels: np.ndarray
    num_classes: int
    official_test: np.ndarray | None = None
    class_names: tuple[str, ...] | None = None
    _fingerprint: list[str] = field(default_factory=list, repr=False)
    preprocess: Preprocess = DEFAULT_PREPROCESS
    sources: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        images, labels = self.images, self.labels
        if not isinstance(images, (np.ndarray, PoolArray)) or images.ndim != 4 or images.shape[3] not in (1, 3):
            shape = getattr(images, "shape", None)
            raise DataError(
                f"data set {self.name!r}: images must be an array (N, H, W, C) with C = 1 or 3, "
                f"got shape {shape}; convert grey images to (N, H, W, 1)"
            )
        if images.dtype != np.uint8:
            raise DataError(
                f"data set {self.name!r}: images must be uint8 (0-255), got {images.dtype}; "
                "scale them to 0-255 and cast to uint8"
            )
        labels = np.asarray(labels)
        if labels.ndim != 1 or len(labels) != len(images):
            raise DataError(
                f"data set {self.name!r}: {len(images)} images but labels of shape {labels.shape}; "
                "give one integer label per image"
            )
        if len(images) == 0:
            raise DataError(f"data set {self.name!r} is empty; point at a folder or file with samples")
        if not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"data set {self.name!r}: labels must be integers, got {labels.dtype}")
        if self.num_classes < 1 or labels.min() < 0 or labels.max() >= self.num_classes:
            raise DataError(
                f"data set {self.name!r}: labels must lie in [0, {self.num_classes}), "
                f"got range [{labels.min()}, {labels.max()}]; fix the labels or num_classes"
            )
        object.__setattr__(self, "labels", labels.astype(np.int64, copy=False))
        if self.official_test is not None:
            mask = np.asarray(self.official_test, dtype=bool)
            if mask.shape != (len(images),):
                raise DataError(f"data set {self.name!r}: official_test must have shape ({len(images)},)")
            object.__setattr__(self, "official_test", mask)
        if not isinstance(self.preprocess, Preprocess):
            raise DataError(
                f"data set {self.name!r}: preprocess must be a mintaudit.Preprocess, got {self.preprocess!r}"
            )
        self.preprocess.check(int(images.shape[3]))
        if self.sources is not None and len(self.sources) != len(images):
            raise DataError(f"data set {self.name!r}: {len(self.sources)} source names for {len(images)} images")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W): the shape of one sample as the models see it."""
        _, h, w, c = self.images.shape
        h, w = self.preprocess.output_size(int(h), int(w))
        return (self.preprocess.channels(int(c)), int(h), int(w))

    @property
    def preprocess_record(self) -> dict[str, Any]:
        """The preprocessing as recorded in reports and cache manifests."""
        return self.preprocess.to_dict()

    def with_preprocess(self, preprocess: Preprocess | None) -> ImageDataset:
        """The same pool (same arrays, same fingerprint) read through ``preprocess``."""
        preprocess = preprocess or DEFAULT_PREPROCESS
        if preprocess == self.preprocess:
            return self
        return replace(self, preprocess=preprocess)

    def batch(self, indices: np.ndarray, device: torch.device | None = None) -> torch.Tensor:
        """The model's input for pool ``indices``: float32 (B, C, H, W), through :attr:`preprocess`."""
        return self.preprocess(self.images[indices], device)

    def fingerprint(self) -> str:
        """A SHA-256 (16 hex digits) of shapes, images, labels and the official split.

        A pool store answers with the fingerprint it recorded while it was written (same labels);
        other lazy pools are hashed batch by batch. Either way it equals the in-memory pool's.
        """
        if not self._fingerprint:
            images = self.images
            recorded = None
            if isinstance(images, PoolArray):
                recorded = images.recorded_fingerprint(self.num_classes, self.labels, self.official_test)
            if recorded is not None:
                self._fingerprint.append(recorded)
                return recorded
            h = hashlib.sha256()
            h.update(repr((tuple(images.shape), self.num_classes)).encode())
            if isinstance(images, PoolArray):
                for rows in images.batches():
                    h.update(rows.data)
            else:
                h.update(np.ascontiguousarray(images).data)
            h.update(np.ascontiguousarray(self.labels).data)
            if self.official_test is not None:
                h.update(np.packbits(self.official_test).data)
            self._fingerprint.append(h.hexdigest()[:16])
        return self._fingerprint[0]

"""A pool of samples the user already transformed: tensors, a ``Dataset`` or a ``DataLoader`` yielding ``(x, y)``.

:class:`TensorPool` is an :class:`~mintaudit.data.ImageDataset` whose samples are the user's
model inputs as they are (float ``(N, C, H, W)``, any normalisation the user's transform
applied), so every stage that reads a data set (the sanity gate, extraction, the MINT models,
the attacks) reads these inputs unchanged. It is held in memory as float32.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mintaudit.data._base import ImageDataset
from mintaudit.errors import DataError

__all__ = ["TensorPool", "collect_samples"]

#: How the report describes the preprocessing of a pool the caller transformed.
USER_TRANSFORM = {"applied_by": "the caller: samples were given already transformed"}


def _as_xy(item: Any, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(item, dict):
        item = (item.get("x", item.get("image")), item.get("y", item.get("label")))
    if not isinstance(item, (tuple, list)) or len(item) < 2:
        raise DataError(f"{where} must yield (x, y) pairs (a tensor and its integer label), got {type(item).__name__}")
    x, y = item[0], item[1]
    return torch.as_tensor(x), torch.as_tensor(y)


def collect_samples(data: Any, role: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` as float32 (N, C, H, W) and int64 (N,) arrays from tensors, a Dataset or a DataLoader.

    Args:
        data: a pair ``(x, y)`` of tensors/arrays; a ``torch.utils.data.DataLoader`` (or any iterable of
            ``(x, y)`` batches); or a map-style ``Dataset`` yielding single ``(x, y)`` samples.
        role: members, external or test (named in errors).

    Raises:
        DataError: no samples, inputs that are not (C, H, W) images, or labels that are not integers.
    """
    where = f"{role}"
    xs: list[torch.Tensor] = []
    ys: list[torch.Tensor] = []
    if isinstance(data, (tuple, list)) and len(data) == 2 and not isinstance(data[0], (tuple, list)):
        x, y = (torch.as_tensor(d) for d in data)
        xs, ys = [x], [y.reshape(-1)]
    elif isinstance(data, torch.utils.data.DataLoader) or (
        isinstance(data, Iterable) and not hasattr(data, "__getitem__")
    ):
        for item in data:
            x, y = _as_xy(item, where)
            xs.append(x if x.dim() == 4 else x.unsqueeze(0))
            ys.append(y.reshape(-1))
    elif hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        for i in range(len(data)):
            x, y = _as_xy(data[i], where)
            xs.append(x.unsqueeze(0))
            ys.append(y.reshape(-1))
    else:
        raise DataError(
            f"{role}: give a DataLoader, a Dataset yielding (x, y), or a pair of tensors (x, y); "
            f"got {type(data).__name__}"
        )
    if not xs:
        raise DataError(f"{role}: no samples; give at least one (x, y)")
    x = torch.cat([t.detach().cpu().float() for t in xs])
    y = torch.cat([t.detach().cpu() for t in ys])
    if x.dim() != 4:
        raise DataError(f"{role}: inputs must be images (N, C, H, W), got shape {tuple(x.shape)}")
    if len(y) != len(x):
        raise DataError(f"{role}: {len(x)} inputs but {len(y)} labels; yield one integer label per input")
    if y.is_floating_point() and not torch.equal(y, y.round()):
        raise DataError(f"{role}: labels must be integer class indices, got floats like {float(y[0])}")
    return np.ascontiguousarray(x.numpy()), y.long().numpy()


@dataclass(frozen=True, eq=False)
class TensorPool(ImageDataset):
    """A pool of already-transformed model inputs: ``images`` float32 (N, C, H, W), used as they are."""

    def __post_init__(self) -> None:
        x = self.images
        if not isinstance(x, np.ndarray) or x.ndim != 4 or x.dtype != np.float32:
            raise DataError(f"pool {self.name!r}: inputs must be float32 (N, C, H, W), got {getattr(x, 'shape', None)}")
        if not np.isfinite(x).all():
            raise DataError(f"pool {self.name!r}: inputs hold NaN or infinite values; check the transform")
        labels = np.asarray(self.labels)
        if labels.shape != (len(x),) or not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"pool {self.name!r}: give one integer label per input")
        if len(x) == 0:
            raise DataError(f"pool {self.name!r} is empty")
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise DataError(
                f"pool {self.name!r}: labels must lie in [0, {self.num_classes}), got "
                f"[{labels.min()}, {labels.max()}]; give num_classes or fix the labels"
            )
        object.__setattr__(self, "labels", labels.astype(np.int64, copy=False))

    @property
    def image_shape(self) -> tuple[int, int, int]:
        _, c, h, w = self.images.shape
        return (int(c), int(h), int(w))

    @property
    def preprocess_record(self) -> dict[str, Any]:
        return dict(USER_TRANSFORM)

    def with_preprocess(self, preprocess: Any) -> TensorPool:
        if preprocess is not None and not preprocess.is_default:
            raise DataError(
                "these samples were given already transformed; apply the preprocessing in your own "
                "transform, not with --mean/--std"
            )
        return self

    def batch(self, indices: np.ndarray, device: torch.device | None = None) -> torch.Tensor:
        x = torch.from_numpy(self.images[indices])
        return x if device is None or device.type == "cpu" else x.to(device, non_blocking=True)

    def fingerprint(self) -> str:
        if not self._fingerprint:
            h = hashlib.sha256(b"tensor-pool\0")
            h.update(repr((self.images.shape, self.num_classes)).encode())
            h.update(np.ascontiguousarray(self.images).data)
            h.update(np.ascontiguousarray(self.labels).data)
            self._fingerprint.append(h.hexdigest()[:16])
        return self._fingerprint[0]

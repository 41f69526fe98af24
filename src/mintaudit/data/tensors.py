"""A pool of samples the user already transformed: tensors, a ``Dataset`` or a ``DataLoader`` yielding ``(x, y)``.

:class:`TensorPool` is an :class:`~mintaudit.data.ImageDataset` whose samples are the user's
model inputs as they are (float ``(N, C, H, W)``, any normalisation the user's transform
applied), so every stage that reads a data set (the sanity gate, extraction, the MINT models,
the attacks) reads these inputs unchanged. It is held in memory as float32.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mintaudit.data._base import ImageDataset
from mintaudit.errors import DataError

__all__ = ["TensorPool", "collect_samples"]

#: How the report describes the preprocessing of a pool the caller transformed.
USER_TRANSFORM = {"applied_by": "the caller: samples were given already transformed"}


#: Keys of a dict sample or batch (Hugging Face style and others), in the order they are looked up.
X_KEYS = ("pixel_values", "x", "image", "images", "img", "input", "inputs")
Y_KEYS = ("labels", "label", "y", "target", "targets")


def _pick(item: Any, keys: tuple[str, ...], what: str, where: str) -> Any:
    for k in keys:
        if k in item:
            return item[k]
    have = ", ".join(map(repr, list(item.keys())[:8]))
    raise DataError(f"{where} yields dicts with keys {have} but no {what} (looked for {', '.join(keys)})")


def _as_xy(item: Any, where: str) -> tuple[Any, Any]:
    """``(x, y)`` from one item: a pair, or a dict with an input key and a label key (:data:`X_KEYS`, :data:`Y_KEYS`)."""
    if isinstance(item, Mapping):
        return _pick(item, X_KEYS, "input", where), _pick(item, Y_KEYS, "label", where)
    if not isinstance(item, (tuple, list)) or len(item) < 2:
        raise DataError(
            f"{where} must yield (x, y) pairs or dicts such as {{'pixel_values': x, 'labels': y}}, "
            f"got {type(item).__name__}"
        )
    return item[0], item[1]


def _is_pil(x: Any) -> bool:
    return type(x).__module__.startswith("PIL.")


def _inputs(x: Any, where: str, raw: bool) -> torch.Tensor:
    """One item's inputs as a tensor of 3 (one sample) or 4 (a batch) dims; PIL images as (C, H, W) uint8."""
    if _is_pil(x):
        if not raw:
            raise DataError(
                f"{where} yields PIL images (raw pixels), not tensors: give preprocess=mintaudit.Preprocess(...) "
                "with the model's mean and std so audit() scales them as in training, or apply your transform "
                "(e.g. ToTensor and Normalize) in the Dataset"
            )
        a = np.asarray(x)
        if a.dtype != np.uint8:
            raise DataError(f"{where} yields PIL images of mode {x.mode!r}; give 8-bit grey or RGB images")
        a = a[:, :, None] if a.ndim == 2 else a
        return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError, RuntimeError) as e:
            raise DataError(
                f"{where} yields inputs of type {type(x).__name__}, not numbers ({e}); give tensors or arrays"
            ) from None
    if x.dtype == torch.bool or x.is_complex():
        raise DataError(f"{where} yields {x.dtype} inputs; give the float tensors the model takes")
    if x.dim() not in (3, 4):
        raise DataError(
            f"{where} yields inputs of shape {tuple(x.shape)}: give images, one (C, H, W) sample or an "
            "(N, C, H, W) batch at a time"
        )
    return x


def _labels(y: Any, where: str) -> torch.Tensor:
    """One item's labels as a 1-D integer tensor; strings, bools and fractions refused with the cause."""
    if isinstance(y, (str, bytes)) or (isinstance(y, (list, tuple)) and y and isinstance(y[0], (str, bytes))):
        first = y if isinstance(y, (str, bytes)) else y[0]
        raise DataError(
            f"{where} yields string labels such as {first!r}; give integer class indices 0..K-1 "
            "(e.g. classes.index(name)) in the order of the model's outputs"
        )
    try:
        t = y if isinstance(y, torch.Tensor) else torch.as_tensor(np.asarray(y))
    except (TypeError, ValueError, RuntimeError):
        raise DataError(f"{where} yields labels of type {type(y).__name__}; give integer class indices") from None
    if t.dtype == torch.bool:
        raise DataError(
            f"{where} yields bool labels (True/False); give integer class indices 0..K-1 in the order of the "
            "model's outputs (y.long() if False/True really are classes 0/1)"
        )
    if t.is_complex() or not (t.is_floating_point() or t.dtype in _INT_DTYPES):
        raise DataError(f"{where} yields labels of dtype {t.dtype}; give integer class indices")
    t = t.reshape(-1)
    if t.is_floating_point():
        bad = ~torch.isfinite(t) | (t != t.round())
        if bool(bad.any()):
            raise DataError(
                f"{where}: labels must be integer class indices, got floats like {float(t[bad][0])}; "
                "give the class index of each sample"
            )
    return t.long()


_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _items(data: Any, role: str) -> Iterator[Any]:
    """The items of ``data``: one batch for a pair of tensors or a dict of them, else each item it yields."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], (torch.Tensor, np.ndarray)):
        yield tuple(data)
    elif isinstance(data, Mapping):
        yield data
    elif isinstance(data, (torch.utils.data.DataLoader, torch.utils.data.IterableDataset, list, tuple)) or (
        isinstance(data, Iterable) and not hasattr(data, "__getitem__")
    ):
        yield from data
    elif hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        for i in range(len(data)):
            yield data[i]
    else:
        raise DataError(
            f"{role}: give a DataLoader, a Dataset yielding (x, y) or dicts, a list of (x, y) batches, or a pair "
            f"of tensors (x, y); got {type(data).__name__}"
        )


def _guarded(items: Iterator[Any], role: str) -> Iterator[Any]:
    """``items``, with a DataLoader's collate failure (PIL images, strings) as one line naming the role."""
    while True:
        try:
            item = next(items)
        except StopIteration:
            return
        except TypeError as e:
            if "collate" not in str(e):
                raise
            raise DataError(
                f"{role}: the DataLoader cannot batch its samples ({str(e).splitlines()[0]}); yield tensors and "
                "integer labels (apply the transform in the Dataset)"
            ) from None
        yield item


def collect_samples(data: Any, role: str, *, raw: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Every ``(x, y)`` of ``data``: x (N, C, H, W) in the dtype given, y int64 (N,).

    Args:
        data: a pair ``(x, y)`` of tensors/arrays or a dict of them; a ``torch.utils.data.DataLoader``, a list or
            any iterable of ``(x, y)`` batches or samples; or a map-style ``Dataset`` of ``(x, y)`` samples. An item
            may be a dict with an input key (``pixel_values``, ``image``, ``x``...) and a label key (``labels``,
            ``label``, ``y``...). Inputs of 3 dims are one sample, of 4 dims a batch.
        role: members, external or test (named in errors).
        raw: accept PIL images (raw pixels, to go through a preprocessing).

    Raises:
        DataError: no samples, inputs that are not images, labels that are not integer class indices.
    """
    xs: list[torch.Tensor] = []
    ys: list[torch.Tensor] = []
    for n, item in enumerate(_guarded(_items(data, role), role)):
        where = f"{role} (item {n})"
        x_item, y_item = _as_xy(item, where)
        x, y = _inputs(x_item, where, raw), _labels(y_item, where)
        x = x if x.dim() == 4 else x.unsqueeze(0)
        if len(y) != len(x):
            raise DataError(f"{where}: {len(x)} inputs but {len(y)} labels; give one integer label per input")
        if xs and x.shape[1:] != xs[0].shape[1:]:
            raise DataError(
                f"{where}: inputs of shape {tuple(x.shape[1:])} after {tuple(xs[0].shape[1:])}; give one size"
            )
        xs.append(x.detach().cpu())
        ys.append(y.cpu())
    if not xs or sum(len(t) for t in xs) == 0:
        raise DataError(
            f"{role} holds no samples (the {type(data).__name__} given yields none); audit() needs the {role} "
            "samples as tensors, a Dataset or a DataLoader"
        )
    return torch.cat(xs), torch.cat(ys)


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

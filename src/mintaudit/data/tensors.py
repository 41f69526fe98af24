"""Reading the samples a Python caller hands :func:`mintaudit.audit`: pairs, dicts, batches, Datasets, DataLoaders.

:func:`to_xy` turns one item (a pair ``(x, y)`` or a dict such as ``{"pixel_values": x, "labels": y}``)
into a batch of inputs and integer labels, with a one-line refusal naming the cause; the sources of
:mod:`mintaudit.data.source` read every batch through it. :func:`collect_samples` reads a whole set into
memory (what raw pixels, lists of batches and iterable datasets need); a map-style Dataset or DataLoader
is streamed instead (:class:`~mintaudit.data.source.LoaderSource`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch

from mintaudit.errors import DataError

__all__ = ["USER_TRANSFORM", "collect_samples", "guarded", "iter_items", "to_xy"]

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


def to_xy(item: Any, where: str, *, raw: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """One item (a pair, or a dict with an input and a label key) as a batch: x (B, C, H, W) as given, y int64 (B,).

    Args:
        item: ``(x, y)`` or a dict (keys :data:`X_KEYS`, :data:`Y_KEYS`); ``x`` one sample (C, H, W) or a batch.
        where: named in errors (``"members (item 3)"``).
        raw: accept PIL images (raw pixels, to go through a preprocessing).

    Raises:
        DataError: inputs that are not images, labels that are not integer class indices, or counts that differ.
    """
    x_item, y_item = _as_xy(item, where)
    x, y = _inputs(x_item, where, raw), _labels(y_item, where)
    x = x if x.dim() == 4 else x.unsqueeze(0)
    if len(y) != len(x):
        raise DataError(f"{where}: {len(x)} inputs but {len(y)} labels; give one integer label per input")
    return x, y


def iter_items(data: Any, role: str) -> Iterator[Any]:
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


def guarded(items: Iterator[Any], role: str) -> Iterator[Any]:
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
    for n, item in enumerate(guarded(iter_items(data, role), role)):
        where = f"{role} (item {n})"
        x, y = to_xy(item, where, raw=raw)
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

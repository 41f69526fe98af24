"""The pool of a Python audit: the caller's sets (members, external, test, queries) read through their sources.

:class:`SourcePool` stands where every stage expects a pool (the sanity gate, extraction, the MINT models,
the attacks): pool id ``i`` is a position of one of its parts, in order (members, then external, then
test). It holds the labels and nothing else: inputs are read from the sources when asked for, batch by
batch (:meth:`SourcePool.stream`), so memory does not grow with the number of samples. Its inputs are the
caller's already-transformed float tensors (N, C, H, W): unlike :class:`~mintaudit.data.ImageDataset` it has
no ``images`` array of uint8 pixels, and its preprocessing is the caller's own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from mintaudit.data.tensors import USER_TRANSFORM
from mintaudit.errors import DataError
from mintaudit.preprocess import DEFAULT_PREPROCESS, Preprocess

__all__ = ["SourcePool", "pool_of"]


@dataclass(frozen=True, eq=False)
class SourcePool:
    """Labelled model inputs read from sources by pool id (see the module docstring).

    Attributes:
        name: the pool's name.
        parts: the sources (members, external, test, then any query), each with ``len``, ``fingerprint()``,
            ``fetch(ids)`` and ``batches(ids, batch_size)``.
        labels: int64 (N,): every part's labels, in pool order.
        num_classes: K; labels lie in [0, K).
        image_shape: (C, H, W) of one input.
        flip: inputs are mirrored left-right (the last axis): LiRA's test-time augmentation.
    """

    name: str
    parts: tuple[Any, ...]
    labels: np.ndarray
    num_classes: int
    image_shape: tuple[int, int, int]
    flip: bool = False
    official_test: None = None
    class_names: None = None
    sources: None = None
    preprocess: Preprocess = DEFAULT_PREPROCESS
    _fingerprint: list[str] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels)
        if labels.shape != (sum(len(p) for p in self.parts),) or not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"pool {self.name!r}: give one integer label per input")
        if len(labels) == 0:
            raise DataError(f"pool {self.name!r} is empty")
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise DataError(
                f"pool {self.name!r}: labels must lie in [0, {self.num_classes}), got "
                f"[{labels.min()}, {labels.max()}]; give num_classes or fix the labels"
            )
        object.__setattr__(self, "labels", labels.astype(np.int64, copy=False))

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def offsets(self) -> np.ndarray:
        """int64 (P + 1,): the first pool id of each part, then the pool's length."""
        return np.cumsum([0, *(len(p) for p in self.parts)])

    @property
    def preprocess_record(self) -> dict[str, Any]:
        return dict(USER_TRANSFORM)

    def with_preprocess(self, preprocess: Any) -> SourcePool:
        if preprocess is not None and not preprocess.is_default:
            raise DataError(
                "these samples were given already transformed; apply the preprocessing in your own "
                "transform, not with --mean/--std"
            )
        return self

    def fingerprint(self) -> str:
        """SHA-256 (16 hex) of the parts' fingerprints, every label, K and the flip."""
        if not self._fingerprint:
            h = hashlib.sha256(b"source-pool\0")
            h.update(repr((tuple(len(p) for p in self.parts), self.num_classes, self.image_shape)).encode())
            for part in self.parts:
                h.update(part.fingerprint().encode())
            h.update(np.ascontiguousarray(self.labels).data)
            if self.flip:
                h.update(b"hflip")
            self._fingerprint.append(h.hexdigest()[:16])
        return self._fingerprint[0]

    def flipped(self) -> SourcePool:
        """The same pool with every input mirrored left-right (the last axis of (C, H, W))."""
        return replace(self, name=self.name + "+hflip", flip=True, _fingerprint=[])

    def grown(self, part: Any, labels: np.ndarray, name: str) -> SourcePool:
        """This pool with ``part`` appended (its ids follow the pool's)."""
        return replace(self, name=name, parts=(*self.parts, part), labels=np.r_[self.labels, labels], _fingerprint=[])

    def _locate(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The part of each pool id and its position there."""
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"pool ids lie in 0..{len(self) - 1}")
        off = self.offsets
        part = np.searchsorted(off, indices, side="right") - 1
        return part, indices - off[part]

    def _out(self, x: torch.Tensor, device: torch.device | None) -> torch.Tensor:
        x = x.float()
        if self.flip:
            x = x.flip(-1)
        return x if device is None or device.type == "cpu" else x.to(device, non_blocking=True)

    def batch(self, indices: np.ndarray, device: torch.device | None = None) -> torch.Tensor:
        """The inputs of pool ``indices``, in order: float32 (B, C, H, W) (each part read once, in this process)."""
        part, pos = self._locate(indices)
        out = torch.empty((len(part), *self.image_shape), dtype=torch.float32)
        for p in np.unique(part):
            where = np.flatnonzero(part == p)
            x, _ = self.parts[int(p)].fetch(pos[where])
            out[torch.from_numpy(where)] = x.float()
        return self._out(out, device)

    def stream(
        self, indices: np.ndarray, batch_size: int, device: torch.device | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, np.ndarray]]:
        """``(x, y, ids)`` batches of ``batch_size`` over ``indices``, in order, read batch by batch.

        Runs of ids in one part (a sorted pass: extraction, the gate) are streamed through the part's own
        batching (a DataLoader's batch size and workers), then cut into batches of ``batch_size`` (so the
        model sees the same batches whatever the loader's batch size); a shuffled order is read batch by
        batch with :meth:`batch`.
        """
        indices = np.asarray(indices, dtype=np.int64)
        part, pos = self._locate(indices)
        cuts = np.flatnonzero(np.diff(part)) + 1
        if len(cuts) + 1 > max(len(self.parts), len(indices) // max(batch_size, 1)):  # shuffled: many short runs
            for start in range(0, len(indices), batch_size):
                idx = indices[start : start + batch_size]
                yield self.batch(idx, device), self._y(idx, device), idx
            return
        buf: list[torch.Tensor] = []
        held, done = 0, 0
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(indices)]):
            for x, _ in self.parts[int(part[lo])].batches(pos[lo:hi]):  # the part's own batching
                buf.append(x)
                held += len(x)
                while held >= batch_size:
                    whole = torch.cat(buf) if len(buf) > 1 else buf[0]
                    idx = indices[done : done + batch_size]
                    yield self._out(whole[:batch_size], device), self._y(idx, device), idx
                    buf, held, done = [whole[batch_size:]], held - batch_size, done + batch_size
        if held:
            idx = indices[done:]
            yield self._out(torch.cat(buf), device), self._y(idx, device), idx

    def _y(self, idx: np.ndarray, device: torch.device | None) -> torch.Tensor:
        y = torch.from_numpy(self.labels[idx])
        return y if device is None or device.type == "cpu" else y.to(device, non_blocking=True)


def pool_of(name: str, parts: Sequence[Any], labels: np.ndarray, num_classes: int) -> SourcePool:
    """A :class:`SourcePool` over ``parts``, its input shape read off the first sample."""
    x, _ = parts[0].fetch(np.zeros(1, np.int64))
    return SourcePool(name, tuple(parts), labels, int(num_classes), tuple(int(v) for v in x.shape[1:]))  # type: ignore[arg-type]

"""Sources (:class:`mintaudit.protocols.Source`): a pool read by position, a user's Dataset or DataLoader streamed.

- :class:`PoolSource`: a pool (:class:`~mintaudit.data.ImageDataset`) through its preprocessing;
- :class:`LoaderSource`: a map-style Dataset read through a DataLoader's batching, one batch in memory at a time;
- :class:`IterableSource`: an iterable dataset, streamed once in order;
- :class:`TensorSource`: samples already in memory.

:func:`open_source` picks the one :func:`mintaudit.audit` reads a set from; :func:`scan` checks a set in one pass.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from mintaudit.data._base import ImageDataset
from mintaudit.data.tensors import X_KEYS, collect_samples, guarded, iter_items, to_xy
from mintaudit.errors import DataError

__all__ = [
    "FINGERPRINT_SAMPLES",
    "IterableSource",
    "LoaderSource",
    "PoolSource",
    "SetStats",
    "TensorSource",
    "open_source",
    "scan",
]


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
        h = hashlib.sha256(self.dataset.fingerprint().encode())
        h.update(np.ascontiguousarray(self.ids).data)
        return h.hexdigest()[:16]

    def batches(self, ids: np.ndarray, batch_size: int = 256) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        pool_ids = self.ids[np.asarray(ids, dtype=np.int64)]
        for start in range(0, len(pool_ids), batch_size):
            chunk = pool_ids[start : start + batch_size]
            yield self.dataset.batch(chunk), torch.from_numpy(self.dataset.labels[chunk])


#: Samples a loader source's fingerprint reads (seeded positions), and those read twice to detect random transforms.
FINGERPRINT_SAMPLES = 64
TRANSFORM_SAMPLES = 8


def _picked(n: int, k: int) -> np.ndarray:
    """``min(k, n)`` positions of 0..n-1 drawn by a fixed seed (0), in increasing order."""
    return np.sort(np.random.default_rng(0).choice(n, size=min(k, n), replace=False)).astype(np.int64)


def _bytes_of(x: torch.Tensor) -> bytes:
    return np.ascontiguousarray(x.detach().cpu().numpy()).tobytes()


class LoaderSource:
    """A user's map-style Dataset, read through a DataLoader's batching, as a :class:`~mintaudit.protocols.Source`.

    Position ``i`` is ``dataset[i]`` (the loader's own sampler and shuffling are ignored: every sample of
    ``loader.dataset`` is read, each once). :meth:`batches` builds its batches with the loader's
    ``batch_size``, ``num_workers`` and ``collate_fn`` over a sequential sampler of the ids asked for, so
    memory holds one batch at a time, never the whole set. Items are ``(x, y)`` or dicts
    (``{"pixel_values", "labels"}``...), read by :func:`mintaudit.data.tensors.to_xy`.

    The fingerprint is a SHA-256 (16 hex digits) of the length and of the inputs and labels of
    :data:`FINGERPRINT_SAMPLES` (64) positions drawn with seed 0 (every sample of a smaller set): equal for
    two loaders over the same data, different when any of those samples or the length changes; a change
    elsewhere goes unseen (the price of never reading a large set whole for a key). Reading it also reads
    :data:`TRANSFORM_SAMPLES` (8) samples twice: a loader whose samples differ between two reads applies a
    random transform (augmentation), which would make every membership signal noise, and is refused.

    Args:
        dataset: map-style (``__getitem__`` and ``__len__``).
        role: the set's name in errors (``"members"``).
        batch_size, num_workers, collate_fn, worker_init_fn, multiprocessing_context: as the DataLoader's;
            ``collate_fn=None`` reads each item on its own with :func:`~mintaudit.data.tensors.to_xy`
            (items may then be PIL images when ``raw``).
        raw: accept PIL images (raw pixels, to go through a preprocessing).

    Example:
        >>> ds = torch.utils.data.TensorDataset(torch.rand(10, 1, 4, 4), torch.arange(10) % 2)
        >>> src = LoaderSource.of(torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True), "members")
        >>> [tuple(x.shape) for x, _ in src.batches(np.arange(10))]
        [(4, 1, 4, 4), (4, 1, 4, 4), (2, 1, 4, 4)]
    """

    def __init__(
        self,
        dataset: Any,
        role: str = "data",
        *,
        batch_size: int = 256,
        num_workers: int = 0,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        worker_init_fn: Callable[[int], None] | None = None,
        multiprocessing_context: Any = None,
        raw: bool = False,
    ) -> None:
        self.dataset = dataset
        self.role = role
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.collate_fn = collate_fn
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.raw = raw
        self._labels: np.ndarray | None = None
        self._fingerprint: str | None = None

    @classmethod
    def of(cls, loader: DataLoader, role: str = "data", *, raw: bool = False) -> LoaderSource:
        """The source of ``loader.dataset`` read with ``loader``'s batch size, workers and collate function."""
        if isinstance(loader.dataset, IterableDataset) or loader.batch_size is None:
            raise DataError(
                f"{role}: a DataLoader over an iterable dataset (or without batch_size) has no positions to read; "
                "use IterableSource, or give a map-style Dataset"
            )
        return cls(
            loader.dataset,
            role,
            batch_size=loader.batch_size,
            num_workers=loader.num_workers,
            collate_fn=loader.collate_fn,
            worker_init_fn=loader.worker_init_fn,
            multiprocessing_context=loader.multiprocessing_context,
            raw=raw,
        )

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def labels(self) -> np.ndarray:
        """int64 (N,), read in one streamed pass the first time (or recorded by :func:`scan`)."""
        if self._labels is None:
            ys = [y for _, y in self.raw_batches(np.arange(len(self)))]
            self._labels = torch.cat(ys).numpy() if ys else np.zeros(0, np.int64)
        return self._labels

    def fingerprint(self) -> str:
        """SHA-256 (16 hex) of the length and 64 seeded samples; refuses a random transform (see the class)."""
        if self._fingerprint is None:
            n = len(self)
            pick = _picked(n, FINGERPRINT_SAMPLES)
            x, y = self.fetch(pick)
            again, _ = self.fetch(pick[:TRANSFORM_SAMPLES])
            if _bytes_of(again) != _bytes_of(x[: len(again)]):
                raise DataError(
                    f"{self.role}: the same samples read twice differ, so the loader applies a random transform "
                    "(augmentation); membership signals would be noise: pass a loader without augmentation "
                    "(the evaluation transform only)"
                )
            h = hashlib.sha256(b"loader-source\0")
            h.update(repr((n, tuple(x.shape[1:]), str(x.dtype))).encode())
            h.update(_bytes_of(x))
            h.update(np.ascontiguousarray(y.numpy(), dtype=np.int64).data)
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def fetch(self, ids: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The samples at ``ids`` as one batch, read in this process: x as the dataset gives it, y int64."""
        ids = np.asarray(ids, dtype=np.int64)
        return self._convert(
            self._collate([self.dataset[int(i)] for i in ids]), f"{self.role} (samples {ids[:3].tolist()}...)"
        )

    def raw_batches(
        self, ids: np.ndarray, batch_size: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches of ``ids`` in order: x in the dtype the dataset gives (checked by the caller), y int64."""
        ids = np.asarray(ids, dtype=np.int64)
        bs = int(batch_size or self.batch_size)
        if self.num_workers == 0 or len(ids) <= bs:
            for start in range(0, len(ids), bs):
                yield self.fetch(ids[start : start + bs])
            return
        loader = DataLoader(
            self.dataset,
            batch_size=bs,
            sampler=ids.tolist(),
            num_workers=self.num_workers,
            collate_fn=self._collate,
            worker_init_fn=self.worker_init_fn,
            multiprocessing_context=self.multiprocessing_context,
        )
        for n, item in enumerate(guarded(iter(loader), self.role)):
            yield self._convert(item, f"{self.role} (batch {n})")

    def batches(self, ids: np.ndarray, batch_size: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The model's inputs for ``ids``, in order: (float32 (B, C, H, W), int64 (B,)); default: the loader's batch size."""
        for x, y in self.raw_batches(ids, batch_size):
            yield x.float(), y

    def _collate(self, items: list[Any]) -> Any:
        if self.collate_fn is None:
            parts = [to_xy(item, f"{self.role} (item {k})", raw=self.raw) for k, item in enumerate(items)]
            return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        try:
            return self.collate_fn(items)
        except TypeError as e:
            if "collate" not in str(e):
                raise
            raise DataError(
                f"{self.role}: the DataLoader cannot batch its samples ({str(e).splitlines()[0]}); yield tensors and "
                "integer labels (apply the transform in the Dataset)"
            ) from None

    def _convert(self, batch: Any, where: str) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = to_xy(batch, where, raw=self.raw)
        return x.detach().cpu(), y.cpu()


class TensorSource:
    """Samples already in memory (a pair of tensors, a list of batches) as a :class:`~mintaudit.protocols.Source`.

    ``x`` is kept as given (no copy); batches are float32. The fingerprint hashes every input and label.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, role: str = "data") -> None:
        self.x, self.y, self.role = x, y.long(), role
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def labels(self) -> np.ndarray:
        return self.y.numpy()

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            h = hashlib.sha256(b"tensor-source\0")
            h.update(repr((tuple(self.x.shape), str(self.x.dtype))).encode())
            h.update(_bytes_of(self.x))
            h.update(np.ascontiguousarray(self.labels, dtype=np.int64).data)
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def fetch(self, ids: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.from_numpy(np.asarray(ids, dtype=np.int64))
        return self.x[idx], self.y[idx]

    def raw_batches(
        self, ids: np.ndarray, batch_size: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        ids = np.asarray(ids, dtype=np.int64)
        bs = int(batch_size or 256)
        for start in range(0, len(ids), bs):
            yield self.fetch(ids[start : start + bs])

    def batches(self, ids: np.ndarray, batch_size: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.raw_batches(ids, batch_size):
            yield x.float(), y


class IterableSource:
    """An iterable dataset (or a DataLoader over one, or any iterable of batches): streamed once, in order.

    It has no positions to read at will, so only one in-order pass is possible: :meth:`batches` over
    ``0..n-1`` in order, once; :meth:`fingerprint`, :meth:`fetch`, another order or a second pass refuse in
    one line naming the method. ``len`` and :attr:`labels` are known once the pass is done.
    :func:`mintaudit.audit`, which reads its sets several times, reads such a set into memory once instead.
    """

    def __init__(self, data: Iterable[Any], role: str = "data", *, raw: bool = False) -> None:
        self.data, self.role, self.raw = data, role, raw
        self._streamed = False
        self._labels: list[torch.Tensor] | None = None

    def _refuse(self, method: str) -> DataError:
        return DataError(
            f"{self.role}: {method} needs random access, but an iterable dataset is streamed once, in order; "
            "give a map-style Dataset (or a DataLoader over one)"
        )

    def __len__(self) -> int:
        if self._labels is None:
            raise self._refuse("len() before the one pass")
        return int(sum(len(y) for y in self._labels))

    @property
    def labels(self) -> np.ndarray:
        if self._labels is None:
            raise self._refuse("labels before the one pass")
        return torch.cat(self._labels).numpy() if self._labels else np.zeros(0, np.int64)

    def fingerprint(self) -> str:
        raise self._refuse("fingerprint() (64 seeded samples)")

    def fetch(self, ids: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        raise self._refuse("fetch(ids)")

    def raw_batches(
        self, ids: np.ndarray, batch_size: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        ids = np.asarray(ids, dtype=np.int64)
        if not np.array_equal(ids, np.arange(len(ids))):
            raise self._refuse("batches(ids) in another order than 0..n-1")
        if self._streamed:
            raise self._refuse("a second pass of batches(ids)")
        self._streamed, seen = True, []
        for n, item in enumerate(guarded(iter_items(self.data, self.role), self.role)):
            x, y = to_xy(item, f"{self.role} (item {n})", raw=self.raw)
            seen.append(y)
            yield x.detach().cpu(), y.cpu()
        self._labels = seen

    def batches(self, ids: np.ndarray, batch_size: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.raw_batches(ids, batch_size):
            yield x.float(), y


def open_source(data: Any, role: str, *, batch_size: int = 256) -> LoaderSource | TensorSource:
    """The source :func:`mintaudit.audit` reads a set from: streamed where the data allow, else in memory.

    A DataLoader over a map-style dataset, or a map-style Dataset of samples, is streamed
    (:class:`LoaderSource`; a bare Dataset is batched by ``batch_size``). Pairs of tensors, dicts, lists of
    batches, iterable datasets and generators are read once into memory (:class:`TensorSource`).
    """
    if isinstance(data, DataLoader):
        if not isinstance(data.dataset, IterableDataset) and data.batch_size is not None:
            return LoaderSource.of(data, role)
    elif _map_style(data) and len(data) > 0:
        first = data[0]
        x, _ = _as_item_xy(first, role)
        if getattr(x, "dim", lambda: 0)() == 3 or (isinstance(x, np.ndarray) and x.ndim == 3):
            return LoaderSource(data, role, batch_size=batch_size)
    x, y = collect_samples(data, role)
    return TensorSource(x, y, role)


def _map_style(data: Any) -> bool:
    plain = (torch.utils.data.DataLoader, IterableDataset, list, tuple, Mapping, torch.Tensor, np.ndarray)
    return not isinstance(data, plain) and hasattr(data, "__getitem__") and hasattr(data, "__len__")


def _as_item_xy(item: Any, role: str) -> tuple[Any, Any]:
    """The input and label of one item, without conversion (None, None when it is neither a pair nor a dict)."""
    if isinstance(item, Mapping):
        x = next((item[k] for k in X_KEYS if k in item), None)
        return x, None
    if isinstance(item, (tuple, list)) and len(item) >= 2:
        return item[0], item[1]
    return None, None


@dataclass
class SetStats:
    """What one streamed pass over a set learns (:func:`scan`): enough to check it without holding it.

    Attributes:
        n: samples; labels: int64 (n,); shape: (C, H, W); dtype: the inputs' dtype as given.
        lo, hi: the smallest and largest input value; finite: no NaN or infinity; total, squares: float64 sums of
        the values and their squares (the spread); hashes: a 16-byte BLAKE2 digest of each float32 row.
    """

    n: int = 0
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    shape: tuple[int, ...] = ()
    dtype: torch.dtype = torch.float32
    lo: float = float("inf")
    hi: float = float("-inf")
    finite: bool = True
    total: float = 0.0
    squares: float = 0.0
    hashes: list[bytes] = field(default_factory=list)

    @property
    def std(self) -> float:
        """The values' standard deviation (unbiased), 0 for fewer than two values."""
        m = self.n * int(np.prod(self.shape)) if self.shape else 0
        if m < 2:
            return 0.0
        return float(np.sqrt(max(self.squares - self.total * self.total / m, 0.0) / (m - 1)))


def scan(source: Any, data: Any, role: str) -> SetStats:
    """One streamed pass over ``source`` (random transforms refused first): labels, value range, spread, row hashes.

    Raises:
        DataError: a random transform, no samples, inputs of two shapes.
    """
    if isinstance(source, LoaderSource):
        source.fingerprint()  # reads 8 samples twice: refuses augmentation before the pass
    st = SetStats()
    ys = []
    for x, y in source.raw_batches(np.arange(len(source))):  # the source's own batching
        if not st.shape:
            st.shape, st.dtype = tuple(x.shape[1:]), x.dtype
        elif tuple(x.shape[1:]) != st.shape:
            raise DataError(f"{role}: inputs of shape {tuple(x.shape[1:])} after {st.shape}; give one size")
        ys.append(y)
        if x.dtype == torch.bool or not len(x):
            continue
        fin = bool(torch.isfinite(x).all()) if x.is_floating_point() else True
        st.finite = st.finite and fin
        st.lo, st.hi = min(st.lo, float(x.min())), max(st.hi, float(x.max()))
        xd = x.double()
        st.total += float(xd.sum())
        st.squares += float((xd * xd).sum())
        rows = np.ascontiguousarray(x.float().numpy()).reshape(len(x), -1)
        st.hashes.extend(hashlib.blake2b(r.tobytes(), digest_size=16).digest() for r in rows)
    st.labels = torch.cat(ys).numpy() if ys else np.zeros(0, np.int64)
    st.n = len(st.labels)
    if st.n == 0:
        raise DataError(
            f"{role} holds no samples (the {type(data).__name__} given yields none); audit() needs the {role} "
            "samples as tensors, a Dataset or a DataLoader"
        )
    if isinstance(source, LoaderSource):
        source._labels = st.labels
    return st

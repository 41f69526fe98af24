"""Pools that need not fit in memory: a uint8 file on disk read batch by batch, and lazy views of pools.

A *pool store* is a folder holding ``pool.u8`` (the images, uint8 (N, H, W, C), row after row, no header)
and ``manifest.json`` (schema ``mintaudit/pool-store@1``: the shape, what the pool was decoded from,
the list of its source files with size and mtime, labels, class names, and the data set fingerprint
computed while the file was written). Image folders, GTSRB and Tiny ImageNet are decoded into one
(see :mod:`mintaudit.data.images`); :class:`ImageDataset <mintaudit.data.ImageDataset>` takes a
:class:`PoolStore` in place of an in-memory array.

Rows are read with explicit file reads (``os.preadv`` into a fresh buffer, indices sorted and runs of
contiguous rows coalesced), not through a memory map: the pages of a memory map a process has touched
count in its resident memory until the kernel evicts them, so walking a whole pool through one grows
the resident memory with the pool. Read pages stay in the kernel's page cache, outside the process.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mintaudit._io import atomic_dir
from mintaudit._progress import progress
from mintaudit.errors import CorruptFileError, DataError

__all__ = [
    "DATA_FILE",
    "MANIFEST_FILE",
    "STORE_SCHEMA",
    "FlippedView",
    "PoolArray",
    "PoolStore",
    "file_list",
    "hflip",
    "labels_digest",
    "locked",
    "store_folder",
    "write_store",
]

STORE_SCHEMA = "mintaudit/pool-store@1"
DATA_FILE = "pool.u8"
MANIFEST_FILE = "manifest.json"
#: Rows per read when a pool is walked whole (fingerprints, views).
WALK_ROWS = 256


class PoolArray:
    """What :class:`ImageDataset` accepts besides an ndarray: a read-only uint8 array (N, H, W, C) read on demand.

    Subclasses give :attr:`shape` and :meth:`rows`; indexing with an int, a slice, an int array (or list)
    or a boolean mask returns a new ndarray, as numpy's fancy indexing does. Nothing holds the whole pool.
    """

    dtype = np.dtype(np.uint8)
    ndim = 4
    shape: tuple[int, int, int, int]

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        return self.size

    def rows(self, indices: np.ndarray) -> np.ndarray:
        """uint8 (len(indices), H, W, C) of the pool rows ``indices`` (int64, in range, any order)."""
        raise NotImplementedError

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, tuple):
            head, rest = (key[0], key[1:]) if key else (slice(None), ())
            out = self[head]
            return out[rest] if isinstance(head, (int, np.integer)) else out[(slice(None), *rest)]
        n = self.shape[0]
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            i = int(key) + n if key < 0 else int(key)
            if not 0 <= i < n:
                raise IndexError(f"index {int(key)} is out of bounds for a pool of {n} samples")
            return self.rows(np.array([i], dtype=np.int64))[0]
        if isinstance(key, slice):
            return self.rows(np.arange(*key.indices(n), dtype=np.int64))
        idx = np.asarray(key)
        if idx.dtype == bool:
            if idx.shape != (n,):
                raise IndexError(f"boolean index of shape {idx.shape} for a pool of {n} samples")
            idx = np.flatnonzero(idx)
        if idx.ndim != 1 or not (np.issubdtype(idx.dtype, np.integer) or idx.size == 0):
            raise IndexError(f"a pool is indexed by an int, a slice or a 1-d int array, got {idx.dtype} {idx.shape}")
        idx = idx.astype(np.int64, copy=True)
        idx[idx < 0] += n
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"indices out of bounds for a pool of {n} samples")
        return self.rows(idx)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """The whole pool in memory (what the store exists to avoid: for small pools and tests only)."""
        out = self.rows(np.arange(self.shape[0], dtype=np.int64))
        return out if dtype is None else out.astype(dtype)

    def batches(self, rows: int = WALK_ROWS) -> Iterator[np.ndarray]:
        """The pool in order, ``rows`` samples at a time (C-contiguous arrays)."""
        for start in range(0, self.shape[0], rows):
            yield self[start : start + rows]

    def recorded_fingerprint(
        self, num_classes: int, labels: np.ndarray, official_test: np.ndarray | None
    ) -> str | None:
        """The data set fingerprint recorded for these pixels with these labels, or None (then it is computed)."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape})"


class PoolStore(PoolArray):
    """A pool store folder, opened for reading (see the module docstring). Use :meth:`open`.

    Attributes:
        path: the store folder.
        manifest: its manifest (a dict).
        reads: how many file reads this object has made (one per run of contiguous rows).

    Example:
        >>> store = PoolStore.open("OUT/cache/pools/folder-1a2b3c")  # doctest: +SKIP
        >>> store[[3, 1, 2]].shape  # doctest: +SKIP
        (3, 64, 64, 3)
    """

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest
        self.shape = tuple(int(v) for v in manifest["shape"])  # type: ignore[assignment]
        self.row_bytes = int(np.prod(self.shape[1:]))
        self.reads = 0
        self._fd: int | None = None
        self._pid = -1

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> PoolStore:
        """Open the store in ``path``, checking its manifest and that ``pool.u8`` holds every row.

        Raises:
            CorruptFileError: the manifest is not valid JSON, not of this schema, or the data file is
                missing, shorter or longer than the manifest says.
        """
        path = Path(path)
        fix = f"delete the folder {str(path)!r} to rebuild the store (a work directory's splits index the pool it held)"
        where = path / MANIFEST_FILE
        try:
            manifest = json.loads(where.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptFileError(f"pool store manifest {str(where)!r} is not valid JSON ({exc}); {fix}") from None
        shape = manifest.get("shape") if isinstance(manifest, dict) else None
        if (
            not isinstance(manifest, dict)
            or manifest.get("schema") != STORE_SCHEMA
            or not (
                isinstance(shape, list)
                and len(shape) == 4
                and all(isinstance(v, int) and v > 0 for v in shape)
                and shape[3] in (1, 3)
            )
        ):
            got = manifest.get("schema") if isinstance(manifest, dict) else type(manifest).__name__
            raise CorruptFileError(
                f"pool store manifest {str(where)!r} is not a {STORE_SCHEMA} manifest with a shape "
                f"[N, H, W, C] (schema {got!r}); {fix}"
            )
        data = path / DATA_FILE
        expected = int(np.prod(shape))
        try:
            have = data.stat().st_size
        except OSError:
            raise CorruptFileError(f"pool store {str(path)!r} has a manifest but no {DATA_FILE}; {fix}") from None
        if have != expected:
            rows = have // int(np.prod(shape[1:]))
            raise CorruptFileError(
                f"pool store file {str(data)!r} holds {have} bytes ({rows} images) but its manifest says "
                f"{expected} ({shape[0]} images of {shape[1]}x{shape[2]}x{shape[3]}): it is "
                f"{'truncated' if have < expected else 'too long'}; {fix}"
            )
        return cls(path, manifest)

    def _handle(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # a forked worker opens its own
            self._fd, self._pid = os.open(self.path / DATA_FILE, os.O_RDONLY), os.getpid()
        return self._fd

    def rows(self, indices: np.ndarray) -> np.ndarray:
        h, w, c = self.shape[1:]
        if indices.size == 0:
            return np.empty((0, h, w, c), np.uint8)
        ordered = bool(np.all(indices[1:] > indices[:-1]))
        unique, inverse = (indices, None) if ordered else np.unique(indices, return_inverse=True)
        buf = np.empty((len(unique), h, w, c), np.uint8)
        breaks = np.flatnonzero(np.diff(unique) != 1) + 1
        fd = self._handle()
        for start, stop in zip((0, *breaks.tolist()), (*breaks.tolist(), len(unique))):
            self._read_into(fd, buf[start:stop], int(unique[start]) * self.row_bytes)
        return buf if inverse is None else buf[inverse.reshape(-1)]

    def _read_into(self, fd: int, out: np.ndarray, offset: int) -> None:
        view = memoryview(out).cast("B")
        done = 0
        while done < len(view):
            n = os.preadv(fd, [view[done:]], offset + done)
            self.reads += 1
            if n <= 0:
                raise CorruptFileError(
                    f"pool store file {str(self.path / DATA_FILE)!r} ended early (truncated while "
                    f"in use?); delete the folder {str(self.path)!r} to rebuild it"
                )
            done += n

    def recorded_fingerprint(
        self, num_classes: int, labels: np.ndarray, official_test: np.ndarray | None
    ) -> str | None:
        m = self.manifest
        if m.get("num_classes") != num_classes or m.get("labels_sha256") != labels_digest(labels, official_test):
            return None
        fp = m.get("fingerprint")
        return fp if isinstance(fp, str) else None

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None

    def __del__(self) -> None:
        try:
            self.close()
        except OSError:
            pass

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fd": None, "_pid": -1}


class FlippedView(PoolArray):
    """The pool ``base`` mirrored left-right (LiRA's test-time augmentation), flipped batch by batch on reading."""

    def __init__(self, base: np.ndarray | PoolArray) -> None:
        self.base = base
        self.shape = tuple(int(v) for v in base.shape)  # type: ignore[assignment]

    def rows(self, indices: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.base[indices][:, :, ::-1])


def hflip(images: np.ndarray | PoolArray) -> FlippedView:
    """A lazy left-right mirror of a pool: nothing is copied until rows are read."""
    return FlippedView(images)


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (made if missing): processes sharing a work directory (torchrun
    ranks) open or build its stores one at a time, so the first builds and the others reuse. No file is written."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def labels_digest(labels: np.ndarray, official_test: np.ndarray | None) -> str:
    """SHA-256 of the labels (int64) and the official-test mask: what a recorded fingerprint was computed with."""
    h = hashlib.sha256(np.ascontiguousarray(labels, dtype=np.int64).data)
    h.update(b"-" if official_test is None else np.packbits(np.asarray(official_test, bool)).data)
    return h.hexdigest()


def store_folder(cache: str | os.PathLike[str], reader: str, root: Path, image_size: int | None) -> Path:
    """The store folder of ``reader`` on ``root`` at ``image_size`` under a cache folder: ``cache/<reader>-<digest>``."""
    key = json.dumps([str(Path(root).resolve()), image_size])
    return Path(cache) / f"{reader}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def file_list(root: Path, paths: Iterable[Path]) -> list[list[Any]]:
    """``[relative path, size, mtime_ns]`` of each file: what a store records of its sources."""
    out = []
    for p in paths:
        st = p.stat()
        out.append([p.relative_to(root).as_posix(), int(st.st_size), int(st.st_mtime_ns)])
    return out


def write_store(
    dest: Path,
    batches: Iterable[np.ndarray],
    shape: Sequence[int],
    *,
    labels: np.ndarray,
    num_classes: int,
    official_test: np.ndarray | None,
    manifest: dict[str, Any],
    desc: str = "decoding images into the pool store",
) -> PoolStore:
    """Write uint8 ``batches`` (in pool order, together ``shape``) as a store in ``dest``, atomically.

    The data set fingerprint (:meth:`ImageDataset.fingerprint`) and a SHA-256 of the pixels are
    computed while writing and recorded in the manifest with ``manifest``'s own fields. A failure
    or a kill leaves no store (only a temporary beside ``dest``, removed by the next writer).
    """
    shape = tuple(int(v) for v in shape)
    fp = hashlib.sha256(repr((shape, num_classes)).encode())
    pixels = hashlib.sha256()
    bar = progress(range(shape[0]), desc=desc, unit="img")
    written = 0
    with atomic_dir(dest, schema_file=MANIFEST_FILE) as tmp:
        with open(tmp / DATA_FILE, "wb") as f:
            for batch in batches:
                batch = np.ascontiguousarray(batch, dtype=np.uint8)
                if batch.shape[1:] != shape[1:]:
                    raise DataError(f"pool store: a batch of shape {batch.shape[1:]} for a pool of {shape[1:]}")
                f.write(batch.data)
                fp.update(batch.data)
                pixels.update(batch.data)
                written += len(batch)
                if hasattr(bar, "update"):
                    bar.update(len(batch))
        if hasattr(bar, "close"):
            bar.close()
        if written != shape[0]:
            raise DataError(f"pool store: {written} images written for a pool of {shape[0]}")
        labels = np.ascontiguousarray(labels, dtype=np.int64)
        fp.update(labels.data)
        if official_test is not None:
            fp.update(np.packbits(np.asarray(official_test, bool)).data)
        record = {
            "schema": STORE_SCHEMA,
            "shape": list(shape),
            "dtype": "uint8",
            "data_file": DATA_FILE,
            "num_classes": int(num_classes),
            **manifest,
            "labels": labels.tolist(),
            "official_test": None if official_test is None else int(np.count_nonzero(official_test)),
            "labels_sha256": labels_digest(labels, official_test),
            "pixels_sha256": pixels.hexdigest(),
            "fingerprint": fp.hexdigest()[:16],
        }
        (tmp / MANIFEST_FILE).write_text(json.dumps(record) + "\n", encoding="utf-8")
    return PoolStore.open(dest)

"""CIFAR-10/100 batches: the binary version, and the python (pickle) version through a restricted unpickler."""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np

from mintaudit.data.pool import PathLike, as_labels, read_bytes
from mintaudit.errors import CorruptFileError, DataError

__all__ = ["read_cifar_binary", "read_cifar_python"]


def read_cifar_binary(
    paths: PathLike | Iterable[PathLike], kind: Literal["cifar10", "cifar100"]
) -> tuple[np.ndarray, np.ndarray]:
    """Read CIFAR batches in the official binary version.

    Records are ``<label> <3072 bytes>`` (CIFAR-10) or ``<coarse> <fine> <3072 bytes>``
    (CIFAR-100; the fine label is used), pixels channel-first 3x32x32.

    Args:
        paths: one ``.bin`` file or several, concatenated in the given order.
        kind: ``"cifar10"`` or ``"cifar100"``.

    Returns:
        images uint8 (N, 32, 32, 3) and labels int64 (N,).

    Raises:
        CorruptFileError: a file size that is not a whole number of records.

    Example:
        >>> x, y = read_cifar_binary(["test_batch.bin"], "cifar10")  # doctest: +SKIP
    """
    if kind not in ("cifar10", "cifar100"):
        raise DataError(f"kind must be 'cifar10' or 'cifar100', got {kind!r}")
    n_label = 1 if kind == "cifar10" else 2
    record = n_label + 3072
    images, labels = [], []
    for path in [paths] if isinstance(paths, (str, Path)) else paths:
        path = Path(path)
        raw = read_bytes(path)
        if not raw or len(raw) % record:
            raise CorruptFileError(
                f"{path}: {len(raw)} bytes is not a whole number of {kind} records of {record} bytes "
                f"(expected {max(1, len(raw) // record) * record}); the file is truncated or not "
                f"{kind} binary, download it again"
            )
        rows = np.frombuffer(raw, dtype=np.uint8).reshape(-1, record)
        labels.append(rows[:, n_label - 1].astype(np.int64))
        images.append(rows[:, n_label:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    if not images:
        raise DataError(f"read_cifar_binary: no files given; pass the {kind} .bin batch files")
    return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels)


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """The only globals a CIFAR python batch may reference: numpy array reconstruction."""
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        # Protocol 5 pickles (Python >= 3.14's default) rebuild arrays from a buffer instead.
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only builds plain containers, bytes, str, numbers and numpy arrays."""

    def __init__(self, file: BinaryIO, path: Path) -> None:
        super().__init__(file, encoding="bytes")
        self._path = path
        self._allowed = _numpy_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise CorruptFileError(
                f"{self._path}: the pickle references a disallowed global {module}.{name} (only numpy "
                "arrays, containers, bytes, str and numbers are accepted); it is not a CIFAR batch, "
                "use the official file or the binary version"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise CorruptFileError(f"{self._path}: the pickle uses persistent ids; it is not a CIFAR batch")


def read_cifar_python(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10/100 batch in the official python (pickle) version, safely.

    The pickle is parsed by a restricted unpickler that refuses every global except numpy's
    array reconstruction, so a malicious file cannot run code. CIFAR-100's fine labels are used.

    Args:
        path: e.g. ``cifar-10-batches-py/data_batch_1`` or ``cifar-100-python/train``.

    Returns:
        images uint8 (N, 32, 32, 3) and labels int64 (N,).

    Raises:
        CorruptFileError: not a pickle, a disallowed global, or missing/ill-shaped entries.

    Example:
        >>> x, y = read_cifar_python("cifar-10-batches-py/test_batch")  # doctest: +SKIP
    """
    path = Path(path)
    raw = read_bytes(path)
    try:
        obj = _RestrictedUnpickler(io.BytesIO(raw), path).load()
    except CorruptFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure of untrusted bytes is corruption
        raise CorruptFileError(
            f"{path}: not a readable CIFAR python batch ({type(exc).__name__}: {exc}); download it again"
        ) from None
    if not isinstance(obj, dict):
        raise CorruptFileError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}
    data = batch.get("data")
    label_key = next((k for k in ("fine_labels", "labels") if k in batch), None)
    if not isinstance(data, np.ndarray) or label_key is None:
        raise CorruptFileError(
            f"{path}: expected keys 'data' (array) and 'labels' or 'fine_labels', got {sorted(map(str, batch))}; "
            "use an official CIFAR python batch"
        )
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise CorruptFileError(f"{path}: 'data' must be uint8 (N, 3072), got {data.dtype} {data.shape}")
    labels = as_labels(batch[label_key], str(path))
    if len(labels) != len(data):
        raise CorruptFileError(f"{path}: {len(data)} images but {len(labels)} labels")
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)), labels

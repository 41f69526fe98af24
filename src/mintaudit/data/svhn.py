"""SVHN "format 2" MATLAB files (the 32x32 cropped digits)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from mintaudit.data.pool import PathLike, as_labels, read_bytes
from mintaudit.errors import CorruptFileError

__all__ = ["read_svhn_mat"]


def read_svhn_mat(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read an SVHN "format 2" file (``train_32x32.mat``, ``test_32x32.mat``).

    ``X`` is (32, 32, 3, N) and ``y`` (N, 1) with 10 meaning digit 0, which becomes label 0.

    Returns:
        images uint8 (N, 32, 32, 3) and labels int64 (N,) in [0, 10).

    Raises:
        CorruptFileError: a MATLAB v7.3 (HDF5) file, an unreadable file, or missing keys.

    Example:
        >>> x, y = read_svhn_mat("test_32x32.mat")  # doctest: +SKIP
    """
    import scipy.io
    from scipy.io.matlab import matfile_version

    path = Path(path)
    raw = io.BytesIO(read_bytes(path))
    try:
        if matfile_version(raw)[0] == 2:
            raise CorruptFileError(
                f"{path}: MATLAB v7.3 (HDF5) files are not supported; use SVHN's format 2 files "
                "(train_32x32.mat) as published, or re-save with MATLAB's save(..., '-v7')"
            )
        raw.seek(0)
        mat = scipy.io.loadmat(raw)
    except CorruptFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - scipy raises many types on bad input
        raise CorruptFileError(
            f"{path}: not a readable .mat file ({type(exc).__name__}: {exc}); download SVHN format 2 again"
        ) from None
    x, y = mat.get("X"), mat.get("y")
    if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise CorruptFileError(
            f"{path}: expected variables 'X' and 'y', found {keys}; this is not an SVHN format 2 "
            "file (the *_32x32.mat cropped digits)"
        )
    if x.ndim != 4 or x.shape[2] != 3 or x.dtype != np.uint8:
        raise CorruptFileError(f"{path}: 'X' must be uint8 (H, W, 3, N), got {x.dtype} {x.shape}")
    labels = as_labels(y.astype(np.int64) if np.issubdtype(y.dtype, np.floating) else y, str(path))
    if len(labels) != x.shape[3] or (labels.size and labels.max() > 10):
        raise CorruptFileError(
            f"{path}: expected {x.shape[3]} labels in 1..10, got {len(labels)} in "
            f"[{labels.min() if labels.size else '-'}, {labels.max() if labels.size else '-'}]"
        )
    return np.ascontiguousarray(x.transpose(3, 0, 1, 2)), labels % 10

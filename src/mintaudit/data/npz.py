"""NumPy ``.npz`` archives, read without ever unpickling."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mintaudit.data._base import ImageDataset
from mintaudit.data.pool import PathLike, as_labels, canonical_images, make_pool
from mintaudit.errors import CorruptFileError, DataError, DataNotFoundError

__all__ = ["read_npz"]

# The most classes a data set may declare (a num_classes of 10**9 would allocate 512 GB downstream).
_MAX_CLASSES = 100_000


def _to_uint8(images: np.ndarray, where: str) -> np.ndarray:
    """uint8 passes; floats in [0, 1] are scaled to 0-255; any other dtype is refused."""
    if images.dtype == np.uint8:
        return images
    if np.issubdtype(images.dtype, np.floating):
        n_nan, n_inf = int(np.isnan(images).sum()), int(np.isinf(images).sum())
        if n_nan or n_inf:
            raise DataError(
                f"{where}: float images hold {n_nan} NaN and {n_inf} infinite values; "
                "replace them (e.g. numpy.nan_to_num) and store values in [0, 1] or uint8"
            )
        if images.size and not (images.min() >= 0.0 and images.max() <= 1.0):
            raise DataError(
                f"{where}: float images must lie in [0, 1], got [{images.min()}, {images.max()}]; "
                "divide by 255 or store uint8"
            )
        return np.round(images * 255.0).astype(np.uint8)
    raise DataError(f"{where}: images of dtype {images.dtype} are refused; store uint8 (0-255) or float in [0, 1]")


def read_npz(path: PathLike) -> ImageDataset:
    """Read a data set from a NumPy ``.npz`` archive, without ever unpickling.

    Keys: ``x`` or ``images``; ``y`` or ``labels``; optional ``x_test`` and ``y_test`` (the
    official test part); optional ``num_classes`` (else max label + 1). Images may be
    (N, H, W), (N, H, W, C) or (N, C, H, W) with C in {1, 3}, uint8 or float in [0, 1].

    Returns:
        An ImageDataset ``"npz:<path>"`` (pool = train then test).

    Raises:
        CorruptFileError: not an npz archive, or an object (pickled) array.
        DataError: missing keys, bad shapes, dtypes or labels.

    Example:
        >>> np.savez("toy.npz", x=np.zeros((4, 8, 8), np.uint8), y=np.array([0, 1, 0, 1]))  # doctest: +SKIP
        >>> read_npz("toy.npz").image_shape  # doctest: +SKIP
        (1, 8, 8)
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"{path}: no such file; check the path")
    where = str(path)
    with path.open("rb") as f:
        if f.read(4) not in (b"PK\x03\x04", b"PK\x05\x06"):
            raise CorruptFileError(f"{path}: not an .npz (zip) archive; save images and labels with numpy.savez")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except ValueError as exc:
        if "allow_pickle" not in str(exc):
            raise CorruptFileError(
                f"{path}: a member is not a readable .npy array ({exc}); save it with numpy.savez"
            ) from None
        raise CorruptFileError(
            f"{path}: holds pickled objects ({exc}), which are refused for safety; store plain numeric arrays"
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise CorruptFileError(f"{path}: not a readable .npz archive ({exc}); save it with numpy.savez") from None
    stray = sorted(key for key, value in arrays.items() if not isinstance(value, np.ndarray))
    if stray:  # numpy hands back the raw bytes of a member that is not a .npy array
        raise CorruptFileError(
            f"{path}: zip member(s) {', '.join(map(repr, stray))} are not .npy arrays; an .npz must hold only "
            "arrays saved with numpy.savez"
        )

    def pick(*keys: str) -> np.ndarray | None:
        return next((arrays[k] for k in keys if k in arrays), None)

    x, y = pick("x", "images"), pick("y", "labels")
    if x is None or y is None:
        raise DataError(f"{path}: expected keys 'x' (or 'images') and 'y' (or 'labels'), found {sorted(arrays)}")
    parts = [(_to_uint8(canonical_images(x, where), where), as_labels(y, where))]
    x_test, y_test = pick("x_test"), pick("y_test")
    if (x_test is None) != (y_test is None):
        raise DataError(f"{path}: 'x_test' and 'y_test' must be given together, found {sorted(arrays)}")
    if x_test is not None:
        parts.append((_to_uint8(canonical_images(x_test, where), where), as_labels(y_test, where)))
        if parts[1][0].shape[1:] != parts[0][0].shape[1:]:
            raise DataError(
                f"{path}: test images {parts[1][0].shape[1:]} differ from train images {parts[0][0].shape[1:]}; "
                "store both parts with the same height, width and channels"
            )
    num_classes = _npz_num_classes(arrays["num_classes"], parts, where) if "num_classes" in arrays else None
    return make_pool(f"npz:{path}", parts, with_test=x_test is not None, num_classes=num_classes)


def _npz_num_classes(value: np.ndarray, parts: Sequence[tuple[np.ndarray, np.ndarray]], where: str) -> int:
    """An npz's ``num_classes``: one integer in [max label + 1, _MAX_CLASSES]."""
    needed = max(int(labels.max()) + 1 if labels.size else 1 for _, labels in parts)
    if value.shape != () or value.dtype == np.bool_ or not np.issubdtype(value.dtype, np.integer):
        raise DataError(
            f"{where}: 'num_classes' must be one integer, got {value.dtype} of shape {value.shape}; "
            f"store e.g. num_classes={needed}, or leave it out to use max label + 1"
        )
    k = int(value)
    if not needed <= k <= _MAX_CLASSES:
        raise DataError(
            f"{where}: 'num_classes' is {k} but must lie in [{needed}, {_MAX_CLASSES}] (max label + 1 is {needed}); "
            "fix it, or leave it out to use max label + 1"
        )
    return k

"""Load a data set by name from local files, through the data-set registry. Nothing is ever downloaded.

Every name :func:`load_dataset` accepts is an entry of the registry (:func:`register_dataset`): a
reader with what it expects. A new format is one call, in one file (see ``docs/howto/extending.md``).

Each named data set is looked for, in order, in ``root`` and ``root/<name>`` (when given), in
``$MINTAUDIT_DATA/<name>`` (the variable may list several folders, separated by ``os.pathsep``),
and in a system folder where a distribution package installs it (Debian's
``dataset-fashion-mnist`` puts Fashion-MNIST in ``/usr/share/datasets/fashion-mnist``).
The first folder that holds the expected files wins.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

import numpy as np

from mintaudit._registry import Registry
from mintaudit.data._base import ImageDataset
from mintaudit.data.formats import (
    read_cifar_binary,
    read_cifar_python,
    read_gtsrb,
    read_idx,
    read_image_folder,
    read_npz,
    read_svhn_mat,
    read_tiny_imagenet,
    resize_images,
)
from mintaudit.data.pool import as_labels, canonical_images, check_image_size, make_pool
from mintaudit.data.store import store_folder
from mintaudit.errors import ConfigError, CorruptFileError, DataError, DataNotFoundError

__all__ = [
    "DATASET_NAMES",
    "DATASET_PREFIXES",
    "DatasetEntry",
    "dataset_help",
    "load_dataset",
    "register_dataset",
    "unregister_dataset",
]

#: reader(name, where, image_size) -> ImageDataset, or None when the folder does not hold the data set.
#: ``where`` is a folder searched (named data sets), the PATH after ``name:`` (prefixes), or None
#: (embedded data sets, ``files=None``). A reader registered with ``stores=True`` is also given
#: ``pool_cache=`` (a folder, or None): where to keep its pool store (:mod:`mintaudit.data.store`).
Reader = Callable[[str, "Path | str | None", "int | None"], "ImageDataset | None"]


@dataclass(frozen=True)
class DatasetEntry:
    """A registered data set or format.

    Attributes:
        name: the name (``fashion-mnist``), or the prefix without its colon (``npz`` for ``npz:PATH``).
        reader: see :data:`Reader`.
        files: what the reader looks for in a folder, for messages and ``--help``; None for an
            embedded data set.
        prefix: ``name:PATH`` is read from PATH, instead of searching folders for ``name``.
        stores: the reader takes ``pool_cache=`` and decodes into a pool store there.
    """

    name: str
    reader: Reader
    files: str | None
    prefix: bool = False
    stores: bool = False


_REGISTRY: Registry[DatasetEntry] = Registry("data set")
_NAME = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")


def register_dataset(
    name: str, reader: Reader, *, files: str | None, prefix: bool = False, stores: bool = False
) -> Reader:
    """Register a data set (or, with ``prefix=True``, a format read as ``name:PATH``); returns ``reader``.

    Args:
        name: lower case, ``-`` not ``_`` (names are looked up lower-cased, ``_`` read as ``-``), no colon.
        reader: ``reader(name, where, image_size)``, see :data:`Reader`.
        files: what a folder must hold, e.g. ``"train_32x32.mat and test_32x32.mat"`` (None: embedded).
        prefix: read ``name:PATH`` from PATH (``where`` is the PATH string).
        stores: the reader also takes ``pool_cache=`` (a folder or None) and, given a folder, keeps
            its decoded pool in a store there (see :func:`load_dataset`).

    Raises:
        ConfigError: the name is taken or malformed.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"data set name must be lower case letters, digits and - . + (no '_' or ':'); given {name!r}")
    if not callable(reader):
        raise ConfigError(f"register_dataset({name!r}): reader must be callable; given {type(reader).__name__}")
    _REGISTRY.add(name, DatasetEntry(name, reader, files, bool(prefix), bool(stores)))
    return reader


def unregister_dataset(name: str) -> DatasetEntry:
    """Remove the data set ``name`` (for plug-ins and tests)."""
    return _REGISTRY.remove(name)


class _Keys(Sequence[str]):
    """A live, read-only tuple of the registered names (``prefix=False``) or prefixes (``"npz:"``...)."""

    def __init__(self, prefixes: bool) -> None:
        self._prefixes = prefixes

    def _all(self) -> tuple[str, ...]:
        if self._prefixes:
            return tuple(f"{n}:" for n, e in _REGISTRY.items() if e.prefix)
        return tuple(n for n, e in _REGISTRY.items() if not e.prefix)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> tuple[str, ...]: ...
    def __getitem__(self, i: int | slice) -> str | tuple[str, ...]:
        return self._all()[i]

    def __len__(self) -> int:
        return len(self._all())

    def __eq__(self, other: object) -> bool:
        return tuple(self) == tuple(other) if isinstance(other, (_Keys, tuple, list)) else NotImplemented

    def __hash__(self) -> int:
        return hash(self._all())

    def __repr__(self) -> str:
        return repr(self._all())


#: Names :func:`load_dataset` accepts as they are (a live view of the registry).
DATASET_NAMES: Sequence[str] = _Keys(prefixes=False)
#: Prefixes :func:`load_dataset` accepts followed by a path: ``folder:PATH``, ``npz:PATH`` (a live view).
DATASET_PREFIXES: Sequence[str] = _Keys(prefixes=True)


def dataset_help() -> str:
    """The registered names, then the prefixes, for ``--dataset``'s help: ``digits (embedded), ..., npz:PATH``."""
    names = [f"{n} (embedded)" if _REGISTRY.get(n).files is None else n for n in DATASET_NAMES]
    return ", ".join([*names, *(f"{p}PATH" for p in DATASET_PREFIXES)])


_DIGITS = tuple(str(d) for d in range(10))
_CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "digits": _DIGITS,
    "mnist": _DIGITS,
    "svhn": _DIGITS,
    "kmnist": ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
    "fashion-mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),  # fmt: skip
    "cifar10": (
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ),  # fmt: skip
}
# Folders where a distribution package installs a data set (tests may patch this).
_SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}
_INSTALL_HINTS: dict[str, str] = {
    "fashion-mnist": "; on Debian/Ubuntu: apt-get install dataset-fashion-mnist",
}
_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _find(d: Path, layouts: Sequence[tuple[str, Sequence[str]]]) -> list[Path] | None:
    """The files of the first (sub-folder, names) layout complete under ``d``; ``.gz`` variants count."""
    for sub, names in layouts:
        found = [next((d / sub / n for n in (name, f"{name}.gz") if (d / sub / n).is_file()), None) for name in names]
        if all(found):
            return [p for p in found if p is not None]
    return None


def _load_idx(name: str, d: Path, image_size: int | None) -> ImageDataset | None:
    dotted = [n.replace("-idx", ".idx") for n in _IDX_FILES]  # the variant some mirrors use
    hit = _find(d, [("", _IDX_FILES), ("", dotted)])
    if hit is None:
        return None
    parts = []
    for images_path, labels_path in (hit[:2], hit[2:]):
        images = canonical_images(read_idx(images_path), str(images_path))
        labels = as_labels(read_idx(labels_path), str(labels_path))
        if len(images) != len(labels):  # checked per pair: shifted labels can still add up overall
            raise CorruptFileError(
                f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels; "
                "each images file needs its own labels file of the same length, download the pair again"
            )
        parts.append((images, labels))
    (train_path, test_path), (train, test) = (hit[0], hit[2]), (parts[0][0], parts[1][0])
    if train.shape[1:] != test.shape[1:]:
        raise CorruptFileError(
            f"{test_path} holds images of shape {test.shape[1:]} but {train_path} holds {train.shape[1:]} "
            "(height, width, channels); the train and test files must come from the same data set"
        )
    return make_pool(name, parts, with_test=True, num_classes=10, class_names=_CLASS_NAMES.get(name))


def _load_cifar10(name: str, d: Path, image_size: int | None) -> ImageDataset | None:
    batches = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    binary = [f"{b}.bin" for b in batches]
    hit = _find(d, [("cifar-10-batches-bin", binary), ("", binary), ("cifar-10-batches-py", batches), ("", batches)])
    if hit is None:
        return None
    if ".bin" in hit[0].suffixes:
        parts = [read_cifar_binary(hit[:5], "cifar10"), read_cifar_binary(hit[5:], "cifar10")]
    else:
        loaded = [read_cifar_python(p) for p in hit]
        parts = [tuple(np.concatenate(a) for a in zip(*loaded[:5])), loaded[5]]
    return make_pool(name, parts, with_test=True, num_classes=10, class_names=_CLASS_NAMES["cifar10"])


def _load_cifar100(name: str, d: Path, image_size: int | None) -> ImageDataset | None:
    binary, python = ("train.bin", "test.bin"), ("train", "test")
    hit = _find(d, [("cifar-100-binary", binary), ("cifar-100-python", python), ("", binary), ("", python)])
    if hit is None:
        return None
    if ".bin" in hit[0].suffixes:
        parts = [read_cifar_binary(p, "cifar100") for p in hit]
    else:
        parts = [read_cifar_python(p) for p in hit]
    return make_pool(name, parts, with_test=True, num_classes=100)


def _load_svhn(name: str, d: Path, image_size: int | None) -> ImageDataset | None:
    hit = _find(d, [("", ("train_32x32.mat", "test_32x32.mat"))])
    if hit is None:
        return None
    return make_pool(name, [read_svhn_mat(p) for p in hit], with_test=True, num_classes=10, class_names=_DIGITS)


def _store(pool_cache: Path | None, reader: str, where: Path, image_size: int | None) -> Path | None:
    return None if pool_cache is None else store_folder(pool_cache, reader, where, image_size)


def _load_gtsrb(name: str, d: Path, image_size: int | None, pool_cache: Path | None = None) -> ImageDataset | None:
    if not any((base / "Final_Training" / "Images").is_dir() for base in (d / "GTSRB", d)):
        return None
    return read_gtsrb(d, image_size or 32, store=_store(pool_cache, name, d, image_size or 32))


def _load_tiny(name: str, d: Path, image_size: int | None, pool_cache: Path | None = None) -> ImageDataset | None:
    if not any((base / "wnids.txt").is_file() for base in (d / "tiny-imagenet-200", d)):
        return None
    return read_tiny_imagenet(d, image_size, store=_store(pool_cache, name, d, image_size or 64))


def _load_folder(name: str, where: str, image_size: int | None, pool_cache: Path | None = None) -> ImageDataset:
    return read_image_folder(where, image_size, store=_store(pool_cache, name, Path(where), image_size))


def _search_dirs(name: str, root: str | Path | None) -> list[Path]:
    dirs: list[Path] = []
    if root is not None:
        dirs += [Path(root).expanduser(), Path(root).expanduser() / name]
    env = os.environ.get("MINTAUDIT_DATA", "")
    dirs += [Path(entry).expanduser() / name for entry in env.split(os.pathsep) if entry]
    return dirs + list(_SYSTEM_DIRS.get(name, ()))


def _load_digits() -> ImageDataset:
    from sklearn.datasets import load_digits  # lazy: importing scikit-learn is slow

    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return ImageDataset("digits", images, bunch.target.astype(np.int64), 10, class_names=_DIGITS)


_IDX_EXPECTS = "train-images-idx3-ubyte[.gz] and the 3 other IDX files"
register_dataset("digits", lambda name, where, image_size: _load_digits(), files=None)
for _name in ("fashion-mnist", "mnist", "kmnist"):
    register_dataset(_name, _load_idx, files=_IDX_EXPECTS)
register_dataset("cifar10", _load_cifar10, files="cifar-10-batches-bin/ or cifar-10-batches-py/")
register_dataset("cifar100", _load_cifar100, files="cifar-100-binary/ or cifar-100-python/")
register_dataset("svhn", _load_svhn, files="train_32x32.mat and test_32x32.mat")
register_dataset("gtsrb", _load_gtsrb, files="GTSRB/Final_Training/Images/", stores=True)
register_dataset("tiny-imagenet", _load_tiny, files="tiny-imagenet-200/wnids.txt", stores=True)
register_dataset(
    "folder",
    _load_folder,
    files="one sub-folder of images per class",
    prefix=True,  # type: ignore[arg-type]
    stores=True,
)
register_dataset(
    "npz", lambda name, where, image_size: read_npz(str(where)), files="an .npz of images and labels", prefix=True
)


def _unknown(name: str) -> DataError:
    valid = [*DATASET_NAMES, *(f"{p}PATH" for p in DATASET_PREFIXES)]
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    guess = f"did you mean {close[0]!r}? " if close else ""
    return DataError(f"unknown data set {name!r}; {guess}valid names: {', '.join(valid)}")


def load_dataset(
    name: str,
    *,
    root: str | Path | None = None,
    image_size: int | None = None,
    pool_cache: str | Path | None = None,
) -> ImageDataset:
    """Load a data set by name, from local files only.

    Args:
        name: one of :data:`DATASET_NAMES` (case-insensitive, ``_`` read as ``-``), or
            ``folder:PATH`` (one sub-folder per class) or ``npz:PATH`` (:data:`DATASET_PREFIXES`);
            each is an entry of :func:`register_dataset`.
        root: a folder to look in first, before ``$MINTAUDIT_DATA/<name>`` and system folders.
        image_size: resize every image (bilinear) to this square size. GTSRB defaults to 32;
            image folders with mixed sizes need it; other data sets keep their native size.
        pool_cache: a folder for pool stores (a work directory's ``cache/pools``): image folders,
            GTSRB and Tiny ImageNet are then decoded once into a store there
            (``<pool_cache>/<reader>-<digest of path and size>/``) and read batch by batch, so the pool
            need not fit in memory; the store is reused while the files are unchanged and refused
            when they changed. None decodes into memory. IDX, CIFAR, SVHN and npz files are single
            arrays already and are read into memory either way.

    Returns:
        An ImageDataset: images uint8 (N, H, W, C), labels int64 (N,); where the data set has an
        official test split, the pool is train then test and ``official_test`` marks the test part.

    Raises:
        DataError: an unknown name (the message lists the valid ones).
        DataNotFoundError: the files are in none of the places looked at (all are listed).
        CorruptFileError: a file is truncated or not in its format.

    Example:
        >>> ds = load_dataset("digits")
        >>> ds.images.shape, ds.num_classes
        ((1797, 8, 8, 1), 10)
    """
    check_image_size(image_size)
    key = name.strip()
    if key.lower().startswith(tuple(DATASET_PREFIXES)):
        prefix, path = key.split(":", 1)
        if not path:
            raise DataError(f"data set {name!r}: a path must follow {prefix}:, e.g. {prefix}:/data/my_set")
        entry = _REGISTRY.get(prefix.lower())
        return _resized(_read(entry, prefix.lower(), path, image_size, pool_cache), image_size)
    key = key.lower().replace("_", "-")
    if key not in DATASET_NAMES:
        raise _unknown(name)
    entry = _REGISTRY.get(key)
    if entry.files is None:  # embedded
        return _resized(_read(entry, key, None, image_size, None), image_size)
    expects = entry.files
    if root is not None and not Path(root).expanduser().is_dir():
        raise DataNotFoundError(
            f"data root {str(root)!r} is not a folder; pass an existing folder holding {expects} "
            "(CLI --data-root), or leave it out to search $MINTAUDIT_DATA and the system folders"
        )
    dirs = _search_dirs(key, root)
    for d in dirs:
        if d.is_dir() and (dataset := _call(entry, key, d, image_size, pool_cache)) is not None:
            return _resized(dataset, image_size)
    where = (
        f"looked for {expects} in {', '.join(map(str, dirs))}"
        if dirs
        else f"no root given and MINTAUDIT_DATA is not set, so nowhere to look for {expects}"
    )
    raise DataNotFoundError(
        f"data set {key!r} not found: {where}; put the files in "
        f"$MINTAUDIT_DATA/{key}/ (set MINTAUDIT_DATA) or pass root (CLI --data-root){_INSTALL_HINTS.get(key, '')}; "
        "mintaudit never downloads data"
    )


def _call(
    entry: DatasetEntry, name: str, where: Path | str | None, image_size: int | None, pool_cache: str | Path | None
) -> ImageDataset | None:
    if entry.stores:
        return entry.reader(name, where, image_size, pool_cache=None if pool_cache is None else Path(pool_cache))  # type: ignore[call-arg]
    return entry.reader(name, where, image_size)


def _read(
    entry: DatasetEntry, name: str, where: str | None, image_size: int | None, pool_cache: str | Path | None
) -> ImageDataset:
    return _checked(_call(entry, name, where, image_size, pool_cache), name)


def _checked(dataset: object, name: str) -> ImageDataset:
    if not isinstance(dataset, ImageDataset):
        raise DataError(
            f"the reader of data set {name!r} returned {type(dataset).__name__}, not an ImageDataset; "
            "fix the reader registered with register_dataset"
        )
    return dataset


def _resized(dataset: ImageDataset, image_size: int | None) -> ImageDataset:
    if image_size is None or dataset.images.shape[1:3] == (image_size, image_size):
        return dataset
    return ImageDataset(
        dataset.name,
        resize_images(dataset.images, image_size),
        dataset.labels,
        dataset.num_classes,
        official_test=dataset.official_test,
        class_names=dataset.class_names,
        sources=dataset.sources,
    )

"""Image files decoded with Pillow, and the data sets stored as trees of them: image folders, GTSRB, Tiny ImageNet."""

from __future__ import annotations

import csv
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image
from tqdm import tqdm

from mintaudit.data._base import ImageDataset
from mintaudit.data.pool import PathLike, check_image_size, make_pool
from mintaudit.data.store import MANIFEST_FILE, PoolStore, file_list, locked, write_store
from mintaudit.errors import CorruptFileError, DataError, DataNotFoundError

__all__ = [
    "IMAGE_EXTENSIONS",
    "load_image",
    "read_gtsrb",
    "read_image_folder",
    "read_tiny_imagenet",
    "resize_images",
    "stored_pool",
]

#: File extensions :func:`read_image_folder` picks up (compared case-insensitively).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".ppm", ".pgm")
_GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})
_PIL_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def load_image(path: Path, size: int | None, mode: Literal["L", "RGB"] | None = None) -> np.ndarray:
    """Decode one image with Pillow -> uint8 (H, W, C).

    Args:
        path: image file.
        size: resize (bilinear, whole image) to ``size`` x ``size``; None keeps the size.
        mode: ``"L"`` (grey), ``"RGB"``, or None to keep grey images grey and make others RGB.
    """
    try:
        with Image.open(path) as img:
            img.load()
            target = mode or ("L" if img.mode in _GREY_MODES else "RGB")
            # 16-bit grey (PNG: I;16; PGM: I, rescaled by Pillow to 0-65535): keep the high byte, as
            # convert() would clip every value above 255 to white.
            if img.mode.startswith("I;16") or (img.mode == "I" and img.format == "PPM"):
                img = Image.fromarray((np.asarray(img).astype(np.uint32) >> 8).astype(np.uint8), "L")
            img = img.convert(target)
    except FileNotFoundError:
        raise DataNotFoundError(
            f"{path}: image file missing (listed in an annotation file?); unzip the archive again"
        ) from None
    except _PIL_ERRORS as exc:
        raise CorruptFileError(f"{path}: Pillow cannot decode this image ({exc}); replace or delete the file") from None
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    array = np.asarray(img, dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array


def _stack_images(paths: Sequence[Path], size: int | None, mode: Literal["L", "RGB"] | None) -> np.ndarray:
    """Decode images into one uint8 array (N, H, W, C); grey ones become RGB if any is colour.

    Raises:
        DataError: no paths, or images of different sizes while ``size`` is None.
    """
    if not paths:
        raise DataError("no image files to read; check the folder and its annotation files")
    first = load_image(paths[0], size, mode)
    out = np.empty((len(paths), *first.shape), dtype=np.uint8)
    quiet = True if len(paths) < 2000 else None  # None: a bar on terminals only
    for i, path in enumerate(tqdm(paths, desc="decoding images", unit="img", leave=False, disable=quiet)):
        array = first if i == 0 else load_image(path, size, mode)
        if array.shape[:2] != out.shape[1:3]:
            (h0, w0), (h1, w1) = out.shape[1:3], array.shape[:2]
            raise DataError(
                f"images differ in size: {paths[0]} is {w0}x{h0} but {path} is {w1}x{h1}; "
                "pass image_size (CLI --image-size) to resize them all to one square size"
            )
        if array.shape[2] > out.shape[3]:  # the first colour image after grey ones
            out = np.repeat(out, 3, axis=3)
        out[i] = array  # a grey (H, W, 1) image broadcasts into an RGB slot
    return out


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 images (N, H, W, C) to (N, size, size, C) with Pillow's bilinear filter."""
    if images.shape[1:3] == (size, size):
        return images
    out = np.empty((len(images), size, size, images.shape[3]), dtype=np.uint8)
    for i, img in enumerate(images):
        pil = Image.fromarray(img[..., 0] if img.shape[2] == 1 else img)
        resized = np.asarray(pil.resize((size, size), Image.Resampling.BILINEAR))
        out[i] = resized.reshape(size, size, -1)
    return out


# --------------------------------------------------------------------------- pool stores

_STORE_ROWS = 256  # images decoded per batch written to a store


def _store_shape(
    paths: Sequence[Path], size: int | None, mode: Literal["L", "RGB"] | None
) -> tuple[int, int, int, int]:
    """(N, H, W, C) of the decoded images, from their headers only (nothing is decoded)."""
    if not paths:
        raise DataError("no image files to read; check the folder and its annotation files")
    channels, first = (3 if mode == "RGB" else 1 if mode == "L" else None), None
    colour = False
    for path in paths:
        try:
            with Image.open(path) as img:
                dims, colour = img.size, colour or img.mode not in _GREY_MODES
        except (FileNotFoundError, *_PIL_ERRORS):
            load_image(path, size, mode)  # raises the error a decode would
            raise
        if size is None and first is not None and dims != first[1]:
            (w0, h0), (w1, h1) = first[1], dims
            raise DataError(
                f"images differ in size: {first[0]} is {w0}x{h0} but {path} is {w1}x{h1}; "
                "pass image_size (CLI --image-size) to resize them all to one square size"
            )
        first = first or (path, dims)
    w, h = (size, size) if size is not None else first[1]
    return (len(paths), h, w, channels or (3 if colour else 1))


def _decode_batches(
    paths: Sequence[Path], shape: tuple[int, ...], size: int | None, mode: Literal["L", "RGB"] | None
) -> Iterator[np.ndarray]:
    """The images decoded ``_STORE_ROWS`` at a time into uint8 (B, H, W, C); grey ones replicated to RGB slots."""
    for start in range(0, len(paths), _STORE_ROWS):
        chunk = paths[start : start + _STORE_ROWS]
        out = np.empty((len(chunk), *shape[1:]), dtype=np.uint8)
        for j, path in enumerate(chunk):
            array = load_image(path, size, mode)
            if array.shape[:2] != out.shape[1:3] or array.shape[2] > out.shape[3]:
                raise DataError(f"{path} changed while the pool store was being built (now {array.shape}); run again")
            out[j] = array
        yield out


def _changes(old: list[list[object]], new: list[list[object]]) -> tuple[int, int, int]:
    """(added, removed, modified) files between two :func:`file_list` records."""
    before = {str(r[0]): tuple(r[1:]) for r in old if isinstance(r, list) and r}
    after = {str(r[0]): tuple(r[1:]) for r in new}
    common = before.keys() & after.keys()
    return (
        len(after.keys() - before.keys()),
        len(before.keys() - after.keys()),
        sum(before[k] != after[k] for k in common),
    )


def stored_pool(
    store: Path,
    root: Path,
    parts: Sequence[tuple[Sequence[Path], np.ndarray]],
    *,
    name: str,
    size: int | None,
    mode: Literal["L", "RGB"] | None,
    with_test: bool,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
    extra_files: Sequence[Path] = (),
) -> ImageDataset:
    """The pool of image files ``parts`` (train[, test]) read through the store in ``store``: opened when its
    sources are unchanged, built (decoded once, in batches) when the folder does not exist or is empty.

    Raises:
        DataError: the files changed since the store was built, or ``store`` is a folder of something else.
        CorruptFileError: the store is damaged (see :meth:`PoolStore.open`).
    """
    paths = [p for part, _ in parts for p in part]
    labels = np.concatenate([np.asarray(y, dtype=np.int64) for _, y in parts])
    official = None
    if with_test:
        official = np.zeros(len(labels), dtype=bool)
        official[len(labels) - len(parts[-1][1]) :] = True
    try:
        files = file_list(root, [*paths, *extra_files])
    except FileNotFoundError as exc:
        raise DataNotFoundError(
            f"{exc.filename}: image file missing (listed in an annotation file?); unzip the archive again"
        ) from None
    source = {"root": str(root.resolve()), "image_size": size, "mode": mode}
    with locked(store.parent):
        pool = _open_or_build(
            store,
            root,
            paths,
            labels,
            official,
            files,
            source,
            name=name,
            size=size,
            mode=mode,
            num_classes=num_classes,
            class_names=class_names,
        )
    return ImageDataset(
        name,
        pool,
        labels,
        num_classes,
        official_test=official,
        class_names=tuple(class_names) if class_names is not None else None,
        sources=tuple(sources) if sources is not None else None,
    )


def _open_or_build(
    store: Path,
    root: Path,
    paths: Sequence[Path],
    labels: np.ndarray,
    official: np.ndarray | None,
    files: list[list[object]],
    source: dict[str, object],
    *,
    name: str,
    size: int | None,
    mode: Literal["L", "RGB"] | None,
    num_classes: int,
    class_names: Sequence[str] | None,
) -> PoolStore:
    if (store / MANIFEST_FILE).is_file():
        pool = PoolStore.open(store)
        if pool.manifest.get("source") != source:
            raise DataError(
                f"pool store {str(store)!r} was built from {pool.manifest.get('source')}, not {source}; "
                "give another store folder, or delete this one to rebuild it"
            )
        added, removed, modified = _changes(pool.manifest.get("files") or [], files)
        if added or removed or modified or pool.shape[0] != len(paths):
            raise DataError(
                f"{root} changed since its pool store {str(store)!r} was built ({added} files added, {removed} "
                f"removed, {modified} modified); it is not rebuilt silently, as a work directory's splits and models "
                "index the old pool: restore the files, or delete the store folder to rebuild it (and use a new "
                "--out, or delete splits.json, to split the new pool)"
            )
    elif store.exists() and (not store.is_dir() or any(store.iterdir())):
        raise DataError(f"pool store {str(store)!r} exists but holds no {MANIFEST_FILE}; give an empty or new folder")
    else:
        shape = _store_shape(paths, size, mode)
        pool = write_store(
            store,
            _decode_batches(paths, shape, size, mode),
            shape,
            labels=labels,
            num_classes=num_classes,
            official_test=official,
            manifest={"name": name, "source": source, "class_names": list(class_names or []), "files": files},
        )
    return pool


# --------------------------------------------------------------------------- GTSRB


def _read_gt_csv(csv_path: Path) -> list[tuple[str, int]]:
    """Rows (Filename, ClassId) of a GTSRB ``GT-*.csv`` annotation file (``;`` separated)."""
    try:
        with csv_path.open(newline="", encoding="utf-8") as f:
            rows = [(row["Filename"], int(row["ClassId"])) for row in csv.DictReader(f, delimiter=";")]
    except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
        raise CorruptFileError(
            f"{csv_path}: expected ';'-separated columns Filename;...;ClassId ({type(exc).__name__}: {exc}); "
            "use the official GT csv (the test labels come as GT-final_test.csv)"
        ) from None
    return rows


def _gtsrb_base(root: Path) -> Path:
    for base in (root / "GTSRB", root):
        if (base / "Final_Training" / "Images").is_dir():
            return base
    raise DataNotFoundError(
        f"GTSRB: no Final_Training/Images under {root} or {root / 'GTSRB'}; point root at the folder "
        "holding GTSRB/ (unzip GTSRB_Final_Training_Images.zip there)"
    )


def read_gtsrb(root: PathLike, image_size: int = 32, *, store: PathLike | None = None) -> ImageDataset:
    """Read the German Traffic Sign Recognition Benchmark in its official layout.

    Training: ``GTSRB/Final_Training/Images/<5-digit class>/*.ppm`` with ``GT-<class>.csv``.
    Test (optional): ``GTSRB/Final_Test/Images/*.ppm`` and ``GT-final_test.csv``, looked for in
    ``Final_Test/Images/``, ``Final_Test/``, ``GTSRB/`` and the folder above it. Whole images
    (no ROI crop) are resized bilinearly to ``image_size`` x ``image_size``.

    Args:
        root: the folder containing ``GTSRB/``, or ``GTSRB/`` itself.
        image_size: side of the square output images.
        store: a pool store folder to decode into and read from (see :func:`read_image_folder`);
            None decodes into memory.

    Returns:
        An ImageDataset ``"gtsrb"`` of RGB images (N, image_size, image_size, 3), with
        ``official_test`` marking the test part when its annotations were found.

    Raises:
        DataNotFoundError: no ``Final_Training/Images``.
        CorruptFileError: an unreadable image or CSV.

    Example:
        >>> ds = read_gtsrb("/data", image_size=32)  # doctest: +SKIP
    """
    check_image_size(image_size)
    base = _gtsrb_base(Path(root))
    train_paths: list[Path] = []
    train_labels: list[int] = []
    notes: list[Path] = []  # annotation files: a store is refused when one changes
    for class_dir in sorted(d for d in (base / "Final_Training" / "Images").iterdir() if d.is_dir()):
        gt = class_dir / f"GT-{class_dir.name}.csv"
        if gt.is_file():
            rows = _read_gt_csv(gt)
            notes.append(gt)
        else:  # no annotation file: the folder name is the class id
            rows = [(p.name, int(class_dir.name)) for p in sorted(class_dir.glob("*.ppm")) if class_dir.name.isdigit()]
        train_paths += [class_dir / name for name, _ in rows]
        train_labels += [label for _, label in rows]
    if not train_paths:
        raise DataError(f"GTSRB: no images under {base / 'Final_Training' / 'Images'}; unzip the training set there")
    named = [(train_paths, np.asarray(train_labels, dtype=np.int64))]

    test_dir = base / "Final_Test" / "Images"
    if test_dir.is_dir():
        places = (test_dir, test_dir.parent, base, base.parent)
        gt = next((p / "GT-final_test.csv" for p in places if (p / "GT-final_test.csv").is_file()), None)
        if gt is None:
            warnings.warn(
                f"GTSRB: test images found but no GT-final_test.csv in {', '.join(map(str, places))}; "
                "loading the training part only (unzip GTSRB_Final_Test_GT.zip to add the test labels)",
                stacklevel=2,
            )
        else:
            rows = _read_gt_csv(gt)
            notes.append(gt)
            named.append(([test_dir / name for name, _ in rows], np.asarray([label for _, label in rows], np.int64)))
    if store is not None:
        k = int(max(int(y.max()) for _, y in named)) + 1
        return stored_pool(
            Path(store),
            base.parent,
            named,
            name="gtsrb",
            size=image_size,
            mode="RGB",
            with_test=len(named) == 2,
            num_classes=k,
            extra_files=notes,
        )
    parts = [(_stack_images(paths, image_size, "RGB"), y) for paths, y in named]
    return make_pool("gtsrb", parts, with_test=len(parts) == 2)


# --------------------------------------------------------------------------- generic trees


def read_image_folder(root: PathLike, image_size: int | None = None, *, store: PathLike | None = None) -> ImageDataset:
    """Read a folder with one sub-folder of images per class.

    Classes are the sorted sub-folder names (hidden ones skipped); images are the files with an
    extension in :data:`IMAGE_EXTENSIONS`, searched recursively. When every image is grey the
    result has 1 channel, otherwise grey images are replicated to RGB.

    Args:
        root: the folder holding the class sub-folders.
        image_size: resize (bilinear) every image to this square size; required when the
            images differ in size.
        store: a pool store folder (:mod:`mintaudit.data.store`): the images are decoded once, in
            batches, into ``store/pool.u8`` and read from there batch by batch, so the pool need not fit
            in memory; reused while the folder's files (path, size, mtime) are unchanged, refused when
            they changed. None (the default) decodes the whole folder into memory.

    Returns:
        An ImageDataset ``"folder:<root>"`` (no official test), class names = folder names.

    Raises:
        DataNotFoundError: ``root`` is not a folder.
        DataError: no class sub-folders, an empty class, mixed sizes without image_size, or files
            changed since ``store`` was built.
        CorruptFileError: an image Pillow cannot decode, or a damaged store.

    Example:
        >>> ds = read_image_folder("my_images/", image_size=64)  # doctest: +SKIP
        >>> big = read_image_folder("imagenet/train", image_size=224, store="runs/a/cache/pools/in")  # doctest: +SKIP
    """
    check_image_size(image_size)
    root = Path(root)
    if not root.is_dir():
        raise DataNotFoundError(f"image folder {root} does not exist; pass a folder with one sub-folder per class")
    classes = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(
            f"image folder {root} has no class sub-folders; put the images of each class in its own "
            "sub-folder (root/<class>/<image>.png)"
        )
    paths: list[Path] = []
    labels: list[int] = []
    for label, class_dir in enumerate(classes):
        found = sorted(p for p in class_dir.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not found:
            raise DataError(
                f"class folder {class_dir} holds no images ({', '.join(IMAGE_EXTENSIONS)}); "
                "add images or remove the folder"
            )
        paths += found
        labels += [label] * len(found)
    names = [p.relative_to(root).as_posix() for p in paths]  # member lists may name files
    if store is not None:
        return stored_pool(
            Path(store),
            root,
            [(paths, np.asarray(labels, dtype=np.int64))],
            name=f"folder:{root}",
            size=image_size,
            mode=None,
            with_test=False,
            num_classes=len(classes),
            class_names=[d.name for d in classes],
            sources=names,
        )
    images = _stack_images(paths, image_size, None)
    return make_pool(
        f"folder:{root}",
        [(images, np.asarray(labels, dtype=np.int64))],
        with_test=False,
        num_classes=len(classes),
        class_names=[d.name for d in classes],
        sources=names,
    )


def read_tiny_imagenet(root: PathLike, image_size: int | None = None, *, store: PathLike | None = None) -> ImageDataset:
    """Read Tiny ImageNet (``tiny-imagenet-200/``): 200 classes of 64x64 RGB images.

    Classes are the sorted ids of ``wnids.txt``; ``train/<wnid>/images/*.JPEG`` is the training
    part and ``val/images`` (labels from ``val/val_annotations.txt``) the official test part.

    Args:
        root: ``tiny-imagenet-200/`` itself or the folder containing it.
        image_size: resize (bilinear) to this square size; None keeps 64.
        store: a pool store folder to decode into and read from (see :func:`read_image_folder`);
            None decodes into memory.

    Returns:
        An ImageDataset ``"tiny-imagenet"`` uint8 (N, S, S, 3) (S = image_size, default 64), class names = wnids.

    Raises:
        DataNotFoundError: no ``wnids.txt``.
        CorruptFileError: an unknown wnid in the annotations or an unreadable image.

    Example:
        >>> ds = read_tiny_imagenet("/data")  # doctest: +SKIP
    """
    root = Path(root)
    base = next((b for b in (root / "tiny-imagenet-200", root) if (b / "wnids.txt").is_file()), None)
    if base is None:
        raise DataNotFoundError(
            f"Tiny ImageNet: no wnids.txt in {root} or {root / 'tiny-imagenet-200'}; unzip tiny-imagenet-200.zip there"
        )
    wnids = sorted({line.strip() for line in (base / "wnids.txt").read_text().splitlines() if line.strip()})
    index = {w: i for i, w in enumerate(wnids)}
    train: list[tuple[Path, int]] = []
    for wnid in wnids:
        files = sorted(p for p in (base / "train" / wnid / "images").glob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        train += [(p, index[wnid]) for p in files]
    if not train:
        raise DataError(f"Tiny ImageNet: no training images under {base / 'train'}; the archive is incomplete")
    pairs = [train]
    annotations = base / "val" / "val_annotations.txt"
    if annotations.is_file():
        val: list[tuple[Path, int]] = []
        for n, line in enumerate(annotations.read_text().splitlines(), 1):
            fields = line.split("\t")
            if len(fields) < 2 or fields[1] not in index:
                raise CorruptFileError(
                    f"{annotations}: line {n} should be '<file>\\t<wnid>\\t...' with a wnid from wnids.txt, "
                    f"got {line[:80]!r}; unzip the archive again"
                )
            val.append((base / "val" / "images" / fields[0], index[fields[1]]))
        if val:
            pairs.append(val)
    check_image_size(image_size)
    size = image_size or 64
    named = [([p for p, _ in pair], np.asarray([y for _, y in pair], np.int64)) for pair in pairs]
    if store is not None:
        notes = [base / "wnids.txt", *([annotations] if annotations.is_file() else [])]
        return stored_pool(
            Path(store),
            base.parent,
            named,
            name="tiny-imagenet",
            size=size,
            mode="RGB",
            with_test=len(named) == 2,
            num_classes=len(wnids),
            class_names=wnids,
            extra_files=notes,
        )
    parts = [(_stack_images(paths, size, "RGB"), y) for paths, y in named]
    return make_pool("tiny-imagenet", parts, with_test=len(parts) == 2, num_classes=len(wnids), class_names=wnids)

"""Readers for the on-disk formats of the public image data sets, and for generic ones.

Array readers return ``images`` uint8 (N, H, W, C) with C in {1, 3} and ``labels`` int64 (N,);
tree readers (GTSRB, Tiny ImageNet, image folders, ``.npz``) return an :class:`ImageDataset`.
Untrusted files are parsed, never executed: pickles go through a restricted unpickler and
``.npz`` files are loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import pickle
import struct
import warnings
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
from PIL import Image
from tqdm import tqdm

from mintaudit.data._base import ImageDataset
from mintaudit.errors import CorruptFileError, DataError, DataNotFoundError

__all__ = [
    "IMAGE_EXTENSIONS",
    "read_idx",
    "read_cifar_binary",
    "read_cifar_python",
    "read_svhn_mat",
    "read_gtsrb",
    "read_image_folder",
    "read_tiny_imagenet",
    "read_npz",
    "resize_images",
]

PathLike = str | Path

#: File extensions :func:`read_image_folder` picks up (compared case-insensitively).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".ppm", ".pgm")

_GZIP_MAGIC = b"\x1f\x8b"
_IDX_DTYPES: dict[int, str] = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})
# An IDX file may declare at most this many data bytes (Fashion-MNIST train images: 47 MB).
_IDX_MAX_BYTES = 2**34
_READ_CHUNK = 1 << 20
# The most classes a data set may declare (a num_classes of 10**9 would allocate 512 GB downstream).
_MAX_CLASSES = 100_000
_PIL_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


# --------------------------------------------------------------------------- shared helpers


def _read_bytes(path: Path) -> bytes:
    """Read a file, transparently gunzipping it when it starts with the gzip magic 1f 8b."""
    if not path.is_file():
        raise DataNotFoundError(f"{path}: no such file; check the path")
    raw = path.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise CorruptFileError(
            f"{path}: damaged gzip stream ({exc}); download the file again"
        ) from None


def _canonical(images: np.ndarray, where: str) -> np.ndarray:
    """Turn (N, H, W), (N, H, W, C) or (N, C, H, W) with C in {1, 3} into (N, H, W, C).

    Channels-last wins when both readings are possible. The dtype is left unchanged.
    """
    if images.ndim == 3:
        return images[..., None]
    if images.ndim == 4 and images.shape[3] in (1, 3):
        return images
    if images.ndim == 4 and images.shape[1] in (1, 3):
        return np.ascontiguousarray(images.transpose(0, 2, 3, 1))
    raise DataError(
        f"{where}: images must be (N, H, W), (N, H, W, C) or (N, C, H, W) with C = 1 or 3, "
        f"got shape {images.shape}; reshape them to one of these layouts"
    )


def _as_labels(labels: Any, where: str) -> np.ndarray:
    """Integer labels (N,) or (N, 1) -> int64 (N,); anything else raises DataError."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"{where}: labels must be integers of shape (N,), got {labels.dtype} {labels.shape}; "
            "store one integer class index per image"
        )
    if labels.size and labels.min() < 0:
        raise DataError(f"{where}: labels must be >= 0, got {labels.min()}; use class indices 0..K-1")
    return labels.astype(np.int64, copy=False)


def _pool(
    name: str,
    parts: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    with_test: bool,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
) -> ImageDataset:
    """Concatenate (images, labels) parts (train[, test]) into an ImageDataset.

    When ``with_test`` is true the last part is the official test split.
    """
    images = parts[0][0] if len(parts) == 1 else np.concatenate([p[0] for p in parts])
    labels = parts[0][1] if len(parts) == 1 else np.concatenate([p[1] for p in parts])
    official = None
    if with_test:
        official = np.zeros(len(labels), dtype=bool)
        official[len(labels) - len(parts[-1][1]) :] = True
    k = num_classes if num_classes is not None else int(labels.max()) + 1 if labels.size else 1
    names = tuple(class_names) if class_names is not None else None
    return ImageDataset(name, images, labels, k, official_test=official, class_names=names,
                        sources=tuple(sources) if sources is not None else None)


def _load_image(path: Path, size: int | None, mode: Literal["L", "RGB"] | None = None) -> np.ndarray:
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
        raise CorruptFileError(
            f"{path}: Pillow cannot decode this image ({exc}); replace or delete the file"
        ) from None
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
    first = _load_image(paths[0], size, mode)
    out = np.empty((len(paths), *first.shape), dtype=np.uint8)
    quiet = True if len(paths) < 2000 else None  # None: a bar on terminals only
    for i, path in enumerate(tqdm(paths, desc="decoding images", unit="img", leave=False, disable=quiet)):
        array = first if i == 0 else _load_image(path, size, mode)
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


def _check_size(image_size: int | None) -> None:
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1):
        raise DataError(f"image_size must be a positive integer, got {image_size!r}; e.g. image_size=32")


# --------------------------------------------------------------------------- IDX (MNIST family)


def _open_maybe_gzip(path: Path) -> BinaryIO:
    """Open a file for streaming reads, gunzipping on the fly when it starts with 1f 8b."""
    if not path.is_file():
        raise DataNotFoundError(f"{path}: no such file; check the path")
    with path.open("rb") as f:
        zipped = f.read(2) == _GZIP_MAGIC
    return gzip.open(path, "rb") if zipped else path.open("rb")  # type: ignore[return-value]


def _read_idx_stream(f: BinaryIO, path: Path) -> np.ndarray:
    """Parse an IDX stream: the header first, then exactly the declared number of bytes."""
    magic = f.read(4)
    if len(magic) < 4 or magic[:2] != b"\x00\x00" or magic[2] not in _IDX_DTYPES or magic[3] == 0:
        raise CorruptFileError(
            f"{path}: not an IDX file: magic bytes {magic.hex(' ') or '(empty)'}, expected "
            f"00 00 <type in {', '.join(f'{c:02x}' for c in _IDX_DTYPES)}> <ndim >= 1>; "
            "point at an MNIST-style *-ubyte[.gz] file"
        )
    dtype, ndim = np.dtype(_IDX_DTYPES[magic[2]]), magic[3]
    header = 4 + 4 * ndim
    raw_dims = f.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise CorruptFileError(
            f"{path}: truncated IDX header: expected {header} bytes, got {4 + len(raw_dims)}; download it again"
        )
    dims = struct.unpack(f">{ndim}I", raw_dims)
    n_bytes = math.prod(dims) * dtype.itemsize  # Python ints: no overflow
    if n_bytes > _IDX_MAX_BYTES:
        raise CorruptFileError(
            f"{path}: IDX header declares shape {dims} of {dtype.name} ({n_bytes} bytes), more than the "
            f"{_IDX_MAX_BYTES >> 30} GiB a data file may hold; the header is damaged or it is not an IDX file, "
            "download it again"
        )
    expected = header + n_bytes
    buffer = bytearray()  # grows with what is really there: a lying header allocates nothing
    while len(buffer) < n_bytes:
        chunk = f.read(min(_READ_CHUNK, n_bytes - len(buffer)))
        if not chunk:
            raise CorruptFileError(
                f"{path}: IDX header says shape {dims} ({expected} bytes) but the file holds "
                f"{header + len(buffer)} bytes; the file is truncated, download it again"
            )
        buffer += chunk
    if f.read(1):
        raise CorruptFileError(
            f"{path}: IDX header says shape {dims} ({expected} bytes) but the file holds more than "
            f"{expected} bytes; the header or the data are damaged, download the file again"
        )
    data = np.frombuffer(buffer, dtype=dtype).reshape(dims)
    return data if dtype.isnative else data.astype(dtype.newbyteorder("="))


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (MNIST, Fashion-MNIST, KMNIST), gzipped or not.

    Gzip is detected by its magic bytes, not by the file name. The header is
    ``00 00 <dtype code> <ndim>`` then ``ndim`` big-endian uint32 dimensions. The file is
    streamed: the header is checked first and at most the declared number of bytes is read,
    so a gzip bomb is refused without being decompressed.

    Args:
        path: ``*-idx3-ubyte[.gz]`` (images) or ``*-idx1-ubyte[.gz]`` (labels).

    Returns:
        The array with the file's shape and native-endian dtype, e.g. uint8 (N, 28, 28)
        for images and uint8 (N,) for labels.

    Raises:
        CorruptFileError: wrong magic, unknown dtype code, a declared size above 16 GiB, fewer
            bytes than the header declares (truncated) or more (trailing data), a damaged gzip.

    Example:
        >>> images = read_idx("train-images-idx3-ubyte.gz")  # doctest: +SKIP
    """
    path = Path(path)
    stream = _open_maybe_gzip(path)
    try:
        with stream as f:
            return _read_idx_stream(f, path)
    except EOFError as exc:
        raise CorruptFileError(f"{path}: the gzip stream is truncated ({exc}); download the file again") from None
    except (OSError, zlib.error) as exc:
        raise CorruptFileError(f"{path}: damaged gzip stream ({exc}); download the file again") from None


# --------------------------------------------------------------------------- CIFAR


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
        raw = _read_bytes(path)
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
    raw = _read_bytes(path)
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
    labels = _as_labels(batch[label_key], str(path))
    if len(labels) != len(data):
        raise CorruptFileError(f"{path}: {len(data)} images but {len(labels)} labels")
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)), labels


# --------------------------------------------------------------------------- SVHN


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
    raw = io.BytesIO(_read_bytes(path))
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
    labels = _as_labels(y.astype(np.int64) if np.issubdtype(y.dtype, np.floating) else y, str(path))
    if len(labels) != x.shape[3] or (labels.size and labels.max() > 10):
        raise CorruptFileError(
            f"{path}: expected {x.shape[3]} labels in 1..10, got {len(labels)} in "
            f"[{labels.min() if labels.size else '-'}, {labels.max() if labels.size else '-'}]"
        )
    return np.ascontiguousarray(x.transpose(3, 0, 1, 2)), labels % 10


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


def read_gtsrb(root: PathLike, image_size: int = 32) -> ImageDataset:
    """Read the German Traffic Sign Recognition Benchmark in its official layout.

    Training: ``GTSRB/Final_Training/Images/<5-digit class>/*.ppm`` with ``GT-<class>.csv``.
    Test (optional): ``GTSRB/Final_Test/Images/*.ppm`` and ``GT-final_test.csv``, looked for in
    ``Final_Test/Images/``, ``Final_Test/``, ``GTSRB/`` and the folder above it. Whole images
    (no ROI crop) are resized bilinearly to ``image_size`` x ``image_size``.

    Args:
        root: the folder containing ``GTSRB/``, or ``GTSRB/`` itself.
        image_size: side of the square output images.

    Returns:
        An ImageDataset ``"gtsrb"`` of RGB images (N, image_size, image_size, 3), with
        ``official_test`` marking the test part when its annotations were found.

    Raises:
        DataNotFoundError: no ``Final_Training/Images``.
        CorruptFileError: an unreadable image or CSV.

    Example:
        >>> ds = read_gtsrb("/data", image_size=32)  # doctest: +SKIP
    """
    _check_size(image_size)
    base = _gtsrb_base(Path(root))
    train_paths: list[Path] = []
    train_labels: list[int] = []
    for class_dir in sorted(d for d in (base / "Final_Training" / "Images").iterdir() if d.is_dir()):
        gt = class_dir / f"GT-{class_dir.name}.csv"
        if gt.is_file():
            rows = _read_gt_csv(gt)
        else:  # no annotation file: the folder name is the class id
            rows = [(p.name, int(class_dir.name)) for p in sorted(class_dir.glob("*.ppm")) if class_dir.name.isdigit()]
        train_paths += [class_dir / name for name, _ in rows]
        train_labels += [label for _, label in rows]
    if not train_paths:
        raise DataError(f"GTSRB: no images under {base / 'Final_Training' / 'Images'}; unzip the training set there")
    parts = [(_stack_images(train_paths, image_size, "RGB"), np.asarray(train_labels, dtype=np.int64))]

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
            images = _stack_images([test_dir / name for name, _ in rows], image_size, "RGB")
            parts.append((images, np.asarray([label for _, label in rows], dtype=np.int64)))
    return _pool("gtsrb", parts, with_test=len(parts) == 2)


# --------------------------------------------------------------------------- generic trees


def read_image_folder(root: PathLike, image_size: int | None = None) -> ImageDataset:
    """Read a folder with one sub-folder of images per class.

    Classes are the sorted sub-folder names (hidden ones skipped); images are the files with an
    extension in :data:`IMAGE_EXTENSIONS`, searched recursively. When every image is grey the
    result has 1 channel, otherwise grey images are replicated to RGB.

    Args:
        root: the folder holding the class sub-folders.
        image_size: resize (bilinear) every image to this square size; required when the
            images differ in size.

    Returns:
        An ImageDataset ``"folder:<root>"`` (no official test), class names = folder names.

    Raises:
        DataNotFoundError: ``root`` is not a folder.
        DataError: no class sub-folders, an empty class, or mixed sizes without image_size.
        CorruptFileError: an image Pillow cannot decode.

    Example:
        >>> ds = read_image_folder("my_images/", image_size=64)  # doctest: +SKIP
    """
    _check_size(image_size)
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
    images = _stack_images(paths, image_size, None)
    return _pool(
        f"folder:{root}",
        [(images, np.asarray(labels, dtype=np.int64))],
        with_test=False,
        num_classes=len(classes),
        class_names=[d.name for d in classes],
        sources=[p.relative_to(root).as_posix() for p in paths],  # member lists may name files
    )


def read_tiny_imagenet(root: PathLike) -> ImageDataset:
    """Read Tiny ImageNet (``tiny-imagenet-200/``): 200 classes of 64x64 RGB images.

    Classes are the sorted ids of ``wnids.txt``; ``train/<wnid>/images/*.JPEG`` is the training
    part and ``val/images`` (labels from ``val/val_annotations.txt``) the official test part.

    Args:
        root: ``tiny-imagenet-200/`` itself or the folder containing it.

    Returns:
        An ImageDataset ``"tiny-imagenet"`` uint8 (N, 64, 64, 3), class names = wnids.

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
    parts = [
        (_stack_images([p for p, _ in pair], 64, "RGB"), np.asarray([y for _, y in pair], np.int64)) for pair in pairs
    ]
    return _pool("tiny-imagenet", parts, with_test=len(parts) == 2, num_classes=len(wnids), class_names=wnids)


# --------------------------------------------------------------------------- npz


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
    raise DataError(
        f"{where}: images of dtype {images.dtype} are refused; store uint8 (0-255) or float in [0, 1]"
    )


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
    parts = [(_to_uint8(_canonical(x, where), where), _as_labels(y, where))]
    x_test, y_test = pick("x_test"), pick("y_test")
    if (x_test is None) != (y_test is None):
        raise DataError(f"{path}: 'x_test' and 'y_test' must be given together, found {sorted(arrays)}")
    if x_test is not None:
        parts.append((_to_uint8(_canonical(x_test, where), where), _as_labels(y_test, where)))
        if parts[1][0].shape[1:] != parts[0][0].shape[1:]:
            raise DataError(
                f"{path}: test images {parts[1][0].shape[1:]} differ from train images {parts[0][0].shape[1:]}; "
                "store both parts with the same height, width and channels"
            )
    num_classes = _npz_num_classes(arrays["num_classes"], parts, where) if "num_classes" in arrays else None
    return _pool(f"npz:{path}", parts, with_test=x_test is not None, num_classes=num_classes)


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

"""Bad data files, written in their real formats: each is refused in one line, or read correctly.

Issue 13, items 2, 9 (data), 11 and 15 (data).
"""

from __future__ import annotations

import gzip
import struct
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mintaudit.data import load_dataset
from mintaudit.data.formats import read_idx, read_image_folder, read_npz
from mintaudit.errors import CorruptFileError, DataError

IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def idx_header(code: int, dims: tuple[int, ...]) -> bytes:
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


def idx_bytes(array: np.ndarray) -> bytes:
    return idx_header(0x08, array.shape) + array.astype(np.uint8).tobytes()


def write_idx_set(folder: Path, n: tuple[int, int, int, int] = (6, 6, 4, 4), sizes: tuple[int, int] = (5, 5)) -> Path:
    """The four gzipped IDX files: n = (train images, train labels, test images, test labels)."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = (
        np.arange(n[0] * sizes[0] ** 2).reshape(n[0], sizes[0], sizes[0]) % 256,
        np.arange(n[1]) % 10,
        np.arange(n[2] * sizes[1] ** 2).reshape(n[2], sizes[1], sizes[1]) % 256,
        np.arange(n[3]) % 10,
    )
    for name, array in zip(IDX_NAMES, arrays):
        (folder / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(array)))
    return folder


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MINTAUDIT_DATA", raising=False)


# ------------------------------------------------------------------------------- item 2


def test_idx_labels_shifted_between_train_and_test_are_refused(tmp_path: Path) -> None:
    """Train labels one short and test labels one long add up to the images, but each pair is wrong."""
    root = write_idx_set(tmp_path / "shifted", n=(6, 5, 4, 5))
    with pytest.raises(CorruptFileError) as info:
        load_dataset("mnist", root=root)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz holds 6 images" in message
    assert "train-labels-idx1-ubyte.gz holds 5 labels" in message
    assert len(load_dataset("mnist", root=write_idx_set(tmp_path / "fine"))) == 10


# ------------------------------------------------------------------------------- item 11


def test_idx_gzip_bomb_stops_at_the_declared_size(tmp_path: Path) -> None:
    """A header declaring 1,000 bytes followed by 20 MB: refused after reading about the declared size."""
    path = tmp_path / "bomb-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_header(0x08, (1000,)) + bytes(1000 + 20_000_000), compresslevel=1))
    assert path.stat().st_size < 200_000
    tracemalloc.start()
    try:
        with pytest.raises(CorruptFileError) as info:
            read_idx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000, f"peak {peak} bytes: the stream was decompressed past its declared size"
    message = str(info.value)
    assert "more than 1008 bytes" in message and "truncated" not in message


def test_idx_truncated_gzip_says_truncated(tmp_path: Path) -> None:
    path = tmp_path / "cut-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((10, 4, 4), np.uint8))[:-30]))
    with pytest.raises(CorruptFileError, match=r"\(176 bytes\) but the file holds 146 bytes; the file is truncated"):
        read_idx(path)


def test_idx_exact_file_still_reads_big_endian(tmp_path: Path) -> None:
    values = np.array([[1, -2], [70000, 3]], dtype=np.int32)
    path = tmp_path / "ints.idx.gz"
    path.write_bytes(gzip.compress(idx_header(0x0C, values.shape) + values.astype(">i4").tobytes()))
    out = read_idx(path)
    np.testing.assert_array_equal(out, values)
    assert out.dtype == np.int32 and out.dtype.isnative and out.flags.writeable


# ------------------------------------------------------------------------------- item 15


@pytest.mark.parametrize("suffix", [".png", ".pgm"])
def test_16_bit_grey_is_scaled_to_8_bit_not_saturated(tmp_path: Path, suffix: str) -> None:
    values = np.array([[0, 255, 256, 4096], [32768, 40000, 65280, 65535]], dtype=np.uint16)
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        if suffix == ".png":
            Image.fromarray(values).save(tmp_path / cls / "img.png")
        else:  # binary PGM, maxval 65535, big-endian samples
            (tmp_path / cls / "img.pgm").write_bytes(b"P5\n4 2\n65535\n" + values.astype(">u2").tobytes())
    with Image.open(tmp_path / "a" / f"img{suffix}") as img:
        assert img.mode in ("I;16", "I")  # really 16 bits deep
    ds = read_image_folder(tmp_path)
    np.testing.assert_array_equal(ds.images[0, ..., 0], values >> 8)
    assert (ds.images == 255).sum() == 4  # only 65280 and 65535 reach white, in each of the 2 images


def test_npz_nan_and_inf_are_named(tmp_path: Path) -> None:
    x = np.full((2, 4, 4), 0.5)
    x[0, 0, 0], x[1, 1, 1], x[1, 2, 2] = np.nan, np.nan, np.inf
    np.savez(tmp_path / "nan.npz", x=x, y=np.array([0, 1]))
    with pytest.raises(DataError, match="2 NaN and 1 infinite values") as info:
        read_npz(tmp_path / "nan.npz")
    assert "[0.0, 1.0]" not in str(info.value)


# ------------------------------------------------------------------------------- item 9: one line via the CLI


def _npz(arrays: dict[str, np.ndarray]) -> Callable[[Path], str]:
    def write(tmp: Path) -> str:
        np.savez(tmp / "bad.npz", **arrays)
        return "npz:bad.npz"

    return write


def _npz_with_member(name: str, content: bytes) -> Callable[[Path], str]:
    def write(tmp: Path) -> str:
        np.savez(tmp / "bad.npz", y=np.array([0, 1, 0, 1]))
        with zipfile.ZipFile(tmp / "bad.npz", "a") as z:
            z.writestr(name, content)
        return "npz:bad.npz"

    return write


def _idx(n: tuple[int, int, int, int] = (6, 6, 4, 4), sizes: tuple[int, int] = (5, 5), replace: bytes | None = None):
    def write(tmp: Path) -> str:
        root = write_idx_set(tmp / "data", n, sizes)
        if replace is not None:
            (root / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(replace))
        return "fashion-mnist"

    return write


X = np.zeros((4, 8, 8), np.uint8)
Y = np.array([0, 1, 0, 1])

ROWS = {
    "npz num_classes not a scalar": (_npz({"x": X, "y": Y, "num_classes": np.array([10, 10])}), "one integer"),
    "npz num_classes 10**9": (_npz({"x": X, "y": Y, "num_classes": np.array(10**9)}), "[2, 100000]"),
    "npz num_classes a float": (_npz({"x": X, "y": Y, "num_classes": np.array(2.5)}), "one integer"),
    "npz nan images": (_npz({"x": np.full((4, 8, 8), np.nan), "y": Y}), "NaN"),
    "npz member x.npy is not npy": (_npz_with_member("x.npy", b"not an array"), "'x' are not .npy"),
    "npz member without .npy": (_npz_with_member("x", b"\x00" * 256), "'x' are not .npy"),
    "idx dims overflow": (_idx(replace=idx_header(0x08, (2**32 - 1,) * 3) + bytes(64)), "16 GiB"),
    "idx test images of another size": (_idx(sizes=(5, 6)), "(6, 6, 1) but"),
    "idx labels shifted": (_idx(n=(6, 5, 4, 5)), "holds 5 labels"),
    "idx trailing data": (_idx(replace=idx_bytes(np.zeros((6, 5, 5), np.uint8)) + bytes(1000)), "more than"),
    "idx truncated": (_idx(replace=idx_bytes(np.zeros((6, 5, 5), np.uint8))[:-3]), "truncated"),
}


@pytest.mark.parametrize("make, expected", ROWS.values(), ids=ROWS.keys())
def test_bad_data_is_one_line_exit_2(refused, tmp_path: Path, make: Callable[[Path], str], expected: str) -> None:
    dataset = make(tmp_path)
    argv = ["train", "--dataset", dataset, "--model", "tiny-cnn", "--epochs", "1", "--out", "run"]
    if not dataset.startswith("npz:"):
        argv += ["--data-root", "data"]
    line = refused(argv)
    assert expected in line


def test_missing_data_root_is_one_line_exit_2(refused) -> None:
    """Not a fall back to /usr/share/datasets/fashion-mnist: the mistyped root is named."""
    line = refused(
        [
            "train",
            "--dataset",
            "fashion-mnist",
            "--data-root",
            "no-such-dir",
            "--model",
            "tiny-cnn",
            "--epochs",
            "1",
            "--out",
            "run",
        ]
    )
    assert "'no-such-dir'" in line and "does not exist" in line

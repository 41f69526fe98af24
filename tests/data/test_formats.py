"""Readers of on-disk formats, tested on small files written here in the real formats."""

from __future__ import annotations

import csv
import gzip
import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from mintaudit.data.formats import (
    read_cifar_binary,
    read_cifar_python,
    read_gtsrb,
    read_idx,
    read_image_folder,
    read_npz,
    read_svhn_mat,
    read_tiny_imagenet,
)
from mintaudit.errors import CorruptFileError, DataError, DataNotFoundError


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    """Encode ``array`` as an IDX file: 00 00 <code> <ndim>, big-endian dims, big-endian data."""
    dtype = {0x08: "u1", 0x0C: ">i4", 0x0D: ">f4"}[code]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dtype).tobytes()


def write_image(path: Path, size: tuple[int, int], mode: str = "RGB", value: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    color = value if mode == "L" else (value, 255 - value, 7)
    Image.new(mode, size, color).save(path)
    return path


# ----------------------------------------------------------------------------------------- IDX


def test_read_idx_plain_and_gzipped(tmp_path: Path) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    plain = tmp_path / "train-images-idx3-ubyte"
    plain.write_bytes(idx_bytes(images))
    zipped = tmp_path / "labels-without-gz-suffix"  # detected by magic bytes, not by name
    zipped.write_bytes(gzip.compress(idx_bytes(np.array([7, 1], np.uint8))))

    np.testing.assert_array_equal(read_idx(plain), images)
    np.testing.assert_array_equal(read_idx(zipped), [7, 1])
    assert read_idx(plain).dtype == np.uint8


def test_read_idx_big_endian_int32(tmp_path: Path) -> None:
    values = np.array([[1, -2], [70000, 3]], dtype=np.int32)
    path = tmp_path / "ints.idx"
    path.write_bytes(idx_bytes(values, code=0x0C))
    out = read_idx(path)
    np.testing.assert_array_equal(out, values)
    assert out.dtype == np.int32 and out.dtype.isnative


def test_read_idx_truncated_names_file_and_byte_counts(tmp_path: Path) -> None:
    data = idx_bytes(np.zeros((3, 4, 4), np.uint8))  # 16 header + 48 bytes = 64
    path = tmp_path / "cut-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(data[:-5]))
    with pytest.raises(CorruptFileError) as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message and "64 bytes" in message and "59 bytes" in message


def test_read_idx_wrong_magic(tmp_path: Path) -> None:
    path = tmp_path / "not-idx"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    with pytest.raises(CorruptFileError, match="not an IDX file"):
        read_idx(path)


def test_read_idx_damaged_gzip(tmp_path: Path) -> None:
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((50, 9), np.uint8)))[:-12])
    with pytest.raises(CorruptFileError, match="gzip"):
        read_idx(path)


def test_read_idx_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError):
        read_idx(tmp_path / "absent")


# --------------------------------------------------------------------------------------- CIFAR


def cifar_records(labels: list[tuple[int, ...]]) -> tuple[bytes, np.ndarray]:
    """Binary records (label bytes + 3072 channel-first pixels) and the expected (N,32,32,3) images."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(len(labels), 32, 32, 3), dtype=np.uint8)
    raw = b"".join(bytes(lab) + img.transpose(2, 0, 1).tobytes() for lab, img in zip(labels, images))
    return raw, images


def test_read_cifar10_binary_several_files(tmp_path: Path) -> None:
    raw1, img1 = cifar_records([(3,), (9,)])
    raw2, img2 = cifar_records([(0,)])
    (tmp_path / "a.bin").write_bytes(raw1)
    (tmp_path / "b.bin").write_bytes(raw2)
    images, labels = read_cifar_binary([tmp_path / "a.bin", tmp_path / "b.bin"], "cifar10")
    assert images.shape == (3, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, np.concatenate([img1, img2]))
    np.testing.assert_array_equal(labels, [3, 9, 0])
    assert labels.dtype == np.int64


def test_read_cifar100_binary_uses_fine_labels(tmp_path: Path) -> None:
    raw, img = cifar_records([(4, 77), (19, 2)])  # (coarse, fine)
    (tmp_path / "train.bin").write_bytes(raw)
    images, labels = read_cifar_binary(tmp_path / "train.bin", "cifar100")
    np.testing.assert_array_equal(labels, [77, 2])
    np.testing.assert_array_equal(images, img)


def test_read_cifar_binary_bad_size(tmp_path: Path) -> None:
    raw, _ = cifar_records([(1,), (2,)])
    path = tmp_path / "data_batch_1.bin"
    path.write_bytes(raw[:-100])
    with pytest.raises(CorruptFileError, match="3073"):
        read_cifar_binary([path], "cifar10")
    with pytest.raises(CorruptFileError, match="3074"):  # a CIFAR-10 file read as CIFAR-100
        read_cifar_binary([tmp_path / "data_batch_1.bin"], "cifar100")


class _Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes bytes as Python 2 ``str`` (SHORT_BINSTRING / BINSTRING), as CIFAR's own batches are."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def cifar_batch(n: int = 3) -> tuple[dict[bytes, object], np.ndarray]:
    data = np.random.default_rng(1).integers(0, 256, size=(n, 3072), dtype=np.uint8)
    batch = {b"batch_label": b"testing batch 1", b"labels": [5, 0, 9][:n], b"data": data, b"filenames": [b"a.png"] * n}
    return batch, data.reshape(n, 3, 32, 32).transpose(0, 2, 3, 1)


def test_read_cifar_python_official_python2_pickle(tmp_path: Path) -> None:
    batch, expected = cifar_batch()
    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(batch)
    path = tmp_path / "data_batch_1"  # numpy 1.x module path, as in the files from 2009
    path.write_bytes(buffer.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    images, labels = read_cifar_python(path)
    np.testing.assert_array_equal(images, expected)
    np.testing.assert_array_equal(labels, [5, 0, 9])


@pytest.mark.parametrize("protocol", [4, 5])
def test_read_cifar_python_python3_pickles(tmp_path: Path, protocol: int) -> None:
    batch, expected = cifar_batch()
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps(batch, protocol=protocol))
    images, labels = read_cifar_python(path)
    np.testing.assert_array_equal(images, expected)
    np.testing.assert_array_equal(labels, [5, 0, 9])


def test_read_cifar_python_refuses_codecs_global(tmp_path: Path) -> None:
    # Python 3's protocol 2 pickles bytes through _codecs.encode, which is not on the allow-list.
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps(cifar_batch()[0], protocol=2))
    with pytest.raises(CorruptFileError, match="disallowed global _codecs.encode"):
        read_cifar_python(path)


def test_read_cifar100_python_str_keys_fine_labels(tmp_path: Path) -> None:
    data = np.zeros((2, 3072), np.uint8)
    path = tmp_path / "train"
    path.write_bytes(pickle.dumps({"data": data, "fine_labels": [42, 99], "coarse_labels": [1, 2]}))
    _, labels = read_cifar_python(path)
    np.testing.assert_array_equal(labels, [42, 99])


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_read_cifar_python_refuses_malicious_pickle(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Exploit(marker), b"labels": [1]}))
    with pytest.raises(CorruptFileError, match="disallowed global"):
        read_cifar_python(path)
    assert not marker.exists()


def test_read_cifar_python_not_a_pickle_or_wrong_content(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x00\x01 this is not a pickle")
    with pytest.raises(CorruptFileError, match="not a readable CIFAR python batch"):
        read_cifar_python(garbage)
    listing = tmp_path / "list"
    listing.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(CorruptFileError, match="expected a pickled dict"):
        read_cifar_python(listing)
    missing = tmp_path / "missing"
    missing.write_bytes(pickle.dumps({b"data": np.zeros((1, 3072), np.uint8)}))
    with pytest.raises(CorruptFileError, match="fine_labels"):
        read_cifar_python(missing)


# ---------------------------------------------------------------------------------------- SVHN


def test_read_svhn_mat(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, size=(32, 32, 3, 4), dtype=np.uint8)
    y = np.array([[10], [1], [9], [10]], dtype=np.uint8)
    path = tmp_path / "test_32x32.mat"
    scipy.io.savemat(path, {"X": x, "y": y})
    zipped = tmp_path / "test_32x32.mat.gz"
    zipped.write_bytes(gzip.compress(path.read_bytes()))
    images, labels = read_svhn_mat(zipped)
    assert images.shape == (4, 32, 32, 3)
    np.testing.assert_array_equal(images[2], x[:, :, :, 2])
    np.testing.assert_array_equal(labels, [0, 1, 9, 0])


def test_read_svhn_mat_missing_keys(tmp_path: Path) -> None:
    path = tmp_path / "other.mat"
    scipy.io.savemat(path, {"images": np.zeros((2, 2), np.uint8)})
    with pytest.raises(CorruptFileError, match="'X' and 'y'.*format 2"):
        read_svhn_mat(path)


def test_read_svhn_mat_v73_refused(tmp_path: Path) -> None:
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .".ljust(116, b" ")
    path = tmp_path / "train_32x32.mat"
    path.write_bytes(header + bytes(8) + b"\x00\x02IM" + bytes(512))
    with pytest.raises(CorruptFileError, match="v7.3"):
        read_svhn_mat(path)


# --------------------------------------------------------------------------------------- GTSRB


def make_gtsrb(root: Path, with_test: bool = True, test_gt_in: str = "Images") -> Path:
    """A 2-class GTSRB tree under ``root/GTSRB`` with .ppm images of various sizes and GT csvs."""
    header = ["Filename", "Width", "Height", "Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2", "ClassId"]
    base = root / "GTSRB"
    for cls, sizes in ((0, [(30, 31), (40, 35)]), (1, [(50, 50)])):
        folder = base / "Final_Training" / "Images" / f"{cls:05d}"
        rows = []
        for i, size in enumerate(sizes):
            name = f"00000_{i:05d}.ppm"
            write_image(folder / name, size, value=10 + 100 * cls)
            rows.append([name, *size, 5, 5, size[0] - 5, size[1] - 5, cls])
        with (folder / f"GT-{cls:05d}.csv").open("w", newline="") as f:
            csv.writer(f, delimiter=";").writerows([header, *rows])
    if with_test:
        images = base / "Final_Test" / "Images"
        rows = [[f"{i:05d}.ppm", 33, 34, 5, 5, 28, 29, cls] for i, cls in enumerate([1, 0, 1])]
        for row in rows:
            write_image(images / row[0], (33, 34))
        gt_dir = images if test_gt_in == "Images" else root
        gt_dir.mkdir(parents=True, exist_ok=True)
        with (gt_dir / "GT-final_test.csv").open("w", newline="") as f:
            csv.writer(f, delimiter=";").writerows([header, *rows])
    return base


@pytest.mark.parametrize("level", ["parent", "gtsrb"])
def test_read_gtsrb_with_test(tmp_path: Path, level: str) -> None:
    base = make_gtsrb(tmp_path)
    ds = read_gtsrb(tmp_path if level == "parent" else base, image_size=16)
    assert ds.images.shape == (6, 16, 16, 3)
    np.testing.assert_array_equal(ds.labels, [0, 0, 1, 1, 0, 1])
    np.testing.assert_array_equal(ds.official_test, [False] * 3 + [True] * 3)
    assert ds.num_classes == 2
    assert abs(int(ds.images[0, 8, 8, 0]) - 10) <= 1  # whole image resized, colour kept


def test_read_gtsrb_test_annotations_beside_gtsrb(tmp_path: Path) -> None:
    make_gtsrb(tmp_path, test_gt_in="root")
    assert read_gtsrb(tmp_path).official_test.sum() == 3
    assert read_gtsrb(tmp_path).images.shape[1:] == (32, 32, 3)


def test_read_gtsrb_without_test(tmp_path: Path) -> None:
    make_gtsrb(tmp_path, with_test=False)
    ds = read_gtsrb(tmp_path, image_size=8)
    assert len(ds) == 3 and ds.official_test is None


def test_read_gtsrb_test_images_without_labels_warns(tmp_path: Path) -> None:
    base = make_gtsrb(tmp_path)
    (base / "Final_Test" / "Images" / "GT-final_test.csv").unlink()
    with pytest.warns(UserWarning, match="GT-final_test.csv"):
        ds = read_gtsrb(tmp_path, image_size=8)
    assert ds.official_test is None


def test_read_gtsrb_missing_and_bad_csv(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="Final_Training"):
        read_gtsrb(tmp_path)
    base = make_gtsrb(tmp_path, with_test=False)
    (base / "Final_Training" / "Images" / "00000" / "00000_00001.ppm").unlink()
    with pytest.raises(DataNotFoundError, match="00000_00001.ppm"):
        read_gtsrb(tmp_path)
    (base / "Final_Training" / "Images" / "00001" / "GT-00001.csv").write_text("a,b,c\n1,2,3\n")
    with pytest.raises(CorruptFileError, match="GT-00001.csv"):
        read_gtsrb(tmp_path)


# ------------------------------------------------------------------------------- image folders


def test_read_image_folder_grey_png_and_jpeg(tmp_path: Path) -> None:
    write_image(tmp_path / "cat" / "a.png", (10, 12), "L", 50)
    write_image(tmp_path / "cat" / "b.JPG", (10, 12), "L", 60)
    write_image(tmp_path / "dog" / "c.PNG", (10, 12), "L", 200)
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    ds = read_image_folder(tmp_path)
    assert ds.images.shape == (3, 12, 10, 1)
    assert ds.class_names == ("cat", "dog")
    np.testing.assert_array_equal(ds.labels, [0, 0, 1])
    assert ds.images[2, 0, 0, 0] == 200
    assert ds.name == f"folder:{tmp_path}"


def test_read_image_folder_mixed_grey_and_colour_is_rgb(tmp_path: Path) -> None:
    write_image(tmp_path / "a" / "x.png", (8, 8), "L", 90)
    write_image(tmp_path / "b" / "y.jpeg", (8, 8), "RGB")
    write_image(tmp_path / "b" / "z.ppm", (8, 8), "RGB")
    ds = read_image_folder(tmp_path)
    assert ds.images.shape == (3, 8, 8, 3)
    np.testing.assert_array_equal(ds.images[0, 0, 0], [90, 90, 90])


def test_read_image_folder_mixed_sizes(tmp_path: Path) -> None:
    write_image(tmp_path / "a" / "x.png", (8, 8))
    write_image(tmp_path / "b" / "y.png", (16, 9))
    with pytest.raises(DataError) as info:
        read_image_folder(tmp_path)
    message = str(info.value)
    assert "8x8" in message and "16x9" in message and "image_size" in message and "--image-size" in message
    assert read_image_folder(tmp_path, image_size=5).images.shape == (2, 5, 5, 3)


def test_read_image_folder_corrupt_image(tmp_path: Path) -> None:
    write_image(tmp_path / "a" / "x.png", (8, 8))
    bad = tmp_path / "a" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    with pytest.raises(CorruptFileError, match="broken.jpg"):
        read_image_folder(tmp_path)


def test_read_image_folder_empty(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no class sub-folders"):
        read_image_folder(tmp_path)
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        read_image_folder(tmp_path)
    with pytest.raises(DataNotFoundError):
        read_image_folder(tmp_path / "absent")


# ------------------------------------------------------------------------------- Tiny ImageNet


def test_read_tiny_imagenet(tmp_path: Path) -> None:
    base = tmp_path / "tiny-imagenet-200"
    base.mkdir()
    (base / "wnids.txt").write_text("n02\nn01\n")
    for wnid, value in (("n01", 10), ("n02", 200)):
        for i in range(2):
            write_image(base / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", (64, 64), "RGB", value)
    write_image(base / "train" / "n01" / "images" / "grey.JPEG", (64, 64), "L", 30)
    write_image(base / "val" / "images" / "val_0.JPEG", (64, 64), "RGB", 200)
    write_image(base / "val" / "images" / "val_1.JPEG", (50, 50), "RGB", 10)
    (base / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn02\t0\t0\t10\t10\nval_1.JPEG\tn01\t1\t2\t3\t4\n")
    ds = read_tiny_imagenet(tmp_path)
    assert ds.images.shape == (7, 64, 64, 3)
    assert ds.class_names == ("n01", "n02") and ds.num_classes == 2
    np.testing.assert_array_equal(ds.labels, [0, 0, 0, 1, 1, 1, 0])
    np.testing.assert_array_equal(ds.official_test, [False] * 5 + [True] * 2)
    assert read_tiny_imagenet(base).fingerprint() == ds.fingerprint()


def test_read_tiny_imagenet_bad_annotation(tmp_path: Path) -> None:
    (tmp_path / "wnids.txt").write_text("n01\n")
    write_image(tmp_path / "train" / "n01" / "images" / "a.JPEG", (64, 64))
    (tmp_path / "val").mkdir()
    (tmp_path / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn99\t0\t0\t1\t1\n")
    with pytest.raises(CorruptFileError, match="line 1"):
        read_tiny_imagenet(tmp_path)
    with pytest.raises(DataNotFoundError, match="wnids.txt"):
        read_tiny_imagenet(tmp_path / "train")


# ----------------------------------------------------------------------------------------- npz


def test_read_npz_grey_with_official_test(tmp_path: Path) -> None:
    path = tmp_path / "set.npz"
    x = np.arange(4 * 5 * 6, dtype=np.uint8).reshape(4, 5, 6)
    np.savez(path, x=x, y=np.array([0, 1, 2, 1]), x_test=x[:2], y_test=np.array([2, 0]))
    ds = read_npz(path)
    assert ds.images.shape == (6, 5, 6, 1) and ds.num_classes == 3
    np.testing.assert_array_equal(ds.official_test, [False] * 4 + [True] * 2)
    np.testing.assert_array_equal(ds.images[:4, ..., 0], x)


def test_read_npz_channels_first_float(tmp_path: Path) -> None:
    path = tmp_path / "set.npz"
    images = np.zeros((2, 3, 4, 5), np.float32)
    images[1, 0] = 1.0
    images[0, 2] = 0.5
    np.savez_compressed(path, images=images, labels=np.array([[0], [1]]), num_classes=np.array(10))
    ds = read_npz(path)
    assert ds.images.shape == (2, 4, 5, 3) and ds.images.dtype == np.uint8
    assert ds.images[1, 0, 0, 0] == 255 and ds.images[0, 0, 0, 2] == 128 and ds.num_classes == 10
    assert ds.official_test is None


def test_read_npz_refuses_object_arrays(tmp_path: Path) -> None:
    path = tmp_path / "evil.npz"
    np.savez(path, x=np.array([{"a": 1}, None], dtype=object), y=np.array([0, 1]))
    with pytest.raises(CorruptFileError, match="pickled objects"):
        read_npz(path)


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"x": np.full((2, 4, 4), 2.0), "y": np.array([0, 1])}, r"\[0, 1\]"),
        ({"x": np.zeros((2, 4, 4), np.int16), "y": np.array([0, 1])}, "int16 are refused"),
        ({"x": np.zeros((2, 4, 4, 2), np.uint8), "y": np.array([0, 1])}, "C = 1 or 3"),
        (
            {"x": np.zeros((2, 4, 4), np.uint8), "y": np.array([0, 5]), "num_classes": np.array(3)},
            r"is 3 but must lie in \[",
        ),
        ({"x": np.zeros((2, 4, 4), np.uint8), "y": np.array([0, -1])}, ">= 0"),
        ({"x": np.zeros((2, 4, 4), np.uint8), "y": np.array([0.0, 1.0])}, "integers"),
        ({"data": np.zeros((2, 4, 4), np.uint8)}, "expected keys"),
        ({"x": np.zeros((2, 4, 4), np.uint8), "y": np.array([0, 1]), "x_test": np.zeros((1, 4, 4))}, "together"),
    ],
)
def test_read_npz_refuses_bad_content(tmp_path: Path, arrays: dict[str, np.ndarray], match: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=match):
        read_npz(path)


def test_read_npz_not_an_archive(tmp_path: Path) -> None:
    npy = tmp_path / "plain.npz"
    with npy.open("wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(CorruptFileError, match="not an .npz"):
        read_npz(npy)

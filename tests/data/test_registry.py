"""load_dataset: names, where it looks, what it says when data are missing."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from mintaudit.data import DATASET_NAMES, load_dataset, registry
from mintaudit.errors import CorruptFileError, DataError, DataNotFoundError

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_set(folder: Path, n_train: int = 6, n_test: int = 4, gz: bool = True) -> None:
    """The four MNIST-style IDX files, tiny: 5x5 images, labels i % 10."""
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = np.arange(n * 25, dtype=np.uint8).reshape(n, 5, 5)
        labels = np.arange(n) % 10
        for kind, array in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
            data = idx_bytes(array)
            (folder / (kind + ".gz" if gz else kind)).write_bytes(gzip.compress(data) if gz else data)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test depends on the machine's MINTAUDIT_DATA."""
    monkeypatch.delenv("MINTAUDIT_DATA", raising=False)


def test_digits_is_embedded() -> None:
    from sklearn.datasets import load_digits

    ds = load_dataset("digits")
    assert ds.images.shape == (1797, 8, 8, 1) and ds.images.dtype == np.uint8
    assert ds.images.min() == 0 and ds.images.max() == 255
    assert ds.num_classes == 10 and ds.official_test is None
    assert ds.class_names == tuple("0123456789")
    expected = np.round(load_digits().images * 255 / 16).astype(np.uint8)
    np.testing.assert_array_equal(ds.images[..., 0], expected)


def test_image_size_resizes() -> None:
    ds = load_dataset("Digits", image_size=16)
    assert ds.images.shape == (1797, 16, 16, 1)
    with pytest.raises(DataError, match="image_size"):
        load_dataset("digits", image_size=0)


@pytest.mark.fashion
@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason=f"{FASHION_DIR} absent (apt-get install dataset-fashion-mnist)")
def test_fashion_mnist_from_debian_package() -> None:
    ds = load_dataset("fashion-mnist")
    assert ds.images.shape == (70000, 28, 28, 1)
    assert ds.official_test is not None and ds.official_test.sum() == 10000
    assert ds.official_test[-10000:].all()
    assert ds.class_names is not None and ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"
    assert np.bincount(ds.labels).tolist() == [7000] * 10


@pytest.mark.parametrize("gz", [True, False])
def test_mintaudit_data_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gz: bool) -> None:
    write_idx_set(tmp_path / "mnist", gz=gz)
    monkeypatch.setenv("MINTAUDIT_DATA", str(tmp_path))
    ds = load_dataset("mnist")
    assert ds.images.shape == (10, 5, 5, 1) and ds.name == "mnist"
    np.testing.assert_array_equal(ds.official_test, [False] * 6 + [True] * 4)
    np.testing.assert_array_equal(ds.labels, [0, 1, 2, 3, 4, 5, 0, 1, 2, 3])


def test_root_comes_first_and_may_hold_name_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_idx_set(tmp_path / "env" / "kmnist", n_train=3)
    write_idx_set(tmp_path / "direct", n_train=5)
    write_idx_set(tmp_path / "parent" / "kmnist", n_train=7)
    monkeypatch.setenv("MINTAUDIT_DATA", str(tmp_path / "env"))
    assert len(load_dataset("kmnist", root=tmp_path / "direct")) == 9
    assert len(load_dataset("kmnist", root=tmp_path / "parent")) == 11
    assert len(load_dataset("kmnist", root=tmp_path)) == 7  # an existing root without the files: the env
    assert len(load_dataset("kmnist")) == 7


def test_a_given_root_must_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A mistyped --data-root is an error naming it, not a silent fall back to the system folder."""
    write_idx_set(tmp_path / "usr-share")
    monkeypatch.setitem(registry._SYSTEM_DIRS, "fashion-mnist", (tmp_path / "usr-share",))
    assert len(load_dataset("fashion-mnist")) == 10
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("fashion-mnist", root=tmp_path / "mistyped")
    assert str(tmp_path / "mistyped") in str(info.value) and "not a folder" in str(info.value)


def test_missing_data_names_every_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINTAUDIT_DATA", str(tmp_path / "env"))
    (tmp_path / "mine").mkdir()
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("mnist", root=tmp_path / "mine")
    message = str(info.value)
    for place in (tmp_path / "mine", tmp_path / "mine" / "mnist", tmp_path / "env" / "mnist"):
        assert str(place) in message
    assert "MINTAUDIT_DATA" in message and "--data-root" in message
    assert isinstance(info.value, FileNotFoundError)


def test_missing_fashion_mnist_suggests_the_debian_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry._SYSTEM_DIRS, "fashion-mnist", (tmp_path / "usr-share",))
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("fashion-mnist")
    assert str(tmp_path / "usr-share") in str(info.value)
    assert "apt-get install dataset-fashion-mnist" in str(info.value)


def test_missing_without_any_place(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataNotFoundError, match="MINTAUDIT_DATA is not set"):
        load_dataset("svhn")


def test_corrupt_file_is_reported_not_skipped(tmp_path: Path) -> None:
    write_idx_set(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x09abc"))
    with pytest.raises(CorruptFileError, match="t10k-labels"):
        load_dataset("mnist", root=tmp_path)


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(DataError) as info:
        load_dataset("fashon-mnist")
    message = str(info.value)
    assert "did you mean 'fashion-mnist'" in message
    assert all(name in message for name in DATASET_NAMES) and "folder:PATH" in message


def test_cifar10_binary_and_cifar100_python_layouts(tmp_path: Path) -> None:
    bin_dir = tmp_path / "cifar10" / "cifar-10-batches-bin"
    bin_dir.mkdir(parents=True)
    record = bytes([7]) + bytes(3072)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        bin_dir.joinpath(name).write_bytes(record * 2)
    first = bin_dir / "data_batch_1.bin"
    first.with_suffix(".bin.gz").write_bytes(gzip.compress(first.read_bytes()))
    first.unlink()  # a gzipped batch is read as well
    ds = load_dataset("cifar10", root=tmp_path)
    assert ds.images.shape == (12, 32, 32, 3) and ds.official_test.sum() == 2
    assert ds.class_names is not None and ds.class_names[7] == "horse"

    py_dir = tmp_path / "cifar100" / "cifar-100-python"
    py_dir.mkdir(parents=True)
    for name, n in (("train", 3), ("test", 2)):
        batch = {b"data": np.zeros((n, 3072), np.uint8), b"fine_labels": [99] * n, b"coarse_labels": [0] * n}
        py_dir.joinpath(name).write_bytes(pickle.dumps(batch))
    ds = load_dataset("cifar100", root=tmp_path)
    assert len(ds) == 5 and ds.num_classes == 100 and ds.official_test.sum() == 2


def test_svhn_layout(tmp_path: Path) -> None:
    import scipy.io

    folder = tmp_path / "svhn"
    folder.mkdir()
    for name, n in (("train_32x32.mat", 3), ("test_32x32.mat", 2)):
        scipy.io.savemat(folder / name, {"X": np.zeros((32, 32, 3, n), np.uint8), "y": np.full((n, 1), 10)})
    ds = load_dataset("svhn", root=tmp_path)
    assert len(ds) == 5 and set(ds.labels.tolist()) == {0} and ds.official_test.sum() == 2


def test_folder_and_npz_prefixes(tmp_path: Path) -> None:
    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        Image.new("L", (6, 6), 9).save(tmp_path / "imgs" / cls / "x.png")
    assert load_dataset(f"folder:{tmp_path / 'imgs'}", image_size=4).images.shape == (2, 4, 4, 1)
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 4, 4), np.uint8), y=np.array([0, 1, 1]))
    assert load_dataset(f"npz:{tmp_path / 'd.npz'}").num_classes == 2
    with pytest.raises(DataError, match="a path must follow"):
        load_dataset("npz:")


def test_gtsrb_layout_resizes_once(tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "gtsrb" / "GTSRB" / "Final_Training" / "Images" / "00003"
    folder.mkdir(parents=True)
    Image.new("RGB", (40, 30), (10, 20, 30)).save(folder / "00000_00000.ppm")  # no GT csv: folder = class
    ds = load_dataset("gtsrb", root=tmp_path, image_size=12)
    assert ds.images.shape == (1, 12, 12, 3) and ds.labels.tolist() == [3] and ds.official_test is None
    assert load_dataset("gtsrb", root=tmp_path).images.shape == (1, 32, 32, 3)

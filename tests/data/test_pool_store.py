"""Pool stores (issue 17, item 2): image folders decoded once into a uint8 file, read batch by batch.

A store equals the decoded folder, gives the same fingerprint and the same audit, is reused while the
files are unchanged and refused (one line, exit 2, nothing written) when they changed or it is damaged.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import mintaudit.workdir.data as workdir_data
from mintaudit.cli import main
from mintaudit.data import ImageDataset, load_dataset, read_image_folder, read_tiny_imagenet
from mintaudit.data import images as images_module
from mintaudit.data.store import DATA_FILE, MANIFEST_FILE, STORE_SCHEMA, FlippedView, PoolStore, hflip
from mintaudit.errors import CorruptFileError, DataError

SIZES = ["--members", "12", "--external", "12", "--test", "12"]


def make_folder(root: Path, n: int = 40, size: int = 8) -> Path:
    """``n`` random images in 3 classes: PNG and JPEG, grey ones first then colour (so channels widen)."""
    rng = np.random.default_rng(1)
    for i in range(n):
        d = root / f"class{i % 3}"
        d.mkdir(parents=True, exist_ok=True)
        shape = (size, size) if i % 5 == 0 else (size, size, 3)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(d / f"im{i:03d}.{'png' if i % 2 else 'jpg'}")
    return root


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_folder(tmp_path / "imgs")


def test_store_equals_the_decoded_folder(folder: Path, tmp_path: Path) -> None:
    memory = read_image_folder(folder)
    stored = read_image_folder(folder, store=tmp_path / "store")
    assert isinstance(stored.images, PoolStore) and stored.images.shape == memory.images.shape == (40, 8, 8, 3)
    assert stored.fingerprint() == memory.fingerprint()
    assert stored.images.reads == 0  # the fingerprint came from the manifest, not from reading the pool
    assert np.array_equal(np.asarray(stored.images), memory.images)
    assert np.array_equal(stored.labels, memory.labels) and stored.sources == memory.sources
    assert (stored.class_names, stored.num_classes, stored.name) == (memory.class_names, 3, memory.name)
    idx = np.array([7, 3, 3, 39, 0])
    assert np.array_equal(stored.batch(idx), memory.batch(idx))
    assert (tmp_path / "store" / DATA_FILE).stat().st_size == memory.images.nbytes  # no header, no padding
    manifest = json.loads((tmp_path / "store" / MANIFEST_FILE).read_text())
    assert manifest["schema"] == STORE_SCHEMA and manifest["shape"] == [40, 8, 8, 3] and len(manifest["files"]) == 40


def test_resized_and_grey_folders(tmp_path: Path) -> None:
    grey = tmp_path / "grey"
    for i in range(6):
        (grey / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((5 + i, 7), 20 * i, np.uint8)).save(grey / f"c{i % 2}" / f"{i}.png")
    with pytest.raises(DataError, match="images differ in size.*pass image_size"):
        read_image_folder(grey, store=tmp_path / "s0")
    assert not (tmp_path / "s0").exists()
    memory, stored = read_image_folder(grey, 6), read_image_folder(grey, 6, store=tmp_path / "s1")
    assert stored.images.shape == (6, 6, 6, 1) and np.array_equal(stored.images[:], memory.images)
    assert stored.fingerprint() == memory.fingerprint()


@pytest.mark.parametrize(
    "key",
    [
        5,
        -1,
        slice(2, 30, 3),
        slice(None),
        [9, 1, 1, 4],
        np.array([], np.int64),
        np.arange(40) % 2 == 0,
        (slice(None), slice(None), slice(None, None, -1)),
        (3, 2),
    ],
)
def test_store_indexes_like_an_array(folder: Path, tmp_path: Path, key) -> None:
    memory = read_image_folder(folder).images
    stored = read_image_folder(folder, store=tmp_path / "store").images
    got = stored[key]
    assert isinstance(got, np.ndarray) and got.dtype == np.uint8
    assert np.array_equal(got, memory[key])


def test_store_out_of_range(folder: Path, tmp_path: Path) -> None:
    stored = read_image_folder(folder, store=tmp_path / "store").images
    for key in (40, -41, [0, 40], np.array([0.5])):
        with pytest.raises(IndexError):
            stored[key]


def test_reading_never_materialises_the_pool(folder: Path, tmp_path: Path) -> None:
    ds = read_image_folder(folder, store=tmp_path / "store")
    store = ds.images
    assert not any(isinstance(v, np.ndarray) and v.size >= 40 * 8 * 8 for v in vars(store).values())
    for start in range(0, 40, 8):  # 40 rows in 5 batches of contiguous rows: one file read each
        ds.batch(np.arange(start, start + 8))
    assert store.reads == 5
    ds.batch(np.array([0, 1, 2, 10, 11, 30]))  # three runs of contiguous rows: three reads
    assert store.reads == 8


def test_lazy_flip(folder: Path, tmp_path: Path) -> None:
    memory = read_image_folder(folder)
    stored = read_image_folder(folder, store=tmp_path / "store")
    flipped = ImageDataset("f", hflip(stored.images), stored.labels, 3)
    assert isinstance(flipped.images, FlippedView) and stored.images.reads == 0  # nothing read yet
    expected = ImageDataset("f", np.ascontiguousarray(memory.images[:, :, ::-1]), memory.labels, 3)
    assert np.array_equal(flipped.images[[4, 2]], expected.images[[4, 2]])
    assert flipped.fingerprint() == expected.fingerprint()  # hashed batch by batch


def test_store_is_reused_through_the_registry(folder: Path, tmp_path: Path, monkeypatch) -> None:
    built = []
    real = images_module.write_store
    monkeypatch.setattr(images_module, "write_store", lambda *a, **k: built.append(1) or real(*a, **k))
    cache = tmp_path / "out" / "cache" / "pools"
    first = load_dataset(f"folder:{folder}", pool_cache=cache)
    (store,) = cache.iterdir()
    mtime = (store / DATA_FILE).stat().st_mtime_ns
    second = load_dataset(f"folder:{folder}", pool_cache=cache)
    assert built == [1] and (store / DATA_FILE).stat().st_mtime_ns == mtime
    assert second.fingerprint() == first.fingerprint() == read_image_folder(folder).fingerprint()
    load_dataset(f"folder:{folder}", pool_cache=cache, image_size=4)  # another size: another store
    assert built == [1, 1] and len(list(cache.iterdir())) == 2
    assert isinstance(load_dataset(f"folder:{folder}").images, np.ndarray)  # no cache: in memory as before


def test_tiny_imagenet_store(tmp_path: Path) -> None:
    base = tmp_path / "tiny-imagenet-200"
    rng = np.random.default_rng(0)
    wnids = ["n01", "n02"]
    (base / "val" / "images").mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    notes = []
    for i in range(8):
        w = wnids[i % 2]
        (base / "train" / w / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
            base / "train" / w / "images" / f"{i}.JPEG"
        )
        Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(base / "val" / "images" / f"v{i}.JPEG")
        notes.append(f"v{i}.JPEG\t{w}\t0\t0\t1\t1")
    (base / "val" / "val_annotations.txt").write_text("\n".join(notes) + "\n")
    memory, stored = read_tiny_imagenet(tmp_path), read_tiny_imagenet(tmp_path, store=tmp_path / "st")
    assert np.array_equal(stored.images[:], memory.images) and np.array_equal(
        stored.official_test, memory.official_test
    )
    assert stored.fingerprint() == memory.fingerprint()
    (base / "val" / "val_annotations.txt").write_text("\n".join(notes[::-1]) + "\n")  # the labels file changed
    with pytest.raises(DataError, match=r"0 files added, 0 removed, 1 modified"):
        read_tiny_imagenet(tmp_path, store=tmp_path / "st")


def test_not_a_store_folder_is_left_alone(folder: Path, tmp_path: Path) -> None:
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="holds no manifest.json; give an empty or new folder"):
        read_image_folder(folder, store=other)
    assert (other / "notes.txt").read_text() == "keep me"


def test_a_failed_build_leaves_nothing(folder: Path, tmp_path: Path) -> None:
    (folder / "class1" / "zz_broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(CorruptFileError, match="zz_broken.png: Pillow cannot decode"):
        read_image_folder(folder, store=tmp_path / "pools" / "s")
    assert list((tmp_path / "pools").iterdir()) == []  # neither the store nor its temporary


# --------------------------------------------------------------------------- the command line


def _splits(folder: Path, out: Path) -> list[str]:
    return ["splits", "--dataset", f"folder:{folder}", *SIZES, "--out", str(out), "--quiet"]


def _built(folder: Path, out: Path, capsys) -> Path:
    assert main(_splits(folder, out)) == 0
    capsys.readouterr()
    (store,) = (out / "cache" / "pools").iterdir()
    return store


def _add(folder: Path, store: Path) -> None:
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "class0" / "new.png")


def _remove(folder: Path, store: Path) -> None:
    next((folder / "class2").iterdir()).unlink()


def _modify(folder: Path, store: Path) -> None:
    path = next((folder / "class1").iterdir())
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))


def _truncate(folder: Path, store: Path) -> None:
    with open(store / DATA_FILE, "r+b") as f:
        f.truncate(100)


def _not_json(folder: Path, store: Path) -> None:
    (store / MANIFEST_FILE).write_text('{"schema": "mintaudit/pool-store@1", "shape": [40, 8')


def _wrong_schema(folder: Path, store: Path) -> None:
    manifest = json.loads((store / MANIFEST_FILE).read_text())
    (store / MANIFEST_FILE).write_text(json.dumps({**manifest, "schema": "mintaudit/pool-store@9"}))


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            _add,
            r"imgs changed since its pool store '.*' was built \(1 files added, 0 removed, 0 modified\); it is not "
            r"rebuilt silently, as a work directory's splits and models index the old pool: restore the files, or "
            r"delete the store folder to rebuild it",
        ),
        (_remove, r"\(0 files added, 1 removed, 0 modified\)"),
        (_modify, r"\(0 files added, 0 removed, 1 modified\)"),
        (
            _truncate,
            r"pool.u8' holds 100 bytes \(0 images\) but its manifest says 7680 \(40 images of 8x8x3\): it is "
            r"truncated; delete the folder '.*' to rebuild the store",
        ),
        (_not_json, r"manifest.json' is not valid JSON \(.*\); delete the folder"),
        (
            _wrong_schema,
            r"is not a mintaudit/pool-store@1 manifest with a shape \[N, H, W, C\] \(schema "
            r"'mintaudit/pool-store@9'\); delete the folder",
        ),
    ],
    ids=["added", "removed", "modified", "truncated", "not-json", "wrong-schema"],
)
def test_bad_store_is_refused(folder: Path, tmp_path: Path, capsys, refused, damage, message) -> None:
    out = tmp_path / "run"
    store = _built(folder, out, capsys)
    damage(folder, store)
    line = refused(_splits(folder, out))
    assert re.search(message, line), line


def test_undecodable_image_refused_with_nothing_written(folder: Path, tmp_path: Path, refused) -> None:
    (folder / "class0" / "bad.jpg").write_bytes(b"\xff\xd8 truncated")
    line = refused(_splits(folder, tmp_path / "run"))
    assert "bad.jpg: Pillow cannot decode this image" in line


def test_sweep_same_with_store_and_in_memory(tmp_path: Path, capsys, monkeypatch) -> None:
    folder = make_folder(tmp_path / "imgs", n=80)  # a sweep needs 20 a side (mintaudit.sizes)
    sizes = ["--members", "40", "--external", "20", "--test", "20"]

    def sweep(out: Path) -> list[dict]:
        data = ["--dataset", f"folder:{folder}", *sizes, "--out", str(out), "--quiet"]
        assert main(["train", *data, "--model", "tiny-cnn", "--epochs", "1"]) == 0, capsys.readouterr().err
        assert main(["sweep", *data, "--mint-epochs", "1", "--bootstrap", "10", "--allow-weak-model"]) == 0, (
            capsys.readouterr().err
        )
        return [untimed(row) for row in json.loads((out / "report.json").read_text())["results"]]

    def untimed(row: object) -> object:
        return {k: untimed(v) for k, v in row.items() if k != "seconds"} if isinstance(row, dict) else row

    stored = sweep(tmp_path / "stored")
    assert (tmp_path / "stored" / "cache" / "pools").is_dir()
    monkeypatch.setattr(workdir_data, "pool_cache", lambda out_dir: None)
    memory = sweep(tmp_path / "memory")
    assert not (tmp_path / "memory" / "cache" / "pools").exists()
    assert stored == memory and len(stored) >= 2

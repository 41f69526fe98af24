"""Member / external / test splits: seeded, disjoint, saved, and refused when they cannot be trusted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mintaudit.data import ImageDataset, Splits, make_splits
from mintaudit.errors import CorruptFileError, DataNotFoundError, SplitError


def toy(n: int = 100, n_test: int | None = None, seed: int = 0) -> ImageDataset:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 4, 4, 1), dtype=np.uint8)
    official = None if n_test is None else np.arange(n) >= n - n_test
    return ImageDataset("toy", images, rng.integers(0, 3, size=n), 3, official_test=official)


def as_sets(s: Splits) -> list[set[int]]:
    return [set(s.members.tolist()), set(s.external.tolist()), set(s.test.tolist())]


def test_reproducible_and_seed_dependent() -> None:
    ds = toy()
    a, b = (make_splits(ds, members=30, external=20, test=10, seed=3) for _ in range(2))
    c = make_splits(ds, members=30, external=20, test=10, seed=4)
    for name in ("members", "external", "test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    assert not np.array_equal(a.members, c.members)
    assert a.sizes == {"members": 30, "external": 20, "test": 10}
    assert a.members.dtype == np.int64 and a.seed == 3 and a.data_fingerprint == ds.fingerprint()


def test_disjoint_and_in_range() -> None:
    s = make_splits(toy(), members=40, external=30, test=30, seed=0)  # uses the whole pool
    members, external, test = as_sets(s)
    assert len(members) == 40 and not (members & external or members & test or external & test)
    assert members | external | test == set(range(100))


def test_official_test_respected() -> None:
    ds = toy(100, n_test=20)
    s = make_splits(ds, members=50, external=30, test=20, seed=1)
    assert not ds.official_test[s.members].any() and not ds.official_test[s.external].any()
    assert ds.official_test[s.test].all()
    with pytest.raises(SplitError) as info:
        make_splits(ds, members=50, external=31, test=5)
    assert "80 official training samples" in str(info.value) and "external=31" in str(info.value)
    with pytest.raises(SplitError, match="20 official test samples"):
        make_splits(ds, members=5, external=5, test=21)


def test_too_large_and_empty_refused() -> None:
    with pytest.raises(SplitError) as info:
        make_splits(toy(50), members=30, external=20, test=1)
    assert "50 samples" in str(info.value) and "needs 51" in str(info.value)
    for sizes in ({"members": 0, "external": 1, "test": 1}, {"members": 1, "external": -2, "test": 1}):
        with pytest.raises(SplitError, match="empty split"):
            make_splits(toy(), **sizes)
    with pytest.raises(SplitError, match="integer"):
        make_splits(toy(), members=2.5, external=1, test=1)  # type: ignore[arg-type]


def test_save_load_round_trip(tmp_path: Path) -> None:
    ds = toy()
    s = make_splits(ds, members=10, external=10, test=10, seed=7)
    path = s.save(tmp_path / "out" / "splits.json")
    doc = json.loads(path.read_text())
    assert doc["schema"] == "mintaudit/splits@1" and doc["sizes"]["test"] == 10 and doc["seed"] == 7
    loaded = Splits.load(path, ds)
    assert loaded.fingerprint() == s.fingerprint() and loaded.dataset == "toy"
    np.testing.assert_array_equal(loaded.members, s.members)  # order kept
    assert not loaded.members.flags.writeable


def test_fingerprint_mismatch_refused(tmp_path: Path) -> None:
    s = make_splits(toy(seed=0), members=10, external=10, test=10)
    path = s.save(tmp_path / "splits.json")
    with pytest.raises(SplitError, match="rebuild the splits"):
        Splits.load(path, toy(seed=1))
    with pytest.raises(SplitError, match="fingerprint"):
        s.validate(toy(seed=1))


def test_overlapping_file_refused(tmp_path: Path) -> None:
    path = make_splits(toy(), members=10, external=10, test=10).save(tmp_path / "splits.json")
    doc = json.loads(path.read_text())
    doc["test"][:3] = doc["members"][:3]
    path.write_text(json.dumps(doc))
    with pytest.raises(SplitError, match="members and test share 3 samples: an audit on leaked"):
        Splits.load(path)


@pytest.mark.parametrize(
    ("edit", "error", "match"),
    [
        (lambda d: d.update(members=[1, 1, 2]), SplitError, "repeats 1"),
        (lambda d: d.update(external=[]), SplitError, "empty"),
        (lambda d: d.update(test=[10**6]), SplitError, r"\[0, 100\)"),
        (lambda d: d.update(schema="other@9"), CorruptFileError, "schema"),
        (lambda d: d.pop("seed"), CorruptFileError, "'seed'"),
        (lambda d: d.update(members=[1.5, 2]), CorruptFileError, "integer indices"),
        (
            lambda d: d["members"].append(min(set(range(100)) - set(d["members"] + d["external"] + d["test"]))),
            CorruptFileError,
            "stored sizes",
        ),
        (lambda d: d.update(seed=d["seed"] + 1), CorruptFileError, "stored fingerprint"),
    ],
)
def test_malformed_file_refused(tmp_path: Path, edit, error: type[Exception], match: str) -> None:  # noqa: ANN001
    ds = toy()
    path = make_splits(ds, members=10, external=10, test=10).save(tmp_path / "splits.json")
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(error, match=match):
        Splits.load(path, ds)


def test_unreadable_or_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError):
        Splits.load(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CorruptFileError, match="not a JSON"):
        Splits.load(bad)

"""Seeded member / external / test splits of a data set pool, saved and checked as JSON.

``members`` are the samples the audited model trains on, ``external`` are non-members from the
same distribution (used to fit the MINT detector beside members), and ``test`` are non-members
held back for the final evaluation. The three are disjoint index sets into the data set pool.
:class:`PassiveSplit` is the four roles of an audit drawn from them (known and held-out members).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mintaudit._io import atomic_write_json
from mintaudit.data._base import ImageDataset
from mintaudit.errors import ConfigError, CorruptFileError, DataNotFoundError, SplitError

__all__ = ["SPLITS_SCHEMA", "SPLIT_NAMES", "PassiveSplit", "Splits", "make_splits", "null_split", "passive_split"]

SPLITS_SCHEMA = "mintaudit/splits@1"
SPLIT_NAMES: tuple[str, str, str] = ("members", "external", "test")
_REBUILD = (
    "rebuild the splits: delete this splits file (the CLI makes OUT/splits.json again, with --members, "
    "--external, --test) or call make_splits() in Python"
)


def _index_array(value: Any, name: str) -> np.ndarray:
    """A read-only int64 (N,) copy of ``value``; SplitError for anything not 1-D integers."""
    array = np.asarray(value)
    if array.ndim != 1 or not (np.issubdtype(array.dtype, np.integer) or array.size == 0):
        raise SplitError(f"split {name!r} must be a 1-D array of integer indices, got {array.dtype} {array.shape}")
    array = array.astype(np.int64)  # always a copy, so the caller's array cannot change it later
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class Splits:
    """Three disjoint index sets into a data set pool, tied to that data set by its fingerprint.

    Indices are kept in the seeded random order they were drawn in, so the first ``k`` of any
    split are a uniform random subset of it.

    Attributes:
        dataset: name of the data set the splits were made for.
        data_fingerprint: ``ImageDataset.fingerprint()`` of that data set.
        seed: seed of ``numpy.random.default_rng`` that drew them.
        members: int64 (n_members,) indices of training members.
        external: int64 (n_external,) indices of non-members used for fitting detectors.
        test: int64 (n_test,) indices of held-out non-members.

    Example:
        >>> from mintaudit.data import load_dataset
        >>> splits = make_splits(load_dataset("digits"), members=500, external=500, test=500, seed=0)
        >>> splits.sizes
        {'members': 500, 'external': 500, 'test': 500}
    """

    dataset: str
    data_fingerprint: str
    seed: int
    members: np.ndarray
    external: np.ndarray
    test: np.ndarray

    def __post_init__(self) -> None:
        for name in SPLIT_NAMES:
            object.__setattr__(self, name, _index_array(getattr(self, name), name))

    @property
    def sizes(self) -> dict[str, int]:
        """Number of samples per split: ``{"members": ..., "external": ..., "test": ...}``."""
        return {name: len(getattr(self, name)) for name in SPLIT_NAMES}

    def fingerprint(self) -> str:
        """SHA-256 (16 hex digits) of the three index arrays, the seed and the data fingerprint."""
        h = hashlib.sha256()
        h.update(f"{self.seed}|{self.data_fingerprint}".encode())
        for name in SPLIT_NAMES:
            array = getattr(self, name)
            h.update(f"|{name}:{len(array)}|".encode())
            h.update(np.ascontiguousarray(array, dtype="<i8").tobytes())
        return h.hexdigest()[:16]

    def validate(self, dataset: ImageDataset | None = None) -> Splits:
        """Check the splits, and that they belong to ``dataset`` when it is given.

        Checks: no empty split, indices >= 0 (and < len(dataset)), no duplicates within a
        split, the three pairwise disjoint, and the data fingerprint.

        Returns:
            self, so that calls chain.

        Raises:
            SplitError: the first failed check, with how to fix it.
        """
        for name in SPLIT_NAMES:
            array = getattr(self, name)
            if array.size == 0:
                raise SplitError(f"split {name!r} is empty: an audit needs samples on each side; {_REBUILD}")
            if array.min() < 0 or (dataset is not None and array.max() >= len(dataset)):
                bound = f"[0, {len(dataset)})" if dataset is not None else ">= 0"
                raise SplitError(
                    f"split {name!r} holds indices in [{array.min()}, {array.max()}], expected {bound}; {_REBUILD}"
                )
            duplicates = len(array) - len(np.unique(array))
            if duplicates:
                raise SplitError(f"split {name!r} repeats {duplicates} indices; {_REBUILD}")
        for i, first in enumerate(SPLIT_NAMES):
            for second in SPLIT_NAMES[i + 1 :]:
                shared = len(np.intersect1d(getattr(self, first), getattr(self, second)))
                if shared:
                    raise SplitError(
                        f"{first} and {second} share {shared} samples: an audit on leaked membership labels "
                        f"is invalid; {_REBUILD}"
                    )
        if dataset is not None and dataset.fingerprint() != self.data_fingerprint:
            raise SplitError(
                f"the splits were made for data {self.dataset!r} with fingerprint {self.data_fingerprint}, "
                f"but data set {dataset.name!r} has fingerprint {dataset.fingerprint()} (other files, "
                f"image size or version); {_REBUILD}"
            )
        return self

    def save(self, path: str | Path) -> Path:
        """Write the splits atomically as JSON (schema ``mintaudit/splits@1``) and return the path."""
        return atomic_write_json(
            path,
            {
                "schema": SPLITS_SCHEMA,
                "dataset": self.dataset,
                "data_fingerprint": self.data_fingerprint,
                "seed": self.seed,
                "sizes": self.sizes,
                "fingerprint": self.fingerprint(),
                **{name: getattr(self, name).tolist() for name in SPLIT_NAMES},
            },
        )

    @classmethod
    def load(cls, path: str | Path, dataset: ImageDataset | None = None) -> Splits:
        """Read splits written by :meth:`save` and validate them (against ``dataset`` if given).

        Raises:
            DataNotFoundError: no such file.
            CorruptFileError: not JSON, another schema, missing or ill-typed fields, or index
                lists that no longer match the stored sizes / fingerprint (edited by hand).
            SplitError: the splits fail :meth:`validate`.
        """
        path = Path(path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataNotFoundError(
                f"splits file {path} does not exist; check the path, or draw new splits (CLI: leave --splits out "
                "and OUT/splits.json is made; Python: make_splits(...).save(path))"
            ) from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptFileError(f"{path}: not a JSON splits file ({exc}); {_REBUILD}") from None
        if not isinstance(doc, dict) or doc.get("schema") != SPLITS_SCHEMA:
            found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
            raise CorruptFileError(f"{path}: expected schema {SPLITS_SCHEMA!r}, got {found!r}; {_REBUILD}")
        fields = {"dataset": str, "data_fingerprint": str, "seed": int, **{n: list for n in SPLIT_NAMES}}
        for key, kind in fields.items():
            value = doc.get(key)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise CorruptFileError(
                    f"{path}: field {key!r} must be a {kind.__name__}, got {type(value).__name__}; {_REBUILD}"
                )
            if kind is list and not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                raise CorruptFileError(f"{path}: field {key!r} must hold integer indices only; {_REBUILD}")
        splits = cls(**{key: doc[key] for key in fields})
        splits.validate(dataset)
        if "sizes" in doc and doc["sizes"] != splits.sizes:
            raise CorruptFileError(
                f"{path}: stored sizes {doc['sizes']} do not match the index lists {splits.sizes} (edited by "
                "hand?); fix or delete the 'sizes' field, or rebuild the splits"
            )
        if "fingerprint" in doc and doc["fingerprint"] != splits.fingerprint():
            raise CorruptFileError(
                f"{path}: stored fingerprint {doc['fingerprint']} does not match the index lists "
                f"({splits.fingerprint()}; edited by hand?); delete the 'fingerprint' field to accept the "
                "edit, or rebuild the splits"
            )
        return splits


def _check_count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise SplitError(
            f"{name} must be an integer number of samples, got {value!r}; e.g. --{name} 1000 ({name}=1000 in Python)"
        )
    if value <= 0:
        raise SplitError(
            f"empty split: {name} must be > 0, got {value}; ask for at least one sample per split "
            f"(--{name} N, or {name}=N in Python)"
        )
    return int(value)


def make_splits(dataset: ImageDataset, *, members: int, external: int, test: int, seed: int = 0) -> Splits:
    """Draw disjoint member / external / test index sets from a data set pool.

    With an official test split, members and external come from one seeded permutation of the
    official training part and test from a permutation of the official test part; otherwise
    all three are drawn disjointly from one permutation of the whole pool.

    Args:
        dataset: the data set whose pool is indexed.
        members: number of member (training) samples, > 0.
        external: number of external non-members, > 0.
        test: number of held-out test non-members, > 0.
        seed: seed of ``numpy.random.default_rng``; the same seed gives the same splits.

    Returns:
        Validated Splits, int64 indices in random order.

    Raises:
        SplitError: a size <= 0, or more samples asked than available (the message says how many).

    Example:
        >>> from mintaudit.data import load_dataset
        >>> s = make_splits(load_dataset("digits"), members=100, external=100, test=100, seed=1)
        >>> len(set(s.members) & set(s.test))
        0
    """
    m, e, t = (_check_count(v, n) for v, n in ((members, "members"), (external, "external"), (test, "test")))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SplitError(f"seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng(int(seed))
    asked = f"members={m}, external={e}, test={t}"
    if dataset.official_test is not None:
        train_pool = np.flatnonzero(~dataset.official_test)
        test_pool = np.flatnonzero(dataset.official_test)
        if m + e > len(train_pool) or t > len(test_pool):
            raise SplitError(
                f"data set {dataset.name!r} has {len(train_pool)} official training samples (for members + "
                f"external = {m + e}) and {len(test_pool)} official test samples (for test = {t}); asked "
                f"{asked}: ask for fewer (--members, --external, --test)"
            )
        order = rng.permutation(train_pool)
        drawn = (order[:m], order[m : m + e], rng.permutation(test_pool)[:t])
    else:
        if m + e + t > len(dataset):
            raise SplitError(
                f"data set {dataset.name!r} has {len(dataset)} samples but {asked} needs {m + e + t}; "
                "ask for fewer (--members, --external, --test)"
            )
        order = rng.permutation(len(dataset))
        drawn = (order[:m], order[m : m + e], order[m + e : m + e + t])
    splits = Splits(dataset.name, dataset.fingerprint(), int(seed), *drawn)
    return splits.validate(dataset)


@dataclass(frozen=True)
class PassiveSplit:
    """Pool indices of the four roles in a passive audit."""

    known_members: np.ndarray
    heldout_members: np.ndarray
    external: np.ndarray
    test: np.ndarray

    def all_indices(self) -> np.ndarray:
        return np.concatenate([self.known_members, self.heldout_members, self.external, self.test])


def passive_split(splits: Splits, *, known_fraction: float = 0.5, seed: int = 0) -> PassiveSplit:
    """Split the members into known (MINT training) and held-out (evaluation) members, seeded."""
    if not 0.0 < known_fraction < 1.0:
        raise ConfigError(f"known_fraction must lie in (0, 1), got {known_fraction}")
    members = np.random.default_rng(seed).permutation(splits.members)
    k = int(round(known_fraction * len(members)))
    if k == 0 or k == len(members):
        raise ConfigError(f"{len(members)} members cannot be split into known and held-out parts; use more members")
    return PassiveSplit(np.sort(members[:k]), np.sort(members[k:]), splits.external, splits.test)


def null_split(splits: Splits, *, fraction: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split the non-member test samples into the null reference and the ``test`` query pool.

    Args:
        splits: the work directory's splits.
        fraction: the share of the test split that forms the null reference.
        seed: the draw is ``numpy.random.default_rng([seed, 1])``: fixed for a work directory.

    Returns:
        (null, test_pool): sorted int64 pool indices, disjoint, together the test split.
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"the null reference's fraction of the test split must lie in (0, 1); given {fraction}")
    test = np.random.default_rng([seed, 1]).permutation(splits.test)
    k = int(round(fraction * len(test)))
    if k == 0 or k == len(test):
        raise ConfigError(
            f"{len(test)} test samples cannot be split into a null reference and a query pool; use more --test samples"
        )
    return np.sort(test[:k]), np.sort(test[k:])

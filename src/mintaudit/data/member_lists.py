"""Member lists from files: the samples a model was trained on, as the user knows them.

A list file names one sample per line: a pool index (an integer in ``[0, N)``), or, for image
folders (``folder:PATH``), a path relative to the folder (``shirt/001.png``). Blank lines and
lines starting with ``#`` are skipped; a UTF-8 byte-order mark is dropped; every other line is
used or refused, naming its number. The pool order of each data set is documented in
``docs/howto/data.md`` (for Fashion-MNIST: the 60,000 training images, then the 10,000 test images).

:func:`splits_with` makes :class:`~mintaudit.data.splits.Splits` where some roles come from
such lists and the others are drawn, seeded, from the rest of the pool.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

import numpy as np

from mintaudit.data._base import ImageDataset
from mintaudit.data.splits import SPLIT_NAMES, Splits
from mintaudit.errors import DataNotFoundError, SplitError

__all__ = ["read_sample_list", "splits_with"]

_MAX_LINES = 100_000_000
_INDEX = re.compile(r"[0-9]{1,19}\Z")  # ASCII digits: "²" is a digit to str.isdigit, not an index


def _folder_key(entry: str) -> str | None:
    """A folder-relative path in the form ``ImageDataset.sources`` holds, or None when it leaves the folder."""
    p = PurePosixPath(entry.replace(os.sep, "/"))
    if p.is_absolute() or any(part == ".." for part in p.parts):
        return None
    return str(p)


def read_sample_list(path: str | Path, dataset: ImageDataset, *, role: str = "members") -> np.ndarray:
    """Read a file of pool indices (or folder-relative paths) into int64 pool indices, in file order.

    Args:
        path: a text file, one sample per line.
        dataset: the pool the entries index (its ``sources`` for image folders).
        role: the split the list is for (named in errors: members, external or test).

    Raises:
        DataNotFoundError: no such file.
        SplitError: an empty list, a duplicate, an index out of range, a non-integer entry, or a path
            not under the folder root / not in the folder; the line number is named.
    """
    path = Path(path)
    option = f"--{role}-file"
    if not path.is_file():
        raise DataNotFoundError(
            f"{option} {str(path)!r} does not exist or is not a file; give a text file with one pool index per line"
        )
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not part of the first line
    except (OSError, UnicodeDecodeError) as e:
        raise SplitError(
            f"{option} {str(path)!r} cannot be read as UTF-8 text ({e}); give one pool index per line"
        ) from e
    n = len(dataset)
    by_source = {s: i for i, s in enumerate(dataset.sources)} if dataset.sources is not None else None
    out: list[int] = []
    seen: dict[int, int] = {}
    for lineno, raw in enumerate(text.splitlines()[:_MAX_LINES], start=1):
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        where = f"{option} {str(path)!r} line {lineno}"
        if _INDEX.match(entry.removeprefix("-")):
            index = int(entry)
            if not 0 <= index < n:
                raise SplitError(
                    f"{where}: index {index} is outside the pool [0, {n}) of {dataset.name!r}; "
                    "indices count from 0 in the pool order docs/howto/data.md documents"
                )
        elif by_source is not None:
            key = _folder_key(entry)
            if key is None:
                raise SplitError(
                    f"{where}: {entry!r} is not under the folder root; give paths relative to the folder "
                    "(class/file.png)"
                )
            if key not in by_source:
                raise SplitError(
                    f"{where}: {entry!r} is not an image of {dataset.name!r}; give paths relative to the "
                    "folder, as 'class/file.png'"
                )
            index = by_source[key]
        else:
            raise SplitError(
                f"{where}: {entry[:40]!r} is not a pool index (an integer in [0, {n})); one index per line"
            )
        if index in seen:
            raise SplitError(
                f"{where}: sample {index} is listed twice (first on line {seen[index]}); list each sample once"
            )
        seen[index] = lineno
        out.append(index)
    if not out:
        raise SplitError(f"{option} {str(path)!r} lists no samples; give one pool index per line")
    return np.asarray(out, dtype=np.int64)


def splits_with(
    dataset: ImageDataset,
    given: dict[str, np.ndarray],
    sizes: dict[str, int | None],
    defaults: tuple[int, int, int],
    *,
    seed: int = 0,
) -> Splits:
    """Splits whose ``given`` roles are fixed and whose other roles are drawn, seeded, from the rest of the pool.

    Drawn test samples come from the official test part where the data set has one, drawn
    members and external samples from the official training part; given lists may index any part.

    Args:
        dataset: the pool.
        given: role -> pool indices (from :func:`read_sample_list`).
        sizes: role -> asked size for a drawn role (None: the default, capped by what is left).
        defaults: the default (members, external, test) sizes.
        seed: seed of the draw.

    Raises:
        SplitError: two given lists share samples, a size given beside a list disagrees with it, or
            too few samples are left for a drawn role.
    """
    names = list(SPLIT_NAMES)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if a in given and b in given:
                both = np.intersect1d(given[a], given[b])
                if len(both):
                    raise SplitError(
                        f"--{a}-file and --{b}-file share {len(both)} samples (e.g. index {int(both[0])}); "
                        "a sample has one role"
                    )
    for role, idx in given.items():
        if sizes.get(role) is not None and sizes[role] != len(idx):
            raise SplitError(f"--{role} {sizes[role]} disagrees with --{role}-file ({len(idx)} samples); drop --{role}")
    used = np.concatenate([given[r] for r in given]) if given else np.zeros(0, np.int64)
    free = np.ones(len(dataset), dtype=bool)
    free[used] = False
    official = dataset.official_test if dataset.official_test is not None else None
    rng = np.random.default_rng(int(seed))
    out: dict[str, np.ndarray] = {}
    for k, role in enumerate(names):
        if role in given:
            out[role] = given[role]
            continue
        if official is not None and official.any() and not official.all():
            pool = np.flatnonzero(free & (official if role == "test" else ~official))
        else:
            pool = np.flatnonzero(free)
        want = sizes.get(role)
        n = min(defaults[k], len(pool)) if want is None else want
        if n <= 0 or n > len(pool):
            raise SplitError(
                f"{role}: {len(pool)} samples of {dataset.name!r} are left for it after the given lists, "
                f"{'none' if n <= 0 else n} asked; ask for fewer with --{role}, or give --{role}-file"
            )
        out[role] = rng.permutation(pool)[:n]
        free[out[role]] = False
    splits = Splits(dataset.name, dataset.fingerprint(), int(seed), out["members"], out["external"], out["test"])
    return splits.validate(dataset)

"""The work directory's data: the pool read as the audited model's view, and the splits (made, reused, or from member lists)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mintaudit.data import ImageDataset, Splits, load_dataset, make_splits
from mintaudit.data import read_sample_list, splits_with
from mintaudit.errors import ConfigError, DataNotFoundError
from mintaudit.preprocess import DEFAULT_PREPROCESS, Preprocess


__all__ = ["default_sizes", "pool_cache", "prepare_data", "describe_splits"]


_DEFAULT_CAP = 5000


def default_sizes(ds: ImageDataset) -> tuple[int, int, int]:
    """Default (members, external, test) sizes: up to 5,000 each, fitted to the data set.

    With an official test split, members and external share the training part (55% / 45%)
    and the test side comes from the official test part; otherwise the pool is shared
    40% / 30% / 30%.
    """
    if ds.official_test is not None and ds.official_test.any() and not ds.official_test.all():
        n_train, n_test = int((~ds.official_test).sum()), int(ds.official_test.sum())
        return min(_DEFAULT_CAP, int(0.55 * n_train)), min(_DEFAULT_CAP, int(0.45 * n_train)), min(_DEFAULT_CAP, n_test)
    n = len(ds)
    return min(_DEFAULT_CAP, int(0.4 * n)), min(_DEFAULT_CAP, int(0.3 * n)), min(_DEFAULT_CAP, int(0.3 * n))


def prepare_data(
    dataset: str,
    out_dir: str | Path,
    *,
    data_root: str | None = None,
    image_size: int | None = None,
    members: int | None = None,
    external: int | None = None,
    test: int | None = None,
    seed: int = 0,
    splits_path: str | Path | None = None,
    preprocess: Preprocess | None = None,
    members_file: str | Path | None = None,
    external_file: str | Path | None = None,
    test_file: str | Path | None = None,
) -> tuple[ImageDataset, Splits]:
    """Load a data set and the work directory's splits, making and saving them when missing.

    An existing ``splits.json`` (or ``splits_path``) is reused after its fingerprint is
    checked against the data; sizes given with an existing file must agree with it. Only the
    default ``out_dir/splits.json`` is made when missing: a given ``splits_path`` must exist.
    Roles given as list files (``members_file`` ...: one pool index, or folder-relative path,
    per line) are fixed; the others are drawn, seeded, from the rest of the pool.

    The data set comes back as the audited model's view: read through ``preprocess``, else the
    one recorded with the model trained in ``out_dir``, else the default (mean 0.5 / std 0.5).
    Image folders, GTSRB and Tiny ImageNet are decoded once into a pool store under
    ``out_dir/cache/pools/`` (:func:`pool_cache`) and read from it batch by batch.
    """
    ds = load_dataset(dataset, root=data_root, image_size=image_size, pool_cache=pool_cache(out_dir))
    ds = ds.with_preprocess(preprocess or _recorded_preprocess(out_dir))
    files = {"members": members_file, "external": external_file, "test": test_file}
    given = {role: read_sample_list(f, ds, role=role) for role, f in files.items() if f is not None}
    path = Path(splits_path) if splits_path else Path(out_dir) / "splits.json"
    if splits_path and not path.is_file():
        if path.is_dir():
            raise ConfigError(
                f"--splits {str(path)!r} is a folder; give the splits.json file inside it, or drop "
                "--splits to use (or make) OUT/splits.json"
            )
        raise DataNotFoundError(
            f"--splits {str(path)!r} does not exist; give the path of an existing splits.json, or "
            "drop --splits to use (or make) OUT/splits.json"
        )
    if path.is_file():
        splits = Splits.load(path, dataset=ds)
        for role, idx in given.items():
            if not np.array_equal(np.sort(idx), np.sort(getattr(splits, role))):
                raise ConfigError(
                    f"{str(path)!r} holds other {role} than --{role}-file lists; use another --out, or "
                    "delete splits.json to re-split"
                )
        asked = {"members": members, "external": external, "test": test}
        have = {"members": len(splits.members), "external": len(splits.external), "test": len(splits.test)}
        clash = {k: (v, have[k]) for k, v in asked.items() if v is not None and v != have[k]}
        if clash:
            k, (v, h) = next(iter(clash.items()))
            raise ConfigError(
                f"{str(path)!r} already holds {h} {k} samples but --{k} {v} was given; "
                "use another --out or delete splits.json to re-split"
            )
        return ds, splits
    d = default_sizes(ds)
    if given:
        splits = splits_with(ds, given, {"members": members, "external": external, "test": test}, d, seed=seed)
        splits.save(path)
        return ds, splits
    splits = make_splits(
        ds,
        members=d[0] if members is None else members,
        external=d[1] if external is None else external,
        test=d[2] if test is None else test,
        seed=seed,
    )
    splits.save(path)
    return ds, splits


def pool_cache(out_dir: str | Path) -> Path | None:
    """Where the work directory ``out_dir`` keeps its pool stores: ``out_dir/cache/pools``."""
    return Path(out_dir) / "cache" / "pools"


def _recorded_preprocess(out_dir: str | Path) -> Preprocess:
    """The preprocessing recorded with the model trained in ``out_dir`` (the default when there is none)."""
    path = Path(out_dir) / "model" / "model.json"
    if path.is_file():
        try:
            return Preprocess.from_dict(json.loads(path.read_text()).get("preprocess"))
        except (ValueError, AttributeError):
            pass  # a malformed model.json is reported by whoever loads the model
    return DEFAULT_PREPROCESS


def describe_splits(ds: ImageDataset, splits: Splits) -> str:
    """A table of the splits: size and per-class counts of each role (what ``mintaudit splits`` prints)."""
    k = ds.num_classes
    names = list(ds.class_names) if ds.class_names else [str(c) for c in range(k)]
    width = max(8, *(len(n) for n in names[:50]))
    lines = [
        f"{ds.name}: pool of {len(ds)} samples, {k} classes, seed {splits.seed}",
        f"{'class':<{width}} {'members':>8} {'external':>8} {'test':>8}",
    ]
    counts = {
        role: np.bincount(ds.labels[getattr(splits, role)], minlength=k) for role in ("members", "external", "test")
    }
    for c in range(k):
        lines.append(f"{names[c]:<{width}} {counts['members'][c]:>8} {counts['external'][c]:>8} {counts['test'][c]:>8}")
    lines.append(f"{'total':<{width}} {len(splits.members):>8} {len(splits.external):>8} {len(splits.test):>8}")
    return "\n".join(lines)

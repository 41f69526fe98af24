"""What ``mintaudit test --query`` names, read exactly like the audited data.

A query is a split role (``heldout-members``, ``test``), a file of pool indices, or new samples
(``npz:PATH``, ``folder:PATH``). New samples go through the audited view's preprocessing (mean,
std, grey-to-RGB: the one the null reference is read with), and class folders are matched with
the pool's classes **by name**, never by sorted position: a query folder missing a class keeps
every other label right. Index files are read line by line: a UTF-8 byte-order mark is dropped,
a header is taken only when declared (``header=True``), and every other line is an index or a
one-line refusal naming the line.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mintaudit.data import ImageDataset, load_dataset
from mintaudit.errors import ConfigError, CorruptFileError, SplitError

__all__ = ["QUERY_ROLES", "load_query_samples", "read_query_indices", "resolve_query"]

QUERY_ROLES = ("heldout-members", "test")
"""Split roles ``verdict`` accepts as ``query`` (besides files of indices and new data sets)."""

_INDEX = re.compile(r"-?[0-9]+\Z")  # ASCII digits only: "²" or "١" are digits to str.isdigit, not to a pool


def resolve_query(
    query: str, ds: ImageDataset, split: Any, test_pool: np.ndarray, *, header: bool = False
) -> tuple[ImageDataset, np.ndarray, dict[str, Any]]:
    """(the data set the query lives in, its sample ids there, a description) of ``--query``.

    ``ds`` is the audited view (its preprocessing is the model's); ``header``: the first line of
    an index file is a header (``--query-header``).
    """
    if query == "heldout-members":
        return (
            ds,
            split.heldout_members,
            {
                "source": "heldout-members",
                "kind": "split",
                "truth": "members",
                "description": "training members the MINT model never saw; a positive control",
            },
        )
    if query == "test":
        return (
            ds,
            test_pool,
            {
                "source": "test",
                "kind": "split",
                "truth": "non-members",
                "description": "non-member test samples outside the null reference; a negative control",
            },
        )
    if query.lower().startswith(("npz:", "folder:")):
        if header:
            raise ConfigError("--query-header applies to a file of pool indices; drop it for npz:/folder: queries")
        q_ds = load_query_samples(query, ds)
        return (
            q_ds,
            np.arange(len(q_ds), dtype=np.int64),
            {"source": query, "kind": "dataset", "truth": None, "description": "new samples (sample_id = their row)"},
        )
    path = Path(query)
    if not path.is_file():
        raise ConfigError(
            f"--query {query!r} is neither a split role ({', '.join(QUERY_ROLES)}), nor a file of pool "
            "indices (.txt/.csv one per line, .npy), nor new samples (npz:PATH, folder:PATH)"
        )
    return (
        ds,
        read_query_indices(path, len(ds), header=header),
        {"source": str(path), "kind": "indices", "truth": None, "description": "pool indices from a file"},
    )


def load_query_samples(query: str, ds: ImageDataset) -> ImageDataset:
    """New samples (``npz:`` / ``folder:``) as the audited view ``ds`` reads its own pool.

    The result has ``ds``'s preprocessing, class count and class names; folder classes are mapped
    by name (a class folder the pool does not have is refused; a missing one is fine).

    Raises:
        ConfigError: images of another size or channel count than the pool, labels outside its
            classes, or class folders the pool does not have.
    """
    raw = load_dataset(query)
    _, h, w, c = (int(v) for v in raw.images.shape)
    _, ph, pw, pc = (int(v) for v in ds.images.shape)
    if (h, w, c) != (ph, pw, pc):
        raise ConfigError(
            f"--query {query!r} holds {h}x{w} images with {c} channel(s); the audited pool {ds.name!r} holds "
            f"{ph}x{pw} images with {pc} channel(s) (read by the model through its own preprocessing): give "
            "samples of the same kind"
        )
    labels = raw.labels
    if query.lower().startswith("folder:"):
        labels = _labels_by_name(query, raw, ds)
    elif raw.num_classes > ds.num_classes:
        raise ConfigError(
            f"--query {query!r} has labels up to {raw.num_classes - 1}; the audited data has {ds.num_classes} "
            f"classes (labels 0 to {ds.num_classes - 1}): give labels in the audited data's class order"
        )
    return replace(
        raw,
        labels=labels,
        num_classes=ds.num_classes,
        class_names=ds.class_names,
        preprocess=ds.preprocess,
    )


def _labels_by_name(query: str, raw: ImageDataset, ds: ImageDataset) -> np.ndarray:
    """The query folder's labels in the pool's class numbering, matched by class-folder name."""
    names = list(raw.class_names or ())
    if ds.class_names is not None:
        pool = {n: k for k, n in enumerate(ds.class_names)}
        what = f"the classes of {ds.name!r}"
    else:  # a pool without names (an npz): class folders must be named by the label number
        pool = {str(k): k for k in range(ds.num_classes)}
        what = f"the labels 0 to {ds.num_classes - 1} of {ds.name!r} (it has no class names)"
    unknown = [n for n in names if n not in pool]
    if unknown:
        shown = ", ".join(repr(n) for n in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        known = ", ".join(repr(n) for n in list(pool)[:10]) + (", ..." if len(pool) > 10 else "")
        raise ConfigError(
            f"--query {query!r}: class folder(s) {shown} are not among {what} ({known}); name each class "
            "folder as the audited data names its class"
        )
    lookup = np.array([pool[n] for n in names], dtype=np.int64)
    return lookup[raw.labels]


def read_query_indices(path: Path, n_pool: int, *, header: bool = False) -> np.ndarray:
    """Pool indices from a ``.npy`` array or a text / CSV file (first column).

    Text files: a UTF-8 byte-order mark is dropped; blank lines and lines starting with ``#`` are
    skipped; the first other line is a header only when ``header`` is true; every other line
    must hold a pool index (ASCII digits) or is refused, naming its line number.

    Raises:
        CorruptFileError: an unreadable file or a line that is not an index.
        SplitError: an index outside the pool, a repeated index, or no index at all.
    """
    if path.suffix.lower() == ".npy":
        if header:
            raise ConfigError("--query-header applies to text / CSV files of indices; drop it for a .npy file")
        try:
            values = np.load(path, allow_pickle=False)
        except Exception as e:  # numpy raises ValueError, OSError, EOFError, BadZipFile ... on a damaged file
            reason = " ".join(str(e).split()) or type(e).__name__
            raise CorruptFileError(
                f"{str(path)!r} is not a readable .npy array of indices ({reason}); save one with numpy.save"
            ) from e
        if not isinstance(values, np.ndarray):  # an .npz archive under a .npy name
            raise CorruptFileError(f"{str(path)!r} is not a .npy array (an .npz archive?); save one with numpy.save")
    else:
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except (OSError, UnicodeDecodeError) as e:
            raise CorruptFileError(
                f"{str(path)!r} cannot be read as UTF-8 text ({e}); write one pool index per line"
            ) from e
        ints: list[int] = []
        skip_header = header
        for lineno, line in enumerate(text.splitlines(), start=1):
            cell = line.split(",")[0].strip()
            if not cell or cell.startswith("#"):
                continue
            if skip_header:
                skip_header = False
                continue
            if not _INDEX.match(cell):
                hint = " (a header? declare it with --query-header)" if not ints and not header else ""
                raise CorruptFileError(
                    f"{str(path)!r} line {lineno}: {cell[:40]!r} is not a sample index{hint}; write one whole "
                    f"number in [0, {n_pool}) per line"
                )
            v = int(cell)  # any length: a Python int, range-checked before int64
            if not 0 <= v < n_pool:
                raise SplitError(
                    f"{str(path)!r} line {lineno} holds index {v}; the pool has {n_pool} samples "
                    f"(valid: 0 to {n_pool - 1})"
                )
            ints.append(v)
        values = np.array(ints, dtype=np.int64)
    values = np.asarray(values)
    if values.ndim != 1 or values.size == 0 or not np.issubdtype(values.dtype, np.integer):
        raise SplitError(
            f"{str(path)!r} must hold a non-empty 1-D list of integer pool indices; "
            f"given {values.dtype} of shape {values.shape}"
        )
    if values.min() < 0 or values.max() >= n_pool:  # before int64, which a uint64 index overflows
        raise SplitError(
            f"{str(path)!r} holds indices in [{values.min()}, {values.max()}]; the pool has {n_pool} "
            f"samples (valid: 0 to {n_pool - 1})"
        )
    values = values.astype(np.int64)
    if len(np.unique(values)) != len(values):
        raise SplitError(f"{str(path)!r} repeats {len(values) - len(np.unique(values))} indices; list each sample once")
    return values

"""Reading a signal cache: :class:`SignalCache` opens a complete cache directory, checks its manifest
and the header and size of every array file, and hands back memory-mapped arrays.

The cache is written by :func:`mintaudit.signals.writer.stream_signals`; ``manifest.json`` says
which kind of signal it holds, so an activation cache and a gradient cache are never confused.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mintaudit.errors import CacheError

__all__ = ["SIGNALS_SCHEMA", "RowView", "SignalCache", "SignalKind"]

SIGNALS_SCHEMA = "mintaudit/signals@1"
"""The ``schema`` of a cache's ``manifest.json``."""

SignalKind = Literal["activations", "gradients"]
"""What the per-layer arrays of a cache hold."""


@dataclass(frozen=True)
class SignalCache:
    """A complete signal cache on disk.

    Attributes:
        path: the cache directory.
        manifest: its ``manifest.json`` (signal kind, layers, shapes, dtype, fingerprints).
    """

    path: Path
    manifest: dict[str, Any]

    @classmethod
    def open(cls, path: str | Path) -> SignalCache:
        """Open a complete cache, checking its manifest and the header and size of every array file.

        Raises:
            CacheError: no manifest, another schema, a file named outside the cache folder, or
                a file that is truncated, holds Python objects (a pickle) or has the wrong shape.
        """
        path = Path(path)
        try:
            manifest = json.loads((path / "manifest.json").read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CacheError(f"{str(path)!r} is not a complete signal cache ({e}); extract again") from e
        if not isinstance(manifest, dict) or manifest.get("schema") != SIGNALS_SCHEMA:
            schema = manifest.get("schema") if isinstance(manifest, dict) else None
            raise CacheError(f"{str(path)!r} has schema {schema!r}, expected {SIGNALS_SCHEMA!r}; {_refix(path)}")
        cache = cls(path, manifest)
        cache._check()
        return cache

    def _check(self) -> None:
        """Refuse a manifest that names files outside the folder, and array files that do not fit it."""
        m, fix = self.manifest, _refix(self.path)
        n, layers, files = m.get("n"), m.get("layers"), m.get("files")
        if not (
            isinstance(n, int)
            and not isinstance(n, bool)
            and n >= 1
            and isinstance(layers, list)
            and isinstance(files, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())
            and all(isinstance(x, str) and x in files for x in layers)
        ):
            raise CacheError(
                f"the manifest of the cache at {str(self.path)!r} is malformed (n, layers or files); {fix}"
            )
        for name in files.values():
            self._file(name)
        expect: dict[str, tuple[str, int]] = {
            "indices.npy": ("iu", 1),
            "labels.npy": ("iu", 1),
            "logits.npy": ("f", 2),
            "loss.npy": ("f", 1),
        }
        expect.update({name: ("f", 0) for name in files.values()})
        for name, (kinds, ndim) in expect.items():
            _check_npy(self._file(name), n, kinds, ndim, fix)

    def _file(self, name: str) -> Path:
        """The path of the cache file ``name``, refused unless it is a plain file name inside the cache folder."""
        target = self.path / name
        if (
            not name
            or name != Path(name).name
            or name in (".", "..")
            or name.startswith(".")
            or target.resolve().parent != self.path.resolve()
        ):
            raise CacheError(
                f"the manifest of the cache at {str(self.path)!r} names {name!r}, a path outside the cache "
                f"folder, which is never read; {_refix(self.path)}"
            )
        return target

    def _load(self, name: str, mmap: bool = False) -> np.ndarray:
        """An array file of the cache, read with ``allow_pickle=False`` (memory-mapped with ``mmap``)."""
        path = self._file(name)
        try:
            return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise CacheError(f"cache file {str(path)!r} is unreadable ({e}); {_refix(self.path)}") from e

    @property
    def signal(self) -> SignalKind:
        """``activations`` or ``gradients``: what the per-layer arrays hold."""
        return self.manifest.get("signal", "activations")

    @property
    def indices(self) -> np.ndarray:
        """int64 (N,): the pool index of each cached row."""
        return self._load("indices.npy")

    @property
    def layers(self) -> list[str]:
        return list(self.manifest["layers"])

    @property
    def tap_modes(self) -> dict[str, str]:
        """layer -> what its array holds: ``full`` (the whole output), ``pooled`` or ``grid:k``
        (see :mod:`mintaudit.signals.reduce`); caches written before modes existed are all ``full``."""
        reduced = self.manifest.get("tap_modes") or {}
        return {layer: str(reduced.get(layer, "full")) for layer in self.layers}

    def tap_mode(self, layer: str) -> str:
        """The storage mode of ``layer`` (``full``, ``pooled``, ``grid:k``)."""
        return self.tap_modes.get(layer, "full")

    def _layer_array(self, layer: str, kind: SignalKind) -> np.ndarray:
        if self.signal != kind:
            other = "gradients" if kind == "activations" else "activations"
            raise CacheError(
                f"the cache at {str(self.path)!r} holds {self.signal}, not {kind}; read it with .{other}(layer), "
                f"or extract {kind} into their own cache"
            )
        if layer not in self.manifest["files"]:
            raise CacheError(f"layer {layer!r} is not in this cache (it has {', '.join(self.layers)}); extract it")
        return self._load(self.manifest["files"][layer], mmap=True)

    def activations(self, layer: str) -> np.ndarray:
        """Memory-mapped activations of ``layer``: (N, *output_shape), read-only."""
        return self._layer_array(layer, "activations")

    def gradients(self, layer: str) -> np.ndarray:
        """Memory-mapped per-sample gradient vectors of ``layer``'s weight: float32 (N, R * F), read-only.

        ``F`` is the layer's number of output filters and ``R`` the number of reductions
        (``manifest["reductions"]``), reduction-major: columns ``[r * F, (r + 1) * F)`` hold
        reduction ``r`` of every filter.
        """
        return self._layer_array(layer, "gradients")

    def outputs(self) -> dict[str, np.ndarray]:
        """``logits`` float32 (N, K), ``loss`` float32 (N,) (:func:`true_label_loss`), ``labels`` int64 (N,)."""
        return {k: self._load(f"{k}.npy") for k in ("logits", "loss", "labels")}

    def rows(self, pool_indices: np.ndarray) -> np.ndarray:
        """Row positions in this cache of the given pool indices (all must be cached)."""
        order = {int(i): r for r, i in enumerate(self.indices)}
        try:
            return np.fromiter((order[int(i)] for i in pool_indices), dtype=np.int64, count=len(pool_indices))
        except KeyError as e:
            raise CacheError(f"sample {e.args[0]} is not in the cache at {str(self.path)!r}; extract it") from e


class RowView:
    """A lazy row view of a (memory-mapped) array, so detectors stream what they read.

    Args:
        array: float (N, ...), e.g. a cache's :meth:`SignalCache.activations`.
        rows: int (M,) row positions into ``array`` (e.g. from :meth:`SignalCache.rows`).

    Indexing the view with positions ``idx`` reads ``array[rows[idx]]`` as a float32 copy.
    """

    def __init__(self, array: np.ndarray, rows: np.ndarray) -> None:
        self.array, self.rows = array, np.asarray(rows)
        self.shape = (len(self.rows), *array.shape[1:])
        self.ndim = array.ndim

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, idx: np.ndarray) -> np.ndarray:
        wanted = self.rows[idx]
        order = np.argsort(wanted)
        out = np.empty((len(wanted), *self.shape[1:]), dtype=np.float32)
        out[order] = self.array[wanted[order]]
        return out

    def reshape(self, *shape: int) -> np.ndarray:
        return self[np.arange(len(self))].reshape(*shape)


def _refix(folder: Path) -> str:
    return f"delete the folder {str(folder)!r} and rerun extract (or the command) to extract it anew"


def _check_npy(path: Path, n: int, kinds: str, ndim: int, fix: str) -> None:
    """CacheError unless ``path`` is a whole ``.npy`` file of ``n`` rows (of dtype kind in ``kinds``; ``ndim``
    dimensions, 0 = any >= 1), without Python objects; only its header is read."""
    fmt = np.lib.format
    try:
        with open(path, "rb") as f:
            version = fmt.read_magic(f)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read(f)
            offset, size = f.tell(), os.fstat(f.fileno()).st_size
    except (OSError, ValueError, EOFError, SyntaxError) as e:
        raise CacheError(f"cache file {str(path)!r} is missing or not a .npy array ({e}); {fix}") from e
    if dtype.hasobject:
        raise CacheError(f"cache file {str(path)!r} holds Python objects (a pickle), which are never loaded; {fix}")
    if dtype.kind not in kinds or len(shape) < 1 or (ndim and len(shape) != ndim) or shape[0] != n:
        raise CacheError(
            f"cache file {str(path)!r} holds {dtype} of shape {tuple(shape)}, not the {n} rows of "
            f"{'integers' if 'i' in kinds else 'floats'} its manifest says; {fix}"
        )
    if size < offset + dtype.itemsize * math.prod(shape):
        raise CacheError(
            f"cache file {str(path)!r} is truncated ({size} bytes, {offset + dtype.itemsize * math.prod(shape)} "
            f"expected); {fix}"
        )

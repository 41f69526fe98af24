"""Streaming extraction of audit signals (AAD) into an on-disk cache of memory-mapped arrays.

One pass over the samples reads the per-layer signals of a model (activations of taps here;
per-sample gradients in :mod:`mintaudit.signals.gradients`) plus its output signals (logits
and the loss on the true label). Both kinds go through ONE streaming writer
(:func:`stream_signals`): rows are written to ``.npy`` files in large blocks with plain file
writes (never mapped into memory, and by a background thread while the next batch computes), so
memory does not grow with the number of samples; they are read back as memory maps. Under
``torchrun`` each rank extracts its own contiguous block of the rows and writes it into the
shared files at its place; rank 0 writes the manifest once all ranks are done, so the cache is
the same, row for row, as a single-process extraction. A cache directory is keyed by the model,
the data, the sample indices, the layers, the dtype and the kind of signal (with its options), and is
reused only when all of them match; it is built under a temporary name and renamed when
complete. Its ``manifest.json`` says which kind of signal it holds, so an activation cache and
a gradient cache are never confused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from mintaudit import distributed
from mintaudit._io import atomic_dir, atomic_write_json
from mintaudit._progress import progress
from mintaudit._tensor import autocast, device_of, iter_batches, resolve_device, to_device
from mintaudit.data._base import ImageDataset
from mintaudit.errors import CacheError, SignalError
from mintaudit.models.registry import model_fingerprint
from mintaudit.taps import Recorder

__all__ = [
    "SignalCache", "SignalKind", "BatchFn", "extract_signals", "output_features", "stream_signals", "true_label_loss",
]

_SCHEMA = "mintaudit/signals@1"

SignalKind = Literal["activations", "gradients"]
"""What the per-layer arrays of a cache hold."""

BatchFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]]
"""``(x (B, C, H, W), y (B,)) -> (logits (B, K), {layer: float tensor (B, ...)})``, all detached CPU tensors
that the function does not change afterwards (they are written to disk in the background)."""

_PREFIX: dict[str, str] = {"activations": "act_", "gradients": "grad_"}


_WRITE_BYTES = 8 * 2**20
"""Rows of one array are gathered until a write holds at least this many bytes (or the rows end)."""


def _file_name(layer: str, kind: str = "activations") -> str:
    return _PREFIX[kind] + re.sub(r"[^A-Za-z0-9_.-]", "_", layer) + ".npy"


def _create_npy(path: Path, dtype: np.dtype, shape: tuple[int, ...]) -> None:
    """An ``.npy`` file of ``shape``: the header, then zeros (a sparse file) to be filled in by row blocks."""
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.truncate(f.tell() + dtype.itemsize * math.prod(shape))


class _RowWriter:
    """Writes rows ``[start, stop)`` of an ``.npy`` file made by :func:`_create_npy`, in order.

    Rows are written with plain file writes in blocks of at least :data:`_WRITE_BYTES` (small
    batches are gathered in a fixed buffer first, large C-ordered ones of the file's dtype go
    straight out), never through a memory map: the written pages belong to the OS cache, not to
    this process. Nothing is allocated per batch.
    """

    def __init__(self, path: Path, start: int, stop: int) -> None:
        header = np.load(path, mmap_mode="r")
        self.dtype, self.row_shape = header.dtype, header.shape[1:]
        self.row_bytes = self.dtype.itemsize * math.prod(self.row_shape)
        self.offset, self.next_row = int(header.offset), start
        del header
        rows = max(1, min(stop - start, -(-_WRITE_BYTES // max(self.row_bytes, 1))))
        self._buf = np.empty((rows, *self.row_shape), dtype=self.dtype)
        self._fill = 0
        self._file = open(path, "r+b", buffering=0)

    def add(self, block: np.ndarray) -> None:
        """Append rows (B, *row_shape), converted to the file's dtype (and to C order)."""
        if self._fill == 0 and len(block) >= len(self._buf) and block.dtype == self.dtype and block.flags.c_contiguous:
            self._write(block)  # large enough on its own, and as stored: no copy
            return
        done = 0
        while done < len(block):
            take = min(len(block) - done, len(self._buf) - self._fill)
            self._buf[self._fill : self._fill + take] = block[done : done + take]
            self._fill, done = self._fill + take, done + take
            if self._fill == len(self._buf):
                self.flush()

    def flush(self) -> None:
        if self._fill:
            self._write(self._buf[: self._fill])
            self._fill = 0

    def _write(self, rows: np.ndarray) -> None:
        view = memoryview(rows).cast("B")
        self._file.seek(self.offset + self.next_row * self.row_bytes)
        while view:
            view = view[self._file.write(view) :]
        self.next_row += len(rows)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._file.close()


class _CacheWriter:
    """This rank's rows of the cache files, checked and written by one background thread while the next batch computes.

    At most ``depth`` batches wait to be written, so memory stays bounded; the batches are
    written in the order they came, each array's rows at their place in its file. ``check``
    (file name -> rows, first row) runs on each batch before it is written; what it raises comes
    out of the next :meth:`submit` or :meth:`close`.
    """

    def __init__(self, folder: Path, names: Sequence[str], start: int, stop: int, *,
                 check: Callable[[dict[str, np.ndarray], int], None] | None = None, depth: int = 1) -> None:
        self._files: dict[str, _RowWriter] = {}
        try:
            for name in names:
                self._files[name] = _RowWriter(folder / name, start, stop)
        except BaseException:
            self._close_files()
            raise
        self._check, self._depth = check, depth
        self._pending: deque[Future[None]] = deque()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mintaudit-cache")

    def submit(self, blocks: dict[str, np.ndarray], row: int) -> None:
        """Queue one batch: file name -> rows (B, ...) from ``row`` on; waits while ``depth`` batches are queued."""
        while len(self._pending) >= self._depth:
            self._pending.popleft().result()
        self._pending.append(self._thread.submit(self._write, blocks, row))

    def _write(self, blocks: dict[str, np.ndarray], row: int) -> None:
        if self._check is not None:
            self._check(blocks, row)
        for name, block in blocks.items():
            self._files[name].add(block)

    def close(self) -> None:
        """Write what is queued and close the files (raises the first failed write)."""
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._thread.shutdown(wait=True, cancel_futures=True)
            self._close_files()

    def _close_files(self) -> None:
        for f in self._files.values():
            f.close()


def _all_finite(a: np.ndarray) -> bool:
    """No NaN nor infinity in ``a`` (one cheap sum; the exact check only when the sum is not finite)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(a.sum())) or bool(np.isfinite(a).all())


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
        if not isinstance(manifest, dict) or manifest.get("schema") != _SCHEMA:
            schema = manifest.get("schema") if isinstance(manifest, dict) else None
            raise CacheError(f"{str(path)!r} has schema {schema!r}, expected {_SCHEMA!r}; {_refix(path)}")
        cache = cls(path, manifest)
        cache._check()
        return cache

    def _check(self) -> None:
        """Refuse a manifest that names files outside the folder, and array files that do not fit it."""
        m, fix = self.manifest, _refix(self.path)
        n, layers, files = m.get("n"), m.get("layers"), m.get("files")
        if not (isinstance(n, int) and not isinstance(n, bool) and n >= 1 and isinstance(layers, list)
                and isinstance(files, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())
                and all(isinstance(x, str) and x in files for x in layers)):
            raise CacheError(f"the manifest of the cache at {str(self.path)!r} is malformed (n, layers or files); {fix}")
        for name in files.values():
            self._file(name)
        expect: dict[str, tuple[str, int]] = {"indices.npy": ("iu", 1), "labels.npy": ("iu", 1), "logits.npy": ("f", 2),
                                              "loss.npy": ("f", 1)}
        expect.update({name: ("f", 0) for name in files.values()})
        for name, (kinds, ndim) in expect.items():
            _check_npy(self._file(name), n, kinds, ndim, fix)

    def _file(self, name: str) -> Path:
        """The path of the cache file ``name``, refused unless it is a plain file name inside the cache folder."""
        target = self.path / name
        if (not name or name != Path(name).name or name in (".", "..") or name.startswith(".")
                or target.resolve().parent != self.path.resolve()):
            raise CacheError(f"the manifest of the cache at {str(self.path)!r} names {name!r}, a path outside the cache "
                             f"folder, which is never read; {_refix(self.path)}")
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
        raise CacheError(f"cache file {str(path)!r} holds {dtype} of shape {tuple(shape)}, not the {n} rows of "
                         f"{'integers' if 'i' in kinds else 'floats'} its manifest says; {fix}")
    if size < offset + dtype.itemsize * math.prod(shape):
        raise CacheError(f"cache file {str(path)!r} is truncated ({size} bytes, {offset + dtype.itemsize * math.prod(shape)} "
                         f"expected); {fix}")


def true_label_loss(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """float32 (N,): the loss on the true label, computed once in float64 and cast once.

    It is minus :func:`mintaudit.attacks.scores.loss_scores` (the one LOSS of the package),
    so ``loss.npy`` of a cache and the loss column of :func:`output_features` equal the LOSS
    attack's score cast to float32. Rows with non-finite logits give NaN (the cache writer
    refuses them with its own message).
    """
    from mintaudit.attacks.scores import loss_scores  # imported here: mintaudit.attacks imports this package

    z = np.asarray(logits, dtype=np.float64)
    finite = np.isfinite(z).all(axis=1)
    loss = np.full(len(z), np.nan)
    if finite.any():
        loss[finite] = -loss_scores(z[finite], np.asarray(labels)[finite])
    return loss.astype(np.float32)


def output_features(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-sample output signals for fusion with activations.

    Args:
        logits: float (N, K); labels: int (N,).

    Returns:
        float32 (N, 5): loss on the true label (:func:`true_label_loss`: float64, cast once),
        logit-scaled confidence of the true label (``log p_y - log(1 - p_y)``, as LiRA uses),
        max probability, prediction entropy, and whether the prediction is correct.
    """
    z = torch.as_tensor(np.asarray(logits, dtype=np.float32))
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    logp = torch.log_softmax(z, dim=1)
    logp_y = logp.gather(1, y[:, None])[:, 0]
    log1m = torch.log1p(-logp_y.exp().clamp(max=1 - 1e-7))
    p = logp.exp()
    entropy = -(p * logp).sum(1)
    loss = torch.from_numpy(true_label_loss(logits, labels))
    feats = torch.stack([loss, logp_y - log1m, p.max(1).values, entropy, (z.argmax(1) == y).float()], 1)
    return feats.numpy().astype(np.float32)


def _cache_key(
    model_fp: str, data_fp: str, indices: np.ndarray, layers: list[str], dtype: str, extra: Sequence[str] = ()
) -> str:
    h = hashlib.sha256()
    for part in (model_fp, data_fp, ",".join(layers), dtype, *extra):
        h.update(part.encode() + b"\0")
    h.update(np.ascontiguousarray(indices, dtype=np.int64).data)
    return h.hexdigest()[:16]


def stream_signals(
    model: nn.Module,
    dataset: ImageDataset,
    indices: np.ndarray,
    layers: Sequence[str],
    cache_root: str | Path,
    producer: contextlib.AbstractContextManager[BatchFn],
    *,
    signal: SignalKind,
    key_extra: Sequence[str] = (),
    manifest_extra: dict[str, Any] | None = None,
    batch_size: int = 256,
    dtype: Literal["float32", "float16"] = "float32",
    compute: str = "float32",
    show_progress: bool | None = None,
) -> SignalCache:
    """The one streaming writer of signal caches, shared by activations and gradients.

    The model runs in eval mode (its mode is restored afterwards). Batches go through the
    function that ``producer`` yields; its per-layer arrays and the logits are checked (finite)
    and written to the cache files in large blocks, the loss on the true label is computed from
    the logits. Under ``torchrun`` every rank runs this together: each extracts its contiguous
    block of ``indices`` and writes those rows; rank 0 names the cache, creates its files and
    writes the manifest after all ranks are done (``cache_root`` must be on a file system every
    rank sees).

    Args:
        model: the audited model (not modified).
        dataset: the pool.
        indices: int array (N,) of pool indices, in the order rows are stored.
        layers: the layer names the batch function returns (may be empty: outputs only).
        cache_root: the folder under which the cache directory (named by its key) lives.
        producer: a context manager yielding the :data:`BatchFn`; entered once for the pass,
            so hooks it holds live only while the cache is written.
        signal: what the per-layer arrays are (recorded in the manifest, part of the key).
        key_extra: further strings the cache key depends on (the signal's options).
        manifest_extra: further manifest entries.
        batch_size: samples per batch.
        dtype: storage dtype of the per-layer arrays.
        compute: the precision the producer computes in (``float32``, or e.g. ``bfloat16`` for
            CUDA autocast); anything but float32 is part of the key and the manifest.
        show_progress: progress bar; None = only on a terminal.

    Returns:
        The :class:`SignalCache`, reused as is when an identical one exists.

    Raises:
        SignalError: no samples, a layer returned nothing, a value is NaN or infinite, or the
            ranks of a torchrun job hold different models, data or samples.
        CacheError: a cache under the same key holds another kind of signal.
    """
    indices = np.asarray(indices, dtype=np.int64)
    layers = list(layers)
    n = len(indices)
    if n == 0:
        raise SignalError("no samples to extract: indices is empty; give at least one pool index")
    model_fp = model_fingerprint(model)
    # activation caches keep the key they always had; any other signal adds its name and options
    extra = () if signal == "activations" else (f"signal={signal}", *key_extra)
    if compute != "float32":
        extra = (*extra, f"compute={compute}")
    if not dataset.preprocess.is_default:  # the model's input transform: default caches keep their keys
        extra = (*extra, f"preprocess={dataset.preprocess.key()}")
    key = _cache_key(model_fp, dataset.fingerprint(), indices, layers, dtype, extra)
    keys = distributed.all_gather_object(key)
    if len(set(keys)) > 1:
        raise SignalError(f"the ranks of this torchrun job would extract different caches ({', '.join(keys)}): they "
                          "must hold the same model weights, data and sample indices")
    # rank 0's folder is every rank's (the same place on a shared file system)
    target = Path(distributed.broadcast_object(str(Path(cache_root) / key)))
    if distributed.broadcast_object((target / "manifest.json").is_file()):
        cache = SignalCache.open(target)
        if cache.signal != signal:
            raise CacheError(f"the cache at {str(target)!r} holds {cache.signal}, not {signal}; delete it and extract again")
        return cache
    main = distributed.is_main()
    start, stop = distributed.row_range(n)
    was_training = model.training
    model.eval()
    try:
        with atomic_dir(target) if main else contextlib.nullcontext() as tmp_main, producer as run:
            tmp = Path(distributed.broadcast_object(str(tmp_main) if main else None))
            files: list[_CacheWriter] = []

            def open_files(shapes: dict[str, tuple[int, ...]] | None) -> None:
                """All ranks together: rank 0 creates the files from the first shapes seen, each rank opens its rows."""
                shapes = next(s for s in distributed.all_gather_object(shapes) if s is not None)
                if main:
                    for name, shape in shapes.items():
                        _create_npy(tmp / name, np.dtype(np.float32 if name in ("logits.npy", "loss.npy") else dtype), shape)
                distributed.barrier()
                files.append(_CacheWriter(tmp, list(shapes), start, stop, check=check))

            def check(blocks: dict[str, np.ndarray], row: int) -> None:
                """Refuse NaN and infinities (run by the writer thread, before the batch is written)."""
                for name in layers:
                    if not _all_finite(blocks[_file_name(name, signal)]):
                        raise SignalError(
                            f"layer {name!r} produced NaN or infinite {signal} (batch at sample {row}); "
                            "check the model's weights and the input normalisation"
                        )
                if not _all_finite(blocks["logits.npy"]):
                    raise SignalError(f"the model's outputs are NaN or infinite (batch at sample {row}); check its weights")

            try:
                pos = start
                bar = progress(
                    iter_batches(dataset, indices[start:stop], batch_size), total=-(-(stop - start) // batch_size),
                    desc=f"extract {signal}", enabled=show_progress if main else False, unit="batch",
                )
                for x, y, _ in bar:
                    logits, arrays = run(x, y)
                    if not files:
                        for name in layers:
                            if name not in arrays:
                                raise SignalError(f"layer {name!r} produced no tensor output; choose another layer")
                        open_files({"logits.npy": (n, logits.shape[1]), "loss.npy": (n,),
                                    **{_file_name(name, signal): (n, *arrays[name].shape[1:]) for name in layers}})
                    # checked and written in the background while the next batch computes (fresh tensors)
                    files[0].submit({
                        **{_file_name(name, signal): arrays[name].numpy() for name in layers},
                        "logits.npy": logits.numpy(),
                        "loss.npy": true_label_loss(logits.numpy(), y.numpy()),
                    }, pos)
                    pos += len(y)
                if not files:  # more ranks than samples: this one had none
                    open_files(None)
            finally:
                for writer in files:
                    writer.close()
            distributed.barrier()  # every rank's rows are written
            if main:
                np.save(tmp / "indices.npy", indices)
                np.save(tmp / "labels.npy", dataset.labels[indices])
                atomic_write_json(
                    tmp / "manifest.json",
                    {
                        "schema": _SCHEMA,
                        "key": key,
                        "signal": signal,
                        "model_fingerprint": model_fp,
                        "data_fingerprint": dataset.fingerprint(),
                        "preprocess": dataset.preprocess_record,
                        "n": n,
                        "dtype": dtype,
                        "layers": layers,
                        "files": {name: _file_name(name, signal) for name in layers},
                        **({"compute": compute} if compute != "float32" else {}),
                        **(manifest_extra or {}),
                    },
                )
        distributed.barrier()  # rank 0 has put the cache in place
    finally:
        model.train(was_training)
    return SignalCache.open(target)


@contextlib.contextmanager
def _recorded(model: nn.Module, layers: list[str], device: torch.device):  # noqa: ANN202 - a generator context manager
    """Yield a batch function returning the logits and the taps' activations (hooks live inside).

    On a CUDA ``device`` the batch runs there (bfloat16 autocast, channels-last) and comes back
    as float32 CPU tensors in the usual (B, C, H, W) layout.
    """
    with Recorder(model, layers) as rec:

        @torch.no_grad()
        def run(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            if device.type == "cpu":
                logits = model(x)
                return logits, rec.pop()
            with autocast(device):
                logits = model(to_device(x, device))
            out = rec.pop()
            return logits.float().cpu(), {k: v.float().contiguous().cpu() for k, v in out.items()}

        yield run


def extract_signals(
    model: nn.Module,
    dataset: ImageDataset,
    indices: np.ndarray,
    layers: list[str],
    cache_root: str | Path,
    *,
    batch_size: int = 256,
    dtype: Literal["float32", "float16"] = "float32",
    show_progress: bool | None = None,
    device: str | torch.device | None = None,
) -> SignalCache:
    """Extract ``layers`` and the output signals of ``model`` for ``indices`` into a cache.

    The model runs in eval mode (its mode is restored afterwards) and is not modified. Under
    ``torchrun`` the ranks share the work (see :func:`stream_signals`); the cache is the same
    as a single process would write.

    Args:
        model: the audited model.
        dataset: the pool.
        indices: int array (N,) of pool indices, in the order rows are stored.
        layers: qualified layer names to tap (may be empty: outputs only).
        cache_root: the folder under which the cache directory (named by its key) lives.
        batch_size: samples per forward pass.
        dtype: storage dtype of activations (``float16`` halves the disk).
        show_progress: progress bar; None = only on a terminal.
        device: where the forward passes run (``cpu``, ``cuda``, ``cuda:N``; default: the one
            set by :func:`mintaudit._tensor.use_device`, else the model's). On CUDA they run in
            bfloat16 autocast (recorded in the cache's key and manifest); the model is handed
            back where it was.

    Returns:
        The :class:`SignalCache` (``signal == "activations"``), reused as is when an identical
        one exists.

    Raises:
        SignalError: an activation or output is NaN or infinite.
    """
    layers = list(layers)
    distributed.init()
    home, dev = device_of(model), resolve_device(device, model)
    compute = "bfloat16" if dev.type == "cuda" and torch.cuda.is_bf16_supported() else "float32"
    if dev != home:
        model.to(dev)
    if dev.type == "cuda":
        model.to(memory_format=torch.channels_last)
    try:
        return stream_signals(
            model, dataset, indices, layers, cache_root, _recorded(model, layers, dev), signal="activations",
            batch_size=batch_size, dtype=dtype, compute=compute, show_progress=show_progress,
        )
    finally:
        if dev.type == "cuda":
            model.to(memory_format=torch.contiguous_format)
        if dev != home:
            model.to(home)

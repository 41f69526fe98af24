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

The cache is read back by :class:`mintaudit.signals.reader.SignalCache`.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import re
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from mintaudit import distributed
from mintaudit._io import atomic_dir, atomic_write_json
from mintaudit._logits import logits_of
from mintaudit._progress import progress
from mintaudit._tensor import autocast, device_of, iter_batches, resolve_device, to_device
from mintaudit.data._base import ImageDataset
from mintaudit.errors import CacheError, SignalError
from mintaudit.models.registry import model_fingerprint
from mintaudit.signals.outputs import true_label_loss
from mintaudit.signals.reader import SIGNALS_SCHEMA, SignalCache, SignalKind
from mintaudit.signals.reduce import DEFAULT_TAP_BUDGET, plan_tap_modes, reducers
from mintaudit.taps import Recorder

__all__ = ["BatchFn", "extract_signals", "stream_signals"]

BatchFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]]
"""``(x (B, C, H, W), y (B,)) -> (logits (B, K), {layer: float tensor (B, ...)})``, all detached CPU tensors
that the function does not change afterwards (they are written to disk in the background). A function whose
tensors may still be arriving (non-blocking copies to pinned memory) has a ``pending()`` attribute: called
right after a batch, it returns the wait for that batch's copies (or None), which the writer thread runs first."""

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

    def __init__(
        self,
        folder: Path,
        names: Sequence[str],
        start: int,
        stop: int,
        *,
        check: Callable[[dict[str, np.ndarray], int], None] | None = None,
        depth: int = 1,
    ) -> None:
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

    def submit(self, blocks: dict[str, np.ndarray] | Callable[[], dict[str, np.ndarray]], row: int) -> None:
        """Queue one batch: file name -> rows (B, ...) from ``row`` on, or a function returning them, called by the
        writer thread (e.g. after waiting for a device-to-host copy); waits while ``depth`` batches are queued."""
        while len(self._pending) >= self._depth:
            self._pending.popleft().result()
        self._pending.append(self._thread.submit(self._write, blocks, row))

    def _write(self, blocks: dict[str, np.ndarray] | Callable[[], dict[str, np.ndarray]], row: int) -> None:
        if callable(blocks):
            blocks = blocks()
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
        key_extra: further strings the cache key depends on (the signal's options; for activations, the taps'
            storage modes other than full, so that full caches keep the key they always had).
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
    extra = tuple(key_extra) if signal == "activations" else (f"signal={signal}", *key_extra)
    if compute != "float32":
        extra = (*extra, f"compute={compute}")
    if not dataset.preprocess.is_default:  # the model's input transform: default caches keep their keys
        extra = (*extra, f"preprocess={dataset.preprocess.key()}")
    key = _cache_key(model_fp, dataset.fingerprint(), indices, layers, dtype, extra)
    keys = distributed.all_gather_object(key)
    if len(set(keys)) > 1:
        raise SignalError(
            f"the ranks of this torchrun job would extract different caches ({', '.join(keys)}): they "
            "must hold the same model weights, data and sample indices"
        )
    # rank 0's folder is every rank's (the same place on a shared file system)
    target = Path(distributed.broadcast_object(str(Path(cache_root) / key)))
    if distributed.broadcast_object((target / "manifest.json").is_file()):
        cache = SignalCache.open(target)
        if cache.signal != signal:
            raise CacheError(
                f"the cache at {str(target)!r} holds {cache.signal}, not {signal}; delete it and extract again"
            )
        return cache
    main = distributed.is_main()
    start, stop = distributed.row_range(n)
    was_training = model.training
    model.eval()
    try:
        with (
            atomic_dir(target, schema_file="manifest.json") if main else contextlib.nullcontext() as tmp_main,
            producer as run,
        ):
            tmp = Path(distributed.broadcast_object(str(tmp_main) if main else None))
            files: list[_CacheWriter] = []

            def open_files(shapes: dict[str, tuple[int, ...]] | None) -> None:
                """All ranks together: rank 0 creates the files from the first shapes seen, each rank opens its rows."""
                shapes = next(s for s in distributed.all_gather_object(shapes) if s is not None)
                if main:
                    for name, shape in shapes.items():
                        _create_npy(
                            tmp / name, np.dtype(np.float32 if name in ("logits.npy", "loss.npy") else dtype), shape
                        )
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
                    raise SignalError(
                        f"the model's outputs are NaN or infinite (batch at sample {row}); check its weights"
                    )

            try:
                pos = start
                bar = progress(
                    iter_batches(dataset, indices[start:stop], batch_size),
                    total=-(-(stop - start) // batch_size),
                    desc=f"extract {signal}",
                    enabled=show_progress if main else False,
                    unit="batch",
                )
                for x, y, _ in bar:
                    logits, arrays = run(x, y)
                    if not files:
                        for name in layers:
                            if name not in arrays:
                                raise SignalError(f"layer {name!r} produced no tensor output; choose another layer")
                        open_files(
                            {
                                "logits.npy": (n, logits.shape[1]),
                                "loss.npy": (n,),
                                **{_file_name(name, signal): (n, *arrays[name].shape[1:]) for name in layers},
                            }
                        )
                    # checked and written in the background while the next batch computes (fresh tensors); a
                    # producer whose tensors are still arriving (CUDA copies to pinned memory) has them awaited there
                    files[0].submit(
                        partial(
                            _host_blocks,
                            getattr(run, "pending", _nothing)(),
                            logits,
                            arrays,
                            y,
                            {name: _file_name(name, signal) for name in layers},
                        ),
                        pos,
                    )
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
                        "schema": SIGNALS_SCHEMA,
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


def _nothing() -> Callable[[], None] | None:
    return None


def _host_blocks(
    wait: Callable[[], None] | None,
    logits: torch.Tensor,
    arrays: dict[str, torch.Tensor],
    y: torch.Tensor,
    names: dict[str, str],
) -> dict[str, np.ndarray]:
    """One batch's file blocks, made by the writer thread once its tensors are on the host (``wait``)."""
    if wait is not None:
        wait()
    out = logits.numpy()
    return {
        **{names[k]: arrays[k].numpy() for k in names},
        "logits.npy": out,
        "loss.npy": true_label_loss(out, y.numpy()),
    }


@contextlib.contextmanager
def _recorded(
    model: nn.Module,
    layers: list[str],
    device: torch.device,  # noqa: ANN202 - a generator context manager
    modes: dict[str, str] | None = None,
):
    """Yield a batch function returning the logits and the taps' activations (hooks live inside).

    Taps whose mode is not ``full`` are reduced inside the hook, on ``device`` (the full map is
    never cloned). On a CUDA ``device`` the batch runs there (bfloat16 autocast, channels-last);
    its outputs are copied, float32 in the usual (B, C, H, W) layout, into pinned host memory
    without blocking, and the function's ``pending()`` hands the writer thread the wait for that
    copy, so that the copy and the disk writes overlap the next batch's forward.
    """
    with Recorder(model, layers, reduce=reducers(modes or {})) as rec:
        event: list[Any] = []

        @torch.no_grad()
        def run(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            if device.type == "cpu":
                logits = logits_of(model(x))
                return logits, rec.pop()
            with autocast(device):
                logits = logits_of(model(to_device(x, device)))
            if device.type != "cuda":
                return logits.float().cpu(), {k: v.float().contiguous().cpu() for k, v in rec.pop().items()}
            out = {k: _pinned_copy(v) for k, v in rec.pop().items()}
            host = _pinned_copy(logits)
            done = torch.cuda.Event()
            done.record()
            event[:] = [done]
            return host, out

        def pending() -> Callable[[], None] | None:
            """The wait for the last batch's copies to the host (None when nothing is in flight)."""
            return event.pop().synchronize if event else None

        run.pending = pending  # type: ignore[attr-defined]
        yield run


def _pinned_copy(t: torch.Tensor) -> torch.Tensor:
    """``t`` as float32 in contiguous layout, copied from the device into pinned host memory without blocking."""
    src = t.float().contiguous()
    dst = torch.empty(src.shape, dtype=torch.float32, pin_memory=True)
    dst.copy_(src, non_blocking=True)
    return dst


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
    tap_mode: str | Mapping[str, str] | None = None,
    tap_budget: int | None = None,
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
        tap_mode: what each tap stores (:mod:`mintaudit.signals.reduce`): ``full``, ``pooled``,
            ``grid:k`` for all, ``layer=mode`` pairs, or a mapping; None: the budget picks.
        tap_budget: bytes per sample per tap, at ``dtype`` (default
            :data:`~mintaudit.signals.reduce.DEFAULT_TAP_BUDGET`, which keeps the zoo's CNNs full).
            Modes other than ``full`` are part of the key and the manifest (``cache.tap_modes``).

    Returns:
        The :class:`SignalCache` (``signal == "activations"``), reused as is when an identical
        one exists.

    Raises:
        SignalError: an activation or output is NaN or infinite.
        ConfigError: a bad mode, a per-tap mode for a layer not in ``layers``, or a budget below
            one value per channel of some tap (nothing is written).
    """
    layers = list(layers)
    home, dev = device_of(model), resolve_device(device, model)
    compute = "bfloat16" if dev.type == "cuda" and torch.cuda.is_bf16_supported() else "float32"
    if dev != home:
        model.to(dev)
    if dev.type == "cuda":
        model.to(memory_format=torch.channels_last)
    try:
        modes = plan_tap_modes(model, dataset, indices, layers, tap_mode, tap_budget, dtype, dev)
        reduced = {layer: mode for layer, mode in modes.items() if mode != "full"}
        return stream_signals(
            model,
            dataset,
            indices,
            layers,
            cache_root,
            _recorded(model, layers, dev, modes),
            signal="activations",
            key_extra=[f"tap_mode={layer}={mode}" for layer, mode in reduced.items()],
            manifest_extra={"tap_modes": reduced, "tap_budget": tap_budget or DEFAULT_TAP_BUDGET} if reduced else None,
            batch_size=batch_size,
            dtype=dtype,
            compute=compute,
            show_progress=show_progress,
        )
    finally:
        if dev.type == "cuda":
            model.to(memory_format=torch.contiguous_format)
        if dev != home:
            model.to(home)

"""Streaming extraction of audit signals (AAD) into an on-disk cache of memory-mapped arrays.

One pass over the samples reads the per-layer signals of a model (activations of taps here;
per-sample gradients in :mod:`mintaudit.signals.gradients`) plus its output signals (logits
and the loss on the true label). Both kinds go through ONE streaming writer
(:func:`stream_signals`): arrays are written batch by batch to ``.npy`` memory maps, so memory
does not grow with the number of samples. A cache directory is keyed by the model, the data,
the sample indices, the layers, the dtype and the kind of signal (with its options), and is
reused only when all of them match; it is built under a temporary name and renamed when
complete. Its ``manifest.json`` says which kind of signal it holds, so an activation cache and
a gradient cache are never confused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from mintaudit._io import atomic_dir, atomic_write_json
from mintaudit._progress import progress
from mintaudit._tensor import iter_batches
from mintaudit.data._base import ImageDataset
from mintaudit.errors import CacheError, SignalError
from mintaudit.models.registry import model_fingerprint
from mintaudit.taps import Recorder

__all__ = ["SignalCache", "SignalKind", "BatchFn", "extract_signals", "output_features", "stream_signals"]

_SCHEMA = "mintaudit/signals@1"

SignalKind = Literal["activations", "gradients"]
"""What the per-layer arrays of a cache hold."""

BatchFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]]
"""``(x (B, C, H, W), y (B,)) -> (logits (B, K), {layer: float tensor (B, ...)})``, all detached."""

_PREFIX: dict[str, str] = {"activations": "act_", "gradients": "grad_"}


def _file_name(layer: str, kind: str = "activations") -> str:
    return _PREFIX[kind] + re.sub(r"[^A-Za-z0-9_.-]", "_", layer) + ".npy"


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
        path = Path(path)
        try:
            manifest = json.loads((path / "manifest.json").read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise CacheError(f"{str(path)!r} is not a complete signal cache ({e}); extract again") from e
        if manifest.get("schema") != _SCHEMA:
            raise CacheError(f"{str(path)!r} has schema {manifest.get('schema')!r}, expected {_SCHEMA!r}")
        return cls(path, manifest)

    @property
    def signal(self) -> SignalKind:
        """``activations`` or ``gradients``: what the per-layer arrays hold."""
        return self.manifest.get("signal", "activations")

    @property
    def indices(self) -> np.ndarray:
        """int64 (N,): the pool index of each cached row."""
        return np.load(self.path / "indices.npy")

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
        return np.load(self.path / self.manifest["files"][layer], mmap_mode="r")

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
        """``logits`` float32 (N, K), ``loss`` float32 (N,), ``labels`` int64 (N,)."""
        return {k: np.load(self.path / f"{k}.npy") for k in ("logits", "loss", "labels")}

    def rows(self, pool_indices: np.ndarray) -> np.ndarray:
        """Row positions in this cache of the given pool indices (all must be cached)."""
        order = {int(i): r for r, i in enumerate(self.indices)}
        try:
            return np.fromiter((order[int(i)] for i in pool_indices), dtype=np.int64, count=len(pool_indices))
        except KeyError as e:
            raise CacheError(f"sample {e.args[0]} is not in the cache at {str(self.path)!r}; extract it") from e


def output_features(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-sample output signals for fusion with activations.

    Args:
        logits: float (N, K); labels: int (N,).

    Returns:
        float32 (N, 5): loss on the true label, logit-scaled confidence of the true label
        (``log p_y - log(1 - p_y)``, as LiRA uses), max probability, prediction entropy, and
        whether the prediction is correct.
    """
    z = torch.as_tensor(np.asarray(logits, dtype=np.float32))
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    logp = torch.log_softmax(z, dim=1)
    logp_y = logp.gather(1, y[:, None])[:, 0]
    log1m = torch.log1p(-logp_y.exp().clamp(max=1 - 1e-7))
    p = logp.exp()
    entropy = -(p * logp).sum(1)
    feats = torch.stack([-logp_y, logp_y - log1m, p.max(1).values, entropy, (z.argmax(1) == y).float()], 1)
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
    show_progress: bool | None = None,
) -> SignalCache:
    """The one streaming writer of signal caches, shared by activations and gradients.

    The model runs in eval mode (its mode is restored afterwards). Batches go through the
    function that ``producer`` yields; its per-layer arrays and the logits are checked (finite)
    and written to memory maps, the loss on the true label is computed from the logits.

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
        show_progress: progress bar; None = only on a terminal.

    Returns:
        The :class:`SignalCache`, reused as is when an identical one exists.

    Raises:
        SignalError: no samples, a layer returned nothing, or a value is NaN or infinite.
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
    key = _cache_key(model_fp, dataset.fingerprint(), indices, layers, dtype, extra)
    target = Path(cache_root) / key
    if (target / "manifest.json").is_file():
        cache = SignalCache.open(target)
        if cache.signal != signal:
            raise CacheError(f"the cache at {str(target)!r} holds {cache.signal}, not {signal}; delete it and extract again")
        return cache
    was_training = model.training
    model.eval()
    try:
        with atomic_dir(target) as tmp, producer as run:
            maps: dict[str, np.ndarray] = {}
            logits_out = loss_out = None
            pos = 0
            bar = progress(
                iter_batches(dataset, indices, batch_size), total=-(-n // batch_size),
                desc=f"extract {signal}", enabled=show_progress, unit="batch",
            )
            for x, y, _ in bar:
                logits, arrays = run(x, y)
                if logits_out is None:
                    logits_out = np.lib.format.open_memmap(tmp / "logits.npy", "w+", np.float32, (n, logits.shape[1]))
                    loss_out = np.lib.format.open_memmap(tmp / "loss.npy", "w+", np.float32, (n,))
                    for name in layers:
                        if name not in arrays:
                            raise SignalError(f"layer {name!r} produced no tensor output; choose another layer")
                        shape = (n, *arrays[name].shape[1:])
                        maps[name] = np.lib.format.open_memmap(tmp / _file_name(name, signal), "w+", np.dtype(dtype), shape)
                b = len(y)
                for name in layers:
                    arr = arrays[name]
                    if not torch.isfinite(arr).all():
                        raise SignalError(
                            f"layer {name!r} produced NaN or infinite {signal} (batch at sample {pos}); "
                            "check the model's weights and the input normalisation"
                        )
                    maps[name][pos : pos + b] = arr.numpy().astype(dtype, copy=False)
                if not torch.isfinite(logits).all():
                    raise SignalError(f"the model's outputs are NaN or infinite (batch at sample {pos}); check its weights")
                logits_out[pos : pos + b] = logits.numpy()
                loss_out[pos : pos + b] = nn.functional.cross_entropy(logits, y, reduction="none").numpy()
                pos += b
            for arr in (*maps.values(), logits_out, loss_out):
                arr.flush()
            del maps, logits_out, loss_out
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
                    "n": n,
                    "dtype": dtype,
                    "layers": layers,
                    "files": {name: _file_name(name, signal) for name in layers},
                    **(manifest_extra or {}),
                },
            )
    finally:
        model.train(was_training)
    return SignalCache.open(target)


@contextlib.contextmanager
def _recorded(model: nn.Module, layers: list[str]):  # noqa: ANN202 - a generator context manager
    """Yield a batch function returning the logits and the taps' activations (hooks live inside)."""
    with Recorder(model, layers) as rec:

        @torch.no_grad()
        def run(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            logits = model(x)
            return logits, rec.pop()

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
) -> SignalCache:
    """Extract ``layers`` and the output signals of ``model`` for ``indices`` into a cache.

    The model runs in eval mode (its mode is restored afterwards) and is not modified.

    Args:
        model: the audited model.
        dataset: the pool.
        indices: int array (N,) of pool indices, in the order rows are stored.
        layers: qualified layer names to tap (may be empty: outputs only).
        cache_root: the folder under which the cache directory (named by its key) lives.
        batch_size: samples per forward pass.
        dtype: storage dtype of activations (``float16`` halves the disk).
        show_progress: progress bar; None = only on a terminal.

    Returns:
        The :class:`SignalCache` (``signal == "activations"``), reused as is when an identical
        one exists.

    Raises:
        SignalError: an activation or output is NaN or infinite.
    """
    layers = list(layers)
    return stream_signals(
        model, dataset, indices, layers, cache_root, _recorded(model, layers), signal="activations",
        batch_size=batch_size, dtype=dtype, show_progress=show_progress,
    )

"""Per-sample gradients as audit signals (gMINT AAD), batched with ``torch.func``.

For each sample ``(x, y)`` the signal is the gradient of the loss on its true label,
``cross_entropy(M(x), y)``, with respect to the ``weight`` of chosen layers: the update that
sample alone would cause. It is computed for a whole batch at once, as ``vmap`` over ``grad``
of a functional call of the model (``torch.func.functional_call``), in eval mode (BatchNorm
reads its running statistics, dropout is off), on detached copies of the parameters: the model's
parameters, buffers, ``.grad`` and training mode are left exactly as they were.

A per-sample gradient of a conv weight has shape (F_out, C_in, kH, kW), of a linear weight
(F_out, F_in); it is reduced per output filter, over every axis but the first, to a vector of
length F_out (gMINT's "mean", and the alternatives ``abs-mean``, ``l2`` and ``std``; several
may be concatenated). Only the reduced vectors are stored, batch by batch, in the same
streaming on-disk cache as activations (:func:`~mintaudit.signals.writer.stream_signals`), under
a key that includes the layers and the reductions.

Layer choice uses the layer selector (names, indices, globs) or the gMINT setups: ``entry``
(the first layer owning a weight matrix or kernel), ``middle`` (the middle one, index
``(n - 1) // 2``), ``output`` (the last one) and ``combined`` (the three together). The paper
names the setups but does not define them for our models; this rule is our reconstruction. On
``objcls-cnn`` it picks ``block1.conv1``, ``block2.conv2`` and ``head``.

Example:
    >>> from mintaudit.models import TinyCNN
    >>> m = TinyCNN(1, 3).eval()
    >>> gradient_layers(m, "combined")
    ['conv1', 'conv2', 'fc']
    >>> grads, logits = per_sample_gradients(m, torch.zeros(4, 1, 8, 8), torch.tensor([0, 1, 2, 0]), ["conv2"])
    >>> tuple(grads["conv2"].shape), tuple(reduce_per_filter(grads["conv2"], ["mean", "l2"]).shape)
    ((4, 16, 8, 3, 3), (4, 32))
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import torch
from torch import nn

from mintaudit._logits import logits_of
from mintaudit.data._base import ImageDataset
from mintaudit.errors import ConfigError, LayerNotFoundError
from mintaudit.signals.reader import SignalCache
from mintaudit.signals.writer import BatchFn, stream_signals
from mintaudit.targets.saved import require_gradients
from mintaudit.taps import select_layers

__all__ = [
    "Reduction",
    "REDUCTIONS",
    "Setup",
    "SETUPS",
    "weighted_layers",
    "gradient_layers",
    "check_reductions",
    "per_sample_gradients",
    "reduce_per_filter",
    "gradient_vectors",
    "extract_gradients",
]

Reduction = Literal["mean", "abs-mean", "l2", "std"]
REDUCTIONS: tuple[str, ...] = get_args(Reduction)
Setup = Literal["entry", "middle", "output", "combined"]
SETUPS: tuple[str, ...] = get_args(Setup)

_RAW_BYTES = 256 * 2**20  # raw per-sample gradients held at once while extracting

_REDUCE: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "mean": lambda g: g.mean(-1),
    "abs-mean": lambda g: g.abs().mean(-1),
    "l2": lambda g: torch.linalg.vector_norm(g, dim=-1),
    "std": lambda g: g.std(-1, correction=0),
}


def _own_weight(module: nn.Module) -> torch.Tensor | None:
    w = dict(module.named_parameters(recurse=False)).get("weight")
    return w if w is not None and w.ndim >= 2 else None


def weighted_layers(model: nn.Module) -> list[str]:
    """Qualified names of the layers owning a weight matrix or kernel (``weight`` with ndim >= 2).

    In ``named_modules`` order (the order of definition); normalisation layers' 1-D scales are
    not counted.

    Example:
        >>> from mintaudit.models import TinyCNN
        >>> weighted_layers(TinyCNN(1, 3))
        ['conv1', 'conv2', 'fc']
    """
    return [name for name, module in model.named_modules() if name and _own_weight(module) is not None]


def gradient_layers(model: nn.Module, spec: str | int | Sequence[str | int]) -> list[str]:
    """Resolve a gMINT layer choice to qualified names of weighted layers.

    Args:
        model: the audited model.
        spec: a setup (``entry``, ``middle``, ``output``, ``combined``; see the module notes),
            or a selection as :func:`~mintaudit.taps.select_layers` reads it. Globs and ``all``
            keep the weighted layers they match; a layer named or indexed explicitly must own a
            weight matrix or kernel.

    Returns:
        Layer names, in the order given, without duplicates.

    Raises:
        ConfigError: the model has no weighted layer, or a selection keeps none.
        LayerNotFoundError: an unknown layer, or one without a weight matrix or kernel.
    """
    require_gradients(model, "gMINT")
    weighted = weighted_layers(model)
    if not weighted:
        raise ConfigError(f"{type(model).__name__} has no layer with a weight matrix or kernel; gMINT needs one")
    if isinstance(spec, str) and spec.strip().lower() in SETUPS:
        first, middle, last = weighted[0], weighted[(len(weighted) - 1) // 2], weighted[-1]
        chosen = {"entry": [first], "middle": [middle], "output": [last], "combined": [first, middle, last]}
        return list(dict.fromkeys(chosen[spec.strip().lower()]))
    items: list[str | int]
    if isinstance(spec, (str, int)):
        items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [spec]
    else:
        items = list(spec)
    out: list[str] = []
    for item in items:
        names = select_layers(model, item)
        broad = isinstance(item, str) and (item == "all" or any(ch in item for ch in "*?["))
        if not broad:
            bad = [n for n in names if n not in weighted]
            if bad:
                raise LayerNotFoundError(
                    f"layer {bad[0]!r} owns no weight matrix or kernel, so it has no weight gradient; "
                    f"choose among {', '.join(weighted)} or a setup ({', '.join(SETUPS)})"
                )
        out.extend(n for n in names if n in weighted and n not in out)
    if not out:
        raise ConfigError(
            f"the selection {spec!r} keeps no layer with a weight matrix or kernel; "
            f"choose among {', '.join(weighted)} or a setup ({', '.join(SETUPS)})"
        )
    return out


def check_reductions(reductions: str | Sequence[str]) -> tuple[str, ...]:
    """Validate reductions (a sequence or a comma-separated string) and return them as a tuple.

    Raises:
        ConfigError: none given, an unknown one, or one given twice.
    """
    items = [r.strip() for r in reductions.split(",")] if isinstance(reductions, str) else [str(r) for r in reductions]
    items = [r for r in items if r]
    if not items:
        raise ConfigError(f"give at least one gradient reduction: {', '.join(REDUCTIONS)}")
    for r in items:
        if r not in REDUCTIONS:
            raise ConfigError(f"unknown gradient reduction {r!r}; choose among {', '.join(REDUCTIONS)}")
    if len(set(items)) != len(items):
        raise ConfigError(f"gradient reductions {','.join(items)} name one twice; give each once")
    return tuple(items)


def reduce_per_filter(grads: torch.Tensor, reductions: Sequence[str]) -> torch.Tensor:
    """Reduce per-sample weight gradients per output filter.

    Args:
        grads: float (B, F, ...) per-sample gradients of one weight (conv: (B, F, C, kH, kW);
            linear: (B, F, F_in)).
        reductions: names from :data:`REDUCTIONS`; ``std`` is the population deviation
            (``correction=0``), ``l2`` the Euclidean norm.

    Returns:
        float (B, R * F), reduction-major: columns ``[r * F, (r + 1) * F)`` hold reduction ``r``.
    """
    g = grads.flatten(2)  # (B, F, M)
    return torch.cat([_REDUCE[r](g) for r in check_reductions(reductions)], 1)


def _weights(model: nn.Module, layers: Sequence[str]) -> dict[str, str]:
    """{layer: qualified name of its weight parameter}, after checking each layer owns one.

    A weight shared by several layers has one name (its first), as ``named_parameters`` gives it.
    """
    modules = dict(model.named_modules())
    weighted = weighted_layers(model)
    canonical = {id(p): name for name, p in reversed(list(model.named_parameters()))}
    out = {}
    for layer in layers:
        if layer not in modules or not layer:
            raise LayerNotFoundError(
                f"no layer {layer!r} in {type(model).__name__}; choose among {', '.join(weighted)}"
            )
        if layer not in weighted:
            raise LayerNotFoundError(
                f"layer {layer!r} owns no weight matrix or kernel; choose among {', '.join(weighted)}"
            )
        out[layer] = canonical[id(_own_weight(modules[layer]))]
    if not out:
        raise ConfigError("no layer given for per-sample gradients; choose at least one (e.g. a setup: entry)")
    return out


def _batched_gradients(
    model: nn.Module, layers: Sequence[str], reductions: Sequence[str] | None = None
) -> Callable[..., tuple[dict[str, torch.Tensor], torch.Tensor]]:
    """A function ``(x (B, ...), y (B,)) -> ({layer: gradients}, logits (B, K))`` for the model as it is now.

    Gradients are raw, (B, *weight.shape), or with ``reductions`` reduced inside the
    vectorised function, (B, R * F); then at most ``_RAW_BYTES`` of raw per-sample gradients
    exist at once (``vmap`` runs in chunks of samples when a batch would need more).

    It reads detached copies of the current parameters and buffers; the model is only called
    functionally (``functional_call`` swaps its parameters back in a ``finally``).
    """
    from torch.func import functional_call, grad, vmap

    require_gradients(model, "gMINT")
    weight_of = _weights(model, layers)
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    wanted = {k: params.pop(k) for k in dict.fromkeys(weight_of.values())}
    per_sample_bytes = sum(w.numel() * w.element_size() for w in wanted.values())

    def loss(w: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = logits_of(functional_call(model, ({**params, **w}, buffers), (x[None],)))
        return nn.functional.cross_entropy(logits, y[None]), logits[0]

    def one(
        w: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        g, logits = grad(loss, has_aux=True)(w, x, y)
        if reductions is not None:  # (F, ...) -> (R * F,) for this one sample
            g = {k: reduce_per_filter(v[None], reductions)[0] for k, v in g.items()}
        return g, logits

    def run(x: torch.Tensor, y: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        chunk = max(1, _RAW_BYTES // max(per_sample_bytes, 1)) if reductions is not None else len(x)
        grads, logits = vmap(one, in_dims=(None, 0, 0), chunk_size=chunk if chunk < len(x) else None)(wanted, x, y)
        return {layer: grads[name] for layer, name in weight_of.items()}, logits.detach()

    return run


def per_sample_gradients(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, layers: Sequence[str]
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Per-sample gradients of the loss on the true label w.r.t. the weights of ``layers``.

    Computed batched (``vmap`` over ``grad`` of a functional call), in eval mode; the model's
    parameters, buffers, ``.grad`` and training mode are unchanged afterwards.

    Args:
        model: the audited model.
        x: float (B, C, H, W) inputs; y: int64 (B,) true labels.
        layers: names of layers owning a weight matrix or kernel.

    Returns:
        ({layer: float (B, *weight.shape)}, logits float (B, K)).
    """
    was_training = model.training
    model.eval()
    try:
        return _batched_gradients(model, layers)(x, y)
    finally:
        model.train(was_training)


def gradient_vectors(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    layers: Sequence[str],
    reductions: str | Sequence[str] = ("mean",),
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """gMINT's AAD for one batch: per-sample weight gradients reduced per output filter.

    What :func:`extract_gradients` computes per batch (the reduction runs inside the
    vectorised function, so large layers are processed in chunks of samples); the model is
    left as it was, as with :func:`per_sample_gradients`.

    Args:
        model: the audited model.
        x: float (B, C, H, W) inputs; y: int64 (B,) true labels.
        layers: names of layers owning a weight matrix or kernel.
        reductions: see :func:`reduce_per_filter`.

    Returns:
        ({layer: float (B, R * F)}, logits float (B, K)).
    """
    reductions = check_reductions(reductions)
    was_training = model.training
    model.eval()
    try:
        return _batched_gradients(model, layers, reductions)(x, y)
    finally:
        model.train(was_training)


def extract_gradients(
    model: nn.Module,
    dataset: ImageDataset,
    indices: np.ndarray,
    layers: Sequence[str],
    cache_root: str | Path,
    *,
    reductions: str | Sequence[str] = ("mean",),
    batch_size: int = 128,
    show_progress: bool | None = None,
) -> SignalCache:
    """Stream reduced per-sample gradients of ``layers`` (and the output signals) into a cache.

    Only the reduced vectors are kept, one batch at a time: memory does not grow with the
    number of samples, and at most 256 MB of raw per-sample gradients exist at once (the
    vectorised computation runs in chunks of a batch when large layers need it). Stored as
    float32 (gradients can be far below float16's range).

    Args:
        model: the audited model (not modified; eval mode during the pass, mode restored).
        dataset: the pool.
        indices: int array (N,) of pool indices, in the order rows are stored.
        layers: weighted layers (see :func:`gradient_layers` for setups and selections).
        cache_root: the folder under which the cache directory (named by its key) lives.
        reductions: per-filter reductions, concatenated (see :func:`reduce_per_filter`).
        batch_size: samples per batched gradient computation.
        show_progress: progress bar; None = only on a terminal.

    Returns:
        The :class:`SignalCache` (``signal == "gradients"``): ``cache.gradients(layer)`` is
        float32 (N, R * F), ``cache.outputs()`` the logits, loss and labels. Reused as is
        when one with the same model, data, samples, layers and reductions exists.

    Raises:
        SignalError: a gradient or output is NaN or infinite.
        LayerNotFoundError: a layer without a weight matrix or kernel.
    """
    layers = list(layers)
    reductions = check_reductions(reductions)
    weight_of = _weights(model, layers)
    modules = dict(model.named_modules())
    filters = {layer: int(modules[layer].weight.shape[0]) for layer in weight_of}

    @contextlib.contextmanager
    def producer():  # noqa: ANN202 - a generator context manager
        compute = _batched_gradients(model, layers, reductions)

        def run(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            grads, logits = compute(x, y)
            return logits, grads

        yield run

    batch_fn: contextlib.AbstractContextManager[BatchFn] = producer()
    return stream_signals(
        model,
        dataset,
        indices,
        layers,
        cache_root,
        batch_fn,
        signal="gradients",
        key_extra=(f"reductions={','.join(reductions)}", "loss=cross_entropy(true label)", "weights"),
        manifest_extra={
            "reductions": list(reductions),
            "filters": filters,
            "gradient": "d cross_entropy(M(x), y) / d layer.weight, eval mode, reduced per output filter",
        },
        batch_size=batch_size,
        dtype="float32",
        show_progress=show_progress,
    )

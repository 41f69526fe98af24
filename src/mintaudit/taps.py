"""The embeddings selector: list a model's layers, select taps, record their outputs.

Hooks live only inside a :class:`Recorder` context: they are registered on entry, removed in a
``finally`` on exit (also when forward raises), nothing is written onto the user's modules, and
the model's outputs are identical with and without a recorder.

Example:
    >>> from mintaudit.models import TinyCNN
    >>> m = TinyCNN(1, 10)
    >>> layers = select_layers(m, "relu*")
    >>> with Recorder(m, layers) as rec:
    ...     logits = m(torch.zeros(2, 1, 8, 8))
    ...     acts = rec.pop()
    >>> sorted(acts)
    ['relu1', 'relu2']
"""

from __future__ import annotations

import difflib
import fnmatch
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import torch
from torch import nn

from mintaudit.errors import ConfigError, LayerNotFoundError

__all__ = ["LayerInfo", "list_layers", "select_layers", "Recorder"]

LayerSpec = str | int | Sequence[str | int]


@dataclass(frozen=True)
class LayerInfo:
    """One tappable layer: its index (order of ``named_modules``), name, type and output shape."""

    index: int
    name: str
    type: str
    output_shape: tuple[int, ...] | None

    @property
    def is_leaf(self) -> bool:
        return self.type != "container"


def _modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if n]


def _first_tensor(out: Any) -> torch.Tensor | None:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        for item in out:
            if isinstance(item, torch.Tensor):
                return item
    if isinstance(out, dict):
        for item in out.values():
            if isinstance(item, torch.Tensor):
                return item
    return None


def list_layers(model: nn.Module, example: torch.Tensor | None = None) -> list[LayerInfo]:
    """Every named sub-module of ``model``, with its output shape for ``example`` when given.

    Args:
        model: the audited model (not modified; run in eval mode for the probe, mode restored).
        example: float tensor (1, C, H, W) to measure output shapes; None leaves them unknown.

    Returns:
        One :class:`LayerInfo` per module, index = position in ``model.named_modules()``.
    """
    named = _modules(model)
    shapes: dict[str, tuple[int, ...]] = {}
    if example is not None:
        with Recorder(model, [n for n, _ in named]) as rec, torch.no_grad():
            was_training = model.training
            model.eval()
            try:
                model(example)
            finally:
                model.train(was_training)
            shapes = {k: tuple(v.shape[1:]) for k, v in rec.pop().items()}
    return [
        LayerInfo(i, n, type(m).__name__ if not list(m.children()) else "container", shapes.get(n))
        for i, (n, m) in enumerate(named)
    ]


def _unknown(model: nn.Module, wanted: str, names: list[str]) -> LayerNotFoundError:
    close = difflib.get_close_matches(wanted, names, n=5, cutoff=0.4)
    hint = f" Closest: {', '.join(close)}." if close else ""
    return LayerNotFoundError(f"no layer {wanted!r} in {type(model).__name__}.{hint} List them with 'mintaudit layers'")


def select_layers(model: nn.Module, spec: LayerSpec) -> list[str]:
    """Resolve a tap selection to qualified layer names, eagerly.

    Args:
        model: the model whose layers are selected.
        spec: a name (``"block1.relu1"``), an index (``3`` or ``"3"``), a glob (``"block*.relu?"``),
            ``"all"`` (every leaf layer), a comma-separated string of those, or a list of them.

    Returns:
        Qualified names in the order given, without duplicates.

    Raises:
        LayerNotFoundError: an unknown name, an index out of range or a glob matching nothing,
            with the closest names.
    """
    named = _modules(model)
    names = [n for n, _ in named]
    leaves = [n for n, m in named if not list(m.children())]
    items: list[str | int]
    if isinstance(spec, (str, int)):
        items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [spec]
    else:
        items = list(spec)
    if not items or items == [""]:
        raise ConfigError("no layer selected; give a name, an index, a glob or 'all'")
    out: list[str] = []
    for item in items:
        if isinstance(item, str) and item.lstrip("-").isdigit():
            item = int(item)
        if isinstance(item, int):
            if not -len(names) <= item < len(names):
                raise LayerNotFoundError(
                    f"layer index {item} is out of range: {type(model).__name__} has {len(names)} layers "
                    f"(0..{len(names) - 1}); list them with 'mintaudit layers'"
                )
            found = [names[item]]
        elif item == "all":
            found = leaves
        elif any(ch in item for ch in "*?["):
            found = [n for n in names if fnmatch.fnmatchcase(n, item)]
            if not found:
                raise _unknown(model, item, names)
        elif item in names:
            found = [item]
        else:
            raise _unknown(model, item, names)
        out.extend(n for n in found if n not in out)
    return out


_ACTIVE: weakref.WeakSet[nn.Module] = weakref.WeakSet()


class Recorder:
    """Record the outputs of chosen layers during forward passes.

    Outputs are detached and copied (so later in-place operations cannot change them); for a
    layer returning a tuple, list or dict, its first tensor is kept. A model can be hooked by
    one recorder at a time.

    Args:
        model: the model; nothing is written onto it.
        layers: qualified layer names (see :func:`select_layers`).
        detach: False keeps the graph (for training through the taps, e.g. active MINT).
        reduce: layer -> a function of its detached output returning what is kept (e.g.
            :func:`mintaudit.signals.reduce.reduce_activations` with a mode), run inside the hook
            on the output's device: the full output is then never cloned (only a result that
            shares its memory is copied).
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[str],
        *,
        detach: bool = True,
        reduce: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] | None = None,
    ) -> None:
        self.model = model
        self.layers = list(layers)
        self.detach = detach
        self.reduce = dict(reduce or {})
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._outputs: dict[str, torch.Tensor] = {}

    def __enter__(self) -> Recorder:
        if self.model in _ACTIVE:
            raise ConfigError(f"{type(self.model).__name__} is already hooked by another Recorder; nest none")
        modules = dict(self.model.named_modules())
        missing = [n for n in self.layers if n not in modules or not n]
        if missing:
            raise _unknown(self.model, missing[0], [n for n in modules if n])
        try:
            for name in self.layers:
                self._handles.append(modules[name].register_forward_hook(self._hook(name)))
        except BaseException:
            self._remove()
            raise
        _ACTIVE.add(self.model)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._remove()
        _ACTIVE.discard(self.model)
        self._outputs = {}

    def _remove(self) -> None:
        try:
            for handle in self._handles:
                handle.remove()
        finally:
            self._handles = []

    def _hook(self, name: str):  # noqa: ANN202 - a torch hook
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            tensor = _first_tensor(output)
            if tensor is None:
                return
            fn = self.reduce.get(name)
            if fn is None:
                self._outputs[name] = tensor.detach().clone() if self.detach else tensor
                return
            kept = fn(tensor.detach() if self.detach else tensor)
            if (
                self.detach
                and kept.device.type != "meta"
                and kept.untyped_storage().data_ptr() == tensor.untyped_storage().data_ptr()
            ):
                kept = kept.clone()  # a reduction that returned (a view of) the output itself
            self._outputs[name] = kept

        return hook

    def pop(self) -> dict[str, torch.Tensor]:
        """Return the outputs recorded since the last call (layer name -> tensor) and forget them."""
        out, self._outputs = self._outputs, {}
        return out

"""The default Target (an nn.Module with its spec and preprocessing) and the registry of locator schemes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from mintaudit._registry import Registry
from mintaudit.models import ModelSpec, build_model, load_weights, model_entry, model_fingerprint
from mintaudit.preprocess import Preprocess

__all__ = [
    "ModuleTarget",
    "SchemeOpener",
    "open_target",
    "register_scheme",
    "scheme_names",
    "split_scheme",
    "unregister_scheme",
]


@dataclass
class ModuleTarget:
    """A PyTorch module returning logits, as a :class:`~mintaudit.protocols.Target`.

    Attributes:
        module: the model (its forward returns the logits tensor).
        name: its locator (zoo name, ``package.module:factory``, or ``SCHEME:PATH``).
        kind: ``"zoo"``, ``"factory"``, ``"module"`` or the scheme that opened it.
        spec: how to rebuild it untrained (zoo and factories), or None.
        preprocess: the preprocessing its files declare, or None.
        supports_gradients: whether gradients flow through it.
        rebuild: a callable returning a fresh untrained copy, when ``spec`` cannot say how.
    """

    module: nn.Module
    name: str
    kind: str = "module"
    spec: ModelSpec | None = None
    preprocess: Preprocess | None = None
    supports_gradients: bool = True
    rebuild: Callable[[], nn.Module] | None = None

    def fingerprint(self) -> str:
        return model_fingerprint(self.module)

    def fresh(self) -> nn.Module | None:
        if self.rebuild is not None:
            return self.rebuild()
        return build_model(self.spec) if self.spec is not None else None


#: ``opener(path, *, input_shape, num_classes, kwargs) -> Target`` for ``SCHEME:PATH``.
SchemeOpener = Callable[..., Any]

_SCHEMES: Registry[SchemeOpener] = Registry("model scheme")


def register_scheme(name: str, opener: SchemeOpener) -> SchemeOpener:
    """Make ``--model NAME:PATH`` open a model with ``opener`` (see :data:`SchemeOpener`)."""
    return _SCHEMES.add(name, opener)


def unregister_scheme(name: str) -> SchemeOpener:
    return _SCHEMES.remove(name)


def scheme_names() -> list[str]:
    return list(_SCHEMES)


def split_scheme(locator: str) -> tuple[str | None, str]:
    """``("hf", "DIR")`` for ``hf:DIR`` when ``hf`` is a registered scheme, else ``(None, locator)``."""
    scheme, sep, rest = locator.partition(":")
    if sep and scheme in _SCHEMES:
        return scheme, rest
    return None, locator


def open_target(
    locator: str,
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    weights: str | Path | None = None,
    kwargs: dict[str, Any] | None = None,
) -> Any:
    """Open the audited model named by ``locator`` (eval mode) as a Target.

    Args:
        locator: a zoo name, ``package.module:factory`` or ``SCHEME:PATH`` of a registered scheme.
        input_shape: (C, H, W) of one input, as the data set gives it.
        num_classes: K, the logits' width.
        weights: the weights file for zoo names and factories (safetensors, or a weights-only state dict).
        kwargs: extra keyword arguments for the factory or scheme (``--model-arg``).
    """
    scheme, path = split_scheme(locator)
    if scheme is not None:
        return _SCHEMES.get(scheme)(path, input_shape=input_shape, num_classes=num_classes, kwargs=dict(kwargs or {}))
    c, h, w = input_shape
    spec = ModelSpec(locator, c, num_classes, (h, w), dict(kwargs or {}))
    net = build_model(spec)
    if weights is not None:
        load_weights(net, weights)
    net.eval()
    kind = "zoo" if model_entry(locator) is not None else "factory"
    return ModuleTarget(net, locator, kind=kind, spec=spec)

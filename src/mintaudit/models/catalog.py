"""The zoo's registry: each audited model with its factory and its taps, in one entry.

``register_model(name, factory, taps={...})`` keeps together what used to live in three
tables: the factory (:func:`mintaudit.models.build_model`), the study's published taps
(:func:`mintaudit.models.published_taps`) and the aMINT tap presets
(:func:`mintaudit.models.active_taps`). The built-ins register themselves next to their classes
(``models/backbones/``, ``models/zoo.py``); a new model is one file (see ``docs/howto/extending.md``).

Example:
    >>> register_model("my-cnn", MyCNN, taps={"published": ["relu1", "relu2"],  # doctest: +SKIP
    ...                "entry": ["relu1"], "middle": ["relu1", "relu2"], "output": ["relu2"]})
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mintaudit._registry import Names, Registry
from mintaudit.errors import ConfigError

__all__ = ["MODEL_NAMES", "SETUPS", "ModelEntry", "model_entry", "register_model", "unregister_model"]

#: The aMINT tap setups, in depth order.
SETUPS: tuple[str, ...] = ("entry", "middle", "output")
_TAP_KEYS = ("published", *SETUPS)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")  # no ':' (that is 'package.module:factory')


@dataclass(frozen=True)
class ModelEntry:
    """A registered zoo model.

    Attributes:
        name: the zoo name (``--model``, ``ModelSpec.name``).
        factory: builds the model from those of ``in_channels``, ``num_classes``, ``image_size`` it
            accepts, plus the spec's kwargs.
        published: the study's (label, layer) taps (``mintaudit sweep``'s default), or None.
        active: setup (entry / middle / output) -> layer names aMINT taps; empty when it has none.
        scale_taps: optional ``scale_taps(model) -> {setup: layers}`` for a built model whose
            layer names depend on its size (the ViT's depth).
    """

    name: str
    factory: Callable[..., Any]
    published: tuple[tuple[str, str], ...] | None = None
    active: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    scale_taps: Callable[[Any], dict[str, list[str]]] | None = None


_REGISTRY: Registry[ModelEntry] = Registry("model")

#: Zoo model names, in registration order (a live view of the registry).
MODEL_NAMES: Names = Names(_REGISTRY)


def _published(name: str, taps: Any) -> tuple[tuple[str, str], ...] | None:
    if taps is None:
        return None
    pairs = []
    for i, tap in enumerate(taps, start=1):
        if isinstance(tap, str):
            pairs.append((f"L{i}", tap))  # a bare layer name is labelled by its depth
        elif isinstance(tap, Sequence) and len(tap) == 2 and all(isinstance(t, str) for t in tap):
            pairs.append((tap[0], tap[1]))
        else:
            raise ConfigError(
                f"model {name!r}: published taps must be layer names or (label, layer) pairs; given {tap!r}"
            )
    return tuple(pairs)


def register_model(
    name: str,
    factory: Callable[..., Any],
    *,
    taps: Mapping[str, Any] | None = None,
    scale_taps: Callable[[Any], dict[str, list[str]]] | None = None,
) -> Callable[..., Any]:
    """Register ``factory`` as the zoo model ``name``, with its taps; returns ``factory``.

    Args:
        name: the zoo name (no ``:``, which marks ``package.module:factory``).
        factory: a class or function returning an ``nn.Module``.
        taps: ``{"published": [(label, layer), ...] or [layer, ...], "entry": [...], "middle":
            [...], "output": [...]}``; every key optional, but the aMINT setups come all three or
            none.
        scale_taps: see :class:`ModelEntry`.

    Raises:
        ConfigError: the name is taken or malformed, or ``taps`` has an unknown key or misses a setup.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"model name must be letters, digits and - _ . + (no ':'); given {name!r}")
    if not callable(factory):
        raise ConfigError(f"register_model({name!r}): factory must be callable; given {type(factory).__name__}")
    taps = dict(taps or {})
    unknown = sorted(set(taps) - set(_TAP_KEYS))
    if unknown:
        raise ConfigError(f"model {name!r}: unknown tap key(s) {', '.join(unknown)}; use {', '.join(_TAP_KEYS)}")
    given = [s for s in SETUPS if s in taps]
    if given and len(given) != len(SETUPS):
        raise ConfigError(f"model {name!r}: aMINT taps need all of {', '.join(SETUPS)}; given {', '.join(given)}")
    for setup in given:
        if isinstance(taps[setup], str) or not taps[setup] or not all(isinstance(t, str) for t in taps[setup]):
            raise ConfigError(
                f"model {name!r}: taps[{setup!r}] must be a non-empty list of layer names; given {taps[setup]!r}"
            )
    active = {s: tuple(taps[s]) for s in given}
    _REGISTRY.add(name, ModelEntry(name, factory, _published(name, taps.get("published")), active, scale_taps))
    return factory


def unregister_model(name: str) -> ModelEntry:
    """Remove the zoo model ``name`` (for plug-ins and tests)."""
    return _REGISTRY.remove(name)


def model_entry(name: str) -> ModelEntry | None:
    """The entry of zoo model ``name``, or None when no model of that name is registered."""
    return _REGISTRY.get(name) if name in _REGISTRY else None

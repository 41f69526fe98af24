"""The detector protocol, the registry of MINT network kinds (``mlp``, ``cnn``...), and the
hyper-parameters every kind's body reads (:class:`DetectorConfig`).

Two extension points:

- :class:`Detector`: what :func:`mintaudit.passive.audit_tap` needs of a MINT model (fit /
  decision_function / save / load, and ``kind_`` for the report). Pass any such object, or a
  factory returning one, as ``audit_tap(..., detector=...)``; :class:`MintDetector` is the default.
- :func:`register_detector`: a new network kind inside :class:`MintDetector` (``kind=...``,
  ``--detector``), one file: a function building the body that reads the signals; the dense head,
  the training, early stopping and saving are shared.

Example:
    >>> @register_detector("linear-maps", maps=True)  # doctest: +SKIP
    ... def linear_maps(in_dim, in_channels, config):
    ...     return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), in_channels
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, Union, runtime_checkable

import numpy as np

from mintaudit._registry import Names, Registry
from mintaudit.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "DETECTOR_KINDS",
    "Detector",
    "DetectorConfig",
    "DetectorFactory",
    "DetectorKind",
    "DetectorScorer",
    "detector_kind",
    "register_detector",
    "unregister_detector",
]


@runtime_checkable
class Detector(Protocol):
    """A MINT model: binary, 1 = member, 0 = external; higher ``decision_function`` = more likely a member.

    ``fit`` returns the detector; ``kind_`` (set by ``fit``) names it in the report's ``detector``;
    ``save`` writes a folder that ``load`` reads back (no pickle). Optional fitted attributes
    ``best_epoch_`` and ``val_auc_`` go into the report row's ``fit`` when present.
    """

    kind_: str

    def fit(self, X: Any, y: Any, extra: np.ndarray | None = None) -> Detector: ...

    def decision_function(self, X: Any, extra: np.ndarray | None = None) -> np.ndarray: ...

    def save(self, out_dir: str | Path) -> Path: ...

    @classmethod
    def load(cls, path: str | Path) -> Detector: ...


#: A detector, or a callable of no arguments that returns a new one (a class, a ``functools.partial``...).
DetectorFactory = Union[Detector, Callable[[], Detector]]

#: body(in_dim, in_channels, config) -> (module, features): the module maps the standardised input
#: (B, in_dim) or (B, C, H, W) to (B, features), which the shared dense head reads.
BodyFn = Callable[[int, int, "DetectorConfig"], "tuple[nn.Module, int]"]


@dataclass(frozen=True)
class DetectorKind:
    """A registered network kind of :class:`~mintaudit.detectors.MintDetector`.

    Attributes:
        name: the ``kind`` (``--detector``) value.
        body: see :data:`BodyFn`.
        maps: the body reads activation maps (N, C, H, W) as they are; False: maps are pooled
            (or flattened, by ``pooling``) into vectors first, and vectors are read as they are.
    """

    name: str
    body: BodyFn
    maps: bool = False


_REGISTRY: Registry[DetectorKind] = Registry("detector kind")

#: Registered kinds, in registration order (a live view); ``auto`` picks ``cnn`` for maps, ``mlp`` otherwise.
DETECTOR_KINDS: Names = Names(_REGISTRY)


def register_detector(kind: str, *, maps: bool = False) -> Callable[[BodyFn], BodyFn]:
    """Decorator: register a body builder as the detector kind ``kind``.

    Raises:
        ConfigError: ``kind`` is taken (``auto`` is reserved).
    """
    if kind == "auto":
        raise ConfigError("detector kind 'auto' is reserved (it picks cnn for maps, mlp otherwise); pick another name")

    def decorate(fn: BodyFn) -> BodyFn:
        _REGISTRY.add(kind, DetectorKind(kind, fn, bool(maps)))
        return fn

    return decorate


def unregister_detector(kind: str) -> DetectorKind:
    """Remove the detector kind ``kind`` (for plug-ins and tests)."""
    return _REGISTRY.remove(kind)


def detector_kind(kind: str) -> DetectorKind:
    """The entry of ``kind``; an unknown one raises a ConfigError listing the registered ones."""
    return _REGISTRY.get(kind)


Kind = Literal["auto", "mlp", "cnn"]
Pooling = Literal["mean", "meanmax", "flatten"]


@dataclass(frozen=True)
class DetectorConfig:
    """Hyper-parameters of a :class:`~mintaudit.detectors.MintDetector` (a reconstruction: the study did not
    publish them); each kind's body reads them."""

    kind: Kind = "auto"
    pooling: Pooling = "meanmax"
    width: int = 32
    hidden: int = 128
    dropout: float = 0.3
    epochs: int = 40
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 6
    val_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind != "auto" and self.kind not in DETECTOR_KINDS:
            raise ConfigError(f"detector kind must be one of {', '.join(('auto', *DETECTOR_KINDS))}; got {self.kind!r}")
        if self.pooling not in ("mean", "meanmax", "flatten"):
            raise ConfigError(f"pooling must be one of mean, meanmax, flatten; got {self.pooling!r}")
        if not 0.0 < self.val_fraction < 0.9:
            raise ConfigError(f"val_fraction must lie in (0, 0.9), got {self.val_fraction}")
        for key in ("width", "hidden", "epochs", "batch_size", "patience"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}")


class DetectorScorer:
    """A :class:`Detector` as a :class:`mintaudit.protocols.Scorer`: ``score`` is its ``decision_function``.

    Example:
        >>> from mintaudit.detectors import MintDetector
        >>> scorer = DetectorScorer(MintDetector())
    """

    def __init__(self, detector: Detector) -> None:
        self.detector = detector

    def fit(self, X: Any, y: np.ndarray, extra: np.ndarray | None = None) -> DetectorScorer:
        self.detector = self.detector.fit(X, y, extra)
        return self

    def score(self, X: Any, extra: np.ndarray | None = None) -> np.ndarray:
        return np.asarray(self.detector.decision_function(X, extra), dtype=np.float64)

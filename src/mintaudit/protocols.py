"""The engine's five protocols: what a data source, an audited model, a scorer, a trainer and a report section are.

Every part of mintaudit that reads data, opens a model, produces membership scores, trains a
reference model or writes a part of the report is one of these. Each has a default
implementation for what the package always did (pools read by index, zoo models and factories,
MINT detectors, the package's own training loop, the report's dict), and a user may bring their own:
any object with these methods and attributes fits, no base class needed (:class:`typing.Protocol`).

- :class:`Source`: samples addressed by position: ``len``, labels, a fingerprint, batches of ids.
  Default: :class:`mintaudit.data.PoolSource` over an :class:`~mintaudit.data.ImageDataset`.
- :class:`Target`: the audited model: a module whose forward returns logits and whose named
  submodules are the taps, its fingerprint, its preprocessing, and a fresh untrained copy where one
  can be built. Default: :class:`mintaudit.targets.ModuleTarget`; ``open_target`` opens one from a
  locator (zoo name, ``package.module:factory``, or a registered scheme such as ``hf:DIR``).
- :class:`Scorer`: fitted on known members against external samples, then scores any samples
  (higher = more likely a member). Default: :class:`mintaudit.detectors.DetectorScorer`.
- :class:`Trainer`: ``trainer(model, loader) -> model``, how reference models are trained.
  Default: :class:`mintaudit.training.PackageTrainer` (the package's Adam loop).
- :class:`Section`: one part of the report, named, with the data its template shows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

__all__ = ["Scorer", "Section", "Source", "Target", "Trainer"]


@runtime_checkable
class Source(Protocol):
    """Labelled samples addressed by position 0..len-1."""

    def __len__(self) -> int: ...

    @property
    def labels(self) -> np.ndarray:
        """int64 (N,): the class of every sample."""
        ...

    def fingerprint(self) -> str:
        """A stable hex digest of the samples and labels (the cache and record key)."""
        ...

    def batches(self, ids: np.ndarray, batch_size: int = 256) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The model's inputs for ``ids``, in order: (float (B, C, H, W), int64 (B,)) per batch."""
        ...


@runtime_checkable
class Target(Protocol):
    """The audited model, whatever it came from.

    Attributes:
        kind: where it came from (``"zoo"``, ``"factory"``, ``"module"``, or a scheme: ``"hf"``...).
        name: its locator as the user gave it (``objcls-cnn``, ``model:build``, ``hf:runs/vit``).
        module: ``nn.Module``, float (B, C, H, W) -> float (B, K) logits; its named submodules are
            the layers a tap can read (hooks), so names match the model's own code.
        preprocess: the preprocessing its files declare (a :class:`mintaudit.Preprocess`), or None
            when they declare none.
        supports_gradients: per-sample gradients can be taken through it (gMINT, aMINT).
    """

    kind: str
    name: str
    module: nn.Module
    supports_gradients: bool

    @property
    def preprocess(self) -> Any: ...

    def fingerprint(self) -> str:
        """A hex digest of the architecture and weights."""
        ...

    def fresh(self) -> nn.Module | None:
        """A new untrained copy (reference models), or None when none can be built (ONNX, torch.export)."""
        ...


@runtime_checkable
class Scorer(Protocol):
    """A membership method fitted once, then scoring samples (higher = more likely a member)."""

    def fit(self, X: Any, y: np.ndarray, extra: np.ndarray | None = None) -> Scorer: ...

    def score(self, X: Any, extra: np.ndarray | None = None) -> np.ndarray:
        """float (N,) membership scores."""
        ...


@runtime_checkable
class Trainer(Protocol):
    """How a (reference) model is trained: called with a fresh model and a loader of (x, y) batches."""

    def __call__(self, model: nn.Module, loader: Any) -> nn.Module: ...


@runtime_checkable
class Section(Protocol):
    """One part of the report: an entry of report.json's ``sections`` and the data its template partial shows.

    The base class and its registry are :class:`mintaudit.report.sections.Section` and ``register_section``.
    """

    name: str
    version: int

    def to_dict(self) -> dict[str, Any]:
        """``{"name", "version", ...}``: its entry under ``sections``."""
        ...

    def view(self, report: Any) -> Mapping[str, Any] | None:
        """What its partial shows for ``report`` (a ``mintaudit.report.Report``), or None when it has nothing to show."""
        ...

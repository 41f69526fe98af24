"""The work directory's door for a user's model: ``--model`` (zoo, factory, ``hf:DIR``, any scheme) as a Target.

:class:`TargetRef` is what the command line hands the workdir functions as ``model=`` when there is more
than a locator to say (``--model-arg``, ``--accept-preprocessing``); a plain string still works.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mintaudit._io import atomic_write_json

from mintaudit.data import ImageDataset, Splits
from mintaudit.errors import ConfigError
from mintaudit.models import ModelSpec, check_model, model_fingerprint
from mintaudit.preprocess import Preprocess
from mintaudit.probe import probe_preprocessing
from mintaudit.targets import open_target, split_scheme
from mintaudit.taps import LayerInfo, list_layers
from mintaudit.targets import declared_preprocess, resolve_preprocess

__all__ = ["TargetRef", "is_user_target", "model_preprocess", "open_audited", "target_layers", "target_spec"]


@dataclass(frozen=True)
class TargetRef:
    """A ``--model`` locator with its ``--model-arg`` keyword arguments and ``--accept-preprocessing``."""

    locator: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    accept_preprocessing: bool = False

    def __str__(self) -> str:
        return self.locator


def _ref(model: str | TargetRef) -> TargetRef:
    return model if isinstance(model, TargetRef) else TargetRef(str(model))


def is_user_target(model: Any, weights: Any) -> bool:
    """Whether ``model`` names a user's model to open (with weights, a scheme, or arguments), not OUT's."""
    if model is None:
        return False
    return weights is not None or isinstance(model, TargetRef) or split_scheme(str(model))[0] is not None


def model_preprocess(model: Any, given: Preprocess | None) -> Preprocess | None:
    """The preprocessing of the data for ``model``: its declared one, the flags' (``given``), refused when both differ."""
    locator = str(model) if model is not None else None
    return resolve_preprocess(declared_preprocess(locator), given, source=f"{locator} (preprocessor_config.json)")


def open_audited(
    out_dir: str | Path,
    ds: ImageDataset,
    model: str | TargetRef,
    weights: str | None,
    splits: Splits | None = None,
) -> tuple[nn.Module, str, dict[str, Any]]:
    """Open the user's model, check its logits' shape, and (with ``splits``) probe its preprocessing.

    Returns:
        (module in eval mode, its locator, info with ``preprocess``, ``weights``, ``kind`` and ``probe``).
    """
    ref = _ref(model)
    scheme = split_scheme(ref.locator)[0]
    if scheme is not None and weights is not None:
        raise ConfigError(
            f"--weights does not apply to {ref.locator}: the {scheme} model carries its own; drop --weights"
        )
    c, h, w = ds.image_shape
    target = open_target(
        ref.locator, input_shape=(c, h, w), num_classes=ds.num_classes, weights=weights, kwargs=ref.kwargs
    )
    net = target.module
    check_model(net, ds.image_shape, ds.num_classes, name=ref.locator)
    info: dict[str, Any] = {"preprocess": ds.preprocess_record, "kind": target.kind}
    if weights is not None:
        info["weights"] = str(weights)
    if splits is not None:
        declared_by = "the model's preprocessor_config.json" if target.preprocess is not None else "--mean/--std"
        info["probe"] = _probe_once(out_dir, net, ds, splits, ref.accept_preprocessing, declared_by)
    return net, ref.locator, info


def _probe_once(
    out_dir: str | Path, net: nn.Module, ds: ImageDataset, splits: Splits, accept: bool, declared_by: str
) -> dict[str, Any]:
    """The probe's record, cached in OUT/cache/probe/ once it found nothing better (same model, data, preprocessing, members)."""
    members = np.sort(np.asarray(splits.members, dtype=np.int64))
    key = json.dumps([model_fingerprint(net), ds.fingerprint(), ds.preprocess.key(), splits.seed])
    key += hashlib.sha256(members.tobytes()).hexdigest()
    path = Path(out_dir) / "cache" / "probe" / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
    if path.is_file():
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            record = None  # unreadable: measured again, and rewritten below
        if isinstance(record, dict) and record.get("better") is None and "candidates" in record:
            return record
    record = probe_preprocessing(net, ds, members, accept=accept, seed=splits.seed, declared_by=declared_by)
    if record["better"] is None:  # an accepted override is measured again each time, never cached
        atomic_write_json(path, record)
    return record


def target_spec(ds: ImageDataset, model: str | TargetRef, weights: str | None) -> ModelSpec | None:
    """How to build a fresh untrained copy of the user's model (reference models), or None when it cannot be
    built (``onnx:``, ``export:``): the attacks that need reference models refuse then, in one line
    (:func:`mintaudit.targets.require_fresh_copy`), and every other method runs."""
    ref = _ref(model)
    scheme, path = split_scheme(ref.locator)
    c, h, w = ds.image_shape
    if scheme is None:
        return ModelSpec(ref.locator, c, ds.num_classes, (h, w), dict(ref.kwargs))
    if scheme == "hf":
        return ModelSpec(
            "mintaudit.targets.hf:fresh_model", c, ds.num_classes, (h, w), {"path": str(Path(path).resolve())}
        )
    target = open_target(ref.locator, input_shape=(c, h, w), num_classes=ds.num_classes, kwargs=ref.kwargs)
    return getattr(target, "spec", None)


def target_layers(ds: ImageDataset, model: str | TargetRef, given: Preprocess | None) -> list[LayerInfo]:
    """Every tappable layer of the user's model, for ``ds``'s inputs read through its (resolved) preprocessing."""
    ds = ds.with_preprocess(model_preprocess(model, given))
    ref = _ref(model)
    c, h, w = ds.image_shape
    target = open_target(ref.locator, input_shape=(c, h, w), num_classes=ds.num_classes, kwargs=ref.kwargs)
    check_model(target.module, (c, h, w), ds.num_classes, name=ref.locator)  # a wrong size: one line, not a traceback
    return list_layers(target.module, torch.zeros(1, c, h, w))

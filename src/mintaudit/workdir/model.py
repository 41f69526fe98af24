"""The work directory's audited model: trained here or the user's, resolved and gated; its report header."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mintaudit.data import ImageDataset, Splits, load_dataset
from mintaudit.errors import ConfigError, ModelError
from mintaudit.gate import check_model_accuracy
from mintaudit.preprocess import Preprocess
from mintaudit.models import (
    ModelSpec,
    build_model,
    check_model,
    load_model,
    load_weights,
    published_taps,
    save_model,
)
from mintaudit.taps import LayerInfo, list_layers, select_layers
from mintaudit.training import TrainConfig, train_classifier
from mintaudit.sweeps import report_for
from mintaudit.workdir.target import is_user_target, open_audited, target_layers, target_spec


__all__ = [
    "spec_for",
    "train_model",
    "train_fresh",
    "resolve_model",
    "describe_layers",
    "resolve_taps",
    "report_for",
    "model_spec",
]


def spec_for(name: str, ds: ImageDataset, kwargs: dict[str, Any] | None = None) -> ModelSpec:
    c, h, w = ds.image_shape
    return ModelSpec(name, c, ds.num_classes, (h, w), dict(kwargs or {}))


def train_model(
    out_dir: str | Path,
    ds: ImageDataset,
    splits: Splits,
    *,
    model: str = "objcls-cnn",
    model_kwargs: dict[str, Any] | None = None,
    config: TrainConfig | None = None,
    resume: bool = False,
    show_progress: bool | None = None,
    dp: Any = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train the audited model on the members and save it under ``out_dir/model``.

    With ``dp`` (a :class:`mintaudit.dp.DPConfig`) it trains with DP-SGD through Opacus
    (BatchNorm replaced by GroupNorm, no checkpoints) and ``info["dp"]`` records the target and
    the accountant's epsilon and the replaced layers (see :mod:`mintaudit.dp`).

    Returns:
        (the trained model in eval mode, its info: accuracies, history, config).
    """
    config = config or TrainConfig()
    spec = spec_for(model, ds, model_kwargs)
    model_dir = Path(out_dir) / "model"
    net, info = train_fresh(
        spec,
        ds,
        splits.members,
        config,
        dp=dp,
        test_indices=splits.test,
        checkpoint_dir=model_dir,
        resume=resume,
        show_progress=show_progress,
    )
    info = {**info, "data_fingerprint": ds.fingerprint(), "splits_fingerprint": splits.fingerprint()}
    if "dp" in info:  # keep the order of model.json's keys as before: dp last
        info["dp"] = info.pop("dp")
    save_model(net, spec, model_dir, info)
    return net, info


def train_fresh(
    spec: ModelSpec,
    ds: ImageDataset,
    indices: np.ndarray,
    config: TrainConfig,
    *,
    dp: Any = None,
    test_indices: np.ndarray | None = None,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    show_progress: bool | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Build ``spec`` under the seed (it fixes the initial weights too), check it, and train it on ``indices``.

    Plain training (checkpoints in ``checkpoint_dir``, exact ``resume``), or DP-SGD when ``dp`` is given.
    Returns the model in eval mode and its info (config, accuracies, history, preprocessing, and ``dp``).
    """
    torch.manual_seed(config.seed)
    net = build_model(spec)
    check_model(net, ds.image_shape, ds.num_classes, name=spec.name)
    dp_record = None
    if dp is not None:
        from mintaudit.dp import make_private_ready, train_dp

        if resume:
            raise ConfigError("--resume does not apply to DP-SGD training (no checkpoints are written); drop --resume")
        net, replaced = make_private_ready(net)
        result, dp_record = train_dp(
            net, ds, indices, config, dp, test_indices=test_indices, show_progress=show_progress
        )
        dp_record["replaced"] = replaced
    else:
        result = train_classifier(
            net,
            ds,
            indices,
            config,
            test_indices=test_indices,
            checkpoint_dir=checkpoint_dir,
            resume=resume,
            show_progress=show_progress,
        )
    net.eval()
    info = {
        "train": config.to_dict(),
        "train_accuracy": result.train_accuracy,
        "task_accuracy": result.test_accuracy,
        "seconds": round(result.seconds, 2),
        "history": result.history,
        "preprocess": ds.preprocess.to_dict(),
        **({"dp": dp_record} if dp_record is not None else {}),
    }
    return net, info


def resolve_model(
    out_dir: str | Path,
    ds: ImageDataset,
    *,
    model: str | None = None,
    weights: str | None = None,
    splits: Splits | None = None,
    allow_weak_model: bool = False,
) -> tuple[nn.Module, str, dict[str, Any]]:
    """The audited model: a user's (``model`` + ``weights``) or the one trained in ``out_dir``.

    With ``splits`` the sanity gate runs first (:func:`mintaudit.gate.check_model_accuracy`):
    the model's accuracy on the members and the test samples, through ``ds``'s preprocessing,
    lands in ``info["check"]``, and a model at chance on its members is refused.

    Returns:
        (model in eval mode, its name, info).

    Raises:
        WeakModelError: the members' accuracy is not clearly above chance (and not ``allow_weak_model``).
    """
    if is_user_target(model, weights):  # zoo/factory + weights, hf:DIR, any scheme: opened, checked, probed
        net, name, info = open_audited(out_dir, ds, model, weights, splits)
    else:
        net, name, info = _load_audited(out_dir, ds, model=model, weights=weights)
    if splits is not None:
        info = {
            **info,
            "check": check_model_accuracy(
                net, ds, splits.members, splits.test, allow_weak_model=allow_weak_model
            ).to_dict(),
        }
    return net, name, info


def _load_audited(
    out_dir: str | Path, ds: ImageDataset, *, model: str | None = None, weights: str | None = None
) -> tuple[nn.Module, str, dict[str, Any]]:
    if weights is not None:
        if model is None:
            raise ConfigError("--weights needs --model (a zoo name or 'package.module:factory')")
        net = load_weights(build_model(spec_for(model, ds)), weights)
        net.eval()
        check_model(net, ds.image_shape, ds.num_classes, name=model)
        return net, model, {"weights": str(weights), "preprocess": ds.preprocess_record}
    model_dir = Path(out_dir) / "model"
    if not (model_dir / "model.json").is_file():
        raise ModelError(
            f"no trained model in {str(model_dir)!r}; run 'mintaudit train --out {out_dir}' first, "
            "or give --model and --weights"
        )
    net, spec, info = load_model(model_dir)
    if model is not None and model != spec.name:
        raise ConfigError(
            f"{str(model_dir)!r} holds a {spec.name!r} model, not {model!r}; drop --model or use another --out"
        )
    if info.get("data_fingerprint") not in (None, ds.fingerprint()):
        raise ConfigError(
            f"the model in {str(model_dir)!r} was trained on other data; use the same --dataset or another --out"
        )
    trained_with = Preprocess.from_dict(info.get("preprocess"))
    if trained_with != ds.preprocess:
        raise ConfigError(
            f"the model in {str(model_dir)!r} was trained with preprocessing {trained_with.to_dict()}, not "
            f"{ds.preprocess.to_dict()}; drop --mean/--std/--grey-to-rgb (the recorded one is used) or use another --out"
        )
    check_model(net, ds.image_shape, ds.num_classes, name=spec.name)
    return net, spec.name, {**info, "preprocess": trained_with.to_dict()}


def describe_layers(
    model: str,
    dataset: str,
    *,
    data_root: str | None = None,
    image_size: int | None = None,
    preprocess: Preprocess | None = None,
) -> list[LayerInfo]:
    """Every tappable layer of ``model`` (zoo name, ``package.module:factory`` or a saved model dir) for ``dataset``'s inputs."""
    ds = load_dataset(dataset, root=data_root, image_size=image_size)
    if is_user_target(model, None) or not Path(str(model)).is_dir():
        return target_layers(ds, model, preprocess)
    ds = ds.with_preprocess(preprocess)
    net, _, _ = load_model(model)
    c, h, w = ds.image_shape
    return list_layers(net, torch.zeros(1, c, h, w))


def resolve_taps(net: nn.Module, model_name: str, taps: str) -> list[tuple[str, str]]:
    """(label, layer) pairs: ``published`` gives the study's L1..L7; anything else goes to the selector.

    Layers of a model with published taps keep their published labels whatever the selection
    (objcls-cnn's ``block1.relu2,fc_relu`` are L2 and L7); its other layers are labelled by name.
    Other models' layers are numbered L1, L2, ... in the order given.
    """
    if taps == "published":
        pub = published_taps(model_name)
        if pub is None:
            raise ConfigError(
                f"model {model_name!r} has no published taps; choose layers with --taps (names, indices, glob or all)"
            )
        return pub
    layers = select_layers(net, taps)
    pub = {layer: label for label, layer in published_taps(model_name) or ()}
    if pub:  # a published tap keeps its label (L2 stays L2 when chosen alone); others are named, never numbered
        return [(pub.get(name, name), name) for name in layers]
    return [(f"L{i}", name) for i, name in enumerate(layers, start=1)]


def model_spec(out_dir: str | Path, ds: ImageDataset, model: str | None, weights: str | None) -> ModelSpec | None:
    """The architecture of the audited model (for reference models): the user's or the saved one."""
    if is_user_target(model, weights):
        return target_spec(ds, model, weights)
    meta = json.loads((Path(out_dir) / "model" / "model.json").read_text())
    return ModelSpec.from_dict(meta["spec"])

"""The audit pipeline as a few public functions: one per command-line verb.

A *work directory* holds everything one audit produces, so every later step reuses the earlier
ones: ``splits.json``, ``model/`` (weights, description, per-epoch checkpoint), ``cache/``
(signals), ``detectors/``, ``report.json`` and ``report.html``, and ``<verb>.config.json``
(the resolved configuration of each command run there).

Example:
    >>> from mintaudit.pipeline import demo
    >>> report = demo("runs/demo")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mintaudit._io import atomic_write_json
from mintaudit.data import ImageDataset, Splits, load_dataset, make_splits
from mintaudit.detectors import DetectorConfig
from mintaudit.errors import ConfigError, ModelError
from mintaudit.models import ModelSpec, build_model, load_model, load_weights, model_fingerprint, published_taps, save_model
from mintaudit.passive import SweepConfig, audit_tap, passive_split, run_sweep
from mintaudit.report import add_result, format_table, load_report, new_report, write_report
from mintaudit.signals import extract_signals
from mintaudit.taps import LayerInfo, list_layers, select_layers
from mintaudit.training import TrainConfig, accuracy, train_classifier

__all__ = [
    "default_sizes",
    "prepare_data",
    "train_model",
    "resolve_model",
    "describe_layers",
    "resolve_taps",
    "extract",
    "fit_tap",
    "sweep",
    "render",
    "demo",
]

_DEFAULT_CAP = 5000


def default_sizes(ds: ImageDataset) -> tuple[int, int, int]:
    """Default (members, external, test) sizes: up to 5,000 each, fitted to the data set.

    With an official test split, members and external share the training part (55% / 45%)
    and the test side comes from the official test part; otherwise the pool is shared
    40% / 30% / 30%.
    """
    if ds.official_test is not None and ds.official_test.any() and not ds.official_test.all():
        n_train, n_test = int((~ds.official_test).sum()), int(ds.official_test.sum())
        return min(_DEFAULT_CAP, int(0.55 * n_train)), min(_DEFAULT_CAP, int(0.45 * n_train)), min(_DEFAULT_CAP, n_test)
    n = len(ds)
    return min(_DEFAULT_CAP, int(0.4 * n)), min(_DEFAULT_CAP, int(0.3 * n)), min(_DEFAULT_CAP, int(0.3 * n))


def prepare_data(
    dataset: str,
    out_dir: str | Path,
    *,
    data_root: str | None = None,
    image_size: int | None = None,
    members: int | None = None,
    external: int | None = None,
    test: int | None = None,
    seed: int = 0,
    splits_path: str | Path | None = None,
) -> tuple[ImageDataset, Splits]:
    """Load a data set and the work directory's splits, making and saving them when missing.

    An existing ``splits.json`` (or ``splits_path``) is reused after its fingerprint is
    checked against the data; sizes given with an existing file must agree with it.
    """
    ds = load_dataset(dataset, root=data_root, image_size=image_size)
    path = Path(splits_path) if splits_path else Path(out_dir) / "splits.json"
    if path.is_file():
        splits = Splits.load(path, dataset=ds)
        asked = {"members": members, "external": external, "test": test}
        have = {"members": len(splits.members), "external": len(splits.external), "test": len(splits.test)}
        clash = {k: (v, have[k]) for k, v in asked.items() if v is not None and v != have[k]}
        if clash:
            k, (v, h) = next(iter(clash.items()))
            raise ConfigError(
                f"{str(path)!r} already holds {h} {k} samples but --{k} {v} was given; "
                "use another --out or delete splits.json to re-split"
            )
        return ds, splits
    d = default_sizes(ds)
    splits = make_splits(
        ds,
        members=d[0] if members is None else members,
        external=d[1] if external is None else external,
        test=d[2] if test is None else test,
        seed=seed,
    )
    splits.save(path)
    return ds, splits


def _spec_for(name: str, ds: ImageDataset, kwargs: dict[str, Any] | None = None) -> ModelSpec:
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
) -> tuple[nn.Module, dict[str, Any]]:
    """Train the audited model on the members and save it under ``out_dir/model``.

    Returns:
        (the trained model in eval mode, its info: accuracies, history, config).
    """
    config = config or TrainConfig()
    spec = _spec_for(model, ds, model_kwargs)
    net = build_model(spec)
    model_dir = Path(out_dir) / "model"
    result = train_classifier(
        net, ds, splits.members, config, test_indices=splits.test, checkpoint_dir=model_dir,
        resume=resume, show_progress=show_progress,
    )
    info = {
        "train": asdict(config),
        "train_accuracy": result.train_accuracy,
        "task_accuracy": result.test_accuracy,
        "seconds": round(result.seconds, 2),
        "history": result.history,
        "data_fingerprint": ds.fingerprint(),
        "splits_fingerprint": splits.fingerprint(),
    }
    save_model(net, spec, model_dir, info)
    return net, info


def resolve_model(
    out_dir: str | Path, ds: ImageDataset, *, model: str | None = None, weights: str | None = None
) -> tuple[nn.Module, str, dict[str, Any]]:
    """The audited model: a user's (``model`` + ``weights``) or the one trained in ``out_dir``.

    Returns:
        (model in eval mode, its name, info).
    """
    if weights is not None:
        if model is None:
            raise ConfigError("--weights needs --model (a zoo name or 'package.module:factory')")
        net = load_weights(build_model(_spec_for(model, ds)), weights)
        net.eval()
        return net, model, {"weights": str(weights)}
    model_dir = Path(out_dir) / "model"
    if not (model_dir / "model.json").is_file():
        raise ModelError(
            f"no trained model in {str(model_dir)!r}; run 'mintaudit train --out {out_dir}' first, "
            "or give --model and --weights"
        )
    net, spec, info = load_model(model_dir)
    if model is not None and model != spec.name:
        raise ConfigError(f"{str(model_dir)!r} holds a {spec.name!r} model, not {model!r}; drop --model or use another --out")
    if info.get("data_fingerprint") not in (None, ds.fingerprint()):
        raise ConfigError(f"the model in {str(model_dir)!r} was trained on other data; use the same --dataset or another --out")
    return net, spec.name, info


def describe_layers(model: str, dataset: str, *, data_root: str | None = None, image_size: int | None = None) -> list[LayerInfo]:
    """Every tappable layer of ``model`` (zoo name, ``package.module:factory`` or a saved model dir) for ``dataset``'s inputs."""
    ds = load_dataset(dataset, root=data_root, image_size=image_size)
    if Path(model).is_dir():
        net, _, _ = load_model(model)
    else:
        net = build_model(_spec_for(model, ds))
    c, h, w = ds.image_shape
    return list_layers(net, torch.zeros(1, c, h, w))


def resolve_taps(net: nn.Module, model_name: str, taps: str) -> list[tuple[str, str]]:
    """(label, layer) pairs: ``published`` gives the study's L1..L7; anything else goes to the selector."""
    if taps == "published":
        pub = published_taps(model_name)
        if pub is None:
            raise ConfigError(f"model {model_name!r} has no published taps; choose layers with --taps (names, indices, glob or all)")
        return pub
    layers = select_layers(net, taps)
    return [(f"L{i}", name) for i, name in enumerate(layers, start=1)]


def extract(
    out_dir: str | Path, ds: ImageDataset, splits: Splits, *, model: str | None = None, weights: str | None = None,
    taps: str = "published", batch_size: int = 256, dtype: str = "float32", show_progress: bool | None = None,
) -> Path:
    """Extract the taps and output signals of every split sample into ``out_dir/cache``; return the cache path."""
    net, name, _ = resolve_model(out_dir, ds, model=model, weights=weights)
    layers = [layer for _, layer in resolve_taps(net, name, taps)]
    idx = np.unique(np.concatenate([splits.members, splits.external, splits.test]))
    cache = extract_signals(net, ds, idx, layers, Path(out_dir) / "cache", batch_size=batch_size, dtype=dtype,  # type: ignore[arg-type]
                            show_progress=show_progress)
    return cache.path


def _report_for(out_dir: Path, ds: ImageDataset, splits: Splits, model_name: str, net: nn.Module, info: dict[str, Any],
                config: dict[str, Any], command: list[str]) -> dict[str, Any]:
    known = int(round(config.get("known_fraction", 0.5) * len(splits.members)))
    dataset = {"name": ds.name, "members": len(splits.members), "external": len(splits.external),
               "test": len(splits.test), "seed": splits.seed, "fingerprint": ds.fingerprint(),
               "known_members": known, "heldout_members": len(splits.members) - known}
    task = info.get("task_accuracy")
    if task is None:
        task = accuracy(net, ds, splits.test)
    mdl = {"name": model_name, "task_accuracy": task, "train_accuracy": info.get("train_accuracy"),
           "fingerprint": model_fingerprint(net), "epochs": info.get("train", {}).get("epochs")}
    return new_report(dataset=dataset, model=mdl, config=config, command=command)


def fit_tap(
    out_dir: str | Path, ds: ImageDataset, splits: Splits, *, layer: str, model: str | None = None,
    weights: str | None = None, config: SweepConfig | None = None, fuse_outputs: bool = False,
    command: list[str] | None = None, show_progress: bool | None = None,
) -> dict[str, Any]:
    """Fit one passive MINT model on ``layer``, save it under ``out_dir/detectors``, and add its result to the report."""
    config = config or SweepConfig()
    out = Path(out_dir)
    net, name, info = resolve_model(out, ds, model=model, weights=weights)
    (layer_name,) = select_layers(net, layer)[:1]
    split = passive_split(splits, known_fraction=config.known_fraction, seed=config.seed)
    cache = extract_signals(net, ds, np.unique(split.all_indices()), [layer_name], out / "cache",
                            batch_size=config.batch_size, dtype=config.dtype, show_progress=show_progress)
    result, det = audit_tap(cache, split, layer_name, config, fuse_outputs=fuse_outputs, show_progress=show_progress)
    det.save(out / "detectors" / (layer_name + ("+outputs" if fuse_outputs else "")))
    report_path = out / "report.json"
    report = load_report(report_path) if report_path.is_file() else _report_for(
        out, ds, splits, name, net, info, config.to_dict(), command or sys.argv)
    report["results"] = [r for r in report["results"] if not (r["method"] == "passive-mint" and r.get("layer") == result["layer"]
                                                                and r.get("signal") == result["signal"])]
    add_result(report, result)
    write_report(report, out)
    return result


def sweep(
    out_dir: str | Path, ds: ImageDataset, splits: Splits, *, model: str | None = None, weights: str | None = None,
    taps: str = "published", config: SweepConfig | None = None, command: list[str] | None = None,
    show_progress: bool | None = None,
) -> dict[str, Any]:
    """The passive-MINT layer sweep; writes ``report.json`` and ``report.html`` in ``out_dir`` and returns the report."""
    config = config or SweepConfig()
    out = Path(out_dir)
    net, name, info = resolve_model(out, ds, model=model, weights=weights)
    tap_pairs = resolve_taps(net, name, taps)
    results = run_sweep(net, ds, splits, tap_pairs, out / "cache", config, show_progress=show_progress)
    report = _report_for(out, ds, splits, name, net, info, {**config.to_dict(), "taps": taps}, command or sys.argv)
    for r in results:
        add_result(report, r)
    write_report(report, out)
    return report


def render(report_path: str | Path) -> tuple[Path, Path, str]:
    """Re-render ``report.html`` from a ``report.json``; return both paths and the terminal table."""
    report = load_report(report_path)
    json_path, html_path = write_report(report, Path(report_path).parent)
    return json_path, html_path, format_table(report)


def demo(
    out_dir: str | Path = "runs/demo",
    *,
    dataset: str = "digits",
    data_root: str | None = None,
    epochs: int | None = None,
    seed: int = 0,
    fusion: str = "both",
    command: list[str] | None = None,
    show_progress: bool | None = None,
) -> dict[str, Any]:
    """The main job: train ``objcls-cnn`` on the members, sweep its 7 taps with passive MINT, write the reports.

    On the embedded ``digits`` it takes about a minute on 2 CPU cores; ``fashion-mnist``
    (5,000 members, 15 epochs) takes longer.
    """
    out = Path(out_dir)
    ds, splits = prepare_data(dataset, out, data_root=data_root, seed=seed)
    if epochs is None:
        epochs = 40 if dataset == "digits" else 15
    train_cfg = TrainConfig(epochs=epochs, batch_size=32 if dataset == "digits" else 64, seed=seed)
    model_json = out / "model" / "model.json"
    saved = json.loads(model_json.read_text()) if model_json.is_file() else {}
    if saved.get("train") != asdict(train_cfg) or saved.get("splits_fingerprint") != splits.fingerprint():
        train_model(out, ds, splits, model="objcls-cnn", config=train_cfg, show_progress=show_progress)
    cfg = SweepConfig(detector=DetectorConfig(seed=seed), fusion=fusion, seed=seed)  # type: ignore[arg-type]
    report = sweep(out, ds, splits, taps="published", config=cfg, command=command, show_progress=show_progress)
    atomic_write_json(out / "demo.config.json", {"dataset": dataset, "epochs": epochs, "seed": seed, "fusion": fusion,
                                                 "train": asdict(train_cfg), "sweep": cfg.to_dict()})
    return report

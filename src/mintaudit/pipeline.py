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
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from mintaudit._io import atomic_write_json
from mintaudit.attacks.run import AttackConfig, run_attacks
from mintaudit.data import ImageDataset, Splits, load_dataset, make_splits
from mintaudit.data.member_lists import read_sample_list, splits_with
from mintaudit.detectors import DetectorConfig
from mintaudit.errors import ConfigError, DataNotFoundError, ModelError
from mintaudit.gate import check_model_accuracy
from mintaudit.preprocess import DEFAULT_PREPROCESS, Preprocess
from mintaudit.gradient import GradientSweepConfig, SetupSpec, parse_budgets, resolve_setups, run_gradient_sweep
from mintaudit.models import ModelSpec, build_model, check_model, load_model, load_weights, model_fingerprint, published_taps, save_model
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
    "describe_splits",
    "resolve_taps",
    "extract",
    "fit_tap",
    "sweep",
    "sweep_model",
    "gradient_sweep",
    "render",
    "demo",
    "attack",
    "null_split",
    "verdict",
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
    preprocess: Preprocess | None = None,
    members_file: str | Path | None = None,
    external_file: str | Path | None = None,
    test_file: str | Path | None = None,
) -> tuple[ImageDataset, Splits]:
    """Load a data set and the work directory's splits, making and saving them when missing.

    An existing ``splits.json`` (or ``splits_path``) is reused after its fingerprint is
    checked against the data; sizes given with an existing file must agree with it. Only the
    default ``out_dir/splits.json`` is made when missing: a given ``splits_path`` must exist.
    Roles given as list files (``members_file`` ...: one pool index, or folder-relative path,
    per line) are fixed; the others are drawn, seeded, from the rest of the pool.

    The data set comes back as the audited model's view: read through ``preprocess``, else the
    one recorded with the model trained in ``out_dir``, else the default (mean 0.5 / std 0.5).
    """
    ds = load_dataset(dataset, root=data_root, image_size=image_size)
    ds = ds.with_preprocess(preprocess or _recorded_preprocess(out_dir))
    files = {"members": members_file, "external": external_file, "test": test_file}
    given = {role: read_sample_list(f, ds, role=role) for role, f in files.items() if f is not None}
    path = Path(splits_path) if splits_path else Path(out_dir) / "splits.json"
    if splits_path and not path.is_file():
        if path.is_dir():
            raise ConfigError(f"--splits {str(path)!r} is a folder; give the splits.json file inside it, or drop "
                              "--splits to use (or make) OUT/splits.json")
        raise DataNotFoundError(f"--splits {str(path)!r} does not exist; give the path of an existing splits.json, or "
                                "drop --splits to use (or make) OUT/splits.json")
    if path.is_file():
        splits = Splits.load(path, dataset=ds)
        for role, idx in given.items():
            if not np.array_equal(np.sort(idx), np.sort(getattr(splits, role))):
                raise ConfigError(f"{str(path)!r} holds other {role} than --{role}-file lists; use another --out, or "
                                  "delete splits.json to re-split")
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
    if given:
        splits = splits_with(ds, given, {"members": members, "external": external, "test": test}, d, seed=seed)
        splits.save(path)
        return ds, splits
    splits = make_splits(
        ds,
        members=d[0] if members is None else members,
        external=d[1] if external is None else external,
        test=d[2] if test is None else test,
        seed=seed,
    )
    splits.save(path)
    return ds, splits


def _recorded_preprocess(out_dir: str | Path) -> Preprocess:
    """The preprocessing recorded with the model trained in ``out_dir`` (the default when there is none)."""
    path = Path(out_dir) / "model" / "model.json"
    if path.is_file():
        try:
            return Preprocess.from_dict(json.loads(path.read_text()).get("preprocess"))
        except (ValueError, AttributeError):
            pass  # a malformed model.json is reported by whoever loads the model
    return DEFAULT_PREPROCESS


def describe_splits(ds: ImageDataset, splits: Splits) -> str:
    """A table of the splits: size and per-class counts of each role (what ``mintaudit splits`` prints)."""
    k = ds.num_classes
    names = list(ds.class_names) if ds.class_names else [str(c) for c in range(k)]
    width = max(8, *(len(n) for n in names[:50]))
    lines = [f"{ds.name}: pool of {len(ds)} samples, {k} classes, seed {splits.seed}",
             f"{'class':<{width}} {'members':>8} {'external':>8} {'test':>8}"]
    counts = {role: np.bincount(ds.labels[getattr(splits, role)], minlength=k) for role in ("members", "external", "test")}
    for c in range(k):
        lines.append(f"{names[c]:<{width}} {counts['members'][c]:>8} {counts['external'][c]:>8} {counts['test'][c]:>8}")
    lines.append(f"{'total':<{width}} {len(splits.members):>8} {len(splits.external):>8} {len(splits.test):>8}")
    return "\n".join(lines)


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
    spec = _spec_for(model, ds, model_kwargs)
    torch.manual_seed(config.seed)  # the seed fixes the initial weights too
    net = build_model(spec)
    check_model(net, ds.image_shape, ds.num_classes, name=model)
    model_dir = Path(out_dir) / "model"
    dp_record = None
    if dp is not None:
        from mintaudit.dp import make_private_ready, train_dp

        if resume:
            raise ConfigError("--resume does not apply to DP-SGD training (no checkpoints are written); drop --resume")
        net, replaced = make_private_ready(net)
        result, dp_record = train_dp(net, ds, splits.members, config, dp, test_indices=splits.test,
                                     show_progress=show_progress)
        dp_record["replaced"] = replaced
    else:
        result = train_classifier(
            net, ds, splits.members, config, test_indices=splits.test, checkpoint_dir=model_dir,
            resume=resume, show_progress=show_progress,
        )
    info = {
        "train": config.to_dict(),
        "train_accuracy": result.train_accuracy,
        "task_accuracy": result.test_accuracy,
        "seconds": round(result.seconds, 2),
        "history": result.history,
        "data_fingerprint": ds.fingerprint(),
        "splits_fingerprint": splits.fingerprint(),
        "preprocess": ds.preprocess.to_dict(),
        **({"dp": dp_record} if dp_record is not None else {}),
    }
    save_model(net, spec, model_dir, info)
    return net, info


def resolve_model(
    out_dir: str | Path, ds: ImageDataset, *, model: str | None = None, weights: str | None = None,
    splits: Splits | None = None, allow_weak_model: bool = False,
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
    net, name, info = _load_audited(out_dir, ds, model=model, weights=weights)
    if splits is not None:
        info = {**info, "check": check_model_accuracy(net, ds, splits.members, splits.test,
                                                      allow_weak_model=allow_weak_model).to_dict()}
    return net, name, info


def _load_audited(
    out_dir: str | Path, ds: ImageDataset, *, model: str | None = None, weights: str | None = None
) -> tuple[nn.Module, str, dict[str, Any]]:
    if weights is not None:
        if model is None:
            raise ConfigError("--weights needs --model (a zoo name or 'package.module:factory')")
        net = load_weights(build_model(_spec_for(model, ds)), weights)
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
        raise ConfigError(f"{str(model_dir)!r} holds a {spec.name!r} model, not {model!r}; drop --model or use another --out")
    if info.get("data_fingerprint") not in (None, ds.fingerprint()):
        raise ConfigError(f"the model in {str(model_dir)!r} was trained on other data; use the same --dataset or another --out")
    trained_with = Preprocess.from_dict(info.get("preprocess"))
    if trained_with != ds.preprocess:
        raise ConfigError(
            f"the model in {str(model_dir)!r} was trained with preprocessing {trained_with.to_dict()}, not "
            f"{ds.preprocess.to_dict()}; drop --mean/--std/--grey-to-rgb (the recorded one is used) or use another --out")
    check_model(net, ds.image_shape, ds.num_classes, name=spec.name)
    return net, spec.name, {**info, "preprocess": trained_with.to_dict()}


def describe_layers(model: str, dataset: str, *, data_root: str | None = None, image_size: int | None = None,
                    preprocess: Preprocess | None = None) -> list[LayerInfo]:
    """Every tappable layer of ``model`` (zoo name, ``package.module:factory`` or a saved model dir) for ``dataset``'s inputs."""
    ds = load_dataset(dataset, root=data_root, image_size=image_size).with_preprocess(preprocess)
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
    check = info.get("check")
    if check is None:  # the gate measured both before the audit; measure them here otherwise
        check = check_model_accuracy(net, ds, splits.members, splits.test, allow_weak_model=True).to_dict()
        check["weak_model_allowed"] = False
    mdl = {"name": model_name, "task_accuracy": check["test_accuracy"], "train_accuracy": check["members_accuracy"],
           "fingerprint": model_fingerprint(net), "epochs": info.get("train", {}).get("epochs"),
           "preprocess": ds.preprocess_record, "chance_accuracy": check["chance"]}
    if isinstance(info.get("dp"), dict):
        mdl["dp"] = info["dp"]  # the DP-SGD claim (model.json), beside every result's measured epsilon lower bound
    if check.get("weak_model_allowed"):
        mdl["weak_model_allowed"] = True  # --allow-weak-model: the audit went on with a model near chance
    return new_report(dataset=dataset, model=mdl, config=config, command=command)


def fit_tap(
    out_dir: str | Path, ds: ImageDataset, splits: Splits, *, layer: str, model: str | None = None,
    weights: str | None = None, config: SweepConfig | None = None, fuse_outputs: bool = False,
    command: list[str] | None = None, show_progress: bool | None = None, allow_weak_model: bool = False,
) -> dict[str, Any]:
    """Fit one passive MINT model on ``layer``, save it under ``out_dir/detectors``, and add its result to the report."""
    config = config or SweepConfig()
    out = Path(out_dir)
    net, name, info = resolve_model(out, ds, model=model, weights=weights, splits=splits, allow_weak_model=allow_weak_model)
    matched = select_layers(net, layer)
    if len(matched) != 1:
        raise ConfigError(f"--layer {layer!r} matches {len(matched)} layers ({', '.join(matched[:4])}...); "
                          "fit takes one: give its full name, or use 'mintaudit sweep --taps' for several")
    layer_name = matched[0]
    split = passive_split(splits, known_fraction=config.known_fraction, seed=config.seed)
    cache = extract_signals(net, ds, np.unique(split.all_indices()), [layer_name], out / "cache",
                            batch_size=config.batch_size, dtype=config.dtype, show_progress=show_progress)
    result, det = audit_tap(cache, split, layer_name, config, fuse_outputs=fuse_outputs, show_progress=show_progress)
    det_dir = det.save(out / "detectors" / (layer_name + ("+outputs" if fuse_outputs else "")))
    atomic_write_json(det_dir / "protocol.json", _detector_protocol(net, ds, splits, config, layer_name, fuse_outputs))
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
    show_progress: bool | None = None, allow_weak_model: bool = False,
) -> dict[str, Any]:
    """The passive-MINT layer sweep; writes ``report.json`` and ``report.html`` in ``out_dir`` and returns the report."""
    config = config or SweepConfig()
    out = Path(out_dir)
    net, name, info = resolve_model(out, ds, model=model, weights=weights, splits=splits, allow_weak_model=allow_weak_model)
    tap_pairs = resolve_taps(net, name, taps)
    report = sweep_model(net, name, info, ds, splits, tap_pairs, out / "cache", config,
                         run_config={"taps": taps}, command=command, show_progress=show_progress)
    write_report(report, out)
    return report


def sweep_model(
    net: nn.Module, name: str, info: dict[str, Any], ds: ImageDataset, splits: Splits, tap_pairs: list[tuple[str, str]],
    cache_root: str | Path, config: SweepConfig, *, run_config: dict[str, Any] | None = None,
    command: list[str] | None = None, show_progress: bool | None = None,
) -> dict[str, Any]:
    """The sweep of a resolved model (the gate already passed, its check in ``info``): the report, not written.

    The one path of ``mintaudit sweep`` and of :func:`mintaudit.audit` on the user's own data.
    """
    results = run_sweep(net, ds, splits, tap_pairs, cache_root, config, show_progress=show_progress)
    report = _report_for(Path(cache_root).parent, ds, splits, name, net, info, {**config.to_dict(), **(run_config or {})},
                         command or sys.argv)
    for r in results:
        add_result(report, r)
    return report


def gradient_sweep(
    out_dir: str | Path, ds: ImageDataset, splits: Splits, *, model: str | None = None, weights: str | None = None,
    setups: str | Sequence[SetupSpec] = "entry,middle,output,combined", budgets: str | Sequence[float] = "1,0.1,0.01",
    config: GradientSweepConfig | None = None, command: list[str] | None = None, show_progress: bool | None = None, allow_weak_model: bool = False,
) -> dict[str, Any]:
    """Gradient MINT over setups x data budgets, plus the LOSS baseline; writes the reports in ``out_dir``.

    The gMINT results join an existing ``report.json`` made from the same model, data and
    held-out split (same seed and known fraction), replacing its earlier gMINT and LOSS rows, so
    that passive and gradient MINT sit in one table; otherwise a new report is written. The LOSS
    row is the one ``sweep`` and ``attack`` write too (:mod:`mintaudit.attacks.loss`), so
    replacing it changes nothing but its place.
    """
    config = config or GradientSweepConfig()
    out = Path(out_dir)
    net, name, info = resolve_model(out, ds, model=model, weights=weights, splits=splits, allow_weak_model=allow_weak_model)
    budget_list = parse_budgets(budgets)
    run_config = {**config.to_dict(), "signal": "gradients", "budgets": budget_list,
                  "setups": {key: layers for key, _, layers in resolve_setups(net, setups)},
                  "command": " ".join(command or sys.argv)}
    results = run_gradient_sweep(net, ds, splits, setups, budget_list, out / "cache", config, show_progress=show_progress)
    report = _report_for(out, ds, splits, name, net, info, run_config, command or sys.argv)
    report_path = out / "report.json"
    if report_path.is_file():
        old = load_report(report_path)
        same = (old.get("model", {}).get("fingerprint") == report["model"]["fingerprint"]
                and all(old.get("dataset", {}).get(k) == report["dataset"][k]
                        for k in ("fingerprint", "members", "external", "test", "seed", "known_members"))
                and old.get("config", {}).get("seed") == config.seed)
        if same:
            old["results"] = [r for r in old["results"] if r.get("method") not in ("gmint", "loss")]
            old.setdefault("config", {})["gmint"] = run_config
            report = old
    for r in results:
        add_result(report, r)
    write_report(report, out)
    return report


def render(report_path: str | Path) -> tuple[Path, Path, str]:
    """Re-render the HTML page of a report JSON next to it (``X/other.json`` -> ``X/other.html``;
    a folder: its ``report.json`` -> ``report.html``); return both paths and the terminal table.

    The JSON itself is only read, and no other file is written over.
    """
    from mintaudit._io import atomic_write_text
    from mintaudit.report import render_html

    json_path = Path(report_path)
    if json_path.is_dir():
        json_path = json_path / "report.json"
    report = load_report(json_path)
    html = render_html(report)
    if json_path.suffix.lower() == ".json":
        html_path = json_path.with_suffix(".html")
    else:
        html_path = json_path.with_name(json_path.name + ".html")
    return json_path, atomic_write_text(html_path, html), format_table(report)


DEMO_ATTACKS = ("loss", "entropy", "rmia")


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
    """The main job: train ``objcls-cnn`` on the members, sweep its 7 taps with passive MINT, run the
    baseline attacks in :data:`DEMO_ATTACKS` (two reference models) on the same sets, train the
    same backbone with aMINT for the same budget (delivered to ``out_dir/amint/middle``), and
    write the reports.

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
    if saved.get("train") != train_cfg.to_dict() or saved.get("splits_fingerprint") != splits.fingerprint():
        train_model(out, ds, splits, model="objcls-cnn", config=train_cfg, show_progress=show_progress)
    cfg = SweepConfig(detector=DetectorConfig(seed=seed), fusion=fusion, seed=seed)  # type: ignore[arg-type]
    sweep(out, ds, splits, taps="published", config=cfg, command=command, show_progress=show_progress)
    # the baseline attacks on the same sets; two reference models trained like the audited one
    attack_cfg = AttackConfig(n_reference=2, reference_train=train_cfg, seed=seed)
    attack(out, ds, splits, methods=list(DEMO_ATTACKS), config=attack_cfg, known_fraction=cfg.known_fraction,
           command=command, show_progress=show_progress)
    # aMINT: the same backbone trained with a MINT head for the same budget, beside passive MINT on the plain model
    from mintaudit.active import ActiveConfig
    from mintaudit.active.workflow import ActiveRunConfig, active_train

    active_cfg = ActiveRunConfig(train=ActiveConfig(epochs=epochs, batch_size=train_cfg.batch_size, lr=train_cfg.lr,
                                                    patience=10, seed=seed))
    report = active_train(out, ds, splits, active_cfg, plain=True, command=command, show_progress=show_progress)
    atomic_write_json(out / "demo.config.json", {"dataset": dataset, "epochs": epochs, "seed": seed, "fusion": fusion,
                                                 "train": train_cfg.to_dict(), "sweep": cfg.to_dict(),
                                                 "attacks": attack_cfg.to_dict(), "amint": active_cfg.to_dict()})
    return report


# ---------------------------------------------------------------------------------------------
# verdicts: "were these samples used to train this model?" (mintaudit test)

QUERY_ROLES = ("heldout-members", "test")
"""Split roles ``verdict`` accepts as ``query`` (besides files of indices and new data sets)."""

_NULL_SOURCE = ("non-member test samples: a seeded half of the test split, never used to train the model, fit the "
                "MINT model, choose its layer or set a threshold")


def null_split(splits: Splits, *, fraction: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split the non-member test samples into the null reference and the ``test`` query pool.

    Args:
        splits: the work directory's splits.
        fraction: the share of the test split that forms the null reference.
        seed: the draw is ``numpy.random.default_rng([seed, 1])``: fixed for a work directory.

    Returns:
        (null, test_pool): sorted int64 pool indices, disjoint, together the test split.
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"the null reference's fraction of the test split must lie in (0, 1); given {fraction}")
    test = np.random.default_rng([seed, 1]).permutation(splits.test)
    k = int(round(fraction * len(test)))
    if k == 0 or k == len(test):
        raise ConfigError(f"{len(test)} test samples cannot be split into a null reference and a query pool; "
                          "use more --test samples")
    return np.sort(test[:k]), np.sort(test[k:])


def verdict(
    out_dir: str | Path, ds: ImageDataset, splits: Splits, *, query: str, method: str = "passive-mint",
    layer: str | None = None, fuse_outputs: bool = False, fdr: float = 0.05, alpha: float = 0.05,
    decision: str = "mann-whitney", model: str | None = None, weights: str | None = None,
    config: SweepConfig | None = None, null_fraction: float = 0.5, command: list[str] | None = None,
    show_progress: bool | None = None, allow_weak_model: bool = False, setup: str = "middle",
) -> dict[str, Any]:
    """Were the ``query`` samples, or some of them, used to train the audited model? Test it and write the verdict.

    The query's membership scores are compared with a *null reference*: a seeded half of the
    non-member test split (:func:`null_split`), never used to fit the MINT model, choose its
    layer or set a threshold, and never overlapping the query (refused). Each query sample gets
    a conformal p-value and flags under Benjamini-Hochberg at ``fdr`` and at the plain level
    ``alpha``; the whole set gets the dataset-level test
    (:func:`mintaudit.evaluation.dataset_test`) and its one-sentence verdict. Valid when query
    samples that are not members are exchangeable with the null reference.

    Writes ``OUT/verdict.csv`` (sample_id, score, p_value, flagged_bh, flagged_alpha, n_null),
    the verdict into ``OUT/report.json`` (made when missing) and ``OUT/report.html``.

    Args:
        query: ``heldout-members`` (members the MINT model never saw: a positive control),
            ``test`` (the test split's non-null half: a negative control), a file of pool
            indices (``.txt`` / ``.csv``, one per line, first column; or ``.npy``), or new
            samples as ``npz:PATH`` / ``folder:PATH`` (same image shape and classes).
        method: ``passive-mint`` (a MINT model on ``layer``), ``loss`` (minus the loss) or
            ``amint`` (the membership probability of the delivered aMINT model
            ``OUT/amint/<setup>``; ``heldout-members`` are then training members its head saw,
            as in the published protocol).
        layer: the passive-MINT tap (name, index, glob) or ``outputs`` (output signals only);
            default: the report's passive-MINT result with the best *validation* AUC (measured
            on the auditor's MINT-training data, never on the null), else ``outputs``.
        fuse_outputs: with an explicit ``layer``, also feed the output signals.
        fdr, alpha, decision: see :func:`~mintaudit.evaluation.sample_decisions` and
            :func:`~mintaudit.evaluation.dataset_test`.
        config: the passive split and MINT model options (same as the sweep's, so the saved
            or refitted MINT model is the one the sweep measured).
        null_fraction: the share of the test split forming the null reference.
        setup: with ``amint``, which delivered model (the folder name under ``OUT/amint``).

    Returns:
        The verdict dict stored as ``report["verdict"]``.
    """
    from mintaudit.evaluation.statistics import DECISIONS

    config = config or SweepConfig()
    if method not in ("passive-mint", "loss", "amint"):
        raise ConfigError(f"--method must be passive-mint, loss or amint; given {method!r}")
    if decision not in DECISIONS:
        raise ConfigError(f"--decision must be one of {', '.join(DECISIONS)}; given {decision!r}")
    if not (0.0 < fdr <= 1.0 and 0.0 < alpha < 1.0):
        raise ConfigError(f"--fdr must lie in (0, 1] and --alpha in (0, 1); given {fdr} and {alpha}; e.g. 0.05")
    if method != "passive-mint" and (layer is not None or fuse_outputs):
        raise ConfigError(f"--layer and --fuse-outputs apply to --method passive-mint only; drop them for {method}")
    if layer is None and fuse_outputs:
        raise ConfigError("--fuse-outputs needs --layer; without --layer the report's best result decides")
    out = Path(out_dir)
    split = passive_split(splits, known_fraction=config.known_fraction, seed=config.seed)
    null_idx, test_pool = null_split(splits, fraction=null_fraction, seed=config.seed)
    q_ds, q_ids, q_info = _resolve_query(query, ds, split, test_pool)
    _refuse_overlap(q_ds, q_ids, ds, null_idx, "the null reference",
                    "the null must never contain query samples; use --query test for non-members outside it")
    if method == "amint":
        from mintaudit.active.train import membership_scores
        from mintaudit.active.workflow import load_delivered

        if model is not None or weights is not None:
            raise ConfigError("--model and --weights do not apply to --method amint; it reads OUT/amint/SETUP")
        amodel, meta = load_delivered(out, ds, splits, setup)
        _refuse_overlap(q_ds, q_ids, ds, splits.external, "the external samples the aMINT head was trained on",
                        "their scores are pushed towards 'non-member'; query other samples")
        if q_info["source"] == "heldout-members":
            q_info = {**q_info, "description": "training members; the aMINT head was trained on them too (the "
                      "published protocol): a positive control"}
        null_scores, q_scores = membership_scores(amodel, ds, null_idx), membership_scores(amodel, q_ds, q_ids)
        about = {"method": "amint", "signal": "activations", "layer": "+".join(meta["taps"]),
                 "detector": f"amint-head ({setup})"}
        net, name, info = amodel.backbone, meta["backbone"]["name"], {}
        return _finish_verdict(out, ds, splits, net, name, info, config, command, q_ids, q_info, null_idx,
                               null_scores, q_scores, about, fdr=fdr, alpha=alpha, decision=decision,
                               null_fraction=null_fraction)
    net, name, info = resolve_model(out, ds, model=model, weights=weights, splits=splits, allow_weak_model=allow_weak_model)
    if method == "passive-mint":
        _refuse_overlap(q_ds, q_ids, ds, np.concatenate([split.known_members, split.external]),
                        "the MINT model's training data (known members and external samples)",
                        "their scores say nothing about membership; query other samples, or use --method loss")

    layer_name, fuse = _verdict_layer(out, net, layer, fuse_outputs) if method == "passive-mint" else (None, False)
    layers = [layer_name] if layer_name is not None else []
    base_idx = np.unique(split.all_indices())
    cache = _find_cache(out / "cache", net, ds, layers, base_idx) or extract_signals(
        net, ds, base_idx, layers, out / "cache", batch_size=config.batch_size, dtype=config.dtype,  # type: ignore[arg-type]
        show_progress=show_progress)
    if q_ds is not ds:
        q_cache = extract_signals(net, q_ds, q_ids, layers, out / "cache", batch_size=config.batch_size,
                                  dtype=config.dtype, show_progress=show_progress)  # type: ignore[arg-type]
    elif np.isin(q_ids, cache.indices).all():
        q_cache = cache
    else:
        q_cache = _find_cache(out / "cache", net, ds, layers, q_ids) or extract_signals(
            net, ds, np.sort(q_ids), layers, out / "cache", batch_size=config.batch_size, dtype=config.dtype,  # type: ignore[arg-type]
            show_progress=show_progress)

    if method == "loss":
        def score(c: Any, ids: np.ndarray) -> np.ndarray:  # in float64 from the logits: no ties at zero loss
            from mintaudit.attacks.scores import loss_scores

            o, rows = c.outputs(), c.rows(ids)
            return loss_scores(o["logits"][rows].astype(np.float64), o["labels"][rows])
        about = {"method": "loss", "signal": "outputs", "layer": "outputs", "detector": "none (minus the loss)"}
    else:
        det = _verdict_detector(out, net, ds, splits, split, cache, layer_name, fuse, config, show_progress)

        def score(c: Any, ids: np.ndarray) -> np.ndarray:
            return _mint_scores(det, c, layer_name, fuse, ids)
        signal = "outputs" if layer_name is None else ("activations+outputs" if fuse else "activations")
        about = {"method": "passive-mint", "signal": signal, "layer": layer_name or "outputs", "detector": det.kind_}

    null_scores, q_scores = score(cache, null_idx), score(q_cache, q_ids)
    return _finish_verdict(out, ds, splits, net, name, info, config, command, q_ids, q_info, null_idx, null_scores,
                           q_scores, about, fdr=fdr, alpha=alpha, decision=decision, null_fraction=null_fraction)


def _finish_verdict(
    out: Path, ds: ImageDataset, splits: Splits, net: nn.Module, name: str, info: dict[str, Any], config: SweepConfig,
    command: list[str] | None, q_ids: np.ndarray, q_info: dict[str, Any], null_idx: np.ndarray,
    null_scores: np.ndarray, q_scores: np.ndarray, about: dict[str, Any], *, fdr: float, alpha: float, decision: str,
    null_fraction: float,
) -> dict[str, Any]:
    """Per-sample p-values and flags, the dataset-level test, ``verdict.csv`` and the report, from the scores."""
    from mintaudit.evaluation.statistics import dataset_test, sample_decisions
    from mintaudit.report.schema import set_verdict

    per_sample = sample_decisions(q_scores, null_scores, fdr=fdr, alpha=alpha)
    test = dataset_test(q_scores, null_scores, alpha=alpha, decision=decision)  # type: ignore[arg-type]
    csv_path = _write_verdict_csv(out / "verdict.csv", q_ids, q_scores, per_sample)
    result = {
        **test.to_dict(), **about,
        "query": {**q_info, "n": int(len(q_ids))},
        "null_reference": {"source": _NULL_SOURCE, "n": int(len(null_idx)), "fraction_of_test": null_fraction,
                           "seed": config.seed},
        "per_sample": {**per_sample.to_dict(), "csv": csv_path.name},
        "command": " ".join(command or sys.argv),
    }
    report_path = out / "report.json"
    report = load_report(report_path) if report_path.is_file() else _report_for(
        out, ds, splits, name, net, info, config.to_dict(), command or sys.argv)
    set_verdict(report, result)
    write_report(report, out)
    return result


def _resolve_query(
    query: str, ds: ImageDataset, split: Any, test_pool: np.ndarray
) -> tuple[ImageDataset, np.ndarray, dict[str, Any]]:
    """(the data set the query lives in, its sample ids there, a description) of ``--query``."""
    if query == "heldout-members":
        return ds, split.heldout_members, {"source": "heldout-members", "kind": "split", "truth": "members",
                                           "description": "training members the MINT model never saw; a positive control"}
    if query == "test":
        return ds, test_pool, {"source": "test", "kind": "split", "truth": "non-members",
                               "description": "non-member test samples outside the null reference; a negative control"}
    if query.lower().startswith(("npz:", "folder:")):
        q_ds = load_dataset(query)
        if q_ds.image_shape != ds.image_shape or q_ds.num_classes > ds.num_classes:
            raise ConfigError(f"--query {query!r} holds {q_ds.num_classes} classes of {q_ds.image_shape} images; the "
                              f"audited data has {ds.num_classes} classes of {ds.image_shape}: give samples of the same kind")
        return q_ds, np.arange(len(q_ds), dtype=np.int64), {
            "source": query, "kind": "dataset", "truth": None, "description": "new samples (sample_id = their row)"}
    path = Path(query)
    if not path.is_file():
        raise ConfigError(f"--query {query!r} is neither a split role ({', '.join(QUERY_ROLES)}), nor a file of pool "
                          "indices (.txt/.csv one per line, .npy), nor new samples (npz:PATH, folder:PATH)")
    return ds, _read_indices(path, len(ds)), {"source": str(path), "kind": "indices", "truth": None,
                                              "description": "pool indices from a file"}


def _read_indices(path: Path, n_pool: int) -> np.ndarray:
    """Pool indices from a ``.npy`` array or a text / CSV file (first column; a header line is skipped)."""
    from mintaudit.errors import CorruptFileError, SplitError

    if path.suffix.lower() == ".npy":
        try:
            values = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise CorruptFileError(f"{str(path)!r} is not a readable .npy array of indices ({e}); save one with numpy.save") from e
    else:
        cells = [line.split(",")[0].strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
        cells = [c for c in cells if c]
        if cells and not cells[0].removeprefix("-").isdecimal():
            cells = cells[1:]  # a header
        bad = next((c for c in cells if not c.removeprefix("-").isdecimal()), None)
        if bad is not None:
            raise CorruptFileError(f"{str(path)!r}: {bad!r} is not a sample index; write one integer pool index per line")
        ints = [int(c) for c in cells]
        huge = next((v for v in ints if not 0 <= v < n_pool), None)  # before int64, which a 20-digit index overflows
        if huge is not None:
            raise SplitError(f"{str(path)!r} holds index {huge}; the pool has {n_pool} samples (valid: 0 to {n_pool - 1})")
        values = np.array(ints, dtype=np.int64)
    values = np.asarray(values)
    if values.ndim != 1 or values.size == 0 or not np.issubdtype(values.dtype, np.integer):
        raise SplitError(f"{str(path)!r} must hold a non-empty 1-D list of integer pool indices; "
                         f"given {values.dtype} of shape {values.shape}")
    values = values.astype(np.int64)
    if values.min() < 0 or values.max() >= n_pool:
        raise SplitError(f"{str(path)!r} holds indices in [{values.min()}, {values.max()}]; the pool has {n_pool} "
                         f"samples (valid: 0 to {n_pool - 1})")
    if len(np.unique(values)) != len(values):
        raise SplitError(f"{str(path)!r} repeats {len(values) - len(np.unique(values))} indices; list each sample once")
    return values


def _refuse_overlap(q_ds: ImageDataset, q_ids: np.ndarray, ds: ImageDataset, other: np.ndarray, what: str,
                    fix: str) -> None:
    """SplitError when query samples are among ``other`` (pool indices; by image content for new samples)."""
    from mintaudit.errors import SplitError

    if q_ds is ds:
        shared = np.intersect1d(q_ids, other)
    else:
        keys = {ds.images[i].tobytes() for i in other}
        shared = np.array([i for i in q_ids if q_ds.images[i].tobytes() in keys], dtype=np.int64)
    if len(shared):
        examples = ", ".join(str(i) for i in shared[:5]) + (", ..." if len(shared) > 5 else "")
        raise SplitError(f"--query shares {len(shared)} sample(s) with {what} ({examples}); {fix}")


def _verdict_layer(out: Path, net: nn.Module, layer: str | None, fuse_outputs: bool) -> tuple[str | None, bool]:
    """(tap or None for the output signals alone, fuse outputs?) of a passive-MINT verdict."""
    if layer == "outputs":
        return None, True
    if layer is not None:
        return select_layers(net, layer)[0], bool(fuse_outputs)
    report_path = out / "report.json"
    results = load_report(report_path)["results"] if report_path.is_file() else []
    fitted = [r for r in results if r.get("method") == "passive-mint"
              and isinstance((r.get("fit") or {}).get("val_auc"), (int, float))]
    if not fitted:
        return None, True
    best = max(fitted, key=lambda r: r["fit"]["val_auc"])
    if best.get("layer") in (None, "outputs"):
        return None, True
    return str(best["layer"]), best.get("signal") == "activations+outputs"


def _find_cache(root: Path, net: nn.Module, ds: ImageDataset, layers: list[str], indices: np.ndarray) -> Any:
    """An existing activation cache under ``root`` of this model and data holding ``layers`` and ``indices``, or None."""
    from mintaudit.errors import CacheError
    from mintaudit.signals import SignalCache

    model_fp, data_fp = model_fingerprint(net), ds.fingerprint()
    for manifest in sorted(Path(root).glob("*/manifest.json")):
        if manifest.parent.name.startswith("."):
            continue
        try:
            cache = SignalCache.open(manifest.parent)
        except CacheError:
            continue
        m = cache.manifest
        if (m.get("model_fingerprint"), m.get("data_fingerprint")) != (model_fp, data_fp) or \
                m.get("signal", "activations") != "activations" or not set(layers) <= set(m.get("layers", [])) or \
                m.get("preprocess", DEFAULT_PREPROCESS.to_dict()) != ds.preprocess_record:
            continue
        if np.isin(indices, cache.indices).all():
            return cache
    return None


def _detector_protocol(net: nn.Module, ds: ImageDataset, splits: Splits, config: SweepConfig, layer: str | None,
                       fuse: bool) -> dict[str, Any]:
    """What a saved MINT model was fitted on: reused by ``verdict`` only when all of it matches."""
    return {"schema": "mintaudit/detector-protocol@1", "model_fingerprint": model_fingerprint(net),
            "data_fingerprint": ds.fingerprint(), "splits_fingerprint": splits.fingerprint(),
            "known_fraction": config.known_fraction, "seed": config.seed, "dtype": config.dtype,
            "detector": asdict(config.detector), "layer": layer, "fuse_outputs": fuse}


def _verdict_detector(out: Path, net: nn.Module, ds: ImageDataset, splits: Splits, split: Any, cache: Any,
                      layer: str | None, fuse: bool, config: SweepConfig, show_progress: bool | None) -> Any:
    """The MINT model of ``layer``: the one saved in ``OUT/detectors`` when fitted on the same protocol, else fitted now (and saved)."""
    import dataclasses

    from mintaudit.detectors import MintDetector

    det_dir = out / "detectors" / ("outputs" if layer is None else layer + ("+outputs" if fuse else ""))
    protocol = _detector_protocol(net, ds, splits, config, layer, fuse)
    try:
        if json.loads((det_dir / "protocol.json").read_text()) == json.loads(json.dumps(protocol)):
            return MintDetector.load(det_dir)
    except (OSError, ValueError):
        pass
    quick = dataclasses.replace(config, n_bootstrap=0)
    _, det = audit_tap(cache, split, layer, quick, fuse_outputs=fuse, show_progress=show_progress)
    det.save(det_dir)
    atomic_write_json(det_dir / "protocol.json", protocol)
    return det


def _mint_scores(det: Any, cache: Any, layer: str | None, fuse: bool, ids: np.ndarray) -> np.ndarray:
    """P(member) of the MINT model for pool ``ids`` of ``cache``, float64 (N,), read in chunks of rows."""
    from mintaudit.signals import output_features

    rows = cache.rows(ids)
    out = cache.outputs()
    feats = output_features(out["logits"], out["labels"])
    X = cache.activations(layer) if layer is not None else feats
    extra = feats if (fuse and layer is not None) else None
    logits = np.empty(len(rows), dtype=np.float64)
    for start in range(0, len(rows), 512):
        chunk = rows[start : start + 512]
        order = np.argsort(chunk)
        x = np.empty((len(chunk), *X.shape[1:]), dtype=np.float32)
        x[order] = X[chunk[order]]
        logits[start : start + len(chunk)] = det.decision_function(x, None if extra is None else extra[chunk])
    return 1.0 / (1.0 + np.exp(-logits))


def _write_verdict_csv(path: Path, ids: np.ndarray, scores: np.ndarray, d: Any) -> Path:
    from mintaudit._io import atomic_write_text

    lines = ["sample_id,score,p_value,flagged_bh,flagged_alpha,n_null"]
    lines += [f"{int(i)},{s:.9g},{p:.9g},{int(b)},{int(a)},{d.n_null}"
              for i, s, p, b, a in zip(ids, scores, d.p_values, d.flagged_bh, d.flagged_alpha)]
    return atomic_write_text(path, "\n".join(lines) + "\n")


def _model_spec(out_dir: str | Path, ds: ImageDataset, model: str | None, weights: str | None) -> ModelSpec:
    """The architecture of the audited model (for reference models): the user's or the saved one."""
    if weights is not None and model is not None:
        return _spec_for(model, ds)
    meta = json.loads((Path(out_dir) / "model" / "model.json").read_text())
    return ModelSpec.from_dict(meta["spec"])


def attack(
    out_dir: str | Path, ds: ImageDataset, splits: Splits, *, methods: list[str], model: str | None = None,
    weights: str | None = None, config: AttackConfig | None = None, known_fraction: float = 0.5,
    population: Literal["external", "unused"] = "external", command: list[str] | None = None,
    show_progress: bool | None = None, allow_weak_model: bool = False,
) -> dict[str, Any]:
    """Baseline attacks on the passive-MINT sets, added to ``out_dir/report.json`` (earlier rows of the same attacks replaced).

    Reference models are trained with the audited model's architecture and cached under
    ``out_dir/cache/attacks``; see :mod:`mintaudit.attacks.run` for which samples each set uses.
    ``population="unused"`` trains them on a seeded sample (twice the members) of the data set's
    training samples that no split uses, so that each reference model sees as many samples as
    the audited model did.
    """
    config = config or AttackConfig()
    out = Path(out_dir)
    net, name, info = resolve_model(out, ds, model=model, weights=weights, splits=splits, allow_weak_model=allow_weak_model)
    spec = _model_spec(out, ds, model, weights)
    split = passive_split(splits, known_fraction=known_fraction, seed=config.seed)
    pop = None
    if population == "unused":
        taken = np.zeros(len(ds), dtype=bool)
        taken[np.concatenate([splits.members, splits.external, splits.test])] = True
        if ds.official_test is not None:
            taken |= ds.official_test
        unused = np.flatnonzero(~taken)
        if len(unused) < 2:
            raise ConfigError("no unused training samples for reference models; use --population external")
        # twice the members, so that each reference model (trained on a half) sees as many samples as the audited one
        size = min(len(unused), 2 * len(splits.members))
        pop = np.sort(np.random.default_rng(config.seed).choice(unused, size=size, replace=False))
    # the audited model's signals in out/cache, where the sweeps keep theirs: LOSS reads the same outputs cache
    results = run_attacks(net, spec, ds, split, methods, out / "cache" / "attacks", config, population=pop,
                          signals_root=out / "cache", show_progress=show_progress)
    report_path = out / "report.json"
    report = load_report(report_path) if report_path.is_file() else _report_for(
        out, ds, splits, name, net, info, {"known_fraction": known_fraction}, command or sys.argv)
    report["results"] = [r for r in report["results"] if r.get("attack", r["method"]) not in set(methods)]
    for r in results:
        add_result(report, r)
    report.setdefault("config", {})["attacks"] = config.to_dict()
    write_report(report, out)
    return report


# ---------------------------------------------------------------------------------------------
# the one-run DP audit with canaries (mintaudit audit-dp)

AUDIT_DP_METHODS = ("loss", "passive-mint")


@torch.no_grad()
def _logits(net: nn.Module, ds: ImageDataset, idx: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """float64 (N, K) logits of ``net`` (eval mode) for pool ``idx``."""
    from mintaudit._tensor import iter_batches

    net.eval()
    out = [net(x).double().cpu().numpy() for x, _, _ in iter_batches(ds, idx, batch_size)]
    return np.concatenate(out) if out else np.zeros((0, ds.num_classes))


def audit_dp(
    out_dir: str | Path, ds: ImageDataset, splits: Splits, *, canaries: int = 1000, method: str = "loss",
    model: str = "objcls-cnn", model_kwargs: dict[str, Any] | None = None, config: TrainConfig | None = None,
    dp: Any = None, confidence: float = 0.95, delta: float | None = None, guesses: tuple[int, int] | None = None,
    command: list[str] | None = None, show_progress: bool | None = None,
) -> dict[str, Any]:
    """The one-run privacy audit (Steinke, Nasr, Jagielski 2023; see :mod:`mintaudit.canary`): train once, bound epsilon.

    ``canaries`` samples are drawn (seeded) from the external split; each joins the members
    with probability 1/2; the model (``model``, ``config``, DP-SGD when ``dp`` is given) is trained
    once on the members plus the included canaries and saved in ``OUT/audit-dp/model``. Each
    canary is scored by ``method``: ``loss`` (minus its loss) or ``passive-mint`` (a MINT model on
    the output signals, fitted on non-canary members against the test split's non-members);
    the guesses and the bound follow. Writes ``OUT/audit-dp.json`` and the ``dp_audit`` section
    of ``OUT/report.json`` (made from this model when missing) and ``report.html``.

    Args:
        delta: the delta the bound is stated for (default: ``dp.delta``, else 1e-5).
        guesses: ``(k+, k-)`` fixed in advance; None = the best of :func:`mintaudit.canary.guess_grid`,
            Bonferroni-corrected.

    Returns:
        The ``dp_audit`` dict.
    """
    from mintaudit.canary import check_audit, draw_canaries, one_run_bound

    config = config or TrainConfig()
    if method not in AUDIT_DP_METHODS:
        raise ConfigError(f"--method must be one of {', '.join(AUDIT_DP_METHODS)}; given {method!r}")
    delta = (dp.delta if dp is not None else 1e-5) if delta is None else float(delta)
    check_audit(canaries, guesses=guesses, confidence=confidence, delta=delta)
    out = Path(out_dir)
    canary_idx, included = draw_canaries(splits.external, canaries, seed=config.seed)
    train_idx = np.sort(np.concatenate([splits.members, canary_idx[included]]))
    spec = _spec_for(model, ds, model_kwargs)
    torch.manual_seed(config.seed)
    net = build_model(spec)
    check_model(net, ds.image_shape, ds.num_classes, name=model)
    dp_record = None
    if dp is not None:
        from mintaudit.dp import make_private_ready, train_dp

        net, replaced = make_private_ready(net)
        result, dp_record = train_dp(net, ds, train_idx, config, dp, test_indices=splits.test, show_progress=show_progress)
        dp_record["replaced"] = replaced
    else:
        result = train_classifier(net, ds, train_idx, config, test_indices=splits.test, show_progress=show_progress)
    net.eval()
    info = {"train": config.to_dict(), "train_accuracy": result.train_accuracy, "task_accuracy": result.test_accuracy,
            "seconds": round(result.seconds, 2), "history": result.history, "data_fingerprint": ds.fingerprint(),
            "splits_fingerprint": splits.fingerprint(), "preprocess": ds.preprocess.to_dict(),
            "trained_on": "members + the included canaries (see audit-dp.json)",
            **({"dp": dp_record} if dp_record is not None else {})}
    save_model(net, spec, out / "audit-dp" / "model", info)
    from mintaudit.attacks.scores import loss_scores

    logits = _logits(net, ds, canary_idx)
    labels = ds.labels[canary_idx]
    if method == "loss":
        scores = loss_scores(logits, labels)
        about = {"method": "loss", "signal": "outputs", "detector": "none (minus the loss)"}
    else:
        from mintaudit.detectors import DetectorConfig, MintDetector
        from mintaudit.signals import output_features

        rng = np.random.default_rng([config.seed, 18])
        n_fit = min(len(splits.members), len(splits.test))
        fit_in = np.sort(rng.choice(splits.members, size=n_fit, replace=False))
        fit_out = np.sort(rng.choice(splits.test, size=n_fit, replace=False))
        X = np.concatenate([output_features(_logits(net, ds, fit_in), ds.labels[fit_in]),
                            output_features(_logits(net, ds, fit_out), ds.labels[fit_out])])
        y = np.concatenate([np.ones(n_fit, dtype=np.int64), np.zeros(n_fit, dtype=np.int64)])
        det = MintDetector.from_config(DetectorConfig(kind="mlp", seed=config.seed), show_progress=False).fit(X, y)
        scores = det.decision_function(output_features(logits, labels)).astype(np.float64)
        about = {"method": "passive-mint", "signal": "outputs", "detector": "mlp on the output signals (fitted on "
                 f"{n_fit} non-canary members against {n_fit} test non-members)"}
    bound = one_run_bound(scores, included, delta=delta, confidence=confidence, guesses=guesses, seed=config.seed)
    doc = {
        "schema": "mintaudit/audit-dp@1", **about, **bound.to_dict(),
        "canaries_from": "external split (seeded draw); each trained on with probability 1/2",
        "model": {"name": model, "dir": "audit-dp/model", "task_accuracy": result.test_accuracy,
                  "train_accuracy": result.train_accuracy, "fingerprint": model_fingerprint(net),
                  "trained_on": int(len(train_idx)), "dp": dp_record},
        "canary_indices": canary_idx.tolist(), "canary_included": included.astype(int).tolist(),
        "command": " ".join(command or sys.argv),
    }
    atomic_write_json(out / "audit-dp.json", doc)
    section = {k: v for k, v in doc.items() if k not in ("canary_indices", "canary_included", "schema")}
    report_path = out / "report.json"
    report = load_report(report_path) if report_path.is_file() else _report_for(
        out, ds, splits, model, net, info, {"audit_dp": {"canaries": canaries, "method": method}}, command or sys.argv)
    report["dp_audit"] = {**section, "file": "audit-dp.json"}
    write_report(report, out)
    return report["dp_audit"]

"""aMINT in a work directory: train, evaluate (published protocol), compare with passive MINT, query.

Layout added to a work directory (see :mod:`mintaudit.workdir`): ``amint/<setup>/`` (the
delivered model: ``model.safetensors`` + ``amint.json``), ``checkpoints/amint-<setup>/``
(per-epoch checkpoint), and ``amint`` rows in ``report.json``.

Protocol ``training-members`` (docs/explanation/protocols.md): members are the training members, the
very samples the head saw as positives; non-members are the test split; both sides balanced
by subsampling. Accuracy is reported at 0.5 (the published convention) and at the threshold
calibrated on validation data no training step saw (``calibrated_accuracy``).
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from mintaudit._io import atomic_write_json, atomic_write_text
from mintaudit.active import export_active, load_active, query_images
from mintaudit.active import HeadConfig
from mintaudit.active import ActiveModel
from mintaudit.active import ActiveConfig, ActiveResult, membership_scores, task_correct, train_active
from mintaudit.data import ImageDataset, Splits
from mintaudit.errors import ConfigError, ModelError
from mintaudit.evaluation import SampleInfo, evaluate_scores
from mintaudit.models import active_taps, build_model, load_model
from mintaudit.workdir.model import report_for, spec_for, train_model
from mintaudit.passive import PassiveSplit, SweepConfig, audit_tap, passive_split
from mintaudit.report import add_result, load_report, write_report
from mintaudit.report import merge_rows
from mintaudit.results import Calibration, Result
from mintaudit.signals import extract_signals
from mintaudit.training import TrainConfig

__all__ = [
    "ActiveSplit",
    "active_split",
    "ActiveRunConfig",
    "active_train",
    "active_eval",
    "active_query",
    "amint_result",
]

Setup = Literal["entry", "middle", "output"]


@dataclass(frozen=True)
class ActiveSplit:
    """Pool indices of the roles in an aMINT run."""

    members: np.ndarray
    external: np.ndarray  # trained on as non-members
    val_members: np.ndarray  # a sample of the members
    val_external: np.ndarray  # held out: validation, early stopping, threshold calibration
    test: np.ndarray  # the non-members of the evaluation


def active_split(splits: Splits, *, val_members: int = 500, val_external: int = 1000, seed: int = 0) -> ActiveSplit:
    """Hold ``val_external`` external samples out of training; sample ``val_members`` members (seeded)."""
    rng = np.random.default_rng(seed)
    ext = rng.permutation(splits.external)
    n_val = min(int(val_external), len(ext) // 4)
    if n_val < 1 or len(ext) - n_val < 1:
        raise ConfigError(
            f"{len(ext)} external samples are too few to hold some out for validation; use --external 100 or more"
        )
    vm = rng.choice(splits.members, size=min(int(val_members), len(splits.members)), replace=False)
    return ActiveSplit(splits.members, np.sort(ext[n_val:]), np.sort(vm), np.sort(ext[:n_val]), splits.test)


@dataclass(frozen=True)
class ActiveRunConfig:
    """Everything :func:`active_train` needs besides data and directory."""

    backbone: str = "objcls-cnn"
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    setup: Setup = "middle"
    taps: tuple[str, ...] | None = None  # overrides the setup's preset
    head: HeadConfig = field(default_factory=HeadConfig)
    train: ActiveConfig = field(default_factory=ActiveConfig)
    val_members: int = 500
    val_external: int = 1000
    n_bootstrap: int = 1000

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["head"] = self.head.to_dict()
        return d


def amint_result(
    pos: np.ndarray,
    neg: np.ndarray,
    *,
    threshold: float,
    aud: float,
    label: str,
    layers: list[str],
    n_bootstrap: int = 1000,
    seed: int = 0,
    extra: dict[str, Any] | None = None,
    member_info: SampleInfo | None = None,
    nonmember_info: SampleInfo | None = None,
) -> Result:
    """The ``amint`` result for membership probabilities of training members (``pos``) and non-members (``neg``).

    With ``member_info`` and ``nonmember_info`` (labels and task correctness of the aMINT model), the row gains slices.
    ``extra`` (setup, backbone, ...) follows ``aud`` in the row.
    """
    at_half = evaluate_scores(
        pos,
        neg,
        threshold=0.5,
        n_bootstrap=n_bootstrap,
        seed=seed,
        member_info=member_info,
        nonmember_info=nonmember_info,
    )
    calibrated = evaluate_scores(pos, neg, threshold=threshold, n_bootstrap=n_bootstrap, seed=seed)
    return Result.from_evaluation(
        at_half,
        method="amint",
        signal="activations",
        protocol="training-members",
        layer="+".join(layers),
        label=label,
        detector="amint-head",
        calibration=Calibration(threshold, calibrated.metrics["accuracy"], list(calibrated.ci95["accuracy"])),
        extra={"aud": aud, **(extra or {})},
    )


def _ds_info(ds: ImageDataset, splits: Splits, split: ActiveSplit) -> dict[str, Any]:
    return {
        "name": ds.name,
        "members": len(splits.members),
        "external": len(split.external),
        "external_validation": len(split.val_external),
        "test": len(splits.test),
        "seed": splits.seed,
        "fingerprint": ds.fingerprint(),
    }


def _merge_report(out: Path, new: dict[str, Any], rows: list[Result], drop: Any) -> dict[str, Any]:
    """Add ``rows`` to ``out/report.json`` when it is about the same data, else start ``new``."""
    path = out / "report.json"
    report = new
    if path.is_file():
        old = load_report(path)
        if old.get("dataset", {}).get("fingerprint") == new["dataset"]["fingerprint"] and all(
            old.get("dataset", {}).get(k) == new["dataset"][k] for k in ("members", "test", "seed")
        ):
            old["results"] = [r for r in old["results"] if not drop(r)]
            old.setdefault("config", {}).update(new["config"])
            report = old
    fresh: dict[str, Any] = {"results": []}
    for r in rows:
        add_result(fresh, r)  # checked as before, then merged by the one rule (a row of the same key replaced)
    report["results"] = merge_rows(report.get("results") or [], fresh["results"])
    write_report(report, out)
    return report


def active_train(
    out_dir: str | Path,
    ds: ImageDataset,
    splits: Splits,
    config: ActiveRunConfig | None = None,
    *,
    plain: bool = True,
    resume: bool = False,
    command: list[str] | None = None,
    show_progress: bool | None = None,
    on_epoch: Any = None,
) -> dict[str, Any]:
    """Train an aMINT model, deliver it, evaluate it, and (``plain``) compare with passive MINT.

    With ``plain``, the same backbone is also trained plainly on the same members for the same
    number of epochs, learning rate and batch size (reused from ``out_dir/model`` when it was
    trained that way), and audited with passive MINT at the same taps fused with its output
    signals, under both protocols; those rows join the report beside the ``amint`` row.

    Returns:
        the report (also written to ``out_dir/report.json`` and ``report.html``).
    """
    config = config or ActiveRunConfig()
    out = Path(out_dir)
    cfg = config.train
    split = active_split(splits, val_members=config.val_members, val_external=config.val_external, seed=cfg.seed)
    spec = spec_for(config.backbone, ds, config.backbone_kwargs)
    torch.manual_seed(cfg.seed)
    backbone = build_model(spec)
    taps = list(config.taps) if config.taps else active_taps(config.backbone, config.setup, backbone)
    model = ActiveModel(backbone, taps, example=ds.batch(split.members[:2]), head=config.head)
    label = config.setup if not config.taps else "custom"
    result = train_active(
        model,
        ds,
        split.members,
        split.external,
        val_members=split.val_members,
        val_external=split.val_external,
        config=cfg,
        test_indices=None,
        checkpoint_dir=out / "checkpoints" / f"amint-{label}",
        resume=resume,
        show_progress=show_progress,
        on_epoch=on_epoch,
    )
    correct_test, correct_members = task_correct(model, ds, splits.test), task_correct(model, ds, splits.members)
    aud = int(correct_test.sum()) / max(len(splits.test), 1)
    train_acc = int(correct_members.sum()) / max(len(splits.members), 1)
    info = {
        "setup": label,
        "training": result.to_dict(),
        "aud": aud,
        "train_accuracy": train_acc,
        "run": config.to_dict(),
        "data_fingerprint": ds.fingerprint(),
        "splits_fingerprint": splits.fingerprint(),
        "external_validation": split.val_external.tolist(),
    }
    export_active(
        model,
        spec,
        out / "amint" / label,
        threshold=result.threshold,
        preprocess=ds.preprocess,
        class_names=ds.class_names,
        info=info,
    )
    pos, neg = membership_scores(model, ds, splits.members), membership_scores(model, ds, splits.test)
    row = amint_result(
        pos,
        neg,
        threshold=result.threshold,
        aud=aud,
        label=f"aMINT {label}",
        layers=model.taps,
        n_bootstrap=config.n_bootstrap,
        seed=cfg.seed,
        extra=_row_extra(config, result, train_acc),
        member_info=SampleInfo(ds.labels[splits.members], correct_members),
        nonmember_info=SampleInfo(ds.labels[splits.test], correct_test),
    )
    rows = [row]
    if plain:
        train_cfg = TrainConfig(
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            seed=cfg.seed,
            augment=cfg.augment,
        )
        rows += _passive_rows(out, ds, splits, spec.name, config, train_cfg, model.taps, label, show_progress)
    report_cfg = {"amint": config.to_dict()}
    plain_model = None
    if (out / "model" / "model.json").is_file():
        plain_model, _, plain_info = load_model(out / "model")
    new = report_for(
        out,
        ds,
        splits,
        config.backbone,
        plain_model if plain_model is not None else model.backbone,
        plain_info if plain_model is not None else {"task_accuracy": aud},
        report_cfg,
        command or [],
    )
    new["dataset"].update(_ds_info(ds, splits, split))
    rows_keys = {(r.method, r.label, r.protocol, r.extra.get("audited_model")) for r in rows}
    return _merge_report(
        out, new, rows, lambda r: (r["method"], r.get("label"), r["protocol"], r.get("audited_model")) in rows_keys
    )


def _row_extra(config: ActiveRunConfig, result: ActiveResult, train_acc: float) -> dict[str, Any]:
    return {
        "setup": config.setup if not config.taps else "custom",
        "backbone": config.backbone,
        "audited_model": "amint",
        "train_accuracy": train_acc,
        "head": config.head.preset,
        "mint_grad_scale": config.train.mint_grad_scale,
        "epochs": {"run": len(result.history), "best": result.best_epoch, "max": config.train.epochs},
        "validation": {"monitor": config.train.monitor, "best": result.best_value},
        "seconds": round(result.seconds, 1),
    }


def _passive_rows(
    out: Path,
    ds: ImageDataset,
    splits: Splits,
    name: str,
    config: ActiveRunConfig,
    train_cfg: TrainConfig,
    taps: list[str],
    label: str,
    show_progress: bool | None,
) -> list[Result]:
    """Passive MINT on the plainly trained backbone, at the aMINT taps + outputs, both protocols."""
    model_json = out / "model" / "model.json"
    net = None
    if model_json.is_file():
        net, spec, info = load_model(out / "model")
        same = (
            spec.name == name
            and info.get("train") == train_cfg.to_dict()
            and info.get("splits_fingerprint") == splits.fingerprint()
            and spec.kwargs == dict(config.backbone_kwargs)
        )
        if not same:
            net = None
    if net is None:
        net, info = train_model(
            out,
            ds,
            splits,
            model=name,
            model_kwargs=config.backbone_kwargs,
            config=train_cfg,
            show_progress=show_progress,
        )
    aud = info.get("task_accuracy")
    sweep_cfg = SweepConfig(n_bootstrap=config.n_bootstrap, seed=train_cfg.seed)
    held = passive_split(splits, seed=train_cfg.seed)
    seen = PassiveSplit(splits.members, splits.members, splits.external, splits.test)
    layer = taps[-1]
    cache = extract_signals(net, ds, np.unique(held.all_indices()), [layer], out / "cache", show_progress=show_progress)
    rows = []
    for split in (seen, held):
        r, _ = audit_tap(
            cache, split, layer, sweep_cfg, fuse_outputs=True, label=f"plain {label}", show_progress=show_progress
        )
        rows.append(
            replace(r, extra={**r.extra, "audited_model": "plain", "aud": aud, "backbone": name, "setup": label})
        )
    return rows


def load_delivered(
    out_dir: str | Path, ds: ImageDataset, splits: Splits, setup: str
) -> tuple[ActiveModel, dict[str, Any]]:
    """The delivered model ``out_dir/amint/<setup>``, checked to be trained on ``ds`` and ``splits``.

    Raises:
        ModelError: no delivered model there, or one trained on other data or another split.
    """
    folder = Path(out_dir) / "amint" / setup
    if not (folder / "amint.json").is_file():
        raise ModelError(
            f"no delivered aMINT model in {str(folder)!r}; train one with "
            f"'mintaudit active train --out {out_dir} --setup {setup}'"
        )
    model, meta = load_active(folder)
    if meta.get("data_fingerprint") not in (None, ds.fingerprint()):
        raise ModelError(f"the aMINT model in {str(folder)!r} was trained on other data; use the same --dataset")
    if meta.get("splits_fingerprint") not in (None, splits.fingerprint()):
        raise ModelError(f"the aMINT model in {str(folder)!r} was trained on another split; use its work directory")
    return model, meta


def active_eval(
    out_dir: str | Path,
    ds: ImageDataset,
    splits: Splits,
    *,
    setup: str = "middle",
    n_bootstrap: int = 1000,
    seed: int = 0,
    command: list[str] | None = None,
) -> dict[str, Any]:
    """Re-evaluate the delivered model ``out_dir/amint/<setup>`` on the split; update the report."""
    out = Path(out_dir)
    model, meta = load_delivered(out, ds, splits, setup)
    pos, neg = membership_scores(model, ds, splits.members), membership_scores(model, ds, splits.test)
    correct_test, correct_members = task_correct(model, ds, splits.test), task_correct(model, ds, splits.members)
    aud = int(correct_test.sum()) / max(len(splits.test), 1)
    row = amint_result(
        pos,
        neg,
        threshold=float(meta["threshold"]),
        aud=aud,
        label=f"aMINT {setup}",
        layers=list(meta["taps"]),
        n_bootstrap=n_bootstrap,
        seed=seed,
        member_info=SampleInfo(ds.labels[splits.members], correct_members),
        nonmember_info=SampleInfo(ds.labels[splits.test], correct_test),
        extra={"setup": setup, "backbone": meta["backbone"]["name"], "audited_model": "amint"},
    )
    new = report_for(
        out,
        ds,
        splits,
        meta["backbone"]["name"],
        model.backbone,
        {"task_accuracy": aud},
        {"amint_eval": {"setup": setup}},
        command or [],
    )
    new["dataset"]["external_validation"] = len(meta.get("external_validation", []))
    key = ("amint", f"aMINT {setup}", "training-members", "amint")
    report = _merge_report(
        out, new, [row], lambda r: (r["method"], r.get("label"), r["protocol"], r.get("audited_model")) == key
    )
    atomic_write_json(out / f"amint-eval-{setup}.json", row.to_dict())
    return report


def active_query(
    model_dir: str | Path,
    images: list[str],
    *,
    csv_path: str | Path | None = None,
    json_path: str | Path | None = None,
) -> list[Any]:
    """Class and membership probability of each image file; optionally written as CSV and/or JSON.

    An output file that is an input (an image, the model's files), is named like an image, or is an
    existing file other than an answers file of this function is refused before anything runs.
    """
    from mintaudit._outputs import check_outputs

    check_outputs({"csv": csv_path, "json": json_path, "images": list(images), "model_dir": model_dir})
    model, meta = load_active(model_dir)
    answers = query_images(model, meta, list(images))
    rows = [asdict(a) for a in answers]
    if csv_path:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(csv_path, buf.getvalue())
    if json_path:
        atomic_write_json(json_path, {"model": str(model_dir), "threshold": meta["threshold"], "answers": rows})
    return answers

"""The factors study's sets and one grid point: the member pool, then train (cached) and audit (cached).

Part of :mod:`mintaudit.studies.factors` (the study's overview and its work directory are there).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mintaudit._io import atomic_path, atomic_write_json
from mintaudit._progress import progress
from mintaudit.data import ImageDataset, Splits
from mintaudit.detectors import MintDetector
from mintaudit.errors import MintauditError, SplitError
from mintaudit.models import ModelSpec, build_model, load_model, save_model
from mintaudit.passive import PassiveSplit, SweepConfig, audit_tap, loss_baseline, mint_scores, passive_split
from mintaudit.signals import SignalCache, extract_signals
from mintaudit.studies.factors.config import BaseConfig, FactorsConfig
from mintaudit.training import TrainConfig, accuracy, train_classifier

__all__ = ["member_pool", "point_splits", "point_spec", "model_key", "train_point", "audit_point", "amint_point"]


def member_pool(ds: ImageDataset, *, members_per_class: int, external: int, test: int, seed: int = 0) -> Splits:
    """One class-stratified member pool, external samples and a test split, seeded.

    Members: ``members_per_class`` of each class from the training part (the official one
    when the data set has it), stored rank-major (the first of every class, then the second of
    every class...), so that ``members[:k * num_classes]`` holds exactly ``k`` of each class
    and smaller sets nest in larger ones. External: a seeded draw from the rest of the
    training part. Test: the official test split, else the rest of the pool.

    Raises:
        SplitError: a class with fewer than ``members_per_class`` samples, or too few left.
    """
    rng = np.random.default_rng(seed)
    if ds.official_test is not None and ds.official_test.any() and not ds.official_test.all():
        train_pool, test_pool = np.flatnonzero(~ds.official_test), np.flatnonzero(ds.official_test)
    else:
        train_pool, test_pool = np.arange(len(ds)), None
    labels = np.asarray(ds.labels)
    per_class = []
    for c in range(ds.num_classes):
        idx = train_pool[labels[train_pool] == c]
        if len(idx) < members_per_class:
            raise SplitError(
                f"class {c} of {ds.name!r} has {len(idx)} training samples, fewer than "
                f"members_per_class={members_per_class}; lower members_per_class"
            )
        per_class.append(rng.permutation(idx)[:members_per_class])
    members = np.stack(per_class, axis=1).reshape(-1)  # rank-major
    rest = rng.permutation(np.setdiff1d(train_pool, members))
    if test_pool is None:
        need = external + test
        if len(rest) < need:
            raise SplitError(
                f"{ds.name!r} has {len(rest)} samples beside the {len(members)} members; external + test "
                f"= {need}: ask for fewer"
            )
        ext, tst = rest[:external], rest[external:need]
    else:
        if len(rest) < external or len(test_pool) < test:
            raise SplitError(
                f"{ds.name!r} has {len(rest)} training samples beside the members (for external = "
                f"{external}) and {len(test_pool)} test samples (for test = {test}): ask for fewer"
            )
        ext, tst = rest[:external], rng.permutation(test_pool)[:test]
    return Splits(ds.name, ds.fingerprint(), int(seed), members, ext, tst).validate(ds)


def point_splits(pool: Splits, members_per_class: int, num_classes: int) -> Splits:
    return Splits(
        pool.dataset,
        pool.data_fingerprint,
        pool.seed,
        pool.members[: members_per_class * num_classes],
        pool.external,
        pool.test,
    )


def _audit_split(splits: Splits, config: FactorsConfig) -> PassiveSplit:
    """Known / held-out members, and as many non-members as held-out members (a seeded prefix of the test split)."""
    split = passive_split(splits, known_fraction=config.known_fraction, seed=config.seed)
    n = min(len(split.heldout_members), len(splits.test))
    held = split.heldout_members
    if len(held) > n:
        held = np.sort(np.random.default_rng([config.seed, 3]).permutation(held)[:n])
    test = np.sort(np.random.default_rng([config.seed, 2]).permutation(splits.test)[:n])
    return PassiveSplit(split.known_members, held, split.external, test)


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _ids(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype="<i8").tobytes()).hexdigest()[:16]


def point_spec(config: FactorsConfig, ds: ImageDataset, point: BaseConfig) -> ModelSpec:
    c, h, w = ds.image_shape
    takes_dropout = config.model == "objcls-cnn" or "dropout" in config.factors
    return ModelSpec(config.model, c, ds.num_classes, (h, w), {"dropout": point.dropout} if takes_dropout else {})


def model_key(spec: ModelSpec, train: TrainConfig, members: np.ndarray, data_fingerprint: str) -> str:
    """The cache key of a trained model: (spec, train config, member indices, data fingerprint)."""
    return _digest(
        {"spec": spec.to_dict(), "train": train.to_dict(), "members": _ids(members), "data": data_fingerprint}
    )


def train_point(
    root: Path, spec: ModelSpec, train: TrainConfig, ds: ImageDataset, members: np.ndarray, show_progress: bool | None
) -> tuple[nn.Module, str, dict[str, Any], bool]:
    """(model, key, info, trained now?): the cached model of this point, else trained and saved."""
    key = model_key(spec, train, members, ds.fingerprint())
    folder = root / "models" / key
    if (folder / "model.json").is_file():
        try:
            net, _, info = load_model(folder)
            if info.get("key") == key:
                return net, key, info, False
        except (MintauditError, OSError, ValueError):  # a broken cache entry is retrained
            pass
    torch.manual_seed(train.seed)  # the same initial weights at every point
    net = build_model(spec)
    result = train_classifier(net, ds, members, train, show_progress=show_progress)
    info = {
        "key": key,
        "train": train.to_dict(),
        "members": len(members),
        "data_fingerprint": ds.fingerprint(),
        "members_fingerprint": _ids(members),
        "seconds": round(result.seconds, 2),
        "history": result.history,
    }
    save_model(net, spec, folder, info)
    return net, key, info, True


def _scores(det: MintDetector, cache: SignalCache, layer: str | None, ids: np.ndarray) -> np.ndarray:
    """P(member), float64 (N,), of the MINT model fused with the output signals, for pool ``ids``."""
    return mint_scores(det, cache, layer, True, ids)


_SUMMARY_KEYS = (
    "method",
    "signal",
    "layer",
    "label",
    "detector",
    "protocol",
    "threshold",
    "n_members",
    "n_nonmembers",
    "metrics",
    "ci95",
    "fit",
)


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    return {k: result[k] for k in _SUMMARY_KEYS if k in result}


def audit_point(
    root: Path,
    key: str,
    net: nn.Module,
    ds: ImageDataset,
    splits: Splits,
    config: FactorsConfig,
    show_progress: bool | None,
) -> tuple[dict[str, Any], dict[str, np.ndarray], bool]:
    """(audit, scores, audited now?): accuracies, every tap's passive MINT, the best one, LOSS; cached by key."""
    split = _audit_split(splits, config)
    sweep = SweepConfig(
        detector=config.detector,
        known_fraction=config.known_fraction,
        n_bootstrap=config.n_bootstrap,
        batch_size=config.batch_size,
        dtype=config.dtype,
        seed=config.seed,
    )
    akey = _digest(
        {
            "model": key,
            "taps": list(config.taps),
            "sweep": sweep.to_dict(),
            "known": _ids(split.known_members),
            "heldout": _ids(split.heldout_members),
            "external": _ids(split.external),
            "test": _ids(split.test),
            "all_test": _ids(splits.test),
            "version": 1,
        }
    )
    folder = root / "models" / key
    audit_path, scores_path = folder / f"audit-{akey}.json", folder / f"scores-{akey}.npz"
    if audit_path.is_file() and scores_path.is_file():
        try:
            with np.load(scores_path, allow_pickle=False) as z:
                scores = {k: z[k] for k in z.files}
            return json.loads(audit_path.read_text()), scores, False
        except (OSError, ValueError):
            pass
    t0 = time.perf_counter()
    task, train_acc = accuracy(net, ds, splits.test), accuracy(net, ds, splits.members)
    cache = extract_signals(
        net,
        ds,
        np.unique(split.all_indices()),
        list(config.taps),
        root / "cache",
        batch_size=config.batch_size,
        dtype=config.dtype,
        show_progress=show_progress,
    )
    try:
        rows, best = [], None
        jobs: list[str | None] = [*config.taps, None]
        for layer in progress(jobs, desc="passive MINT", enabled=show_progress, unit="tap"):
            label = f"{layer}+outputs" if layer is not None else "outputs"
            result, det = audit_tap(
                cache, split, layer, sweep, fuse_outputs=True, label=label, show_progress=show_progress
            )
            rows.append(_summary(result.to_dict()))
            val = result.fit["val_auc"] if result.fit else None
            val = float(val) if isinstance(val, (int, float)) and math.isfinite(val) else -1.0
            if best is None or val > best[0]:
                best = (val, len(rows) - 1, layer, det)
        _, best_i, best_layer, best_det = best  # type: ignore[misc]  # jobs is never empty
        loss = loss_baseline(cache, split, sweep).to_dict()
        out = cache.outputs()
        scores = {
            "member_ids": split.heldout_members,
            "nonmember_ids": split.test,
            "mint_members": _scores(best_det, cache, best_layer, split.heldout_members),
            "mint_nonmembers": _scores(best_det, cache, best_layer, split.test),
            "loss_members": -out["loss"][cache.rows(split.heldout_members)].astype(np.float64),
            "loss_nonmembers": -out["loss"][cache.rows(split.test)].astype(np.float64),
        }
    finally:
        shutil.rmtree(cache.path, ignore_errors=True)  # the audit is cached; the activations are not needed again
    audit = {
        "key": akey,
        "task_accuracy": task,
        "train_accuracy": train_acc,
        "gap": train_acc - task,
        "taps": rows,
        "best": best_i,
        "loss": _summary(loss),
        "seconds": round(time.perf_counter() - t0, 2),
        "n_known_members": int(len(split.known_members)),
        "n_external": int(len(split.external)),
    }
    with atomic_path(scores_path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **scores)
    atomic_write_json(audit_path, audit)
    return audit, scores, True


def amint_point(
    root: Path,
    ds: ImageDataset,
    splits: Splits,
    spec: ModelSpec,
    point: BaseConfig,
    config: FactorsConfig,
    show_progress: bool | None,
) -> tuple[dict[str, Any], str, bool]:
    """(aMINT row, its key, trained now?): the same backbone and budget trained with a MINT head; cached."""
    from mintaudit.active import (
        ActiveConfig,
        ActiveModel,
        HeadConfig,
        export_active,
        membership_scores,
        task_accuracy,
        train_active,
    )
    from mintaudit.workdir import active_split, amint_result
    from mintaudit.models import active_taps

    split = active_split(splits, val_members=min(500, len(splits.members)), val_external=1000, seed=config.seed)
    cfg = ActiveConfig(
        epochs=point.epochs,
        batch_size=point.batch_size,
        lr=point.lr,
        weight_decay=point.weight_decay,
        patience=0,
        seed=config.seed,
    )
    key = _digest(
        {
            "spec": spec.to_dict(),
            "train": asdict(cfg),
            "setup": config.amint_setup,
            "head": asdict(HeadConfig()),
            "members": _ids(split.members),
            "external": _ids(split.external),
            "val": _ids(split.val_external),
            "test": _ids(splits.test),
            "data": ds.fingerprint(),
            "n_bootstrap": config.n_bootstrap,
        }
    )
    folder = root / "amint" / key
    if (folder / "row.json").is_file():
        try:
            return json.loads((folder / "row.json").read_text()), key, False
        except (OSError, ValueError):
            pass
    torch.manual_seed(config.seed)
    backbone = build_model(spec)
    model = ActiveModel(
        backbone, active_taps(spec.name, config.amint_setup, backbone), example=ds.batch(split.members[:2])
    )
    result = train_active(
        model,
        ds,
        split.members,
        split.external,
        val_members=split.val_members,
        val_external=split.val_external,
        config=cfg,
        show_progress=show_progress,
    )
    aud = task_accuracy(model, ds, splits.test)
    pos, neg = membership_scores(model, ds, splits.members), membership_scores(model, ds, splits.test)
    row = amint_result(
        pos,
        neg,
        threshold=result.threshold,
        aud=aud,
        label=f"aMINT {config.amint_setup}",
        layers=model.taps,
        n_bootstrap=config.n_bootstrap,
        seed=config.seed,
        extra={"best_epoch": result.best_epoch, "seconds": round(result.seconds, 1)},
    ).to_dict()
    row = _summary(row) | {k: row[k] for k in ("aud", "calibrated_accuracy", "best_epoch", "seconds")}
    export_active(
        model,
        spec,
        folder / "model",
        threshold=result.threshold,
        class_names=ds.class_names,
        info={"key": key, "run": asdict(cfg)},
    )
    atomic_write_json(folder / "row.json", row)
    return row, key, True

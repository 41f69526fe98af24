"""The factors study's run: every grid point trained and audited, the effects, ``factors.json`` / ``factors.html``.

Part of :mod:`mintaudit.studies.factors` (the study's overview and its work directory are there).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from mintaudit import __version__
from mintaudit._io import atomic_write_json, atomic_write_text
from mintaudit._progress import progress
from mintaudit.data import load_dataset
from mintaudit.studies.factors.config import (
    AMINT_FACTORS,
    SCHEMA,
    BaseConfig,
    FactorsConfig,
    factors_config,
    value_text,
)
from mintaudit.studies.factors.effects import factor_effect
from mintaudit.studies.factors.points import (
    amint_point,
    audit_point,
    member_pool,
    model_key,
    point_spec,
    point_splits,
    train_point,
)

__all__ = ["run_factors", "format_factors_table"]


def _row(
    factor: str,
    value: Any,
    point: BaseConfig,
    config: FactorsConfig,
    key: str,
    members: int,
    audit: dict[str, Any],
    amint: dict[str, Any] | None,
    trained: bool,
    audited: bool,
    info: dict[str, Any],
) -> dict[str, Any]:
    best = audit["taps"][audit["best"]]
    loss = audit["loss"]

    def m(r: dict[str, Any], k: str, fpr: str | None = None) -> Any:
        v = r["metrics"][k]
        return v[fpr] if fpr else v

    def ci(r: dict[str, Any], k: str, fpr: str | None = None) -> Any:
        v = r["ci95"][k]
        return v[fpr] if fpr else v

    row = {
        "factor": factor,
        "value": value,
        "is_base": value == getattr(config.base, factor),
        "key": key,
        "members": members,
        "config": asdict(point),
        "task_accuracy": audit["task_accuracy"],
        "train_accuracy": audit["train_accuracy"],
        "gap": audit["gap"],
        "passive_tap": best["label"],
        "passive_val_auc": best["fit"]["val_auc"],
        "passive_auc": m(best, "auc"),
        "passive_auc_ci95": ci(best, "auc"),
        "passive_tpr_at_1pct_fpr": m(best, "tpr_at_fpr", "0.01"),
        "passive_tpr_ci95": ci(best, "tpr_at_fpr", "0.01"),
        "passive_accuracy": m(best, "accuracy"),
        "passive_accuracy_ci95": ci(best, "accuracy"),
        "loss_auc": m(loss, "auc"),
        "loss_auc_ci95": ci(loss, "auc"),
        "loss_tpr_at_1pct_fpr": m(loss, "tpr_at_fpr", "0.01"),
        "loss_tpr_ci95": ci(loss, "tpr_at_fpr", "0.01"),
        "amint_auc": None,
        "amint_auc_ci95": None,
        "amint_tpr_at_1pct_fpr": None,
        "amint_tpr_ci95": None,
        "n_heldout_members": best["n_members"],
        "n_nonmembers": best["n_nonmembers"],
        "n_known_members": audit["n_known_members"],
        "n_external": audit["n_external"],
        "taps": [
            {
                "label": r["label"],
                "val_auc": r["fit"]["val_auc"],
                "auc": m(r, "auc"),
                "auc_ci95": ci(r, "auc"),
                "tpr_at_1pct_fpr": m(r, "tpr_at_fpr", "0.01"),
            }
            for r in audit["taps"]
        ],
        "train_seconds": info.get("seconds"),
        "audit_seconds": audit.get("seconds"),
        "trained_now": trained,
        "audited_now": audited,
    }
    if amint is not None:
        row.update(
            {
                "amint_auc": m(amint, "auc"),
                "amint_auc_ci95": ci(amint, "auc"),
                "amint_tpr_at_1pct_fpr": m(amint, "tpr_at_fpr", "0.01"),
                "amint_tpr_ci95": ci(amint, "tpr_at_fpr", "0.01"),
                "amint_task_accuracy": amint.get("aud"),
                "amint_protocol": amint.get("protocol"),
            }
        )
    return row


def run_factors(
    out_dir: str | Path,
    config: FactorsConfig | None = None,
    *,
    data_root: str | None = None,
    command: list[str] | None = None,
    show_progress: bool | None = None,
) -> dict[str, Any]:
    """Train and audit every point of the grid; write ``OUT/factors.json`` and ``OUT/factors.html``.

    Points that share a configuration (each factor's base value) are trained and audited once;
    models and audits cached under ``OUT/factors`` by fingerprint are reused, so a rerun only
    trains what changed. One process: not meant for ``torchrun``.

    Args:
        out_dir: the work directory.
        config: the grid (default: ``factors_config("cpu")``).
        data_root: where the data set's files are.
        command: the command line, recorded in the outputs.
        show_progress: progress bars; None = only on a terminal.

    Returns:
        The document written to ``factors.json`` (schema ``mintaudit/factors@1``): ``rows``
        (one per factor and value), ``effects`` (one per factor: lowest to highest setting),
        ``runs`` (the model keys trained and audited by this call).
    """
    from mintaudit.report import factor_plots, render_factors_html

    config = config or factors_config("cpu")
    out = Path(out_dir)
    root = out / "factors"
    t0 = time.perf_counter()
    ds = load_dataset(config.dataset, root=data_root)
    pool = member_pool(
        ds,
        members_per_class=config.max_members_per_class(),
        external=config.external,
        test=config.test,
        seed=config.seed,
    )
    pool.save(root / "splits.json")

    done: dict[str, tuple[dict[str, Any], dict[str, np.ndarray], bool, bool, dict[str, Any]]] = {}
    rows, scores, trained_keys, audited_keys, amint_keys = [], {}, [], [], []
    member_epochs = 0
    points = config.points()
    for factor, value, point in progress(points, desc="factors", enabled=show_progress, unit="point"):
        spec = point_spec(config, ds, point)
        train = point.train_config(config.seed)
        splits = point_splits(pool, point.members_per_class, ds.num_classes)
        key = model_key(spec, train, splits.members, ds.fingerprint())
        if key not in done:
            net, key, info, trained = train_point(root, spec, train, ds, splits.members, show_progress)
            audit, sc, audited = audit_point(root, key, net, ds, splits, config, show_progress)
            member_epochs += len(splits.members) * point.epochs
            done[key] = (audit, sc, trained, audited, info)
            if trained:
                trained_keys.append(key)
            if audited:
                audited_keys.append(key)
        audit, sc, trained, audited, info = done[key]
        amint = None
        if config.amint and factor in AMINT_FACTORS:
            amint, amint_key, fresh = amint_point(root, ds, splits, spec, point, config, show_progress)
            if fresh:
                amint_keys.append(amint_key)
        scores[key] = sc
        rows.append(_row(factor, value, point, config, key, len(splits.members), audit, amint, trained, audited, info))

    effects = []
    for factor in config.factors:
        frows = [r for r in rows if r["factor"] == factor]
        effects.append(factor_effect(factor, frows, scores, config))
    doc = {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mintaudit_version": __version__,
        "command": " ".join(command if command is not None else []),
        "profile": config.profile,
        "dataset": {
            "name": ds.name,
            "fingerprint": ds.fingerprint(),
            "member_pool": len(pool.members),
            "members_per_class_max": config.max_members_per_class(),
            "external": len(pool.external),
            "test": len(pool.test),
            "seed": config.seed,
            "num_classes": ds.num_classes,
        },
        "model": config.model,
        "base": asdict(config.base),
        "config": config.to_dict(),
        "protocol": {
            "passive": "heldout-members: the MINT model is fitted on known members vs external samples; scored on the "
            "other members against as many non-member test samples (balanced by construction)",
            "best_tap": "the tap (fused with the output signals) or the output signals alone whose MINT model has the "
            "highest validation AUC on the MINT-training data; never chosen on the test side",
            "loss": "minus the loss on the true label, on the same held-out members and non-members",
            "amint": "training-members: the members the head was trained on against the test split (the aMINT papers' "
            "protocol), balanced by subsampling"
            if config.amint
            else None,
            "effect_interval": "95% percentile bootstrap of AUC(highest setting) - AUC(lowest setting) over the "
            "per-sample scores; samples both points share are resampled together (paired)",
        },
        "rows": rows,
        "effects": effects,
        "runs": {
            "trained": trained_keys,
            "audited": audited_keys,
            "amint_trained": amint_keys,
            "models": len(done),
            "member_epochs": member_epochs,
            "seconds": round(time.perf_counter() - t0, 1),
        },
    }
    atomic_write_json(out / "factors.json", doc)
    atomic_write_text(out / "factors.html", render_factors_html(doc))
    (out / "plots").mkdir(exist_ok=True)
    for factor, svg in factor_plots(doc).items():
        atomic_write_text(out / "plots" / f"{factor}.svg", svg)
    return doc


def format_factors_table(doc: dict[str, Any]) -> str:
    """The rows as a plain-text table, then one line per effect."""

    def f(v: Any, d: int = 3) -> str:
        return f"{v:.{d}f}" if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else "-"

    def ci(v: Any) -> str:
        return f"[{f(v[0])}, {f(v[1])}]" if isinstance(v, list) and len(v) == 2 else ""

    head = (
        f"{'factor':<17} {'value':>7} {'task':>6} {'gap':>6}  {'passive AUC':<22} {'TPR@1%':<22} "
        f"{'LOSS AUC':<22} {'best tap':<20}"
    )
    lines = [head, "-" * len(head)]
    for r in doc["rows"]:
        value = value_text(r["factor"], r["value"]) + ("*" if r["is_base"] else "")
        lines.append(
            f"{r['factor']:<17} {value:>7} {f(r['task_accuracy']):>6} {f(r['gap']):>6}  "
            f"{(f(r['passive_auc']) + ' ' + ci(r['passive_auc_ci95'])):<22} "
            f"{(f(r['passive_tpr_at_1pct_fpr']) + ' ' + ci(r['passive_tpr_ci95'])):<22} "
            f"{(f(r['loss_auc']) + ' ' + ci(r['loss_auc_ci95'])):<22} {r['passive_tap']:<20}"
            + (f" aMINT {f(r['amint_auc'])} {ci(r['amint_auc_ci95'])}" if r.get("amint_auc") is not None else "")
        )
    lines.append("* = the base value")
    lines += ["", *(e["sentence"] for e in doc["effects"])]
    return "\n".join(lines)

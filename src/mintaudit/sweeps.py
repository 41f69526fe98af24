"""The report of an audit on a resolved model: its header (data, model, gate) and the passive sweep's rows.

Shared by :func:`mintaudit.audit` (the user's own data) and the work-directory verbs
(:mod:`mintaudit.workdir`), so the Python API never reaches up into the work-directory layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from mintaudit.data import ImageDataset, Splits
from mintaudit.gate import check_model_accuracy
from mintaudit.models import model_fingerprint
from mintaudit.passive import SweepConfig, run_sweep
from mintaudit.report import add_result, new_report

__all__ = ["report_for", "sweep_model"]


def report_for(
    out_dir: Path,
    ds: ImageDataset,
    splits: Splits,
    model_name: str,
    net: nn.Module,
    info: dict[str, Any],
    config: dict[str, Any],
    command: list[str],
) -> dict[str, Any]:
    known = int(round(config.get("known_fraction", 0.5) * len(splits.members)))
    dataset = {
        "name": ds.name,
        "members": len(splits.members),
        "external": len(splits.external),
        "test": len(splits.test),
        "seed": splits.seed,
        "fingerprint": ds.fingerprint(),
        "known_members": known,
        "heldout_members": len(splits.members) - known,
    }
    check = info.get("check")
    if check is None:  # the gate measured both before the audit; measure them here otherwise
        check = check_model_accuracy(net, ds, splits.members, splits.test, allow_weak_model=True).to_dict()
        check["weak_model_allowed"] = False
    mdl = {
        "name": model_name,
        "task_accuracy": check["test_accuracy"],
        "train_accuracy": check["members_accuracy"],
        "fingerprint": model_fingerprint(net),
        "epochs": info.get("train", {}).get("epochs"),
        "preprocess": ds.preprocess_record,
        "chance_accuracy": check["chance"],
    }
    if "probe" in info:
        mdl["probe"] = info["probe"]  # the preprocessing probe (mintaudit.probe), and whether it was overridden
    if isinstance(info.get("dp"), dict):
        mdl["dp"] = info["dp"]  # the DP-SGD claim (model.json), beside every result's measured epsilon lower bound
    if check.get("weak_model_allowed"):
        mdl["weak_model_allowed"] = True  # --allow-weak-model: the audit went on with a model near chance
    return new_report(dataset=dataset, model=mdl, config=config, command=command)


def sweep_model(
    net: nn.Module,
    name: str,
    info: dict[str, Any],
    ds: ImageDataset,
    splits: Splits,
    tap_pairs: list[tuple[str, str]],
    cache_root: str | Path,
    config: SweepConfig,
    *,
    run_config: dict[str, Any] | None = None,
    command: list[str] | None = None,
    show_progress: bool | None = None,
) -> dict[str, Any]:
    """The sweep of a resolved model (the gate already passed, its check in ``info``): the report, not written.

    The one path of ``mintaudit sweep`` and of :func:`mintaudit.audit` on the user's own data.
    """
    results = run_sweep(net, ds, splits, tap_pairs, cache_root, config, show_progress=show_progress)
    run_config = {**config.to_dict(), "tap_budget": config.tap_budget, **(run_config or {})}
    report = report_for(Path(cache_root).parent, ds, splits, name, net, info, run_config, command or [])
    for r in results:
        add_result(report, r)
    return report

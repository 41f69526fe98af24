"""``mintaudit audit``: the one command a newcomer needs, the command line's twin of :func:`mintaudit.audit`.

It runs the verbs of a work directory in order on the user's model and member list: the splits
(written by the caller's ``prepare_data``), the sanity gate and the preprocessing probe, passive MINT
on default taps with the output signals fused in, LOSS, the reference attacks when asked
(``references`` models for RMIA and LiRA), the verdict on the query when one is given, and the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mintaudit.attacks import AttackConfig
from mintaudit.data import ImageDataset, Splits
from mintaudit.errors import ConfigError
from mintaudit.models import published_taps
from mintaudit.passive import SweepConfig
from mintaudit.report import load_report
from mintaudit.report import share_text
from mintaudit.training import TrainConfig

from mintaudit.workdir.audit import attack, sweep
from mintaudit.workdir.model import model_spec, resolve_model
from mintaudit.workdir.verdict import verdict

__all__ = [
    "REFERENCE_ATTACKS",
    "answer_lines",
    "audit_run",
    "best_by_family",
    "check_references",
    "default_taps",
    "head_input",
    "row_line",
]

#: The attacks ``references=N`` runs, each with N reference models.
REFERENCE_ATTACKS = ("rmia", "lira")

#: Families of methods, in the order the answer lists their best rows.
_FAMILIES = (
    ("passive MINT", ("passive-mint",)),
    ("aMINT", ("amint",)),
    ("gradient MINT", ("gmint",)),
    ("reference attacks", ("rmia", "lira", "lira-online", "calibrated-loss", "calibrated-mint", "shokri")),
    ("attacks without reference models", ("loss", "confidence", "entropy", "modified-entropy")),
)


def head_input(net: nn.Module, example: torch.Tensor) -> str | None:
    """The layer whose output is the input of the classifier head, or None when no layer's output is.

    The head is the last ``nn.Linear`` that runs in one forward pass; its input is what the
    model knows of a sample just before it is turned into class scores (the MINT papers' last
    hidden layer). Hooking the Linear's input directly would need an input tap, which the signal
    cache does not have, so we find the module *feeding* it: the last module, in execution order,
    whose output (flattened per sample) equals the Linear's input. That is a ReLU or a pooling
    layer in most models (``head.3`` of ``examples/own_model``, ``avgpool`` of a torchvision
    ResNet, where a functional ``flatten`` sits between them). Every hook is removed in ``finally``.
    """
    names = {m: n for n, m in net.named_modules() if n}
    seen: list[tuple[str, torch.Tensor]] = []
    head: dict[str, Any] = {}

    def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        if isinstance(module, nn.Linear) and inputs and isinstance(inputs[0], torch.Tensor):
            head.update(name=names[module], input=inputs[0].detach().clone(), at=len(seen))
        if isinstance(output, torch.Tensor):
            seen.append((names[module], output.detach().clone()))

    handles = [m.register_forward_hook(hook) for m in names]
    was_training = net.training
    try:
        net.eval()
        with torch.no_grad():
            net(example)
    finally:
        for h in handles:
            h.remove()
        net.train(was_training)
    if not head:
        return None
    x = head["input"].reshape(len(example), -1)
    for name, out in reversed(seen[: head["at"]]):  # the modules that ran before the head, last first
        if name != head["name"] and out.shape[0] == len(example) and out[0].numel() == x.shape[1]:
            if torch.allclose(out.reshape(len(example), -1), x):
                return name
    return None


def default_taps(net: nn.Module, name: str, ds: ImageDataset, splits: Splits) -> str:
    """A zoo model's published taps; otherwise the input of its classifier head (:func:`head_input`)."""
    if published_taps(name) is not None:
        return "published"
    example = ds.batch(np.asarray(splits.members[:2]))
    layer = head_input(net, example.to(next(iter(net.parameters()), example).device))
    if layer is None:
        raise ConfigError(
            f"no layer of {name} feeds a final nn.Linear (its classifier head), so no default tap was found; "
            "give --taps (names, indices or a glob; list them with 'mintaudit layers')"
        )
    return layer


def check_references(references: int) -> None:
    """``references`` is 0 (no reference attacks) or at least 2 (LiRA needs models on both sides)."""
    if references < 0 or references == 1:
        raise ConfigError(f"--references takes 0 (none) or a whole number >= 2, got {references}")


def audit_run(
    out_dir: str | Path,
    ds: ImageDataset,
    splits: Splits,
    *,
    model: Any = None,
    weights: str | None = None,
    taps: str | None = None,
    query: str | None = None,
    references: int = 0,
    reference_epochs: int | None = None,
    config: SweepConfig | None = None,
    command: list[str] | None = None,
    show_progress: bool | None = None,
    allow_weak_model: bool = False,
) -> dict[str, Any]:
    """The whole audit in one call; returns ``{"report", "verdict", "best", "taps"}`` (verdict None without a query).

    ``references``: train that many reference models for RMIA and LiRA (refused up front for a
    model with no fresh untrained copy). ``taps``: None picks :func:`default_taps`.
    """
    config = config or SweepConfig(fusion="both")
    out = Path(out_dir)
    check_references(references)
    if references and model_spec(out, ds, model, weights) is None:  # (it may also refuse itself, in one line)
        raise ConfigError(
            f"{model} cannot build a fresh untrained copy, so the reference models of RMIA and LiRA cannot be "
            "trained for it; drop --references (passive MINT and LOSS need none)"
        )
    net, name, _ = resolve_model(
        out, ds, model=model, weights=weights, splits=splits, allow_weak_model=allow_weak_model
    )
    taps = taps or default_taps(net, name, ds, splits)
    common = {"model": model, "weights": weights, "command": command, "show_progress": show_progress}
    report = sweep(out, ds, splits, taps=taps, config=config, allow_weak_model=allow_weak_model, **common)
    if references:
        epochs = reference_epochs or TrainConfig().epochs
        attack_cfg = AttackConfig(
            n_reference=references, reference_train=TrainConfig(epochs=epochs, seed=config.seed), seed=config.seed
        )
        report = attack(
            out,
            ds,
            splits,
            methods=["loss", *REFERENCE_ATTACKS],
            config=attack_cfg,
            known_fraction=config.known_fraction,
            allow_weak_model=allow_weak_model,
            **common,
        )
    found = None
    if query:
        found = verdict(out, ds, splits, query=query, config=config, allow_weak_model=allow_weak_model, **common)
        report = load_report(out / "report.json")
    return {"report": report, "verdict": found, "best": best_by_family(report), "taps": taps}


def best_by_family(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(family, row) for each family of methods in the report: its row with the highest AUC."""
    rows = [r for r in report.get("results", []) if "audited_model" not in r]  # not aMINT's plain twin
    best = []
    for family, methods in _FAMILIES:
        mine = [r for r in rows if r.get("method") in methods and r.get("metrics", {}).get("auc") is not None]
        if mine:
            best.append((family, max(mine, key=lambda r: r["metrics"]["auc"])))
    return best


def answer_lines(v: dict[str, Any]) -> list[str]:
    """A verdict in words, first: the sentence, the deciding p-value with the method, the share of the query used."""
    by = v.get("layer") if v.get("method") == "passive-mint" else None
    lines = [
        v["sentence"],
        f"  p = {v['p_value']:.3g} ({v['decision']}, alpha {v['alpha']:g}), {v['n_query']} queries against "
        f"{v['n_null']} held-out non-members, scores of {v['method']}" + (f" ({by})" if by else ""),
    ]
    share = share_text(v)
    if share:
        lines.append(f"  {share}")
    return lines


def row_line(family: str, row: dict[str, Any]) -> str:
    """One best row in words: family, method (and tap), AUC with its interval, protocol."""
    where = f" {row['layer']}" if row.get("method") == "passive-mint" and row.get("layer") else ""
    fused = " + outputs" if "+outputs" in str(row.get("signal", "")) or row.get("fused_outputs") else ""
    lo, hi = (row.get("ci95") or {}).get("auc", [float("nan"), float("nan")])
    return (
        f"  {family}: {row['method']}{where}{fused}, AUC {row['metrics']['auc']:.3f} [{lo:.3f}-{hi:.3f}] "
        f"({row.get('protocol', 'heldout-members')})"
    )

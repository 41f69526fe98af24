"""Which method and tap ``mintaudit test`` uses by default: the strongest the auditor's own data can justify.

Every candidate is a row of the work directory's report: the passive-MINT rows (their
``fit["val_auc"]``, measured on the MINT model's validation part of the known members and
external samples), the rows of registry attacks that can be scored now (their reference models
are in ``OUT/cache/attacks``, or they need none; their validation AUC is the AUC of their scores
on their calibration sets, known members against external samples, computed here) and MINT rows
of attacks that carry ``fit["val_auc"]`` themselves (``calibrated-mint``). The null reference and
the query side (held-out members, the test split) are never looked at: a candidate's held-out AUC
cannot make it the choice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from mintaudit.attacks import ATTACKS, AttackScores
from mintaudit.attacks import AttackConfig, attack_scores
from mintaudit.attacks import ReferenceTrainer
from mintaudit.data import ImageDataset, Splits
from mintaudit.errors import ConfigError
from mintaudit.evaluation import auc_score
from mintaudit.passive import PassiveSplit
from mintaudit.training import TrainConfig
from mintaudit.workdir.audit import reference_population
from mintaudit.workdir.model import model_spec

__all__ = [
    "attack_candidates",
    "attack_config_of",
    "calibration_auc",
    "choose_default",
    "choose_method",
    "report_attacks",
    "score_attack",
]


def calibration_auc(scores: AttackScores) -> float:
    """AUC of an attack's scores on its calibration sets (known members against external samples)."""
    m, n = scores.calibration_members, scores.calibration_nonmembers
    return float(auc_score(np.r_[np.ones(len(m)), np.zeros(len(n))], np.r_[m, n]))


def attack_config_of(report: dict[str, Any]) -> AttackConfig:
    """The :class:`AttackConfig` ``mintaudit attack`` recorded in the report (the defaults when it did not run)."""
    d = dict((report.get("config") or {}).get("attacks") or {})
    if isinstance(d.get("reference_train"), dict):
        d["reference_train"] = TrainConfig(**d["reference_train"])
    if isinstance(d.get("trainer"), dict):  # the user's recipe, as recorded: enough to find its cached models
        d["trainer"] = ReferenceTrainer.from_description(d["trainer"])
    known = set(AttackConfig.__dataclass_fields__)
    return AttackConfig(**{k: v for k, v in d.items() if k in known})


def report_attacks(report: dict[str, Any]) -> list[str]:
    """Names of the registry attacks with a row in the report (LOSS included), in row order."""
    names = [r.get("attack") for r in report.get("results") or [] if r.get("method") != "passive-mint"]
    return list(dict.fromkeys(n for n in names if isinstance(n, str) and n in ATTACKS))


def score_attack(
    method: str,
    out: Path,
    net: nn.Module,
    spec: Any,
    ds: ImageDataset,
    splits: Splits,
    split: PassiveSplit,
    report: dict[str, Any],
    *,
    extra: np.ndarray | None = None,
    show_progress: bool | None = None,
) -> AttackScores:
    """``method``'s scores on the passive-MINT sets (and ``extra``), as ``mintaudit attack`` computed them.

    Reads the reference models ``mintaudit attack`` cached under ``OUT/cache/attacks`` with the
    options (and ``--population``) it recorded in the report; when the population is not
    recorded (older reports), ``external`` then ``unused`` are tried. Never trains a model.

    Raises:
        ConfigError: the attack's reference models are not in the cache (run ``mintaudit attack`` first).
    """
    config = attack_config_of(report)
    recorded = (report.get("config") or {}).get("attack_population")
    for population in [recorded] if recorded in ("external", "unused") else ["external", "unused"]:
        try:
            pop = reference_population(ds, splits, population, config.seed)
            return attack_scores(
                net,
                spec,
                ds,
                split,
                [method],
                out / "cache" / "attacks",
                config,
                population=pop,
                signals_root=out / "cache",
                show_progress=show_progress,
                extra=extra,
                train_references=False,
            )[method]
        except ConfigError as e:
            if "not in the cache" not in str(e) and "no unused training samples" not in str(e):
                raise
    raise ConfigError(
        f"--method {method} needs its {config.n_reference} reference model(s) in "
        f"{str(out / 'cache' / 'attacks')!r}, and they are not there; run 'mintaudit attack --out "
        f"{out} --dataset DATA --methods {method} --reference {config.n_reference}' first (or use "
        "--method passive-mint or loss)"
    )


def choose_method(
    report: dict[str, Any],
    attack_aucs: dict[str, float] | None = None,
    *,
    unavailable: dict[str, str] | None = None,
) -> tuple[str, str | None, dict[str, Any]]:
    """The method and tap with the best validation AUC among the report's rows.

    Args:
        report: the work directory's report.
        attack_aucs: attack name -> validation AUC on its calibration sets (:func:`calibration_auc`),
            for the attacks that can be scored now; an attack row not in it is not a candidate
            unless its row carries ``fit["val_auc"]`` and it is not in ``unavailable``.
        unavailable: attack name -> why it cannot be scored (recorded, not chosen).

    Returns:
        (method, layer, why): ``method`` is ``passive-mint`` or an attack name; ``layer`` the
        passive-MINT tap (``None`` for the output signals) or ``None``; ``why`` the record for
        the verdict: ``chosen``, ``val_auc``, ``signal``, ``candidates`` (each with its method,
        layer, signal and validation AUC), ``unavailable``, ``basis`` and a ``sentence``.
        With no candidate: passive MINT on the output signals (its MINT model is fitted then).
    """
    attack_aucs, unavailable = dict(attack_aucs or {}), dict(unavailable or {})
    cands: list[dict[str, Any]] = []
    for r in report.get("results") or []:
        if r.get("audited_model") == "plain":  # aMINT's comparison: measured on another model, not this OUT's
            continue
        fit = r.get("fit") or {}
        val = fit.get("val_auc")
        if r.get("method") == "passive-mint":
            if isinstance(val, (int, float)) and np.isfinite(val):
                layer = None if r.get("layer") in (None, "outputs") else str(r["layer"])
                signal = "outputs" if layer is None else str(r.get("signal") or "activations")
                cands.append(
                    {
                        "method": "passive-mint",
                        "layer": layer or "outputs",
                        "signal": signal,
                        "val_auc": float(val),
                        "source": "the MINT model's validation AUC",
                    }
                )
            continue
        name = r.get("attack")
        if not isinstance(name, str) or name not in ATTACKS or any(c["method"] == name for c in cands):
            continue
        if name in attack_aucs:
            auc, source = attack_aucs[name], "AUC on its calibration sets (known members vs external samples)"
            if isinstance(val, (int, float)) and np.isfinite(val):
                auc, source = float(val), "its MINT model's validation AUC"
        elif isinstance(val, (int, float)) and np.isfinite(val) and name not in unavailable:
            auc, source = float(val), "its MINT model's validation AUC"
        else:
            continue
        cands.append(
            {
                "method": name,
                "layer": "outputs",
                "signal": str(r.get("signal") or "outputs"),
                "val_auc": float(auc),
                "source": source,
            }
        )
    basis = (
        "the validation AUC on the auditor's own data (known members against external samples), never "
        "the null reference or the query"
    )
    if not cands:
        why = {
            "chosen": "passive-mint",
            "layer": "outputs",
            "signal": "outputs",
            "val_auc": None,
            "candidates": [],
            "unavailable": unavailable,
            "basis": basis,
            "sentence": "No fitted MINT model or attack in the report: passive MINT on the output signals.",
        }
        return "passive-mint", None, why
    best = max(cands, key=lambda c: c["val_auc"])  # the first on ties: MINT rows come in report order
    listed = "; ".join(f"{_label(c)} {c['val_auc']:.3f}" for c in sorted(cands, key=lambda c: -c["val_auc"]))
    sentence = (
        f"Method chosen: {_label(best)}, the best validation AUC ({best['val_auc']:.3f}) among "
        f"{len(cands)} candidate(s) on the auditor's own data: {listed}."
    )
    if unavailable:
        sentence += " Not scored: " + "; ".join(f"{k} ({v})" for k, v in unavailable.items()) + "."
    why = {
        "chosen": best["method"],
        "layer": best["layer"],
        "signal": best["signal"],
        "val_auc": best["val_auc"],
        "candidates": cands,
        "unavailable": unavailable,
        "basis": basis,
        "sentence": sentence,
    }
    layer = None if best["method"] != "passive-mint" or best["layer"] == "outputs" else best["layer"]
    return best["method"], layer, why


def attack_candidates(
    out: Path,
    net: nn.Module,
    spec: Any,
    ds: ImageDataset,
    splits: Splits,
    split: PassiveSplit,
    report: dict[str, Any],
    *,
    show_progress: bool | None = None,
) -> tuple[dict[str, float], dict[str, str], dict[str, AttackScores]]:
    """(validation AUC, why not scored, scores) of each attack with a row in the report, scored without training.

    An attack whose reference models are not in ``OUT/cache/attacks`` (or that fails to score)
    lands in the second dict, with the reason, instead of the first and the third.
    """
    aucs: dict[str, float] = {}
    unavailable: dict[str, str] = {}
    scores: dict[str, AttackScores] = {}
    for name in report_attacks(report):
        try:
            sc = score_attack(name, out, net, spec, ds, splits, split, report, show_progress=show_progress)
        except ConfigError as e:
            unavailable[name] = (
                "reference models not in the cache" if "reference model" in str(e) else str(e).split(";")[0]
            )
            continue
        scores[name], aucs[name] = sc, calibration_auc(sc)
    return aucs, unavailable, scores


def choose_default(
    out: Path,
    net: nn.Module,
    ds: ImageDataset,
    splits: Splits,
    split: PassiveSplit,
    report: dict[str, Any],
    *,
    other_data: bool = False,
    model: str | None = None,
    weights: str | None = None,
    show_progress: bool | None = None,
) -> tuple[str, str | None, dict[str, Any], dict[str, AttackScores]]:
    """``mintaudit test``'s default: (method, layer, the choice record, the attacks' scores) for the work directory.

    Scores every attack with a row in ``report`` that can be scored without training
    (:func:`attack_candidates`), then :func:`choose_method`. ``other_data``: the query comes
    from another data set, which only LOSS (and passive MINT) can score.
    """
    names = report_attacks(report)
    aucs: dict[str, float] = {}
    unavailable: dict[str, str] = {}
    scores: dict[str, AttackScores] = {}
    if other_data:
        unavailable = {n: "scores samples of the audited data set only" for n in names if n != "loss"}
        names = [n for n in names if n == "loss"]
    if names:
        spec = model_spec(out, ds, model, weights)
        sub = {
            **report,
            "results": [
                r for r in report.get("results") or [] if r.get("method") == "passive-mint" or r.get("attack") in names
            ],
        }
        aucs, missing, scores = attack_candidates(out, net, spec, ds, splits, split, sub, show_progress=show_progress)
        unavailable.update(missing)
    method, layer, why = choose_method(report, aucs, unavailable=unavailable)
    return method, layer, why, scores


def _label(c: dict[str, Any]) -> str:
    if c["method"] == "passive-mint":
        return f"passive MINT ({c['layer']}, {c['signal']})"
    return c["method"]

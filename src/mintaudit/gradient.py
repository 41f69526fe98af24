"""Gradient MINT (gMINT): audit a frozen classifier from per-sample weight gradients.

The auditable data (AAD) of a sample is the gradient of the loss on its true label w.r.t. the
weights of chosen layers, reduced per output filter (:mod:`mintaudit.signals.gradients`); an
MLP MINT model (:class:`~mintaudit.detectors.MintDetector`) reads the vector. The published
study compares four setups (Entry, Middle, Output, Combined) and three data budgets (100%, 10%,
1% of the MINT-training data); :func:`run_gradient_sweep` runs that grid.

Protocol: exactly passive MINT's (:func:`~mintaudit.passive.passive_split`): the MINT model is
fitted on *known* members against external samples and scored on *held-out* members against the
non-member test split (``heldout-members``), with the same evaluation and the same LOSS
baseline. A data budget subsamples only the MINT-training side (known members and external
samples, each stratified by class, seeded, nested: the 1% samples are part of the 10% ones),
never the evaluation sets. On request, each MINT model is also scored on the very members it
was fitted on (``training-members``, the setting of the aMINT papers), reported as separate
results.

Example:
    >>> results = run_gradient_sweep(model, dataset, splits, ["entry", "combined"], [1.0, 0.1],
    ...                              "runs/x/cache")  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from mintaudit._progress import progress
from mintaudit.attacks.loss import loss_audit
from mintaudit.data._base import ImageDataset
from mintaudit.data.splits import Splits
from mintaudit.detectors import DetectorConfig, MintDetector
from mintaudit.errors import ConfigError
from mintaudit.evaluation import SampleInfo, evaluate_scores
from mintaudit.passive import PassiveSplit, SweepConfig, passive_split
from mintaudit.results import PROTOCOLS, GradientSetup, Result
from mintaudit.signals import SETUPS, RowView, SignalCache, check_reductions, extract_gradients, gradient_layers

__all__ = [
    "GradientSweepConfig",
    "SetupSpec",
    "budget_label",
    "parse_budgets",
    "resolve_setups",
    "budget_split",
    "audit_gradients",
    "run_gradient_sweep",
]

SetupSpec = str | tuple[str, Sequence[str]]
"""A setup name (``entry``, ``middle``, ``output``, ``combined``), or (display name, layer names)."""


@dataclass(frozen=True)
class GradientSweepConfig:
    """Options of the gMINT sweep (MINT-model details are a reconstruction: unpublished).

    Attributes:
        detector: the MINT model; gradient vectors are read by the ``mlp`` (``auto`` picks it).
        reductions: per-filter reductions, concatenated (``mean`` as published; ``abs-mean``,
            ``l2``, ``std``); a comma-separated string is accepted.
        known_fraction: share of the members known to the auditor (the rest are held out).
        min_per_class: a budget keeps at least this many samples of each class on each side
            (known members, external), or all of them when a class has fewer.
        protocols: ``heldout-members`` (always first) and optionally ``training-members``.
        n_bootstrap: bootstrap resamples of the 95% intervals.
        batch_size: samples per batched gradient computation.
        seed: seeds the held-out split, the budgets, the MINT models and the bootstrap.
    """

    detector: DetectorConfig = field(default_factory=DetectorConfig)
    reductions: tuple[str, ...] = ("mean",)
    known_fraction: float = 0.5
    min_per_class: int = 3
    protocols: tuple[str, ...] = ("heldout-members",)
    n_bootstrap: int = 1000
    batch_size: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "reductions", check_reductions(self.reductions))
        protocols = (
            tuple(p.strip() for p in self.protocols.split(","))
            if isinstance(self.protocols, str)
            else tuple(self.protocols)
        )
        unknown = [p for p in protocols if p not in PROTOCOLS]
        if unknown or not protocols or len(set(protocols)) != len(protocols):
            raise ConfigError(
                f"protocols must be distinct names among {', '.join(PROTOCOLS)}; got {','.join(protocols)!r}"
            )
        object.__setattr__(self, "protocols", tuple(p for p in PROTOCOLS if p in protocols))
        if self.detector.kind == "cnn":
            raise ConfigError(
                "gMINT reads gradient vectors (N, D): use the mlp detector (--detector mlp or auto), not cnn"
            )
        if not isinstance(self.min_per_class, int) or self.min_per_class < 1:
            raise ConfigError(f"min_per_class must be an integer >= 1, got {self.min_per_class!r}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")

    def passive(self) -> SweepConfig:
        """The passive-MINT options of the same protocol (held-out split, bootstrap, seed)."""
        return SweepConfig(
            detector=self.detector, known_fraction=self.known_fraction, n_bootstrap=self.n_bootstrap, seed=self.seed
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def budget_label(budget: float) -> str:
    """``1.0 -> "100%"``, ``0.1 -> "10%"``, ``0.025 -> "2.5%"``."""
    return f"{round(100 * budget, 6):g}%"


def parse_budgets(budgets: str | float | Sequence[float | str]) -> list[float]:
    """Data budgets as fractions in (0, 1]: ``"1,0.1,0.01"``, ``"100%,10%"`` or a sequence.

    Raises:
        ConfigError: an empty list, a value that is not a number, outside (0, 1], or repeated.
    """
    items = (
        budgets.split(",")
        if isinstance(budgets, str)
        else ([budgets] if isinstance(budgets, (int, float)) else list(budgets))
    )
    out: list[float] = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        try:
            value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise ConfigError(
                f"data budget {text!r} is not a number; give fractions like 1,0.1,0.01 or 100%,10%,1%"
            ) from None
        if not 0.0 < value <= 1.0:
            raise ConfigError(
                f"data budget {text!r} must lie in (0, 1] (a share of the MINT-training data); e.g. 0.1 for 10%"
            )
        if value in out:
            raise ConfigError(f"data budget {text!r} is given twice; give each once")
        out.append(value)
    if not out:
        raise ConfigError("give at least one data budget, e.g. 1,0.1,0.01")
    return out


def resolve_setups(model: nn.Module, setups: str | Sequence[SetupSpec]) -> list[tuple[str, str, list[str]]]:
    """(key, display name, layers) per setup.

    Args:
        model: the audited model.
        setups: names among ``entry``, ``middle``, ``output``, ``combined`` (a list or a
            comma-separated string), or (display name, layer selection) pairs.

    Raises:
        ConfigError: an unknown or repeated setup, or none.
    """
    items: list[SetupSpec] = (
        [s.strip() for s in setups.split(",") if s.strip()] if isinstance(setups, str) else list(setups)
    )
    if not items:
        raise ConfigError(f"give at least one gMINT setup: {', '.join(SETUPS)}")
    out: list[tuple[str, str, list[str]]] = []
    for item in items:
        if isinstance(item, str):
            key = item.strip().lower()
            if key not in SETUPS:
                raise ConfigError(f"unknown gMINT setup {item!r}; choose among {', '.join(SETUPS)}")
            out.append((key, key.capitalize(), gradient_layers(model, key)))
        else:
            name, layers = item
            out.append((str(name), str(name), gradient_layers(model, list(layers))))
    keys = [k for k, _, _ in out]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"gMINT setups {','.join(keys)} name one twice; give each once")
    return out


def budget_split(
    split: PassiveSplit, labels: np.ndarray, budget: float, *, min_per_class: int = 3, seed: int = 0
) -> PassiveSplit:
    """Subsample the MINT-training side of ``split`` to a data budget.

    Known members and external samples are each subsampled per class (stratified) to
    ``round(budget * n_class)`` samples, at least ``min_per_class`` (or all of a smaller class).
    Seeded and nested: each class is permuted once per side, and a budget takes the first
    samples, so a smaller budget's samples are part of a larger one's. The held-out members and
    the test split are returned unchanged.

    Args:
        split: the passive roles (pool indices).
        labels: int (N_pool,): the class of every pool sample.
        budget: the share in (0, 1]; 1 returns the training side whole.

    Returns:
        A :class:`~mintaudit.passive.PassiveSplit` with fewer known members and external samples.
    """
    (budget,) = parse_budgets([budget])

    def side(indices: np.ndarray, salt: int) -> np.ndarray:
        rng = np.random.default_rng([seed, salt])
        cls = labels[indices]
        keep = []
        for c in np.unique(cls):
            members = rng.permutation(indices[cls == c])
            k = max(min(min_per_class, len(members)), int(round(budget * len(members))))
            keep.append(members[:k])
        return indices[np.isin(indices, np.concatenate(keep))] if keep else indices[:0]  # in the split's order

    return PassiveSplit(side(split.known_members, 1), split.heldout_members, side(split.external, 2), split.test)


class _Columns:
    """A lazy horizontal concatenation of (N, D_i) arrays (several layers' gradient vectors)."""

    def __init__(self, arrays: Sequence[np.ndarray]) -> None:
        self.arrays = list(arrays)
        self.shape = (len(self.arrays[0]), sum(a.shape[1] for a in self.arrays))
        self.ndim = 2

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, idx: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(a[idx], dtype=np.float32) for a in self.arrays], 1)


def audit_gradients(
    cache: SignalCache,
    split: PassiveSplit,
    layers: Sequence[str],
    config: GradientSweepConfig,
    *,
    setup: str,
    label: str,
    budget: float = 1.0,
    show_progress: bool | None = None,
) -> tuple[list[Result], MintDetector]:
    """Fit one MLP MINT model on the gradient vectors of ``layers`` and score it.

    Args:
        cache: a gradient cache holding every sample of ``split``.
        split: the passive roles, its training side already cut to the budget.
        layers: the layers whose vectors are concatenated (in this order).
        config: sweep options.
        setup, label, budget: copied into the results (``label`` e.g. ``"Entry 10%"``).

    Returns:
        (one :class:`~mintaudit.results.Result` per protocol of ``config``, the fitted detector).
    """
    X = _Columns([cache.gradients(layer) for layer in layers])
    fit_idx = np.concatenate([split.known_members, split.external])
    fit_rows = cache.rows(fit_idx)
    y = np.r_[np.ones(len(split.known_members)), np.zeros(len(split.external))].astype(np.int64)
    t0 = time.perf_counter()
    det = MintDetector.from_config(replace(config.detector, kind="mlp"), show_progress=show_progress)
    det.fit(RowView(X, fit_rows), y)
    seconds = round(time.perf_counter() - t0, 2)

    def score(indices: np.ndarray) -> np.ndarray:
        logits = det.decision_function(RowView(X, cache.rows(indices)))
        return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))

    nonmember_scores = score(split.test)
    out = cache.outputs()
    info = SampleInfo.from_logits(out["logits"], out["labels"])
    members = {"heldout-members": split.heldout_members, "training-members": split.known_members}
    results: list[Result] = []
    for protocol in config.protocols:
        evaluation = evaluate_scores(
            score(members[protocol]),
            nonmember_scores,
            threshold=0.5,
            n_bootstrap=config.n_bootstrap,
            seed=config.seed,
            member_info=info.take(cache.rows(members[protocol])),
            nonmember_info=info.take(cache.rows(split.test)),
        )
        results.append(
            Result.from_evaluation(
                evaluation,
                method="gmint",
                signal="gradients",
                protocol=protocol,
                layer="+".join(layers),
                label=label,
                gradient=GradientSetup(setup, budget, "+".join(config.reductions)),
                detector=det.kind_,
                fit={
                    "seconds": seconds,
                    "best_epoch": det.best_epoch_,
                    "val_auc": det.val_auc_,
                    "n_known_members": len(split.known_members),
                    "n_external": len(split.external),
                    "n_features": int(X.shape[1]),
                },
            )
        )
    return results, det


def run_gradient_sweep(
    model: nn.Module,
    dataset: ImageDataset,
    splits: Splits,
    setups: str | Sequence[SetupSpec] = SETUPS,
    budgets: str | Sequence[float] = (1.0, 0.1, 0.01),
    cache_root: str | Path = "cache",
    config: GradientSweepConfig | None = None,
    *,
    show_progress: bool | None = None,
) -> list[Result]:
    """The gMINT study's grid: one MLP MINT model per setup and data budget, plus the LOSS baseline.

    The gradients of every layer of every setup are extracted in one pass into one gradient
    cache (reused when model, data, samples, layers and reductions match).

    Args:
        model: the frozen audited model (not modified).
        dataset: the pool; splits: the member / external / test indices.
        setups: see :func:`resolve_setups` (default: Entry, Middle, Output, Combined).
        budgets: shares of the MINT-training data, see :func:`parse_budgets`.
        cache_root: where the gradient cache lives.
        config: sweep options (reductions, protocols, detector...).

    Returns:
        :class:`~mintaudit.results.Result` values (``method: gmint``), setups outer, budgets inner, protocols
        innermost, then the LOSS baseline on the same held-out sets (scored exactly as in
        passive MINT's sweep).
    """
    config = config or GradientSweepConfig()
    budget_list = parse_budgets(budgets)
    resolved = resolve_setups(model, setups)
    split = passive_split(splits, known_fraction=config.known_fraction, seed=config.seed)
    layers = list(dict.fromkeys(layer for _, _, ls in resolved for layer in ls))
    cache = extract_gradients(
        model,
        dataset,
        np.unique(split.all_indices()),
        layers,
        cache_root,
        reductions=config.reductions,
        batch_size=config.batch_size,
        show_progress=show_progress,
    )
    budgeted = {
        b: budget_split(split, dataset.labels, b, min_per_class=config.min_per_class, seed=config.seed)
        for b in budget_list
    }
    jobs = [(s, b) for s in resolved for b in budget_list]
    results: list[Result] = []
    for (key, name, setup_layers), b in progress(jobs, desc="gMINT", enabled=show_progress, unit="model"):
        rows, _ = audit_gradients(
            cache,
            budgeted[b],
            setup_layers,
            config,
            setup=key,
            label=f"{name} {budget_label(b)}",
            budget=b,
            show_progress=show_progress,
        )
        results.extend(rows)
    # the one LOSS row (mintaudit.attacks.loss): from the outputs-only cache the passive sweep and the attacks
    # share, not from this cache's per-sample (vmap) logits, so the row is the same whichever command ran last
    results.append(
        loss_audit(
            model,
            dataset,
            split,
            cache_root,
            batch_size=config.batch_size,
            n_bootstrap=config.n_bootstrap,
            seed=config.seed,
            show_progress=show_progress,
        )
    )
    return results

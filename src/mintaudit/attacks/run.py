"""Running the baseline attacks on the same samples as passive MINT, as report results.

Sets (all from :class:`~mintaudit.passive.PassiveSplit`):

- scored: held-out members against the non-member test split (the passive-MINT sets), so
  every attack's row is comparable with every MINT row of the report;
- reference population: a seeded half of the external samples, or the ``population`` given
  (e.g. the training images no split uses); reference models are trained on paired random
  halves of it (offline attacks: no reference model ever sees a scored sample);
- calibration: known members against the other half of the external samples, on which each
  attack's threshold is tuned (balanced accuracy) and the learned attack is validated; RMIA's
  population samples z are that external half too (non-members of the target and of every
  reference model, like the scored non-members). LOSS, which needs no reference model, is the
  exception: its row is :func:`mintaudit.attacks.loss.loss_result`, the same row the passive and
  gradient sweeps write (known members against all external samples);
- online LiRA trains its own reference models on paired halves of the reference population
  plus every scored and calibration sample, so each is IN for exactly half of them (as in
  Carlini et al.).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from mintaudit.attacks.reference import ReferenceSet, reference_logits, train_reference_models
from mintaudit.attacks.options import options_for
from mintaudit.attacks.trainers import ReferenceTrainer
from mintaudit.attacks.registry import ATTACKS, AttackContext, AttackScores, attack_spec
from mintaudit.data._base import ImageDataset
from mintaudit.data.store import hflip
from mintaudit.errors import ConfigError
from mintaudit.evaluation import evaluate_scores
from mintaudit.evaluation.metrics import best_threshold
from mintaudit.models.registry import ModelSpec
from mintaudit.passive import PassiveSplit
from mintaudit.results import Result
from mintaudit.signals import extract_signals
from mintaudit.targets.saved import require_fresh_copy
from mintaudit.training import TrainConfig

__all__ = ["ATTACKS", "AttackConfig", "AttackScores", "attack_scores", "run_attacks"]


@dataclass(frozen=True)
class AttackConfig:
    """Options of :func:`run_attacks`."""

    n_reference: int = 2
    reference_train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=15))
    fixed_variance: bool | None = None  # None: fixed when fewer than 8 reference models per side
    flip: bool = False  # LiRA test-time augmentation by horizontal flip
    rmia_a: float = 0.33
    rmia_gamma: float = 1.0
    n_bootstrap: int = 1000
    batch_size: int = 256
    seed: int = 0
    trainer: ReferenceTrainer | None = None  # the user's recipe (None: the package's loop)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # attack -> its given options (--attack-opt)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(replace(self, trainer=None))
        del d["trainer"]
        if not self.options:  # only when given, like the trainer
            del d["options"]
        if self.trainer is not None:  # only when given: reports of the default loop stay as they were
            d["trainer"] = self.trainer.describe()
        return d


def _flip_dataset(ds: ImageDataset) -> ImageDataset:
    """The pool mirrored left-right: uint8 (N, H, W, C) pixels flipped on W, or a pool's own ``flipped()`` view."""
    if hasattr(ds, "flipped"):  # model inputs (C, H, W) read from sources (mintaudit.audit): flipped on W too
        return ds.flipped()
    return ImageDataset(
        ds.name + "+hflip",
        hflip(ds.images),
        ds.labels,
        ds.num_classes,  # lazy: flipped per batch
        ds.official_test,
        ds.class_names,
        preprocess=ds.preprocess,
    )


def attack_scores(
    model: nn.Module,
    spec: ModelSpec | None,
    dataset: ImageDataset,
    split: PassiveSplit,
    methods: Sequence[str],
    cache_root: str | Path,
    config: AttackConfig | None = None,
    *,
    population: np.ndarray | None = None,
    signals_root: str | Path | None = None,
    show_progress: bool | None = None,
    extra: np.ndarray | None = None,
    train_references: bool = True,
) -> dict[str, AttackScores]:
    """Per-sample scores of ``methods`` on the passive-MINT sets (see the module docstring).

    Args:
        model: the audited model (not modified); spec: its architecture, for reference models.
        dataset: the pool; split: the passive roles.
        methods: names from :data:`ATTACKS` (the attack registry).
        cache_root: where signals and reference models are cached.
        config: reference-model count and training, LiRA / RMIA options.
        population: pool indices the reference models are trained on (paired halves), instead
            of half of the external samples; must not contain members or scored non-members.
        signals_root: the folder of the audited model's signal caches (default
            ``cache_root / "signals"``); give a work directory's ``cache`` so that LOSS reads the
            outputs cache the sweeps use.
        extra: pool indices scored in addition (``mintaudit test`` on a query file); their scores
            are :attr:`AttackScores.extra`, in this order. They sit beside the scored non-members,
            never among RMIA's population samples or any reference model's training data.
        train_references: False to refuse (ConfigError) rather than train reference models
            missing from the cache.

    Returns:
        method name -> :class:`AttackScores` (LOSS: calibrated on known members vs all external samples).
    """
    config = config or AttackConfig()
    _check_names(methods)
    if config.trainer is None or config.trainer.build is None:  # a user's build() makes the fresh copies
        require_fresh_copy(model, spec, [m for m in methods if attack_spec(m).needs_references])
    rng = np.random.default_rng(config.seed)
    external = rng.permutation(split.external)
    ref_pop, calib_ext = np.sort(external[: len(external) // 2]), np.sort(external[len(external) // 2 :])
    members, nonmembers, known = split.heldout_members, split.test, split.known_members
    if population is not None:
        ref_pop = np.unique(np.asarray(population, dtype=np.int64))
        leaked = np.intersect1d(ref_pop, np.concatenate([members, known, nonmembers, calib_ext]))
        if len(leaked):
            raise ConfigError(
                f"the reference population shares {len(leaked)} samples with the members or the scored "
                "non-members; give population data disjoint from both"
            )
    base = np.concatenate([members, nonmembers, known, calib_ext])
    x = np.zeros(0, np.int64) if extra is None else np.asarray(extra, dtype=np.int64).reshape(-1)
    if len(x) and "lira-online" in methods and not np.isin(x, base).all():
        raise ConfigError(
            "lira-online scores only the samples its reference models were trained around; "
            "use another attack for these samples"
        )
    scored = np.concatenate([members, nonmembers, x, known, calib_ext])  # all rows we score
    n_m, n_n, n_k, n_x = len(members), len(nonmembers), len(known), len(x)
    cache_root = Path(cache_root)
    signals = Path(signals_root) if signals_root is not None else cache_root / "signals"

    def target_logits(ds: ImageDataset) -> np.ndarray:
        return (
            extract_signals(model, ds, scored, [], signals, batch_size=config.batch_size, show_progress=show_progress)
            .outputs()["logits"]
            .astype(np.float64)
        )

    views = [dataset, _flip_dataset(dataset)] if config.flip else [dataset]
    refs: dict[str, tuple[ReferenceSet, np.ndarray]] = {}

    def reference(kind: str) -> tuple[ReferenceSet, np.ndarray]:
        if kind not in refs:
            population = ref_pop if kind == "offline" else np.unique(np.concatenate([ref_pop, base]))
            ref_set = train_reference_models(
                spec,
                dataset,
                population,
                config.n_reference,
                config.reference_train,
                cache_root / "reference" / kind,
                show_progress=show_progress,
                train=train_references,
                trainer=config.trainer,
            )
            rl = np.stack([reference_logits(ref_set, v, scored, cache_root / "signals") for v in views], 1)
            refs[kind] = (ref_set, rl.astype(np.float64))  # logits (R, A, N, K)
        return refs[kind]

    ctx = AttackContext(
        model,
        dataset,
        split,
        scored,
        n_m,
        n_n + n_x,
        n_k,
        ref_pop,
        calib_ext,
        views,
        config,
        cache_root,
        signals,
        show_progress,
        target_logits,
        reference,
    )
    if any(attack_spec(m).result is None for m in methods):
        ctx.logits  # noqa: B018 (the target first, as always; LOSS alone reads its own cache)
    out: dict[str, AttackScores] = {}
    for method in methods:
        entry = attack_spec(method)
        t0 = time.perf_counter()
        ctx.options = options_for(method, entry.options, config)
        got = entry.score(ctx)
        if isinstance(got, AttackScores):  # an attack with its own sets (LOSS)
            if n_x:
                raise ConfigError(f"attack {method!r} scores only its own sets, not extra samples; use another attack")
            out[method] = got
            continue
        s, info = got if isinstance(got, tuple) else (got, {})
        info = dict(info)
        info["n_reference"] = config.n_reference if entry.needs_references else 0
        info["seconds"] = round(time.perf_counter() - t0, 2)
        s = np.asarray(s, dtype=np.float64)
        if not n_x:
            out[method] = ctx.to_scores(s, info)
            continue
        a, b = n_m + n_n, n_m + n_n + n_x  # the extra rows sit right after the scored non-members
        out[method] = AttackScores(
            s[:n_m],
            s[n_m:a],
            s[b : b + n_k],
            s[b + n_k :],
            info,
            ctx.sample_info.take(np.arange(n_m)),
            ctx.sample_info.take(np.arange(n_m, a)),
            extra=s[a:b],
        )
    return out


def run_attacks(
    model: nn.Module,
    spec: ModelSpec | None,
    dataset: ImageDataset,
    split: PassiveSplit,
    methods: Sequence[str],
    cache_root: str | Path,
    config: AttackConfig | None = None,
    *,
    population: np.ndarray | None = None,
    signals_root: str | Path | None = None,
    show_progress: bool | None = None,
) -> list[Result]:
    """:func:`attack_scores` turned into report results, one per method, on the passive-MINT sets.

    Each attack's threshold is tuned (balanced accuracy) on its calibration sets, never on the
    scored ones. ``method`` is the report's name (``lira`` for both LiRA variants, ``entropy``
    for the modified entropy); ``attack`` and ``label`` keep the attack's own name. The LOSS
    row is :func:`mintaudit.attacks.loss.loss_result`, the row the sweeps write; give
    ``signals_root`` (see :func:`attack_scores`) for it to read the same cache as theirs.
    """
    config = config or AttackConfig()
    _check_names(methods)
    signals = Path(signals_root) if signals_root is not None else Path(cache_root) / "signals"
    own_rows = {m for m in methods if attack_spec(m).result is not None}  # LOSS: the row the sweeps share
    others = [m for m in methods if m not in own_rows]
    scored = (
        attack_scores(
            model,
            spec,
            dataset,
            split,
            others,
            cache_root,
            config,
            population=population,
            signals_root=signals,
            show_progress=show_progress,
        )
        if others
        else {}
    )
    results: list[Result] = []
    for method in dict.fromkeys(methods):
        entry = attack_spec(method)
        if entry.result is not None:
            row = entry.result(model, dataset, split, signals, config, show_progress)
            results.append(row if isinstance(row, Result) else Result.from_dict(row))  # a plug-in's row dict
            continue
        sc = scored[method]
        calib = np.r_[sc.calibration_members, sc.calibration_nonmembers]
        calib_y = np.r_[np.ones(len(sc.calibration_members)), np.zeros(len(sc.calibration_nonmembers))]
        thr = float(best_threshold(calib_y, calib))
        # an attack may name its row's signal, detector and threshold source in info["row"] (calibrated-mint)
        row = {
            "signal": "outputs",
            "detector": "threshold",
            "threshold_source": "known members vs half of the external samples",
            **sc.info.get("row", {}),
        }
        results.append(
            Result.from_evaluation(
                evaluate_scores(
                    sc.members,
                    sc.nonmembers,
                    threshold=thr,
                    n_bootstrap=config.n_bootstrap,
                    seed=config.seed,
                    member_info=sc.member_info,
                    nonmember_info=sc.nonmember_info,
                ),
                method=entry.method,
                protocol="heldout-members",
                layer="outputs",
                label=entry.label,
                attack=method,
                fit={k: v for k, v in sc.info.items() if k != "row"},
                **row,
            )
        )
    return results


def _check_names(methods: Sequence[str]) -> None:
    unknown = [m for m in methods if m not in ATTACKS]
    if unknown:
        raise ConfigError(f"unknown attack(s) {', '.join(unknown)}; choose from {', '.join(ATTACKS)}")

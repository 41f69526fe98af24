"""What makes a model auditable: training factors varied one at a time, each point audited.

Around a fixed, seeded *base* configuration of the audited model, one factor at a time takes
each of its grid values, everything else unchanged: ``epochs`` (how often each member is
seen), ``members_per_class`` (training-set size), ``dropout``, ``weight_decay``, ``augment``
(random flip + crop) and ``label_smoothing`` (cross-entropy vs label smoothing). Every point
of the grid is trained, then measured:

- task accuracy on the test split, train accuracy on its members, and their gap;
- passive MINT (protocol ``heldout-members``) at its *best tap*, chosen among a short list of
  taps fused with the output signals, plus the output signals alone, by the MINT model's
  validation AUC (measured on the auditor's own MINT-training data, never on the test side);
- the LOSS attack (minus the loss) on the same held-out members and non-members;
- optionally aMINT (protocol ``training-members``) where the factor applies to its trainer.

The sets: one class-stratified member pool (``members_per_class`` of each class, a seeded
order), external samples and a test split, shared by every point. A point with ``k`` members
per class trains on the first ``k`` of each class's order (nested subsets). Passive MINT knows
``known_fraction`` of the point's members; the audit is scored on the rest (held-out members)
against as many non-members, a seeded prefix of the test split, so both sides are balanced by
construction and the bootstrap of a difference can pair the samples two points share.

A work directory receives::

    OUT/factors.json, OUT/factors.html          the table, the effects, one plot per factor
    OUT/plots/<factor>.svg                      each plot alone (for papers and READMEs)
    OUT/factors/splits.json                     the shared member pool / external / test
    OUT/factors/models/<key>/                   a trained model (model.safetensors + model.json),
                                                its cached audit (audit-<key>.json, scores-<key>.npz)
    OUT/factors/amint/<key>/                    aMINT models and their rows, when asked for

``<key>`` is a fingerprint of (model spec, train config, member indices, data fingerprint), so
a rerun trains, and audits, only what changed.

Example:
    >>> from mintaudit.factors import factors_config, run_factors
    >>> doc = run_factors("runs/factors-tiny", factors_config("tiny"))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import shutil
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from mintaudit import __version__
from mintaudit._io import atomic_path, atomic_write_json, atomic_write_text
from mintaudit._progress import progress
from mintaudit.data import ImageDataset, Splits, load_dataset
from mintaudit.detectors import DetectorConfig, MintDetector
from mintaudit.errors import ConfigError, MintauditError, SplitError
from mintaudit.evaluation.metrics import auc_score
from mintaudit.models import ModelSpec, build_model, load_model, save_model
from mintaudit.passive import PassiveSplit, SweepConfig, audit_tap, loss_baseline, passive_split
from mintaudit.signals import SignalCache, extract_signals
from mintaudit.training import TrainConfig, accuracy, train_classifier

__all__ = [
    "FACTORS",
    "AMINT_FACTORS",
    "PROFILES",
    "SCHEMA",
    "BaseConfig",
    "FactorsConfig",
    "factors_config",
    "parse_grid",
    "member_pool",
    "run_factors",
    "format_factors_table",
]

SCHEMA = "mintaudit/factors@1"
FACTORS: tuple[str, ...] = ("epochs", "members_per_class", "dropout", "weight_decay", "augment", "label_smoothing")
"""The factors a grid may vary, in report order."""
AMINT_FACTORS: tuple[str, ...] = ("epochs", "members_per_class", "dropout", "weight_decay")
"""Factors the aMINT trainer has an equivalent of (it has no augmentation or label smoothing)."""
PROFILES: tuple[str, ...] = ("tiny", "cpu", "gpu")
Profile = Literal["tiny", "cpu", "gpu", "custom"]

_TEXT: dict[str, tuple[str, str]] = {  # factor -> (display name, what it means)
    "epochs": ("epochs", "how often each member is seen"),
    "members_per_class": ("members per class", "training-set size"),
    "dropout": ("dropout", "dropout probability after each conv block"),
    "weight_decay": ("weight decay", "Adam's L2 term"),
    "augment": ("augmentation", "random horizontal flip + crop after 2-px padding"),
    "label_smoothing": ("label smoothing", "0 = plain cross-entropy"),
}


# ---------------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class BaseConfig:
    """The fixed point every factor varies around: how the audited model is trained.

    Args:
        epochs: passes over the members.
        members_per_class: members of each class trained on (the training-set size / classes).
        dropout: ``objcls-cnn``'s dropout after each block (0 = off).
        weight_decay: Adam's L2 term.
        augment: random horizontal flip and random crop (2-px padding) on every batch.
        label_smoothing: cross-entropy label smoothing (0 = plain cross-entropy).
        batch_size, lr: Adam's batch size and learning rate (not varied).
    """

    epochs: int = 15
    members_per_class: int = 200
    dropout: float = 0.25
    weight_decay: float = 0.0
    augment: bool = False
    label_smoothing: float = 0.0
    batch_size: int = 64
    lr: float = 1e-3

    def __post_init__(self) -> None:
        for name in FACTORS:
            object.__setattr__(self, name, _coerce(name, getattr(self, name)))
        if self.batch_size < 1 or self.lr <= 0:
            raise ConfigError(f"batch_size must be >= 1 and lr > 0; given {self.batch_size} and {self.lr}")

    def vary(self, factor: str, value: Any) -> BaseConfig:
        """This configuration with ``factor`` set to ``value``."""
        return dataclasses.replace(self, **{_check_factor(factor): value})

    def train_config(self, seed: int) -> TrainConfig:
        """The :class:`~mintaudit.training.TrainConfig` of this point."""
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
                           seed=seed, augment=self.augment, label_smoothing=self.label_smoothing)


@dataclass(frozen=True)
class FactorsConfig:
    """Everything :func:`run_factors` needs besides the work directory.

    Args:
        dataset: data set name (see :func:`mintaudit.data.load_dataset`).
        model: the audited model's zoo name; ``dropout`` is passed to it as a keyword (so the
            factor needs a model that takes one, like ``objcls-cnn``).
        external, test: external samples (the auditor's non-members) and non-member test
            samples, shared by every point.
        base: the fixed point.
        grid: ``((factor, (value, ...)), ...)``: the values each varied factor takes.
        taps: layers whose activations, fused with the output signals, feed a passive MINT
            model; the output signals alone are always added.
        detector: the MINT model.
        known_fraction: the share of each point's members the auditor knows.
        n_bootstrap: resamples behind every 95% interval.
        amint: also train and evaluate aMINT where the factor applies (:data:`AMINT_FACTORS`).
        amint_setup: the aMINT head's taps preset.
        seed: seeds the sets, every training run and every MINT model.
        profile: the profile this came from (informative).
        batch_size, dtype: signal extraction.
    """

    dataset: str = "fashion-mnist"
    model: str = "objcls-cnn"
    external: int = 2000
    test: int = 2000
    base: BaseConfig = field(default_factory=BaseConfig)
    grid: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    taps: tuple[str, ...] = ("block3.relu2", "fc_relu")
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    known_fraction: float = 0.5
    n_bootstrap: int = 1000
    amint: bool = False
    amint_setup: Literal["entry", "middle", "output"] = "middle"
    seed: int = 0
    profile: Profile = "custom"
    batch_size: int = 256
    dtype: Literal["float32", "float16"] = "float32"

    def __post_init__(self) -> None:
        grid = tuple((_check_factor(f), tuple(dict.fromkeys(_coerce(f, v) for v in values))) for f, values in self.grid)
        if not grid:
            raise ConfigError(f"the grid varies no factor; give at least one of {', '.join(FACTORS)}")
        seen = [f for f, _ in grid]
        if len(set(seen)) != len(seen):
            raise ConfigError(f"a factor appears twice in the grid ({', '.join(seen)}); give each once")
        for f, values in grid:
            if len(values) < 2:
                raise ConfigError(f"factor {f!r} needs at least two values to compare, got {list(values)}")
        object.__setattr__(self, "grid", tuple((f, tuple(sorted(v))) for f, v in grid))
        if self.external < 1 or self.test < 1:
            raise ConfigError(f"external and test must be >= 1; given {self.external} and {self.test}")
        if not 0.0 < self.known_fraction < 1.0:
            raise ConfigError(f"known_fraction must lie in (0, 1), got {self.known_fraction}")
        if self.n_bootstrap < 0:
            raise ConfigError(f"n_bootstrap must be >= 0, got {self.n_bootstrap}")
        if self.amint_setup not in ("entry", "middle", "output"):
            raise ConfigError(f"amint_setup must be entry, middle or output, got {self.amint_setup!r}")

    @property
    def factors(self) -> tuple[str, ...]:
        return tuple(f for f, _ in self.grid)

    def max_members_per_class(self) -> int:
        """The member pool's size per class: the largest ``members_per_class`` any point uses."""
        values = [self.base.members_per_class]
        values += [v for f, vs in self.grid if f == "members_per_class" for v in vs]
        return int(max(values))

    def points(self) -> list[tuple[str, Any, BaseConfig]]:
        """(factor, value, configuration) of every grid point, in report order."""
        return [(f, v, self.base.vary(f, v)) for f, values in self.grid for v in values]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["grid"] = {f: list(v) for f, v in self.grid}
        d["taps"] = list(self.taps)
        return d


def _check_factor(name: str) -> str:
    if name in FACTORS:
        return name
    close = difflib.get_close_matches(str(name).replace("-", "_"), FACTORS, n=2)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    raise ConfigError(f"unknown factor {name!r}: choose among {', '.join(FACTORS)}{hint}")


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _coerce(factor: str, value: Any) -> Any:
    """``value`` as the factor's type, checked: int >= 1, float in range, or bool."""
    try:
        if factor in ("epochs", "members_per_class"):
            if isinstance(value, bool) or float(value) != int(float(value)):
                raise ValueError
            v: Any = int(float(value))
            ok = v >= 1
        elif factor == "augment":
            text = str(value).strip().lower()
            if text not in _TRUE + _FALSE:
                raise ValueError
            v, ok = text in _TRUE, True
        else:
            if isinstance(value, bool):
                raise ValueError
            v = float(value)
            ok = math.isfinite(v) and v >= 0 and (factor == "weight_decay" or v < 1)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        want = {"epochs": "an integer >= 1", "members_per_class": "an integer >= 1", "augment": "on or off",
                "weight_decay": "a number >= 0"}.get(factor, "a number in [0, 1)")
        raise ConfigError(f"factor {factor!r} takes {want}; given {value!r}")
    return v


def parse_grid(items: Iterable[str] | Mapping[str, Sequence[Any]] | None) -> dict[str, tuple[Any, ...]]:
    """``["epochs=5,15,40", "augment=off,on"]`` (or a mapping) -> ``{"epochs": (5, 15, 40), ...}``, checked."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        pairs = [(str(k), list(v) if isinstance(v, (list, tuple)) else str(v).split(",")) for k, v in items.items()]
    else:
        pairs = []
        for item in items:
            key, sep, values = str(item).partition("=")
            if not sep or not key.strip() or not values.strip():
                raise ConfigError(f"--grid takes FACTOR=V1,V2,...; given {item!r}; e.g. --grid epochs=5,15,40")
            pairs.append((key.strip(), values.split(",")))
    out: dict[str, tuple[Any, ...]] = {}
    for key, values in pairs:
        factor = _check_factor(key.replace("-", "_"))
        out[factor] = tuple(_coerce(factor, v.strip() if isinstance(v, str) else v) for v in values
                            if not (isinstance(v, str) and not v.strip()))
    return out


def _profile(name: str) -> tuple[dict[str, Any], dict[str, tuple[Any, ...]]]:
    """(FactorsConfig keywords, grid) of a named profile."""
    if name == "tiny":  # digits, seconds: for tests
        return ({"dataset": "digits", "external": 300, "test": 300, "taps": ("fc_relu",),
                 "base": BaseConfig(epochs=3, members_per_class=20, batch_size=32),
                 "detector": DetectorConfig(epochs=3, patience=2), "n_bootstrap": 50},
                {"epochs": (1, 3), "members_per_class": (10, 20), "dropout": (0.0, 0.25), "weight_decay": (0.0, 1e-3),
                 "augment": (False, True), "label_smoothing": (0.0, 0.1)})
    if name == "cpu":  # Fashion-MNIST: 12 min measured on 2 cores (703 s); aMINT off (it would add ~20 min)
        return ({"dataset": "fashion-mnist", "external": 2000, "test": 2000, "taps": ("block3.relu2", "fc_relu"),
                 "base": BaseConfig(epochs=15, members_per_class=200, batch_size=64)},
                {"epochs": (5, 15, 40), "members_per_class": (50, 100, 200), "dropout": (0.0, 0.25, 0.5),
                 "weight_decay": (0.0, 1e-4, 1e-3), "augment": (False, True), "label_smoothing": (0.0, 0.1)})
    if name == "gpu":  # CIFAR-10 (the study's data), the seven published taps, aMINT on
        return ({"dataset": "cifar10", "external": 5000, "test": 5000, "amint": True,
                 "taps": ("block1.relu1", "block1.relu2", "block2.relu1", "block2.relu2", "block3.relu1",
                          "block3.relu2", "fc_relu"),
                 "base": BaseConfig(epochs=30, members_per_class=500, batch_size=64)},
                {"epochs": (10, 30, 100), "members_per_class": (100, 250, 500), "dropout": (0.0, 0.25, 0.5),
                 "weight_decay": (0.0, 1e-4, 1e-3), "augment": (False, True), "label_smoothing": (0.0, 0.1, 0.2)})
    raise ConfigError(f"unknown profile {name!r}: choose among {', '.join(PROFILES)}")


def factors_config(
    profile: str = "cpu",
    *,
    factors: str | Sequence[str] | None = None,
    grid: Iterable[str] | Mapping[str, Sequence[Any]] | None = None,
    dataset: str | None = None,
    amint: bool | None = None,
    n_bootstrap: int | None = None,
    seed: int = 0,
) -> FactorsConfig:
    """A profile's configuration, with optional overrides.

    Args:
        profile: ``tiny`` (digits, seconds; for tests), ``cpu`` (Fashion-MNIST, 2,000 members,
            under an hour on 2 cores) or ``gpu`` (CIFAR-10, 5,000 members, all seven taps, aMINT).
        factors: keep only these factors (names or a comma-separated string), in this order.
        grid: values replacing the profile's, as ``["epochs=5,15,40"]`` or ``{"epochs": [5, 15]}``;
            a factor given here joins the grid when the profile lacks it.
        dataset: another data set than the profile's.
        amint: turn aMINT on or off (default: the profile's).
        n_bootstrap: resamples behind the 95% intervals (default: the profile's).
        seed: seeds everything.

    Raises:
        ConfigError: an unknown profile or factor (with the valid names), a bad value.
    """
    kwargs, values = _profile(profile)
    values = {**values, **parse_grid(grid)}
    if factors is not None:
        names = [f.strip() for f in factors.split(",")] if isinstance(factors, str) else list(factors)
        names = [_check_factor(f.replace("-", "_")) for f in names if f]
        if not names:
            raise ConfigError(f"--factors names none; choose among {', '.join(FACTORS)}")
        missing = [f for f in names if f not in values]
        if missing:
            raise ConfigError(f"factor {missing[0]!r} has no values in profile {profile!r}; give them with "
                              f"--grid {missing[0]}=V1,V2")
        values = {f: values[f] for f in names}
    else:
        values = {f: values[f] for f in FACTORS if f in values}
    if dataset is not None:
        kwargs["dataset"] = dataset
    if amint is not None:
        kwargs["amint"] = bool(amint)
    if n_bootstrap is not None:
        kwargs["n_bootstrap"] = int(n_bootstrap)
    kwargs["detector"] = dataclasses.replace(kwargs.get("detector", DetectorConfig()), seed=seed)
    return FactorsConfig(grid=tuple(values.items()), seed=seed, profile=profile, **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# the sets


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
            raise SplitError(f"class {c} of {ds.name!r} has {len(idx)} training samples, fewer than "
                             f"members_per_class={members_per_class}; lower members_per_class")
        per_class.append(rng.permutation(idx)[:members_per_class])
    members = np.stack(per_class, axis=1).reshape(-1)  # rank-major
    rest = rng.permutation(np.setdiff1d(train_pool, members))
    if test_pool is None:
        need = external + test
        if len(rest) < need:
            raise SplitError(f"{ds.name!r} has {len(rest)} samples beside the {len(members)} members; external + test "
                             f"= {need}: ask for fewer")
        ext, tst = rest[:external], rest[external:need]
    else:
        if len(rest) < external or len(test_pool) < test:
            raise SplitError(f"{ds.name!r} has {len(rest)} training samples beside the members (for external = "
                             f"{external}) and {len(test_pool)} test samples (for test = {test}): ask for fewer")
        ext, tst = rest[:external], rng.permutation(test_pool)[:test]
    return Splits(ds.name, ds.fingerprint(), int(seed), members, ext, tst).validate(ds)


def _point_splits(pool: Splits, members_per_class: int, num_classes: int) -> Splits:
    return Splits(pool.dataset, pool.data_fingerprint, pool.seed, pool.members[: members_per_class * num_classes],
                  pool.external, pool.test)


def _audit_split(splits: Splits, config: FactorsConfig) -> PassiveSplit:
    """Known / held-out members, and as many non-members as held-out members (a seeded prefix of the test split)."""
    split = passive_split(splits, known_fraction=config.known_fraction, seed=config.seed)
    n = min(len(split.heldout_members), len(splits.test))
    held = split.heldout_members
    if len(held) > n:
        held = np.sort(np.random.default_rng([config.seed, 3]).permutation(held)[:n])
    test = np.sort(np.random.default_rng([config.seed, 2]).permutation(splits.test)[:n])
    return PassiveSplit(split.known_members, held, split.external, test)


# ---------------------------------------------------------------------------------------------
# one point: train (cached), audit (cached)


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _ids(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype="<i8").tobytes()).hexdigest()[:16]


def _spec(config: FactorsConfig, ds: ImageDataset, point: BaseConfig) -> ModelSpec:
    c, h, w = ds.image_shape
    takes_dropout = config.model == "objcls-cnn" or "dropout" in config.factors
    return ModelSpec(config.model, c, ds.num_classes, (h, w), {"dropout": point.dropout} if takes_dropout else {})


def model_key(spec: ModelSpec, train: TrainConfig, members: np.ndarray, data_fingerprint: str) -> str:
    """The cache key of a trained model: (spec, train config, member indices, data fingerprint)."""
    return _digest({"spec": spec.to_dict(), "train": train.to_dict(), "members": _ids(members), "data": data_fingerprint})


def _trained(root: Path, spec: ModelSpec, train: TrainConfig, ds: ImageDataset, members: np.ndarray,
             show_progress: bool | None) -> tuple[nn.Module, str, dict[str, Any], bool]:
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
    info = {"key": key, "train": train.to_dict(), "members": len(members), "data_fingerprint": ds.fingerprint(),
            "members_fingerprint": _ids(members), "seconds": round(result.seconds, 2), "history": result.history}
    save_model(net, spec, folder, info)
    return net, key, info, True


def _scores(det: MintDetector, cache: SignalCache, layer: str | None, ids: np.ndarray) -> np.ndarray:
    """P(member), float64 (N,), of the MINT model fused with the output signals, for pool ``ids``."""
    from mintaudit.pipeline import _mint_scores

    return _mint_scores(det, cache, layer, True, ids)


_SUMMARY_KEYS = ("method", "signal", "layer", "label", "detector", "protocol", "threshold", "n_members",
                 "n_nonmembers", "metrics", "ci95", "fit")


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    return {k: result[k] for k in _SUMMARY_KEYS if k in result}


def _audit(root: Path, key: str, net: nn.Module, ds: ImageDataset, splits: Splits, config: FactorsConfig,
           show_progress: bool | None) -> tuple[dict[str, Any], dict[str, np.ndarray], bool]:
    """(audit, scores, audited now?): accuracies, every tap's passive MINT, the best one, LOSS; cached by key."""
    split = _audit_split(splits, config)
    sweep = SweepConfig(detector=config.detector, known_fraction=config.known_fraction, n_bootstrap=config.n_bootstrap,
                        batch_size=config.batch_size, dtype=config.dtype, seed=config.seed)
    akey = _digest({"model": key, "taps": list(config.taps), "sweep": sweep.to_dict(), "known": _ids(split.known_members),
                    "heldout": _ids(split.heldout_members), "external": _ids(split.external), "test": _ids(split.test),
                    "all_test": _ids(splits.test), "version": 1})
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
    cache = extract_signals(net, ds, np.unique(split.all_indices()), list(config.taps), root / "cache",
                            batch_size=config.batch_size, dtype=config.dtype, show_progress=show_progress)
    try:
        rows, best = [], None
        jobs: list[str | None] = [*config.taps, None]
        for layer in progress(jobs, desc="passive MINT", enabled=show_progress, unit="tap"):
            label = f"{layer}+outputs" if layer is not None else "outputs"
            result, det = audit_tap(cache, split, layer, sweep, fuse_outputs=True, label=label,
                                    show_progress=show_progress)
            rows.append(_summary(result.to_dict()))
            val = result.fit["val_auc"] if result.fit else None
            val = float(val) if isinstance(val, (int, float)) and math.isfinite(val) else -1.0
            if best is None or val > best[0]:
                best = (val, len(rows) - 1, layer, det)
        _, best_i, best_layer, best_det = best  # type: ignore[misc]  # jobs is never empty
        loss = loss_baseline(cache, split, sweep).to_dict()
        out = cache.outputs()
        scores = {
            "member_ids": split.heldout_members, "nonmember_ids": split.test,
            "mint_members": _scores(best_det, cache, best_layer, split.heldout_members),
            "mint_nonmembers": _scores(best_det, cache, best_layer, split.test),
            "loss_members": -out["loss"][cache.rows(split.heldout_members)].astype(np.float64),
            "loss_nonmembers": -out["loss"][cache.rows(split.test)].astype(np.float64),
        }
    finally:
        shutil.rmtree(cache.path, ignore_errors=True)  # the audit is cached; the activations are not needed again
    audit = {"key": akey, "task_accuracy": task, "train_accuracy": train_acc, "gap": train_acc - task,
             "taps": rows, "best": best_i, "loss": _summary(loss), "seconds": round(time.perf_counter() - t0, 2),
             "n_known_members": int(len(split.known_members)), "n_external": int(len(split.external))}
    with atomic_path(scores_path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **scores)
    atomic_write_json(audit_path, audit)
    return audit, scores, True


def _amint(root: Path, ds: ImageDataset, splits: Splits, spec: ModelSpec, point: BaseConfig, config: FactorsConfig,
           show_progress: bool | None) -> tuple[dict[str, Any], str, bool]:
    """(aMINT row, its key, trained now?): the same backbone and budget trained with a MINT head; cached."""
    from mintaudit.active import (ActiveConfig, ActiveModel, HeadConfig, export_active, membership_scores, task_accuracy,
                                  train_active)
    from mintaudit.active.workflow import active_split, amint_result
    from mintaudit.models import active_taps

    split = active_split(splits, val_members=min(500, len(splits.members)), val_external=1000, seed=config.seed)
    cfg = ActiveConfig(epochs=point.epochs, batch_size=point.batch_size, lr=point.lr, weight_decay=point.weight_decay,
                       patience=0, seed=config.seed)
    key = _digest({"spec": spec.to_dict(), "train": asdict(cfg), "setup": config.amint_setup, "head": asdict(HeadConfig()),
                   "members": _ids(split.members), "external": _ids(split.external), "val": _ids(split.val_external),
                   "test": _ids(splits.test), "data": ds.fingerprint(), "n_bootstrap": config.n_bootstrap})
    folder = root / "amint" / key
    if (folder / "row.json").is_file():
        try:
            return json.loads((folder / "row.json").read_text()), key, False
        except (OSError, ValueError):
            pass
    torch.manual_seed(config.seed)
    backbone = build_model(spec)
    model = ActiveModel(backbone, active_taps(spec.name, config.amint_setup, backbone),
                        example=ds.batch(split.members[:2]))
    result = train_active(model, ds, split.members, split.external, val_members=split.val_members,
                          val_external=split.val_external, config=cfg, show_progress=show_progress)
    aud = task_accuracy(model, ds, splits.test)
    pos, neg = membership_scores(model, ds, splits.members), membership_scores(model, ds, splits.test)
    row = amint_result(pos, neg, threshold=result.threshold, aud=aud, label=f"aMINT {config.amint_setup}",
                       layers=model.taps, n_bootstrap=config.n_bootstrap, seed=config.seed,
                       extra={"best_epoch": result.best_epoch, "seconds": round(result.seconds, 1)}).to_dict()
    row = _summary(row) | {k: row[k] for k in ("aud", "calibrated_accuracy", "best_epoch", "seconds")}
    export_active(model, spec, folder / "model", threshold=result.threshold, class_names=ds.class_names,
                  info={"key": key, "run": asdict(cfg)})
    atomic_write_json(folder / "row.json", row)
    return row, key, True


# ---------------------------------------------------------------------------------------------
# effects: the change from the lowest to the highest setting, with a bootstrap interval


def _delta_ci(lo: dict[str, np.ndarray], hi: dict[str, np.ndarray], prefix: str, n_bootstrap: int,
              seed: int) -> tuple[float, list[float] | None, bool]:
    """(AUC(hi) - AUC(lo), its 95% percentile bootstrap interval, paired?) from per-sample scores.

    Members and non-members are resampled separately; a side whose sample ids are the same at
    both points is resampled once for both (paired), otherwise each point's is resampled on its own.
    """
    def auc(m: np.ndarray, n: np.ndarray) -> float:
        return auc_score(np.r_[np.ones(len(m)), np.zeros(len(n))], np.r_[m, n])

    lm, ln, hm, hn = (d[f"{prefix}_{side}"] for d in (lo, hi) for side in ("members", "nonmembers"))
    point = auc(hm, hn) - auc(lm, ln)
    same_m = np.array_equal(lo["member_ids"], hi["member_ids"])
    same_n = np.array_equal(lo["nonmember_ids"], hi["nonmember_ids"])
    if n_bootstrap == 0:
        return point, None, same_m and same_n
    rng = np.random.default_rng([seed, 4])
    deltas = np.empty(n_bootstrap)
    for b in range(n_bootstrap):
        im = rng.integers(0, len(lm), len(lm))
        jm = im if same_m else rng.integers(0, len(hm), len(hm))
        i_n = rng.integers(0, len(ln), len(ln))
        jn = i_n if same_n else rng.integers(0, len(hn), len(hn))
        deltas[b] = auc(hm[jm], hn[jn]) - auc(lm[im], ln[i_n])
    lo_q, hi_q = np.percentile(deltas, [2.5, 97.5])
    return point, [float(lo_q), float(hi_q)], same_m and same_n


def _effect(factor: str, rows: list[dict[str, Any]], scores: dict[str, dict[str, np.ndarray]],
            config: FactorsConfig) -> dict[str, Any]:
    lo, hi = rows[0], rows[-1]
    out: dict[str, Any] = {"factor": factor, "from": lo["value"], "to": hi["value"]}
    for name, prefix in (("passive", "mint"), ("loss", "loss")):
        a, b = lo[f"{name}_auc"], hi[f"{name}_auc"]
        _, ci, paired = _delta_ci(scores[lo["key"]], scores[hi["key"]], prefix, config.n_bootstrap, config.seed)
        out[f"{name}_delta_auc"] = b - a
        out[f"{name}_delta_auc_ci95"] = ci
        out[f"{name}_from_auc"], out[f"{name}_to_auc"] = a, b
        out["paired"] = paired
        out[f"{name}_direction"] = _direction(ci)
    if lo.get("amint_auc") is not None and hi.get("amint_auc") is not None:
        out["amint_delta_auc"] = hi["amint_auc"] - lo["amint_auc"]
        out["amint_overlap"] = _overlap(lo.get("amint_auc_ci95"), hi.get("amint_auc_ci95"))
    out["task_delta_accuracy"] = hi["task_accuracy"] - lo["task_accuracy"]
    out["gap_delta"] = hi["gap"] - lo["gap"]
    out["sentence"] = _sentence(out)
    return out


def _direction(ci: list[float] | None) -> str:
    if ci is None:
        return "unknown"
    return "increase" if ci[0] > 0 else "decrease" if ci[1] < 0 else "unclear"


def _overlap(a: Any, b: Any) -> bool | None:
    if not (isinstance(a, list) and isinstance(b, list) and all(np.isfinite(a + b))):
        return None
    return not (a[1] < b[0] or b[1] < a[0])


def _value_text(factor: str, v: Any) -> str:
    if factor == "augment":
        return "on" if v else "off"
    return f"{v:g}" if isinstance(v, float) else str(v)


def _sentence(e: dict[str, Any]) -> str:
    f = e["factor"]
    name = _TEXT[f][0]
    a, b = _value_text(f, e["from"]), _value_text(f, e["to"])
    d, ci = e["passive_delta_auc"], e["passive_delta_auc_ci95"]
    verb = {"increase": "raised", "decrease": "lowered"}.get(e["passive_direction"])
    change = f"{verb} passive-MINT AUC by {abs(d):.3f}" if verb else f"changed passive-MINT AUC by {d:+.3f}"
    text = f"Taking {name} from {a} to {b} {change} ({e['passive_from_auc']:.3f} to {e['passive_to_auc']:.3f}"
    if ci is not None:
        text += f"; 95% bootstrap interval of the difference {ci[0]:+.3f} to {ci[1]:+.3f})"
        text += {"increase": ": a clear increase.", "decrease": ": a clear decrease."}.get(
            e["passive_direction"], ": the interval includes 0, so no clear effect at this sample size.")
    else:
        text += "; no interval: bootstrap off)."
    lci = e["loss_delta_auc_ci95"]
    text += f" The LOSS attack moved by {e['loss_delta_auc']:+.3f}"
    text += f" ({lci[0]:+.3f} to {lci[1]:+.3f})." if lci is not None else "."
    text += f" Task accuracy moved by {e['task_delta_accuracy']:+.3f} and the train-test gap by {e['gap_delta']:+.3f}."
    if "amint_delta_auc" in e:
        ov = e.get("amint_overlap")
        how = "" if ov is None else (" (the two AUC intervals overlap)" if ov else " (the two AUC intervals do not overlap)")
        text += f" aMINT AUC moved by {e['amint_delta_auc']:+.3f}{how}."
    return text


# ---------------------------------------------------------------------------------------------
# the run


def _row(factor: str, value: Any, point: BaseConfig, config: FactorsConfig, key: str, members: int,
         audit: dict[str, Any], amint: dict[str, Any] | None, trained: bool, audited: bool,
         info: dict[str, Any]) -> dict[str, Any]:
    best = audit["taps"][audit["best"]]
    loss = audit["loss"]

    def m(r: dict[str, Any], k: str, fpr: str | None = None) -> Any:
        v = r["metrics"][k]
        return v[fpr] if fpr else v

    def ci(r: dict[str, Any], k: str, fpr: str | None = None) -> Any:
        v = r["ci95"][k]
        return v[fpr] if fpr else v

    row = {
        "factor": factor, "value": value, "is_base": value == getattr(config.base, factor), "key": key,
        "members": members, "config": asdict(point),
        "task_accuracy": audit["task_accuracy"], "train_accuracy": audit["train_accuracy"], "gap": audit["gap"],
        "passive_tap": best["label"], "passive_val_auc": best["fit"]["val_auc"],
        "passive_auc": m(best, "auc"), "passive_auc_ci95": ci(best, "auc"),
        "passive_tpr_at_1pct_fpr": m(best, "tpr_at_fpr", "0.01"), "passive_tpr_ci95": ci(best, "tpr_at_fpr", "0.01"),
        "passive_accuracy": m(best, "accuracy"), "passive_accuracy_ci95": ci(best, "accuracy"),
        "loss_auc": m(loss, "auc"), "loss_auc_ci95": ci(loss, "auc"),
        "loss_tpr_at_1pct_fpr": m(loss, "tpr_at_fpr", "0.01"), "loss_tpr_ci95": ci(loss, "tpr_at_fpr", "0.01"),
        "amint_auc": None, "amint_auc_ci95": None, "amint_tpr_at_1pct_fpr": None, "amint_tpr_ci95": None,
        "n_heldout_members": best["n_members"], "n_nonmembers": best["n_nonmembers"],
        "n_known_members": audit["n_known_members"], "n_external": audit["n_external"],
        "taps": [{"label": r["label"], "val_auc": r["fit"]["val_auc"], "auc": m(r, "auc"), "auc_ci95": ci(r, "auc"),
                  "tpr_at_1pct_fpr": m(r, "tpr_at_fpr", "0.01")} for r in audit["taps"]],
        "train_seconds": info.get("seconds"), "audit_seconds": audit.get("seconds"),
        "trained_now": trained, "audited_now": audited,
    }
    if amint is not None:
        row.update({"amint_auc": m(amint, "auc"), "amint_auc_ci95": ci(amint, "auc"),
                    "amint_tpr_at_1pct_fpr": m(amint, "tpr_at_fpr", "0.01"),
                    "amint_tpr_ci95": ci(amint, "tpr_at_fpr", "0.01"), "amint_task_accuracy": amint.get("aud"),
                    "amint_protocol": amint.get("protocol")})
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
    from mintaudit.report.factors_html import factor_plots, render_factors_html

    config = config or factors_config("cpu")
    out = Path(out_dir)
    root = out / "factors"
    t0 = time.perf_counter()
    ds = load_dataset(config.dataset, root=data_root)
    pool = member_pool(ds, members_per_class=config.max_members_per_class(), external=config.external,
                       test=config.test, seed=config.seed)
    pool.save(root / "splits.json")

    done: dict[str, tuple[dict[str, Any], dict[str, np.ndarray], bool, bool, dict[str, Any]]] = {}
    rows, scores, trained_keys, audited_keys, amint_keys = [], {}, [], [], []
    member_epochs = 0
    points = config.points()
    for factor, value, point in progress(points, desc="factors", enabled=show_progress, unit="point"):
        spec = _spec(config, ds, point)
        train = point.train_config(config.seed)
        splits = _point_splits(pool, point.members_per_class, ds.num_classes)
        key = model_key(spec, train, splits.members, ds.fingerprint())
        if key not in done:
            net, key, info, trained = _trained(root, spec, train, ds, splits.members, show_progress)
            audit, sc, audited = _audit(root, key, net, ds, splits, config, show_progress)
            member_epochs += len(splits.members) * point.epochs
            done[key] = (audit, sc, trained, audited, info)
            if trained:
                trained_keys.append(key)
            if audited:
                audited_keys.append(key)
        audit, sc, trained, audited, info = done[key]
        amint = None
        if config.amint and factor in AMINT_FACTORS:
            amint, amint_key, fresh = _amint(root, ds, splits, spec, point, config, show_progress)
            if fresh:
                amint_keys.append(amint_key)
        scores[key] = sc
        rows.append(_row(factor, value, point, config, key, len(splits.members), audit, amint, trained, audited, info))

    effects = []
    for factor in config.factors:
        frows = [r for r in rows if r["factor"] == factor]
        effects.append(_effect(factor, frows, scores, config))
    doc = {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mintaudit_version": __version__,
        "command": " ".join(command if command is not None else sys.argv),
        "profile": config.profile,
        "dataset": {"name": ds.name, "fingerprint": ds.fingerprint(), "member_pool": len(pool.members),
                    "members_per_class_max": config.max_members_per_class(), "external": len(pool.external),
                    "test": len(pool.test), "seed": config.seed, "num_classes": ds.num_classes},
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
                     "protocol), balanced by subsampling" if config.amint else None,
            "effect_interval": "95% percentile bootstrap of AUC(highest setting) - AUC(lowest setting) over the "
                               "per-sample scores; samples both points share are resampled together (paired)",
        },
        "rows": rows,
        "effects": effects,
        "runs": {"trained": trained_keys, "audited": audited_keys, "amint_trained": amint_keys,
                 "models": len(done), "member_epochs": member_epochs, "seconds": round(time.perf_counter() - t0, 1)},
    }
    atomic_write_json(out / "factors.json", doc)
    atomic_write_text(out / "factors.html", render_factors_html(doc))
    (out / "plots").mkdir(exist_ok=True)
    for factor, svg in factor_plots(doc).items():
        atomic_write_text(out / "plots" / f"{factor}.svg", svg)
    return doc


# ---------------------------------------------------------------------------------------------
# terminal


def format_factors_table(doc: dict[str, Any]) -> str:
    """The rows as a plain-text table, then one line per effect."""
    def f(v: Any, d: int = 3) -> str:
        return f"{v:.{d}f}" if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else "-"

    def ci(v: Any) -> str:
        return f"[{f(v[0])}, {f(v[1])}]" if isinstance(v, list) and len(v) == 2 else ""

    head = (f"{'factor':<17} {'value':>7} {'task':>6} {'gap':>6}  {'passive AUC':<22} {'TPR@1%':<22} "
            f"{'LOSS AUC':<22} {'best tap':<20}")
    lines = [head, "-" * len(head)]
    for r in doc["rows"]:
        value = _value_text(r["factor"], r["value"]) + ("*" if r["is_base"] else "")
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

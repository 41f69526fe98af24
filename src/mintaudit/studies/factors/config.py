"""The factors study's configuration: the factors, the base point, the grid and the named profiles.

Part of :mod:`mintaudit.studies.factors` (the study's overview is there).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from mintaudit.detectors import DetectorConfig
from mintaudit.errors import ConfigError
from mintaudit.training import TrainConfig

__all__ = [
    "FACTORS",
    "AMINT_FACTORS",
    "FACTOR_TEXT",
    "PROFILES",
    "SCHEMA",
    "BaseConfig",
    "FactorsConfig",
    "factors_config",
    "parse_grid",
    "value_text",
]

SCHEMA = "mintaudit/factors@1"
FACTORS: tuple[str, ...] = ("epochs", "members_per_class", "dropout", "weight_decay", "augment", "label_smoothing")
"""The factors a grid may vary, in report order."""
AMINT_FACTORS: tuple[str, ...] = ("epochs", "members_per_class", "dropout", "weight_decay")
"""Factors the aMINT trainer has an equivalent of (it has no augmentation or label smoothing)."""
PROFILES: tuple[str, ...] = ("tiny", "cpu", "gpu")
Profile = Literal["tiny", "cpu", "gpu", "custom"]

FACTOR_TEXT: dict[str, tuple[str, str]] = {  # factor -> (display name, what it means)
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
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            seed=seed,
            augment=self.augment,
            label_smoothing=self.label_smoothing,
        )


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
        want = {
            "epochs": "an integer >= 1",
            "members_per_class": "an integer >= 1",
            "augment": "on or off",
            "weight_decay": "a number >= 0",
        }.get(factor, "a number in [0, 1)")
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
        out[factor] = tuple(
            _coerce(factor, v.strip() if isinstance(v, str) else v)
            for v in values
            if not (isinstance(v, str) and not v.strip())
        )
    return out


def _profile(name: str) -> tuple[dict[str, Any], dict[str, tuple[Any, ...]]]:
    """(FactorsConfig keywords, grid) of a named profile."""
    if name == "tiny":  # digits, seconds: for tests
        return (
            {
                "dataset": "digits",
                "external": 300,
                "test": 300,
                "taps": ("fc_relu",),
                "base": BaseConfig(epochs=3, members_per_class=20, batch_size=32),
                "detector": DetectorConfig(epochs=3, patience=2),
                "n_bootstrap": 50,
            },
            {
                "epochs": (1, 3),
                "members_per_class": (10, 20),
                "dropout": (0.0, 0.25),
                "weight_decay": (0.0, 1e-3),
                "augment": (False, True),
                "label_smoothing": (0.0, 0.1),
            },
        )
    if name == "cpu":  # Fashion-MNIST: 12 min measured on 2 cores (703 s); aMINT off (it would add ~20 min)
        return (
            {
                "dataset": "fashion-mnist",
                "external": 2000,
                "test": 2000,
                "taps": ("block3.relu2", "fc_relu"),
                "base": BaseConfig(epochs=15, members_per_class=200, batch_size=64),
            },
            {
                "epochs": (5, 15, 40),
                "members_per_class": (50, 100, 200),
                "dropout": (0.0, 0.25, 0.5),
                "weight_decay": (0.0, 1e-4, 1e-3),
                "augment": (False, True),
                "label_smoothing": (0.0, 0.1),
            },
        )
    if name == "gpu":  # CIFAR-10 (the study's data), the seven published taps, aMINT on
        return (
            {
                "dataset": "cifar10",
                "external": 5000,
                "test": 5000,
                "amint": True,
                "taps": (
                    "block1.relu1",
                    "block1.relu2",
                    "block2.relu1",
                    "block2.relu2",
                    "block3.relu1",
                    "block3.relu2",
                    "fc_relu",
                ),
                "base": BaseConfig(epochs=30, members_per_class=500, batch_size=64),
            },
            {
                "epochs": (10, 30, 100),
                "members_per_class": (100, 250, 500),
                "dropout": (0.0, 0.25, 0.5),
                "weight_decay": (0.0, 1e-4, 1e-3),
                "augment": (False, True),
                "label_smoothing": (0.0, 0.1, 0.2),
            },
        )
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
            raise ConfigError(
                f"factor {missing[0]!r} has no values in profile {profile!r}; give them with --grid {missing[0]}=V1,V2"
            )
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


def value_text(factor: str, v: Any) -> str:
    if factor == "augment":
        return "on" if v else "off"
    return f"{v:g}" if isinstance(v, float) else str(v)

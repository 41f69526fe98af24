"""The attack registry: each baseline attack with its report metadata, in one entry.

An attack is a score function decorated with :func:`register_attack`; ``mintaudit attack``,
:func:`mintaudit.attacks.run.attack_scores` and the report schema read this registry, so adding
an attack is one file (see ``docs/howto/extending.md``; the built-ins live in
``mintaudit/attacks/zoo/``, one file each, ``confidence.py`` being the smallest).

A score function takes an :class:`AttackContext` (the target model's logits on the scored rows,
their labels, the reference models on demand, the options) and returns float scores over
``ctx.scored`` (higher = more likely a member), optionally with a dict of fit details for the
report row's ``fit``. A ``"row"`` entry of that dict, if any, is not part of ``fit``: it sets the
row's ``signal``, ``detector`` and ``threshold_source`` (``calibrated-mint``, a MINT model).

Example:
    >>> @register_attack("max-logit", method="confidence")  # doctest: +SKIP
    ... def max_logit(ctx):
    ...     return ctx.logits.max(1)
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mintaudit._registry import Names, Registry
from mintaudit.errors import ConfigError
from mintaudit.evaluation import SampleInfo

if TYPE_CHECKING:  # the context holds these; importing them here would load the whole pipeline
    from torch import nn

    from mintaudit.attacks.reference import ReferenceSet
    from mintaudit.data._base import ImageDataset
    from mintaudit.passive import PassiveSplit
    from mintaudit.results import Result

__all__ = [
    "ATTACKS",
    "AttackContext",
    "AttackScores",
    "AttackSpec",
    "attack_options",
    "attack_spec",
    "register_attack",
    "report_methods",
    "unregister_attack",
]


@dataclass(frozen=True)
class AttackScores:
    """One attack's scores: the scored sets and the calibration sets (float64 arrays)."""

    members: np.ndarray
    nonmembers: np.ndarray
    calibration_members: np.ndarray
    calibration_nonmembers: np.ndarray
    info: dict[str, Any]
    member_info: SampleInfo | None = None  # labels and target-model correctness, for slices
    nonmember_info: SampleInfo | None = None
    extra: np.ndarray | None = None  # scores of attack_scores(extra=...), in its order


@dataclass
class AttackContext:
    """What a score function may read. Rows are ``scored``: held-out members, test non-members,
    known members, then the calibration half of the external samples (in that order).

    ``logits`` (float64 (N, K), the target model on ``scored``) and ``labels`` (int (N,)) are
    computed on first use; ``reference(kind)`` trains (or reads from the cache) the ``offline``
    or ``online`` reference models and returns them with their logits (R, A, N, K).
    """

    model: nn.Module
    dataset: ImageDataset
    split: PassiveSplit
    scored: np.ndarray
    n_members: int
    n_nonmembers: int
    n_known: int
    reference_population: np.ndarray
    calibration_external: np.ndarray
    views: list[ImageDataset]
    config: Any  # AttackConfig
    cache_root: Path
    signals_root: Path
    show_progress: bool | None
    target_logits: Callable[[ImageDataset], np.ndarray]
    reference: Callable[[str], tuple[ReferenceSet, np.ndarray]]
    options: Any = None  # the running attack's options dataclass (``register_attack(options=...)``), or None

    @cached_property
    def logits(self) -> np.ndarray:
        return self.target_logits(self.dataset)

    @cached_property
    def labels(self) -> np.ndarray:
        return self.dataset.labels[self.scored]

    @cached_property
    def sample_info(self) -> SampleInfo:
        return SampleInfo.from_logits(self.logits, self.labels)

    def to_scores(self, s: np.ndarray, info: dict[str, Any]) -> AttackScores:
        """Scores over ``scored`` cut into the four sets."""
        a, b, c = self.n_members, self.n_members + self.n_nonmembers, self.n_members + self.n_nonmembers + self.n_known
        return AttackScores(
            s[:a],
            s[a:b],
            s[b:c],
            s[c:],
            info,
            self.sample_info.take(np.arange(a)),
            self.sample_info.take(np.arange(a, b)),
        )


#: A score function: scores (N,) over ``ctx.scored``, or (scores, fit details), or a whole AttackScores.
ScoreFn = Callable[[AttackContext], Any]


@dataclass(frozen=True)
class AttackSpec:
    """A registered attack.

    Attributes:
        name: the attack's own name (``--methods``, the result's ``attack``).
        score: the score function (see the module docstring).
        method: the report's ``method`` (several attacks may share one: ``lira``, ``lira-online``).
        needs_references: trains reference models (the row's ``fit.n_reference`` is then their count).
        label: the result's ``label``.
        result: for an attack that writes its own report row (LOSS, the row every sweep shares):
            ``result(model, dataset, split, signals_root, config, show_progress) -> Result``
            (:class:`mintaudit.results.Result`).
    """

    name: str
    score: ScoreFn
    method: str
    needs_references: bool = False
    label: str = ""
    result: Callable[..., Result] | None = None
    options: type | None = None


_REGISTRY: Registry[AttackSpec] = Registry("attack")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.+-]*$")

#: Names of the registered attacks, in registration order (a live view of the registry).
ATTACKS: Names = Names(_REGISTRY)


def register_attack(
    name: str,
    *,
    method: str | None = None,
    needs_references: bool = False,
    label: str | None = None,
    result: Callable[..., Result] | None = None,
    options: type | None = None,
) -> Callable[[ScoreFn], ScoreFn]:
    """Decorator: register a score function as the attack ``name``.

    Args:
        name: lower case, no comma or space (``--methods`` is a comma-separated list).
        method: the report's ``method`` (default: ``name``); the report accepts it from now on.
        needs_references: the attack trains reference models (``ctx.reference(...)``).
        label: the result's ``label`` (default: ``name``).
        result: see :class:`AttackSpec`.
        options: the attack's options, a frozen dataclass whose fields are
            :func:`mintaudit.attacks.options.option` (each with a default); ``--attack-opt NAME.KEY=VALUE``
            and the YAML config set them, and the score function reads them as ``ctx.options``.

    Raises:
        ConfigError: ``name`` is taken or malformed.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"attack name must be lower case letters, digits and - _ . + (no comma or space); given {name!r}"
        )
    if method is not None and (not isinstance(method, str) or not _NAME.match(method)):
        raise ConfigError(f"attack {name!r}: method must be a lower-case report method name; given {method!r}")

    if options is not None:
        if not dataclasses.is_dataclass(options) or not isinstance(options, type):
            raise ConfigError(f"register_attack({name!r}): options must be a dataclass; given {options!r}")
        try:
            options()
        except TypeError as e:
            raise ConfigError(f"register_attack({name!r}): every option needs a default ({e})") from None

    def decorate(fn: ScoreFn) -> ScoreFn:
        if not callable(fn):
            raise ConfigError(f"register_attack({name!r}) decorates a score function; given {type(fn).__name__}")
        _REGISTRY.add(
            name, AttackSpec(name, fn, method or name, bool(needs_references), label or name, result, options)
        )
        return fn

    return decorate


def unregister_attack(name: str) -> AttackSpec:
    """Remove the attack ``name`` (for plug-ins and tests); returns its entry."""
    return _REGISTRY.remove(name)


def attack_spec(name: str) -> AttackSpec:
    """The entry of attack ``name``; an unknown one raises a ConfigError listing the registered ones."""
    return _REGISTRY.get(name)


def report_methods() -> tuple[str, ...]:
    """The report ``method`` names of the registered attacks (each once, in registration order)."""
    return tuple(dict.fromkeys(spec.method for _, spec in _REGISTRY.items()))


def attack_options() -> dict[str, type | None]:
    """Attack name -> its options dataclass (None: no options), in registration order."""
    return {name: spec.options for name, spec in _REGISTRY.items()}

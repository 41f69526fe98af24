"""Typed result values: one report row (schema ``mintaudit/report@2``, as in ``@1``) as a frozen dataclass.

Every protocol (passive MINT, gMINT, the attacks, aMINT) returns a :class:`Result`; the work
directory layer turns it into the report's row with :meth:`Result.to_dict` (or hands it to
:func:`mintaudit.report.add_result`, which accepts either). :meth:`Result.from_dict` reads a row
back from a ``report.json``; ``Result.from_dict(row).to_dict() == row``, keys in the same order,
for every row mintaudit writes.

Types and ranges are checked once, when a Result is built; a bad value raises an
:class:`~mintaudit.errors.EvaluationError` naming the key, what was given and the fix. Which
``method`` names a report accepts is the registries' business (the attack registry is live), so
:func:`mintaudit.report.add_result` checks that one.

Example:
    >>> from mintaudit.evaluation import evaluate_scores
    >>> ev = evaluate_scores([0.9, 0.8, 0.7], [0.1, 0.6, 0.2], n_bootstrap=10)
    >>> r = Result.from_evaluation(ev, method="loss", signal="outputs", protocol="heldout-members", label="LOSS")
    >>> r.n_members, list(r.to_dict())[:5]
    (3, ['method', 'signal', 'label', 'protocol', 'threshold'])
    >>> Result.from_dict(r.to_dict()) == r
    True
"""

from __future__ import annotations

import copy
import dataclasses
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

from mintaudit.errors import EvaluationError

if TYPE_CHECKING:
    from mintaudit.evaluation import Evaluation

__all__ = ["PROTOCOLS", "Protocol", "Calibration", "GradientSetup", "Result"]

Protocol = Literal["heldout-members", "training-members"]
#: The evaluation protocols a result may have (docs/explanation/protocols.md).
PROTOCOLS: tuple[str, ...] = get_args(Protocol)

_REQUIRED = ("method", "signal", "protocol", "n_members", "n_nonmembers", "metrics", "ci95")
_REQUIRED_METRICS = ("accuracy", "precision", "recall", "auc", "tpr_at_fpr")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.+-]*$")
_FIX = "use evaluate_scores(...).to_dict()"


@dataclass(frozen=True)
class GradientSetup:
    """gMINT's place in its grid: the row's ``setup``, ``budget`` and ``reduction``.

    Attributes:
        setup: the setup key (``entry``, ``middle``, ``output``, ``combined``, or a custom name).
        budget: the share of the MINT-training data, in (0, 1].
        reduction: the per-filter reductions, joined by ``+`` (``mean``, ``mean+l2``).
    """

    setup: str
    budget: float
    reduction: str

    def __post_init__(self) -> None:
        _text(self.setup, "setup")
        _text(self.reduction, "reduction")
        if not _number(self.budget) or not 0.0 < self.budget <= 1.0:
            raise EvaluationError(
                f"result['budget'] must be a number in (0, 1] (a share of the MINT-training data); "
                f"given {self.budget!r}"
            )


@dataclass(frozen=True)
class Calibration:
    """aMINT's second decision threshold (tuned on held-out external samples) and its accuracy.

    Attributes:
        threshold: the row's ``calibrated_threshold``.
        accuracy: ``calibrated_accuracy``, in [0, 1].
        accuracy_ci95: ``calibrated_accuracy_ci95``, ``[lo, hi]`` (NaN, or None once read back
            from JSON, without bootstrap).
    """

    threshold: float
    accuracy: float
    accuracy_ci95: list[float | None]

    def __post_init__(self) -> None:
        if not _number(self.threshold) or not math.isfinite(self.threshold):
            raise EvaluationError(f"result['calibrated_threshold'] must be a finite number; given {self.threshold!r}")
        if not _number(self.accuracy) or not 0.0 <= self.accuracy <= 1.0:
            raise EvaluationError(f"result['calibrated_accuracy'] must be a number in [0, 1]; given {self.accuracy!r}")
        ci = self.accuracy_ci95
        if isinstance(ci, (str, bytes)) or not isinstance(ci, Sequence) or len(ci) != 2:
            raise EvaluationError(
                f"result['calibrated_accuracy_ci95'] must be an interval [lo, hi]; given {ci!r}; {_FIX}"
            )


#: Typed keys of a row, in the order of the report (the extras follow them, in their own order).
_HEAD = ("method", "signal", "layer", "label", "depth", "attack")
_GRADIENT = ("setup", "budget", "reduction")
_MIDDLE = (
    "detector",
    "protocol",
    "threshold",
    "threshold_source",
    "n_members",
    "n_nonmembers",
    "metrics",
    "ci95",
    "roc",
    "histogram",
    "n_bootstrap",
    "epsilon_lower_bound",
    "slices",
)
_CALIBRATION = ("calibrated_threshold", "calibrated_accuracy", "calibrated_accuracy_ci95")


@dataclass(frozen=True)
class Result:
    """One method's evaluation on one set of members and non-members: a row of ``report.json``.

    Attributes:
        method: the report method (``passive-mint``, ``gmint``, ``amint``, ``loss``, ``lira``...).
        signal: what the method reads (``activations``, ``activations+outputs``, ``outputs``,
            ``gradients``).
        protocol: ``heldout-members`` or ``training-members``.
        n_members, n_nonmembers: the evaluated sizes (after balancing), integers >= 0.
        metrics: ``{"accuracy", "precision", "recall", "auc", "tpr_at_fpr": {...}}``.
        ci95: the same keys, 95% bootstrap intervals ``[lo, hi]``.
        layer: the tap (``outputs`` for output signals; layers joined by ``+`` for gMINT, aMINT).
        label: the row's short name (``L3``, ``LOSS``, ``Entry 10%``, ``aMINT middle``).
        depth: 1-based tap depth (passive sweep rows only), an integer >= 1.
        attack: the attack's own name (attack rows; several attacks share a ``method``).
        gradient: gMINT's setup, budget and reduction.
        detector: the MINT model kind, ``threshold`` (attacks) or ``amint-head``.
        threshold: the decision threshold of accuracy, precision and recall (finite).
        threshold_source: where a tuned threshold was tuned (attack rows).
        roc, histogram, n_bootstrap, epsilon_lower_bound, slices: the rest of
            :class:`~mintaudit.evaluation.Evaluation` (``slices`` None: no sample information).
        calibration: aMINT's calibrated threshold and accuracy.
        fit: how the method was fitted (seconds, best epoch, reference models...), free-form.
        extra: further keys of the row, after all the above in this order (``aud``,
            ``audited_model``, ``backbone``, an aMINT row's ``setup``...); none may repeat a key
            the typed fields write.

    A None field is absent from :meth:`to_dict`, except ``slices`` in a row that carries the
    whole evaluation (``n_bootstrap`` given), where it is written as ``null`` as
    :meth:`Evaluation.to_dict <mintaudit.evaluation.Evaluation.to_dict>` does.
    The mappings are the caller's to read, not to change: :meth:`to_dict` returns copies.
    """

    method: str
    signal: str
    protocol: str
    n_members: int
    n_nonmembers: int
    metrics: Mapping[str, Any]
    ci95: Mapping[str, Any]
    layer: str | None = None
    label: str | None = None
    depth: int | None = None
    attack: str | None = None
    gradient: GradientSetup | None = None
    detector: str | None = None
    threshold: float | None = None
    threshold_source: str | None = None
    roc: Mapping[str, list[float]] | None = None
    histogram: Mapping[str, list[float]] | None = None
    n_bootstrap: int | None = None
    epsilon_lower_bound: Mapping[str, Any] | None = None
    slices: Mapping[str, Any] | None = None
    calibration: Calibration | None = None
    fit: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.method, str) or not _NAME.match(self.method):
            raise EvaluationError(
                f"result['method'] must be a lower-case report method name such as 'passive-mint' "
                f"or 'loss'; given {self.method!r}"
            )
        _text(self.signal, "signal")
        if self.protocol not in PROTOCOLS:
            raise EvaluationError(f"result['protocol'] must be one of {list(PROTOCOLS)}; given {self.protocol!r}")
        for key in ("n_members", "n_nonmembers"):
            if not _count(getattr(self, key)):
                raise EvaluationError(
                    f"result[{key!r}] must be an integer >= 0; given {getattr(self, key)!r}; pass the size of that side"
                )
        metrics = self.metrics
        if not isinstance(metrics, Mapping) or any(k not in metrics for k in _REQUIRED_METRICS):
            given = sorted(metrics) if isinstance(metrics, Mapping) else type(metrics).__name__
            raise EvaluationError(
                f"result['metrics'] must be a dict with keys {list(_REQUIRED_METRICS)}; given {given}; {_FIX}"
            )
        if not isinstance(self.ci95, Mapping):
            raise EvaluationError(
                f"result['ci95'] must be a dict of [lo, hi] intervals; given {type(self.ci95).__name__}; {_FIX}"
            )
        for key in ("layer", "label", "attack", "detector", "threshold_source"):
            if getattr(self, key) is not None:
                _text(getattr(self, key), key)
        depth = self.depth
        if depth is not None and (not _count(depth) or depth < 1):
            raise EvaluationError(f"result['depth'] must be an integer >= 1 (1 = first tap) or absent; given {depth!r}")
        if self.threshold is not None and (not _number(self.threshold) or not math.isfinite(self.threshold)):
            raise EvaluationError(
                f"result['threshold'] must be a finite number; given {self.threshold!r}; "
                "pass the threshold the scores were evaluated at, e.g. 0.5"
            )
        if self.n_bootstrap is not None and not _count(self.n_bootstrap):
            raise EvaluationError(f"result['n_bootstrap'] must be an integer >= 0; given {self.n_bootstrap!r}; {_FIX}")
        for key in ("roc", "histogram", "fit"):
            value = getattr(self, key)
            if value is not None and not isinstance(value, Mapping):
                raise EvaluationError(f"result[{key!r}] must be a dict or absent; given {type(value).__name__}")
        for key, kind in (("gradient", GradientSetup), ("calibration", Calibration)):
            value = getattr(self, key)
            if value is not None and not isinstance(value, kind):
                raise EvaluationError(f"Result.{key} must be a {kind.__name__} or None; given {type(value).__name__}")
        _check_bound(self.epsilon_lower_bound, "result['epsilon_lower_bound']")
        _check_slices(self.slices)
        if not isinstance(self.extra, Mapping) or not all(isinstance(k, str) for k in self.extra):
            raise EvaluationError(f"Result.extra must be a dict with string keys; given {self.extra!r}")
        typed = {
            *_HEAD,
            *_MIDDLE,
            "fit",
            *(_GRADIENT if self.gradient is not None else ()),
            *(_CALIBRATION if self.calibration is not None else ()),
        }
        clash = sorted(typed.intersection(self.extra))
        if clash:
            raise EvaluationError(
                f"Result.extra repeats the typed key(s) {clash}; pass them as Result fields "
                "(setup/budget/reduction as gradient=GradientSetup(...), calibrated_* as calibration=...)"
            )

    @classmethod
    def from_evaluation(
        cls, evaluation: Evaluation, *, method: str, signal: str, protocol: str, **fields: Any
    ) -> Result:
        """A result whose numbers (sizes, threshold, metrics, intervals, ROC, ...) are ``evaluation``'s.

        Args:
            evaluation: from :func:`~mintaudit.evaluation.evaluate_scores`.
            method, signal, protocol: see :class:`Result`.
            **fields: the other fields of :class:`Result` (``layer``, ``label``, ``fit``, ``extra``...).
        """
        ev = evaluation.to_dict()
        return cls(method=method, signal=signal, protocol=protocol, **ev, **fields)

    def to_dict(self) -> dict[str, Any]:
        """The report row: plain JSON-ready types, a deep copy, keys in the report's order."""
        out: dict[str, Any] = {}

        def put(key: str, value: Any) -> None:
            if value is not None:
                out[key] = _plain(value)

        for key in _HEAD:
            put(key, getattr(self, key))
        if self.gradient is not None:
            out.update(dataclasses.asdict(self.gradient))
        for key in _MIDDLE:
            put(key, getattr(self, key))
        if self.n_bootstrap is not None and self.slices is None:
            out["slices"] = None
        if self.calibration is not None:
            cal = self.calibration
            out.update(
                calibrated_threshold=cal.threshold,
                calibrated_accuracy=cal.accuracy,
                calibrated_accuracy_ci95=_plain(cal.accuracy_ci95),
            )
        put("fit", self.fit)
        out.update(_plain(self.extra))
        return out

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> Result:
        """A result from a report row (as :meth:`to_dict` or ``report.json`` has it), checked.

        Keys other than the typed ones go to ``extra``, in their order. ``setup``, ``budget`` and
        ``reduction`` become ``gradient`` when all three are given; the three ``calibrated_*``
        keys become ``calibration`` likewise.

        Raises:
            EvaluationError: ``row`` is not a dict, lacks a required key, or has an invalid value.
        """
        if not isinstance(row, Mapping):
            raise EvaluationError(f"a result must be a Result or a dict (a report row); given {type(row).__name__}")
        missing = [k for k in _REQUIRED if k not in row]
        if missing:
            raise EvaluationError(
                f"result lacks required key(s) {missing}; given keys {sorted(row)}; "
                "build it as {'method', 'signal', 'protocol', **evaluate_scores(...).to_dict()}"
            )
        row = _plain(row)
        fields: dict[str, Any] = {k: row.pop(k) for k in (*_HEAD, *_MIDDLE, "fit") if k in row}
        if all(k in row for k in _GRADIENT):
            fields["gradient"] = GradientSetup(*(row.pop(k) for k in _GRADIENT))
        if all(k in row for k in _CALIBRATION):
            fields["calibration"] = Calibration(*(row.pop(k) for k in _CALIBRATION))
        return cls(**fields, extra=row)


def _plain(value: Any) -> Any:
    """A deep copy, every mapping a plain dict."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return copy.deepcopy(value)


def _number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and v == v


def _count(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 0


def _text(value: Any, key: str) -> None:
    if not isinstance(value, str) or not value:
        raise EvaluationError(f"result[{key!r}] must be a non-empty string; given {value!r}")


def _check_bound(bound: Any, where: str) -> None:
    """None, or ``{"epsilon": None or a number >= 0, "delta", "confidence" in (0, 1), ...}``."""
    if bound is None:
        return
    eps = bound.get("epsilon", "missing") if isinstance(bound, Mapping) else "missing"
    ok = (
        isinstance(bound, Mapping)
        and (eps is None or (_number(eps) and eps >= 0.0))
        and all(_number(bound.get(k)) and 0.0 < bound[k] < 1.0 for k in ("delta", "confidence"))
    )
    if not ok:
        raise EvaluationError(
            f"{where} must be a dict with 'epsilon' (a number >= 0, or None), 'delta' and 'confidence' in (0, 1); "
            f"given {bound!r}; use epsilon_lower_bound(...).to_dict() or evaluate_scores(...).to_dict()"
        )


def _check_slices(slices: Any) -> None:
    """None, or ``{"class": {label: slice}, "correct": slice, "wrong": slice}`` (each part optional)."""
    if slices is None:
        return
    fix = "use evaluate_scores(..., member_info=..., nonmember_info=...).to_dict()"
    if not isinstance(slices, Mapping) or not set(slices) <= {"class", "correct", "wrong"}:
        given = sorted(slices) if isinstance(slices, Mapping) else type(slices).__name__
        raise EvaluationError(
            f"result['slices'] must be a dict with keys among 'class', 'correct', 'wrong'; given {given}; {fix}"
        )
    classes = slices.get("class") or {}
    if not isinstance(classes, Mapping):
        raise EvaluationError(
            f"result['slices']['class'] must be a dict of class label -> slice; given {classes!r}; {fix}"
        )
    parts = [(f"result['slices']['class'][{k!r}]", v) for k, v in classes.items()]
    parts += [(f"result['slices'][{k!r}]", slices[k]) for k in ("correct", "wrong") if k in slices]
    for where, part in parts:
        sizes_ok = isinstance(part, Mapping) and all(_count(part.get(k)) for k in ("n_members", "n_nonmembers"))
        if not sizes_ok or not (part.get("metrics") is None or isinstance(part["metrics"], Mapping)):
            raise EvaluationError(
                f"{where} must be a dict with integer 'n_members', 'n_nonmembers' >= 0 and 'metrics' "
                f"(a dict, or None); given {part!r}; {fix}"
            )
        _check_bound(part.get("epsilon_lower_bound"), f"{where}['epsilon_lower_bound']")

"""The report document (schema ``mintaudit/report@1``): build it, add results, write and load it."""

from __future__ import annotations

import copy
import json
import numbers
import os
import shlex
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, get_args

from mintaudit._io import atomic_write_json, atomic_write_text
from mintaudit.errors import CorruptFileError, DataNotFoundError, EvaluationError
from mintaudit.report.html import render_html  # one way: the page renders plain dicts, it never imports this module

__all__ = [
    "SCHEMA",
    "METHODS",
    "PROTOCOLS",
    "Method",
    "Protocol",
    "report_methods",
    "new_report",
    "add_result",
    "set_verdict",
    "write_report",
    "load_report",
]

SCHEMA = "mintaudit/report@1"

Method = Literal[
    "passive-mint",
    "amint",
    "gmint",
    "loss",
    "confidence",
    "entropy",
    "calibrated-loss",
    "shokri",
    "lira",
    "rmia",
]
Protocol = Literal["heldout-members", "training-members"]
#: The built-in methods (the ``Method`` literal, for type checkers); :func:`report_methods` is the live list.
METHODS: tuple[str, ...] = get_args(Method)
_MINT_METHODS: tuple[str, ...] = ("passive-mint", "amint", "gmint")
PROTOCOLS: tuple[str, ...] = get_args(Protocol)

_REQUIRED = ("method", "signal", "protocol", "n_members", "n_nonmembers", "metrics", "ci95")
_REQUIRED_METRICS = ("accuracy", "precision", "recall", "auc", "tpr_at_fpr")


def new_report(
    *, dataset: dict[str, Any], model: dict[str, Any], config: dict[str, Any], command: list[str] | str
) -> dict[str, Any]:
    """A new, empty report: metadata now, results added with :func:`add_result`.

    Args:
        dataset: what was audited, e.g. ``{"name": "fashion-mnist", "members": 5000, ...}``.
        model: the audited model, e.g. ``{"name": "objcls-cnn", "task_accuracy": 0.87}``.
        config: the resolved configuration of the run (saved verbatim, shown as JSON).
        command: the command line that made the report (a list of arguments or one string).

    Returns:
        ``{"schema", "created" (UTC ISO, "Z"), "mintaudit_version", "dataset", "model",
        "results": [], "verdict": None, "config", "command" (str)}``.

    Example:
        >>> r = new_report(dataset={"name": "toy"}, model={"name": "mlp"}, config={}, command=["mintaudit", "demo"])
        >>> r["schema"], r["results"], r["command"]
        ('mintaudit/report@1', [], 'mintaudit demo')
    """
    from mintaudit import __version__

    return {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "mintaudit_version": __version__,
        "dataset": copy.deepcopy(dict(dataset)),
        "model": copy.deepcopy(dict(model)),
        "results": [],
        "verdict": None,
        "config": copy.deepcopy(dict(config)),
        "command": command if isinstance(command, str) else shlex.join(str(a) for a in command),
    }


def add_result(report: dict[str, Any], result: dict[str, Any]) -> None:
    """Validate ``result`` and append a copy of it to ``report["results"]``.

    A result is made by the caller, usually as ``{"method": "passive-mint", "signal":
    "activations", "layer": "features.3", "depth": 2, "label": "L2", "detector": "cnn",
    "protocol": "heldout-members", **evaluate_scores(...).to_dict()}``. ``layer``, ``depth``
    (1-based tap depth), ``label`` and ``detector`` are optional; baselines have no depth.

    Args:
        report: a report from :func:`new_report` or :func:`load_report`.
        result: one method's evaluation; see above.

    Raises:
        EvaluationError: a required key is missing, or ``method``, ``protocol``, the sizes,
            ``metrics``, ``ci95``, ``depth``, ``epsilon_lower_bound`` or ``slices`` (both
            optional) has an invalid value.
    """
    missing = [k for k in _REQUIRED if k not in result]
    if missing:
        raise EvaluationError(
            f"result lacks required key(s) {missing}; given keys {sorted(result)}; "
            "build it as {'method', 'signal', 'protocol', **evaluate_scores(...).to_dict()}"
        )
    _choice(result, "method", report_methods())
    _choice(result, "protocol", PROTOCOLS)
    for key in ("n_members", "n_nonmembers"):
        value = result[key]
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise EvaluationError(
                f"result[{key!r}] must be an integer >= 0; given {value!r}; pass the size of that side"
            )
    metrics = result["metrics"]
    if not isinstance(metrics, dict) or any(k not in metrics for k in _REQUIRED_METRICS):
        given = sorted(metrics) if isinstance(metrics, dict) else type(metrics).__name__
        raise EvaluationError(
            f"result['metrics'] must be a dict with keys {list(_REQUIRED_METRICS)}; given {given}; "
            "use evaluate_scores(...).to_dict()"
        )
    if not isinstance(result["ci95"], dict):
        raise EvaluationError(
            f"result['ci95'] must be a dict of [lo, hi] intervals; given {type(result['ci95']).__name__}; "
            "use evaluate_scores(...).to_dict()"
        )
    depth = result.get("depth")
    if depth is not None and (
        isinstance(depth, bool) or not isinstance(depth, numbers.Integral) or depth < 1
    ):
        raise EvaluationError(
            f"result['depth'] must be an integer >= 1 (1 = first tap) or absent; given {depth!r}"
        )
    _check_bound(result.get("epsilon_lower_bound"), "result['epsilon_lower_bound']")
    _check_slices(result.get("slices"))
    report.setdefault("results", []).append(copy.deepcopy(result))


def _check_bound(bound: Any, where: str) -> None:
    """None, or ``{"epsilon": None or a number >= 0, "delta", "confidence" in (0, 1), ...}``."""
    if bound is None:
        return
    eps = bound.get("epsilon", "missing") if isinstance(bound, dict) else "missing"
    ok = isinstance(bound, dict) and (eps is None or (_number(eps) and eps >= 0.0)) and all(
        _number(bound.get(k)) and 0.0 < bound[k] < 1.0 for k in ("delta", "confidence")
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
    if not isinstance(slices, dict) or not set(slices) <= {"class", "correct", "wrong"}:
        given = sorted(slices) if isinstance(slices, dict) else type(slices).__name__
        raise EvaluationError(f"result['slices'] must be a dict with keys among 'class', 'correct', 'wrong'; given {given}; {fix}")
    classes = slices.get("class") or {}
    if not isinstance(classes, dict):
        raise EvaluationError(f"result['slices']['class'] must be a dict of class label -> slice; given {classes!r}; {fix}")
    parts = [(f"result['slices']['class'][{k!r}]", v) for k, v in classes.items()]
    parts += [(f"result['slices'][{k!r}]", slices[k]) for k in ("correct", "wrong") if k in slices]
    for where, part in parts:
        sizes_ok = isinstance(part, dict) and all(
            isinstance(part.get(k), numbers.Integral) and not isinstance(part.get(k), bool) and part[k] >= 0
            for k in ("n_members", "n_nonmembers")
        )
        if not sizes_ok or not (part.get("metrics") is None or isinstance(part["metrics"], dict)):
            raise EvaluationError(
                f"{where} must be a dict with integer 'n_members', 'n_nonmembers' >= 0 and 'metrics' "
                f"(a dict, or None); given {part!r}; {fix}"
            )
        _check_bound(part.get("epsilon_lower_bound"), f"{where}['epsilon_lower_bound']")


def set_verdict(report: dict[str, Any], verdict: dict[str, Any]) -> None:
    """Validate ``verdict`` and store a copy of it as ``report["verdict"]`` (replacing any earlier one).

    A verdict is made by the caller, usually as ``{**dataset_test(...).to_dict(), "method": ...,
    "query": {...}, "null_reference": {...}, "per_sample": {...}}`` (see
    :func:`mintaudit.pipeline.verdict`).

    Raises:
        EvaluationError: ``sentence`` is not a string, ``reject`` not a bool, ``p_value`` or
            ``alpha`` not in [0, 1], or ``n_query`` / ``n_null`` not an integer >= 1.
    """
    if not isinstance(verdict, dict):
        raise EvaluationError(f"a verdict must be a dict; given {type(verdict).__name__}; use dataset_test(...).to_dict()")
    checks = {
        "sentence": lambda v: isinstance(v, str) and bool(v.strip()),
        "reject": lambda v: isinstance(v, bool),
        "p_value": lambda v: _number(v) and 0.0 <= v <= 1.0,
        "alpha": lambda v: _number(v) and 0.0 < v < 1.0,
        "n_query": lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1,
        "n_null": lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1,
    }
    for key, ok in checks.items():
        if key not in verdict or not ok(verdict[key]):
            raise EvaluationError(
                f"verdict[{key!r}] is missing or invalid (given {verdict.get(key)!r}); build the verdict from "
                "dataset_test(...).to_dict()"
            )
    report["verdict"] = copy.deepcopy(verdict)


def report_methods() -> tuple[str, ...]:
    """The ``method`` values a result may have: the MINT protocols, then every registered attack's method.

    Read from the attack registry (:func:`mintaudit.attacks.register_attack`) at each call, so
    an attack registered later is accepted; the schema stays ``mintaudit/report@1``.
    """
    from mintaudit.attacks.registry import report_methods as attack_methods  # lazy: the attacks load torch

    return tuple(dict.fromkeys((*_MINT_METHODS, *attack_methods())))


def _number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and v == v


def _choice(result: dict[str, Any], key: str, choices: tuple[str, ...]) -> None:
    if result[key] not in choices:
        raise EvaluationError(f"result[{key!r}] must be one of {list(choices)}; given {result[key]!r}")


def write_report(report: dict[str, Any], out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` into ``out_dir``, each atomically.

    NaN metrics (undefined ones) are written as JSON ``null``.

    Returns:
        The paths of ``report.json`` and ``report.html``.
    """
    out = Path(out_dir)
    html = render_html(report)  # render first: a report that cannot be drawn writes nothing
    return atomic_write_json(out / "report.json", report), atomic_write_text(out / "report.html", html)


def load_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a ``report.json`` (or the one inside a directory) and check its schema.

    Raises:
        DataNotFoundError: no such file.
        CorruptFileError: not JSON, or not a ``mintaudit/report@1`` document.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    if not path.is_file():
        raise DataNotFoundError(
            f"report file {str(path)!r} does not exist; pass the report.json that write_report made"
        )
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptFileError(
            f"report file {str(path)!r} is not valid JSON ({exc}); regenerate it"
        ) from None
    schema = report.get("schema") if isinstance(report, dict) else None
    if schema != SCHEMA:
        raise CorruptFileError(
            f"report file {str(path)!r} has schema {schema!r}, expected {SCHEMA!r}; "
            "load it with the mintaudit version that wrote it, or regenerate it"
        )
    return report

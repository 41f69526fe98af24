"""The report document (schema ``mintaudit/report@2``, reads ``@1``): build it, add results, write and load it.

The document is a plain dict at this boundary; :class:`mintaudit.report.document.Report` is its typed
form (metadata, rows, verdicts, sections by name), used to write and to read it.
"""

from __future__ import annotations

import copy
import json
import numbers
import os
import shlex
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, get_args

from mintaudit._io import atomic_write_json, atomic_write_text
from mintaudit.errors import CorruptFileError, DataNotFoundError, EvaluationError
from mintaudit.report.document import SCHEMA, SCHEMA_V1, SCHEMAS, upgrade
from mintaudit.report.html import render_html  # one way: the page renders plain dicts, it never imports this module
from mintaudit.results import PROTOCOLS, Protocol, Result
from mintaudit.sizes import size_warning

__all__ = [
    "SCHEMA",
    "SCHEMA_V1",
    "SCHEMAS",
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
#: The built-in methods (the ``Method`` literal, for type checkers); :func:`report_methods` is the live list.
METHODS: tuple[str, ...] = get_args(Method)
_MINT_METHODS: tuple[str, ...] = ("passive-mint", "amint", "gmint")


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
        "results": [], "verdict": None, "config", "command" (str), "sections": {}}``.

    Example:
        >>> r = new_report(dataset={"name": "toy"}, model={"name": "mlp"}, config={}, command=["mintaudit", "demo"])
        >>> r["schema"], r["results"], r["command"]
        ('mintaudit/report@2', [], 'mintaudit demo')
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
        "sections": {},
    }


def add_result(report: dict[str, Any], result: Result | Mapping[str, Any]) -> None:
    """Validate ``result`` and append a copy of it to ``report["results"]``.

    A result is a :class:`~mintaudit.results.Result` (what every protocol returns; its
    :meth:`~mintaudit.results.Result.to_dict` is stored), or a row made by the caller, usually as
    ``{"method": "passive-mint", "signal": "activations", "layer": "features.3", "depth": 2,
    "label": "L2", "detector": "cnn", "protocol": "heldout-members",
    **evaluate_scores(...).to_dict()}``, checked by :meth:`Result.from_dict
    <mintaudit.results.Result.from_dict>` and stored as given. ``layer``, ``depth`` (1-based tap
    depth), ``label`` and ``detector`` are optional; baselines have no depth. A row with fewer
    than 100 samples on a side gains a ``warnings`` list saying so in words
    (:func:`mintaudit.sizes.size_warning`).

    Args:
        report: a report from :func:`new_report` or :func:`load_report`.
        result: one method's evaluation; see above.

    Raises:
        EvaluationError: a required key is missing, ``method`` is not a registered report
            method, or ``protocol``, the sizes, ``metrics``, ``ci95``, ``depth``,
            ``epsilon_lower_bound`` or ``slices`` (both optional) has an invalid value.
    """
    if isinstance(result, Result):
        row = result.to_dict()
    else:
        Result.from_dict(result)  # types and ranges
        row = copy.deepcopy(dict(result))
    _choice(row, "method", report_methods())  # the registries are live: checked when the row joins a report
    note = size_warning(row["n_members"], row["n_nonmembers"])
    if note is not None and note not in (row.get("warnings") or []):
        row["warnings"] = [*(row.get("warnings") or []), note]  # shown in words in the terminal and the HTML
    report.setdefault("results", []).append(row)


def set_verdict(report: dict[str, Any], verdict: dict[str, Any]) -> None:
    """Validate ``verdict`` and store a copy of it as ``report["verdict"]`` (replacing any earlier one).

    A verdict is made by the caller, usually as ``{**dataset_test(...).to_dict(), "method": ...,
    "query": {...}, "null_reference": {...}, "per_sample": {...}}`` (see
    :func:`mintaudit.workdir.verdict`).

    Raises:
        EvaluationError: ``sentence`` is not a string, ``reject`` not a bool, ``p_value`` or
            ``alpha`` not in [0, 1], or ``n_query`` / ``n_null`` not an integer >= 1.
    """
    if not isinstance(verdict, dict):
        raise EvaluationError(
            f"a verdict must be a dict; given {type(verdict).__name__}; use dataset_test(...).to_dict()"
        )
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
    an attack registered later is accepted; the schema stays ``mintaudit/report@2``.
    """
    from mintaudit.attacks.registry import report_methods as attack_methods  # lazy: the attacks load torch

    return tuple(dict.fromkeys((*_MINT_METHODS, *attack_methods())))


def _number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and v == v


def _choice(result: dict[str, Any], key: str, choices: tuple[str, ...]) -> None:
    if result[key] not in choices:
        raise EvaluationError(f"result[{key!r}] must be one of {list(choices)}; given {result[key]!r}")


def write_report(report: dict[str, Any], out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``report.json`` (schema ``mintaudit/report@2``) and ``report.html`` into ``out_dir``, each atomically.

    ``report`` may be of either schema (or being built, with a top-level ``dp_audit``): it is written
    as :meth:`Report.to_dict <mintaudit.report.document.Report.to_dict>` makes it, its sections gathered.
    NaN metrics (undefined ones) are written as JSON ``null``.

    Returns:
        The paths of ``report.json`` and ``report.html``.
    """
    out = Path(out_dir)
    report = upgrade(report, where=str(out / "report.json"))
    html = render_html(report)  # render first: a report that cannot be drawn writes nothing
    return atomic_write_json(out / "report.json", report), atomic_write_text(out / "report.html", html)


def load_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a ``report.json`` (or the one inside a directory), check its schema, and return it as report@2.

    A ``mintaudit/report@1`` document is converted (its ``dp_audit`` becomes the ``dp`` section);
    sections this version cannot read are kept as they are.

    Raises:
        DataNotFoundError: no such file.
        CorruptFileError: not JSON, not a ``mintaudit/report@1`` or ``@2`` document, or a section
            that cannot be read.
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
        raise CorruptFileError(f"report file {str(path)!r} is not valid JSON ({exc}); regenerate it") from None
    schema = report.get("schema") if isinstance(report, dict) else None
    if schema not in SCHEMAS:
        raise CorruptFileError(
            f"report file {str(path)!r} has schema {schema!r}, expected {SCHEMA!r} (or {SCHEMA_V1!r}); "
            "load it with the mintaudit version that wrote it, or regenerate it"
        )
    return upgrade(report, where=str(path))

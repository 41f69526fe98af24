"""Reading and formatting result values, shared by the HTML page and the terminal table.

Values may be missing or ``None`` (NaN is written to JSON as null), so every accessor here
tolerates both and formats them as a dash.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any

DASH = "–"
TPR_KEYS = ("0.01", "0.001")


def is_number(v: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def fmt(v: Any, digits: int = 3) -> str:
    """``v`` with ``digits`` decimals, or a dash when it is missing or not finite."""
    return f"{v:.{digits}f}" if is_number(v) else DASH


def pct(v: Any) -> str:
    """A rate as a percentage with one decimal, or a dash."""
    return f"{100 * v:.1f}%" if is_number(v) else DASH


def metric(result: dict[str, Any], key: str, fpr: str | None = None) -> Any:
    """``result["metrics"][key]`` (or ``[key][fpr]`` for ``tpr_at_fpr``); None when absent."""
    return _dig(result.get("metrics"), key, fpr)


def interval(result: dict[str, Any], key: str, fpr: str | None = None) -> tuple[float, float] | None:
    """``result["ci95"][key]`` as (lo, hi) when both ends are finite numbers, else None."""
    ci = _dig(result.get("ci95"), key, fpr)
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(is_number(v) for v in ci):
        return float(ci[0]), float(ci[1])
    return None


def ci_text(ci: Any) -> str | None:
    """An interval as "[lo, hi]" with three decimals, or None unless both ends are numbers."""
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(is_number(v) for v in ci):
        return f"[{ci[0]:.3f}, {ci[1]:.3f}]"
    return None


def metric_cell(result: dict[str, Any], key: str, fpr: str | None = None) -> dict[str, Any]:
    """A metric and its 95% interval, for the templates' ``num`` macro: ``{"value": "0.612", "ci": "[...]" or None}``."""
    return {"value": fmt(metric(result, key, fpr)), "ci": ci_text(interval(result, key, fpr))}


def _dig(tree: Any, key: str, sub: str | None) -> Any:
    value = tree.get(key) if isinstance(tree, dict) else None
    if sub is not None:
        value = value.get(sub) if isinstance(value, dict) else None
    return value


def result_names(results: list[dict[str, Any]]) -> list[str]:
    """A short, unique display name per result: its label, else its layer, else its method."""
    names = [str(r.get("label") or r.get("layer") or r.get("method") or "?") for r in results]
    for attempt in ("signal", "detector", "protocol"):
        counts = Counter(names)
        names = [f"{n} · {r[attempt]}" if counts[n] > 1 and r.get(attempt) else n for n, r in zip(names, results)]
    counts = Counter(names)
    return [f"{n} #{i + 1}" if counts[n] > 1 else n for i, n in enumerate(names)]


def value_text(v: Any) -> str:
    """A report value as text: numbers rounded, containers as compact JSON."""
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else DASH
    if isinstance(v, (dict, list)):
        return json.dumps(v, default=str)
    return DASH if v is None else str(v)


def kv_rows(items: dict[str, Any]) -> list[tuple[str, str]]:
    return [(str(k), value_text(v)) for k, v in items.items()]


def eps_cell(result: dict[str, Any]) -> dict[str, Any]:
    """The epsilon lower bound with its delta and confidence underneath, or a dash (with the reason as a tooltip)."""
    bound = result.get("epsilon_lower_bound")
    if not isinstance(bound, dict):
        return {"value": DASH, "note": None, "delta": None, "confidence": None}
    note = str(bound["note"]) if bound.get("note") else None
    if not is_number(bound.get("epsilon")):
        return {"value": DASH, "note": note, "delta": None, "confidence": None}
    delta, conf = bound.get("delta"), bound.get("confidence")
    shown = is_number(delta) and is_number(conf)
    return {
        "value": f"{bound['epsilon']:.2f}",
        "note": note,
        "delta": f"{delta:.0e}" if shown else None,
        "confidence": f"{100 * conf:g}" if shown else None,
    }

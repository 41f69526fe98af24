"""The factors study (``mintaudit/factors@1``) as ONE self-contained HTML page: inline CSS and SVG.

One figure per factor (audit AUC and TPR at 1% FPR against the factor's values, with 95%
intervals; task accuracy on a second axis), the effect of each factor in words, and the table.
The markup lives in ``report/templates/factors.html.j2`` (Jinja2, autoescaping on, the page frame
and CSS shared with the report); this module prepares the data and draws the SVG plots.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from html import escape
from typing import Any

from markupsafe import Markup

from mintaudit.report._format import DASH, fmt, is_number
from mintaudit.report._jinja import render_page
from mintaudit.report.svg import PALETTE, Plot, Scale

__all__ = ["render_factors_html"]

_NAMES = {
    "epochs": ("Epochs", "how often each member is seen"),
    "members_per_class": ("Members per class", "training-set size"),
    "dropout": ("Dropout", "dropout probability after each conv block (0 = off)"),
    "weight_decay": ("Weight decay", "Adam's L2 term"),
    "augment": ("Data augmentation", "random horizontal flip + random crop after 2-px padding"),
    "label_smoothing": ("Label smoothing", "0 = plain cross-entropy"),
}
_ACCURACY = "#000000"


class _TwinPlot(Plot):
    """A :class:`Plot` with a second y axis on the right (its values drawn through :meth:`right`)."""

    _RIGHT = 48  # pixels kept right of the plotting area for the second axis

    def __init__(
        self,
        x_range: tuple[float, float],
        y_range: tuple[float, float],
        y2_range: tuple[float, float],
        *,
        y2_label: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(x_range, y_range, **kwargs)
        self.x = Scale(self.x.lo, self.x.hi, self.x.start, self.x.end - self._RIGHT, self.x.log)
        self.y2 = Scale(y2_range[0], y2_range[1], self.y.start, self.y.end)
        self.y2_label = y2_label

    def right(self, values: Sequence[float]) -> list[float]:
        """Values of the right axis in the left axis's units, to draw with the usual marks."""
        span2, span = self.y2.hi - self.y2.lo, self.y.hi - self.y.lo
        return [self.y.lo + (min(max(v, self.y2.lo), self.y2.hi) - self.y2.lo) / span2 * span for v in values]

    def _axes(self) -> list[str]:  # SVG text, escaped here as svg.py escapes its own
        out = super()._axes()
        x = self.x.end
        for v in self.y2.ticks():
            py = f"{self.y2(v):.1f}"
            out.append(f'<line x1="{x}" x2="{x + 4}" y1="{py}" y2="{py}" stroke="#999"/>')
            out.append(
                f'<text x="{x + 6}" y="{py}" dy="3.5" text-anchor="start" font-size="10" '
                f'fill="{_ACCURACY}">{v:g}</text>'
            )
        mid_y = (self.y.start + self.y.end) / 2
        out.append(
            f'<text transform="translate({self.width - 6},{mid_y:.1f}) rotate(90)" text-anchor="middle" '
            f'font-size="11">{escape(self.y2_label)}</text>'
        )
        return out


def _value_text(factor: str, v: Any) -> str:
    if factor == "augment":
        return "on" if v else "off"
    return f"{v:g}" if isinstance(v, float) else str(v)


def _ci_text(ci: Any, sign: str = "") -> str | None:
    """An interval as "[lo, hi]" with three decimals (``sign="+"``: signed), or None."""
    if isinstance(ci, list) and len(ci) == 2 and all(is_number(v) for v in ci):
        return f"[{ci[0]:{sign}.3f}, {ci[1]:{sign}.3f}]"
    return None


def _range(values: list[float], *, floor: float, ceil: float, min_span: float) -> tuple[float, float]:
    lo = max(floor, math.floor(min(values) * 20) / 20)
    hi = min(ceil, math.ceil(max(values) * 20) / 20)
    if hi - lo < min_span:
        lo = max(floor, hi - min_span)
        hi = max(hi, lo + min_span)
    return lo, hi


def _series(rows: list[dict[str, Any]], key: str, ci_key: str | None) -> tuple[list[int], list[float], list[Any]]:
    xs, ys, cis = [], [], []
    for i, r in enumerate(rows):
        if is_number(r.get(key)):
            xs.append(i)
            ys.append(float(r[key]))
            cis.append(r.get(ci_key) if ci_key else None)
    return xs, ys, cis


def _plot(factor: str, rows: list[dict[str, Any]]) -> str:
    """Audit AUC / TPR@1% FPR (left axis, with intervals) and task accuracy (right axis) against the values."""
    name = _NAMES.get(factor, (factor, ""))[0]
    series = [
        ("passive MINT AUC", "passive_auc", "passive_auc_ci95", PALETTE[0], None),
        ("passive MINT TPR@1% FPR", "passive_tpr_at_1pct_fpr", "passive_tpr_ci95", PALETTE[1], None),
        ("LOSS AUC", "loss_auc", "loss_auc_ci95", PALETTE[2], "7 3"),
        ("LOSS TPR@1% FPR", "loss_tpr_at_1pct_fpr", "loss_tpr_ci95", PALETTE[5], "7 3"),
        ("aMINT AUC", "amint_auc", "amint_auc_ci95", PALETTE[3], "2 2"),
    ]
    left = [0.5]
    for _, key, ci_key, _, _ in series:
        for r in rows:
            left += [v for v in (r.get(key), *(r.get(ci_key) or ())) if is_number(v)]
    y_range = (0.0, min(1.0, max(0.6, math.ceil(max(left) * 10) / 10)))
    acc = [r["task_accuracy"] for r in rows if is_number(r.get("task_accuracy"))] or [0.5]
    y2_range = _range(acc, floor=0.0, ceil=1.0, min_span=0.1)
    ticks = [(i, _value_text(factor, r["value"]) + ("*" if r.get("is_base") else "")) for i, r in enumerate(rows)]
    plot = _TwinPlot(
        (-0.5, len(rows) - 0.5),
        y_range,
        y2_range,
        y2_label="task accuracy",
        width=440,
        height=300,
        title=f"{name}: audit and task accuracy",
        x_label=f"{name.lower()} (* = base)",
        y_label="AUC / TPR at 1% FPR",
        x_ticks=ticks,
    )
    plot.hline(0.5, color="#aaa", dash="2 3", text="AUC chance")
    shown = [s for s in series if any(is_number(r.get(s[1])) for r in rows)]
    for j, (label, key, ci_key, color, dash) in enumerate(shown):
        xs, ys, cis = _series(rows, key, ci_key)
        shift = (j - (len(shown) - 1) / 2) * 0.05  # keep the interval bars apart
        xs_s = [x + shift for x in xs]
        bars = [
            (x, c) for x, c in zip(xs_s, cis) if isinstance(c, list) and len(c) == 2 and all(is_number(v) for v in c)
        ]
        plot.error_bars([x for x, _ in bars], [c[0] for _, c in bars], [c[1] for _, c in bars], color=color)
        plot.line(xs_s, ys, color=color, dash=dash, label=label)
        plot.points(xs_s, ys, color=color)
    xs, ys, _ = _series(rows, "task_accuracy", None)
    plot.line(xs, plot.right(ys), color=_ACCURACY, dash="9 3 2 3", width=1.4, label="task accuracy (right axis)")
    plot.points(xs, plot.right(ys), color=_ACCURACY, radius=2.5)
    return plot.render()


def _effect(effect: dict[str, Any] | None) -> dict[str, str] | None:
    if not effect:
        return None
    direction = effect.get("passive_direction")
    badge = {"increase": "more auditable", "decrease": "less auditable"}.get(str(direction), "no clear effect")
    return {"badge": badge.capitalize(), "sentence": str(effect.get("sentence", ""))}


def _factor(factor: str, rows: list[dict[str, Any]], effect: dict[str, Any] | None) -> dict[str, Any]:
    name, about = _NAMES.get(factor, (factor, ""))
    return {
        "name": name,
        "about": about,
        "effect": _effect(effect),
        "svg": Markup(_plot(factor, rows)),  # noqa: S704 - SVG built and escaped by svg.py (and _TwinPlot)
        "amint": any(is_number(r.get("amint_auc")) for r in rows),
    }


_COLUMNS = (
    "Factor",
    "Value",
    "Members",
    "Task accuracy",
    "Train accuracy",
    "Gap",
    "Best tap (validation AUC)",
    "Passive AUC",
    "Passive TPR@1% FPR",
    "LOSS AUC",
    "LOSS TPR@1% FPR",
)


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    amint = any(is_number(r.get("amint_auc")) for r in rows)
    return [*_COLUMNS, *(("aMINT AUC", "aMINT TPR@1% FPR") if amint else ()), "Model"]


def _table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    amint = any(is_number(r.get("amint_auc")) for r in rows)
    keys = (
        ("passive_auc", "passive_auc_ci95"),
        ("passive_tpr_at_1pct_fpr", "passive_tpr_ci95"),
        ("loss_auc", "loss_auc_ci95"),
        ("loss_tpr_at_1pct_fpr", "loss_tpr_ci95"),
        *((("amint_auc", "amint_auc_ci95"), ("amint_tpr_at_1pct_fpr", "amint_tpr_ci95")) if amint else ()),
    )
    return [
        {
            "is_base": bool(r.get("is_base")),
            "factor": _NAMES.get(r["factor"], (r["factor"],))[0],
            "value": _value_text(r["factor"], r["value"]),
            "members": str(r.get("members", DASH)),
            "accuracies": [{"value": fmt(r.get(k)), "ci": None} for k in ("task_accuracy", "train_accuracy", "gap")],
            "tap": str(r.get("passive_tap", DASH)),
            "tap_auc": fmt(r.get("passive_val_auc")),
            "metrics": [{"value": fmt(r.get(key)), "ci": _ci_text(r.get(ci))} for key, ci in keys],
            "key": str(r.get("key", "")),
            "cached": "trained now" if r.get("trained_now") else "cached",
        }
        for r in rows
    ]


def _guide(doc: dict[str, Any]) -> dict[str, str]:
    proto = doc.get("protocol") or {}
    return {
        "passive": str(proto.get("passive", "")),
        "best_tap": str(proto.get("best_tap", "")),
        "loss": str(proto.get("loss", "")),
        "amint": str(proto["amint"]) if proto.get("amint") else "",
        "effect_interval": str(proto.get("effect_interval", "")),
    }


def _delta(value: Any, ci: Any = None) -> dict[str, Any]:
    if not is_number(value):
        return {"value": DASH, "ci": None}
    return {"value": f"{value:+.3f}", "ci": _ci_text(ci, "+")}


def _effects(effects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per factor: the change from its lowest to its highest setting."""
    amint = any("amint_delta_auc" in e for e in effects)
    rows = []
    for e in effects:
        f = str(e.get("factor"))
        reading = {"increase": "more auditable", "decrease": "less auditable"}.get(
            str(e.get("passive_direction")), "no clear effect"
        )
        rows.append(
            {
                "name": _NAMES.get(f, (f,))[0],
                "lowest": _value_text(f, e.get("from")),
                "highest": _value_text(f, e.get("to")),
                "reading": reading,
                "deltas": [
                    _delta(e.get("passive_delta_auc"), e.get("passive_delta_auc_ci95")),
                    _delta(e.get("loss_delta_auc"), e.get("loss_delta_auc_ci95")),
                    *([_delta(e.get("amint_delta_auc"))] if amint else []),
                    _delta(e.get("task_delta_accuracy")),
                    _delta(e.get("gap_delta")),
                ],
            }
        )
    return rows


def _kv(items: dict[str, Any]) -> list[tuple[str, str]]:
    def value(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:g}"
        return json.dumps(v) if isinstance(v, (dict, list)) else str(v)

    return [(str(k), value(v)) for k, v in items.items()]


def factor_plots(doc: dict[str, Any]) -> dict[str, str]:
    """Each factor's plot as a standalone SVG document (the ones in the HTML page), by factor name."""
    rows = [r for r in doc.get("rows") or [] if isinstance(r, dict)]
    factors = list(dict.fromkeys(r["factor"] for r in rows))
    white = '<rect width="100%" height="100%" fill="#fff"/><title>'  # readable on dark pages too

    def alone(svg: str) -> str:  # a file needs the namespace an HTML page does without
        svg = svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1).replace("<title>", white, 1)
        return f'<?xml version="1.0" encoding="UTF-8"?>\n{svg}\n'

    return {f: alone(_plot(f, [r for r in rows if r["factor"] == f])) for f in factors}


def render_factors_html(doc: dict[str, Any]) -> str:
    """Render a factors document (see :func:`mintaudit.studies.factors.run_factors`) as one self-contained HTML page.

    Args:
        doc: the ``mintaudit/factors@1`` document.

    Returns:
        The HTML document as a string: no script, nothing fetched.
    """
    rows = [r for r in doc.get("rows") or [] if isinstance(r, dict)]
    effects = {e.get("factor"): e for e in doc.get("effects") or [] if isinstance(e, dict)}
    factors = list(dict.fromkeys(r["factor"] for r in rows))
    dataset = doc.get("dataset") or {}
    runs = doc.get("runs") or {}
    return render_page(
        "factors.html.j2",
        title=f"What makes {doc.get('model', 'the model')} auditable: training factors on {dataset.get('name', 'data')}",
        data=_kv(dataset),
        base=_kv(doc.get("base") or {}),
        protocol=_guide(doc),
        effects=_effects(list(effects.values())),
        effects_amint=any("amint_delta_auc" in e for e in effects.values()),
        factors=[_factor(f, [r for r in rows if r["factor"] == f], effects.get(f)) for f in factors],
        columns=_columns(rows),
        rows=_table(rows),
        command=str(doc.get("command") or DASH),
        runs={
            "models": str(runs.get("models", DASH)),
            "trained": str(len(runs.get("trained") or [])),
            "member_epochs": str(runs.get("member_epochs", DASH)),
            "seconds": str(runs.get("seconds", DASH)),
        },
        config=json.dumps(doc.get("config") or {}, indent=2, sort_keys=True, default=str),
        schema=str(doc.get("schema", "")),
        version=str(doc.get("mintaudit_version", "")),
        created=str(doc.get("created", "")),
    )

"""The slices section: every result again per true class and on correctly / wrongly classified samples.

The data live in each row's ``slices`` (so the one merge rule replaces them with their row); the
section gathers them at each write and stores only which results have slices (``results``,
their display names) and which have none (``missing``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, ClassVar

from mintaudit.report._format import eps_cell, interval, is_number, metric, metric_cell, result_names, value_text
from mintaudit.report.figures import MEMBER, NONMEMBER, figure
from mintaudit.report.sections.base import ReportView, Section, register_section
from mintaudit.report.svg import Plot

__all__ = ["SlicesSection"]


@register_section
@dataclasses.dataclass
class SlicesSection(Section):
    """Which results have slices (``results``) and which have none (``missing``); the slices are in the rows."""

    name: ClassVar[str] = "slices"
    order: ClassVar[int] = 60

    results: list[str] = dataclasses.field(default_factory=list)
    missing: list[str] = dataclasses.field(default_factory=list)

    @classmethod
    def gather(cls, report: ReportView, stored: Section | None) -> Section | None:
        rows = [r for r in report.rows if isinstance(r, dict)]
        names = result_names(rows)
        have = [n for r, n in zip(rows, names) if isinstance(r.get("slices"), dict) and _slice_parts(r["slices"])]
        if not have:
            return None
        return cls(results=have, missing=[n for r, n in zip(rows, names) if not isinstance(r.get("slices"), dict)])

    def view(self, report: ReportView) -> Mapping[str, Any] | None:
        results = [r for r in report.rows if isinstance(r, dict)]
        return _slices(results, result_names(results))


def _slice_parts(slices: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(short tick text, row label, slice) per class, then correct / wrong."""
    parts = []
    classes = slices.get("class") if isinstance(slices.get("class"), dict) else {}
    for key in sorted(classes, key=lambda k: (0, int(k), "") if str(k).lstrip("-").isdigit() else (1, 0, str(k))):
        if isinstance(classes[key], dict):
            parts.append((str(key), f"class {key}", classes[key]))
    for key, tick, text in (("correct", "ok", "classified correctly"), ("wrong", "wrong", "classified wrongly")):
        if isinstance(slices.get(key), dict):
            parts.append((tick, text, slices[key]))
    return parts


def _slice_plot(result: dict[str, Any], name: str, parts: list[tuple[str, str, dict[str, Any]]]) -> Plot:
    """AUC per slice with its 95% interval, the whole result's AUC and chance as rules."""
    xs = list(range(1, len(parts) + 1))
    values = [0.5, *(v for v in [metric(result, "auc")] if is_number(v))]
    for _, _, part in parts:
        values += [v for v in (metric(part, "auc"), *(interval(part, "auc") or ())) if is_number(v)]
    lo, hi = max(0.0, math.floor(min(values) * 10) / 10), min(1.0, math.ceil(max(values) * 10) / 10)
    plot = Plot(
        (0.4, len(parts) + 0.6),
        (min(lo, hi - 0.1), hi),
        width=max(220, 26 * len(parts) + 80),
        height=190,
        title=name,
        x_label="slice",
        y_label="AUC",
        x_ticks=[(x, t) for x, (t, _, _) in zip(xs, parts)],
    )
    plot.hline(0.5, color="#aaa", dash="2 3")
    if is_number(metric(result, "auc")):
        plot.hline(metric(result, "auc"), color=NONMEMBER, dash="6 4", text="all")
    cis = [(x, interval(p, "auc")) for x, (_, _, p) in zip(xs, parts) if interval(p, "auc")]
    plot.error_bars([x for x, _ in cis], [c[0] for _, c in cis], [c[1] for _, c in cis], color=MEMBER)
    pts = [(x, metric(p, "auc")) for x, (_, _, p) in zip(xs, parts) if is_number(metric(p, "auc"))]
    plot.points([x for x, _ in pts], [y for _, y in pts], color=MEMBER)
    return plot


def _slices(results: list[dict[str, Any]], names: list[str]) -> dict[str, Any] | None:
    sliced = [(r, n, _slice_parts(r["slices"])) for r, n in zip(results, names) if isinstance(r.get("slices"), dict)]
    sliced = [(r, n, parts) for r, n, parts in sliced if parts]
    if not sliced:
        return None
    tables = [
        {
            "name": n,
            "rows": [
                {
                    "text": text,
                    "members": f"{value_text(p.get('n_members'))} / {value_text(p.get('n_nonmembers'))}",
                    "metrics": [metric_cell(p, *key) for key in (("accuracy",), ("auc",), ("tpr_at_fpr", "0.01"))],
                    "eps": eps_cell(p),
                }
                for _, text, p in parts
            ],
        }
        for r, n, parts in sliced
    ]
    return {
        "figures": [
            figure(_slice_plot(r, n, parts), f"{r.get('method')} · {r.get('protocol')}") for r, n, parts in sliced
        ],
        "tables": tables,
        "missing": ", ".join(n for r, n in zip(results, names) if not isinstance(r.get("slices"), dict)),
    }

"""The report as ONE self-contained HTML page: inline CSS and SVG, no script, nothing fetched.

The markup lives in ``report/templates/report.html.j2`` (Jinja2, autoescaping on); this module
turns a report into the plain data the template shows: strings and already formatted numbers,
and the SVG plots that :mod:`mintaudit.report.svg` draws (the only markup passed in, as
:class:`~markupsafe.Markup`, since svg.py escapes the text it embeds).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any


from mintaudit.report._format import (
    DASH,
    ci_text,
    eps_cell,
    fmt,
    interval,
    is_number,
    kv_rows,
    metric,
    metric_cell,
    pct,
    result_names,
    value_text,
)
from mintaudit.report._jinja import render_page
from mintaudit.report.document import Report
from mintaudit.report.sections import section_template
from mintaudit.report.figures import MEMBER, NONMEMBER, figure
from mintaudit.report.svg import GREY, Plot, series_style
from mintaudit.report.front_html import families_view, verdicts_view

__all__ = ["render_html"]

# What each protocol means, in the reading guide and the figure captions; its order is the order
# of the figures. It covers the schema's PROTOCOLS (tests/report/test_templates.py checks it);
# this module does not import the schema, whose write_report imports it.
_PROTOCOL_TEXT = {
    "heldout-members": "members unseen by the MINT model (the honest setting for passive MINT)",
    "training-members": "members the MINT model was fitted on (the aMINT setting)",
}


def render_html(report: dict[str, Any]) -> str:
    """Render a report (see :func:`~mintaudit.report.new_report`) as one self-contained HTML page.

    The page leads with the answer: first the verdict (the latest ``mintaudit test``: the answer
    in words, the method and why it was chosen, the p-value, the share used, the samples needed,
    the blind baseline; earlier verdicts folded under it; or, without one, the command that makes
    one), then the best result of each family of methods (passive MINT, gMINT, aMINT, attacks)
    and the best result in words, the DP claim against the measured bounds, the data and model.
    The details follow, folded: a reading guide, every result with 95% intervals, passive vs
    active MINT, ROC curves on log-log axes (one figure per protocol), member / non-member score
    histograms, metrics against tap depth, slices, and how the report was made.

    Args:
        report: a report dict; missing or null values are shown as a dash.

    Returns:
        The HTML document as a string (UTF-8 when written).
    """
    results = [r for r in report.get("results") or [] if isinstance(r, dict)]
    names = result_names(results)
    dataset, model = report.get("dataset") or {}, report.get("model") or {}
    return render_page(
        "report.html.j2",
        title=f"Membership audit: {model.get('name', 'model')} on {dataset.get('name', 'data')}",
        verdicts=verdicts_view(report),
        families=families_view(results, names),
        data=kv_rows(dataset),
        model=kv_rows(model),
        protocols=list(_PROTOCOL_TEXT.items()),
        results=_results_rows(results, names),
        thresholds=_thresholds(results, names),
        active=_active_rows(results),
        best=_best(results, names),
        roc=_roc_figures(results, names),
        histograms=_histogram_figures(results, names),
        member_color=MEMBER,
        nonmember_color=NONMEMBER,
        depth=_depth_figures(results, names),
        command=str(report.get("command") or DASH),
        config=json.dumps(report.get("config") or {}, indent=2, sort_keys=True, default=str),
        provenance=[
            (label, value_text(report.get(key)))
            for label, key in (
                ("Schema", "schema"),
                ("mintaudit version", "mintaudit_version"),
                ("Created (UTC)", "created"),
            )
        ],
        sections=_section_views(report),
        dash=DASH,
    )


def _section_views(report: dict[str, Any]) -> list[dict[str, Any]]:
    """``{"template", "place", "view"}`` for every registered section the report holds that has something to show."""
    doc = Report.from_dict({k: v for k, v in report.items() if k != "schema"})  # the page draws any schema
    views = []
    for s in doc.shown():
        view = s.view(doc)
        if view is not None:
            views.append({"template": section_template(type(s)), "place": s.place, "name": s.name, "view": view})
    return views


# ---------------------------------------------------------------------------------------------
# text sections


_TABLE_METRICS = (("accuracy",), ("precision",), ("recall",), ("auc",), ("tpr_at_fpr", "0.01"), ("tpr_at_fpr", "0.001"))


def _active_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Passive vs active MINT on the same backbone: the aMINT papers' comparison table."""
    rows = []
    for a in (r for r in results if r.get("method") == "amint"):
        plain = next(
            (
                r
                for r in results
                if r.get("audited_model") == "plain"
                and r.get("setup") == a.get("setup")
                and r.get("protocol") == "training-members"
            ),
            None,
        )
        scale = a.get("mint_grad_scale")
        rows.append(
            {
                "setup": str(a.get("setup") or DASH),
                "layer": str(a.get("layer") or ""),
                "grad_scale": f"{scale:g}" if is_number(scale) and scale != 1 else None,
                "passive": metric_cell(plain, "accuracy") if plain else None,
                "accuracy": metric_cell(a, "accuracy"),
                "calibrated": {
                    "value": fmt(a.get("calibrated_accuracy")),
                    "ci": ci_text(a.get("calibrated_accuracy_ci95")),
                },
                "auc": metric_cell(a, "auc"),
                "tpr": metric_cell(a, "tpr_at_fpr", "0.01"),
                "aud_plain": fmt(plain.get("aud")) if plain else DASH,
                "aud": fmt(a.get("aud")),
            }
        )
    return rows


def _results_rows(results: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    best = {id(r) for r, _ in _best_per_protocol(results, names)}
    rows = []
    for r, name in zip(results, names):
        layer = r.get("layer")
        rows.append(
            {
                "best": id(r) in best,
                "name": name,
                "layer": " ".join(
                    t
                    for t in (
                        str(layer) if layer and str(layer) != name else "",
                        f"({r['tap_mode']})" if r.get("tap_mode") else "",
                    )
                    if t
                ),
                "method": str(r.get("method") or DASH),
                "detector": str(r.get("detector") or DASH),
                "protocol": str(r.get("protocol") or DASH),
                "metrics": [metric_cell(r, *key) for key in _TABLE_METRICS],
                "eps": eps_cell(r),
                "members": f"{value_text(r.get('n_members'))} / {value_text(r.get('n_nonmembers'))}",
                "warnings": [str(w) for w in r.get("warnings") or [] if isinstance(w, str)],
            }
        )
    return rows


def _thresholds(results: list[dict[str, Any]], names: list[str]) -> dict[str, str]:
    """The results' thresholds: ``single`` when they share one, else ``each`` ("t for names; ...")."""
    by_threshold: dict[str, list[str]] = {}
    for r, name in zip(results, names):
        if is_number(r.get("threshold")):
            by_threshold.setdefault(f"{r['threshold']:g}", []).append(name)
    if len(by_threshold) == 1:
        return {"single": next(iter(by_threshold)), "each": ""}
    return {"single": "", "each": "; ".join(f"{t} for {', '.join(ns)}" for t, ns in by_threshold.items())}


def _best_per_protocol(results: list[dict[str, Any]], names: list[str]) -> Iterator[tuple[dict[str, Any], str]]:
    for _, group in _by_protocol(results, names):
        scored = [(r, n) for r, n in group if is_number(metric(r, "auc"))]
        if scored:
            yield max(scored, key=lambda rn: metric(rn[0], "auc"))


def _best(results: list[dict[str, Any]], names: list[str]) -> list[dict[str, str]]:
    paragraphs = []
    for r, name in _best_per_protocol(results, names):
        auc, ci = metric(r, "auc"), interval(r, "auc")
        details = ", ".join(
            str(x)
            for x in (
                r.get("method"),
                r.get("detector") and f"{r['detector']} detector",
                r.get("layer") and r.get("layer") != name and f"layer {r['layer']}",
            )
            if x
        )
        if ci is None:
            meaning = ""
        elif ci[0] > 0.5:
            meaning = " Its AUC interval lies above 0.5: the model treats its training samples measurably differently from unseen ones."
        elif ci[1] >= 0.5:
            meaning = " Its AUC interval includes 0.5: this is compatible with chance, so no reliable sign of membership was found."
        else:
            meaning = " Its AUC interval lies below 0.5: the scores run the wrong way round, which points to a problem in the setup."
        n_same = sum(1 for other in results if other.get("protocol") == r.get("protocol"))
        if n_same > 1 and ci is not None:
            meaning += (
                f" It is the best of {n_same} results: picking the best of many inflates it, so confirm it on"
                " fresh samples before relying on it."
            )
        threshold = r.get("threshold")
        paragraphs.append(
            {
                "protocol": str(r.get("protocol")),
                "name": name,
                "details": details,
                "auc": f"{auc:.3f}",
                "ci": f" (95% interval {ci[0]:.3f} to {ci[1]:.3f})" if ci else "",
                "accuracy": pct(metric(r, "accuracy")),
                "at": f" at threshold {threshold:g}" if is_number(threshold) else "",
                "tpr": pct(metric(r, "tpr_at_fpr", "0.01")),
                "meaning": meaning,
            }
        )
    return paragraphs


# ---------------------------------------------------------------------------------------------
# figures


def _by_protocol(
    results: list[dict[str, Any]], names: list[str]
) -> Iterator[tuple[str, list[tuple[dict[str, Any], str]]]]:
    """(protocol, [(result, name), ...]) in a fixed protocol order, unknown protocols last."""
    found = list(dict.fromkeys(str(r.get("protocol")) for r in results))
    for protocol in [p for p in _PROTOCOL_TEXT if p in found] + [p for p in found if p not in _PROTOCOL_TEXT]:
        yield protocol, [(r, n) for r, n in zip(results, names) if str(r.get("protocol")) == protocol]


def _roc_figures(results: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    index = {id(r): i for i, r in enumerate(results)}
    figures = []
    for protocol, group in _by_protocol(results, names):
        curves = [(r, n) for r, n in group if isinstance(r.get("roc"), dict)]
        if not curves:
            continue
        plot = Plot(
            (1e-3, 1.0),
            (1e-3, 1.0),
            width=440,
            height=360,
            log_x=True,
            log_y=True,
            title=f"ROC curves, {protocol}",
            x_label="false positive rate (non-members flagged)",
            y_label="true positive rate (members found)",
        )
        plot.line([1e-3, 1.0], [1e-3, 1.0], color=GREY, dash="4 4", width=1.2, label="chance")
        for r, name in curves:
            pts = [
                (a, b)
                for a, b in zip(r["roc"].get("fpr") or [], r["roc"].get("tpr") or [])
                if is_number(a) and is_number(b)
            ]
            color, dash = series_style(index[id(r)])
            plot.line(
                [a for a, _ in pts],
                [b for _, b in pts],
                color=color,
                dash=dash,
                label=f"{name} (AUC {fmt(metric(r, 'auc'))})",
            )
        figures.append(figure(plot, f"Protocol {protocol}: {_PROTOCOL_TEXT.get(protocol, '')}."))
    return figures


def _histogram_figures(results: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    figures = []
    for r, name in zip(results, names):
        h = r.get("histogram")
        if not isinstance(h, dict) or not h.get("edges"):
            continue
        edges, members, nonmembers = h["edges"], h.get("members") or [], h.get("nonmembers") or []
        top = max([*members, *nonmembers, 1]) * 1.05
        plot = Plot(
            (edges[0], edges[-1]),
            (0.0, top),
            width=300,
            height=200,
            title=f"{name}: AUC {fmt(metric(r, 'auc'))}",
            x_label="membership score",
            y_label="samples",
        )
        plot.steps(edges, nonmembers, color=NONMEMBER)
        plot.steps(edges, members, color=MEMBER)
        threshold = r.get("threshold")
        if is_number(threshold) and edges[0] <= threshold <= edges[-1]:
            plot.vline(threshold)
        about = (r.get("method"), r.get("layer"), r.get("detector"), r.get("protocol"))
        figures.append(figure(plot, " · ".join(str(v) for v in about if v)))
    return figures


def _depth_figures(results: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    figures = []
    for protocol, group in _by_protocol(results, names):
        swept = [r for r, _ in group if is_number(r.get("depth"))]
        if not swept:
            continue
        # rows without a depth become dashed lines: output-only rows and attacks, not other grids (gMINT)
        baselines = [r for r, _ in group if r.get("depth") is None and r.get("method") != "gmint"]
        series: dict[str, list[dict[str, Any]]] = {}
        for r in sorted(swept, key=lambda r: r["depth"]):  # one line per method and signal, whatever the detector
            series.setdefault(f"{r.get('method')}, {r.get('signal')}", []).append(r)
        depths = sorted({int(r["depth"]) for r in swept})
        for key, title in (("auc", "AUC"), ("accuracy", "Accuracy")):
            plot = Plot(
                (depths[0] - 0.5, depths[-1] + 0.5),
                _depth_y_range([*swept, *baselines], key),
                width=420,
                height=300,
                title=f"{title} by depth, {protocol}",
                x_label="tap depth (1 = first tapped layer)",
                y_label=title,
                x_ticks=[(d, str(d)) for d in depths],
            )
            plot.hline(0.5, color="#aaa", dash="2 3", text="chance")
            for i, (label, rs) in enumerate(series.items()):
                color, dash = series_style(i)
                xs = [r["depth"] for r in rs if is_number(metric(r, key))]
                ys = [metric(r, key) for r in rs if is_number(metric(r, key))]
                cis = [(r["depth"], interval(r, key)) for r in rs if interval(r, key)]
                plot.error_bars([d for d, _ in cis], [c[0] for _, c in cis], [c[1] for _, c in cis], color=color)
                plot.line(xs, ys, color=color, dash=dash, label=label)
                plot.points(xs, ys, color=color)
            for j, r in enumerate(baselines):
                value = metric(r, key)
                if is_number(value):
                    color, _ = series_style(len(series) + j)
                    name = str(r.get("label") or r.get("method"))
                    plot.hline(value, color=color, dash="6 4", label=f"{name} ({r.get('method')}, no depth)", text=name)
            figures.append(figure(plot, f"{title} with 95% intervals, protocol {protocol}."))
    return figures


def _depth_y_range(results: list[dict[str, Any]], key: str) -> tuple[float, float]:
    values = [0.5]
    for r in results:
        values += [v for v in (metric(r, key), *(interval(r, key) or ())) if is_number(v)]
    lo, hi = math.floor(min(values) * 20) / 20, math.ceil(max(values) * 20) / 20
    lo, hi = max(0.0, lo), min(1.0, hi)
    return min(lo, hi - 0.1), hi  # values include 0.5, so hi >= 0.5

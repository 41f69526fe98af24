"""The verdict section of the report page (``mintaudit test``): the sentence first, then the evidence."""

from __future__ import annotations

import math
from typing import Any

from mintaudit.report._format import kv_rows, value_text, DASH, fmt, is_number, pct
from mintaudit.report.figures import MEMBER, NONMEMBER, figure
from mintaudit.report.svg import Plot
from mintaudit.report.verdict_text import verdict_checks_view

__all__ = ["verdict_view"]


def verdict_view(verdict: Any) -> dict[str, Any] | None:
    """The verdict first, in words (a badge and the one-sentence conclusion), then the evidence."""
    if verdict is None:
        return None
    if not isinstance(verdict, dict) or not isinstance(verdict.get("sentence"), str):
        if isinstance(verdict, dict):
            return {"kind": "table", "rows": kv_rows(verdict)}
        return {"kind": "text", "text": value_text(verdict)}
    v = verdict
    n, m = v.get("n_query"), v.get("n_null")
    query, null = v.get("query") or {}, v.get("null_reference") or {}
    scored = _scored_by(v)
    out: dict[str, Any] = {
        "kind": "sentence",
        "reject": v.get("reject") is True,
        "sentence": v["sentence"],
        "question": None,
        "null": None,
        "mann_whitney": None,
        "binomial": None,
        "fraction": None,
        "per_sample": None,
        "error_rate": str(v.get("error_rate") or ""),
        "assumption": str(v.get("assumption") or ""),
        "decide": {
            "p": _p(v.get("p_value"), m),
            "decision": str(v.get("decision") or ""),
            "alpha": value_text(v.get("alpha")),
        },
        "figure": _verdictfigure(v),
        "choice": _choice(v.get("choice")),
        "why": str(v["choice"]["sentence"])
        if isinstance(v.get("choice"), dict) and v["choice"].get("sentence")
        else "",
        **verdict_checks_view(v),
    }
    if query or scored:
        about = query.get("description") or query.get("source")
        out["question"] = {"n": value_text(n), "about": str(about) if about else "", "by": scored}
    if null:
        out["null"] = {"n": value_text(null.get("n", m)), "source": str(null.get("source") or "held-out non-members")}
    mw = v.get("mann_whitney") or {}
    if mw:
        out["mann_whitney"] = {"auc": fmt(mw.get("auc")), "p": _p(mw.get("p_value"), m)}
    b = v.get("binomial") or {}
    if b:
        out["binomial"] = {
            "exceedances": value_text(b.get("exceedances")),
            "n": value_text(n),
            "null_rate": pct(b.get("null_rate")),
            "threshold": fmt(b.get("threshold"), 4),
            "expected": fmt(b.get("expected_under_null"), 1),
            "p": _p(b.get("p_value"), m),
            "p_binomtest": _p(b.get("p_value_binomtest"), m),
        }
    f = v.get("member_fraction") or {}
    if is_number(f.get("estimate")):
        ci = f.get("ci95") or [None, None]
        out["fraction"] = {
            "estimate": pct(f["estimate"]),
            "lo": pct(ci[0]),
            "hi": pct(ci[1]),
            "assumes": str(f.get("assumes", "")),
        }
    s = v.get("per_sample") or {}
    if s:
        out["per_sample"] = {
            "n_flagged_bh": value_text(s.get("n_flagged_bh")),
            "n": value_text(n),
            "fdr": pct(s.get("fdr")),
            "n_flagged_alpha": value_text(s.get("n_flagged_alpha")),
            "alpha": value_text(s.get("alpha")),
            "expected_false_flags": fmt(s.get("expected_false_flags_alpha"), 1),
            "n_null": value_text(m),
            "smallest": fmt(s.get("smallest_possible_p_value"), 5),
            "bh_resolution": _bh_resolution(s, n),
            "csv": str(s["csv"]) if s.get("csv") else "",
        }
    return out


def _p(p: Any, n_null: Any) -> str:
    """A p-value with the null reference's size beside it."""
    if not is_number(p):
        return DASH
    size = f" (n_null = {n_null:,})" if is_number(n_null) else ""
    return f"p = {p:.3g}{size}"


def _bh_resolution(s: dict[str, Any], n: Any) -> str:
    """A warning when the null is too small for Benjamini-Hochberg to flag a lone sample."""
    lone, smallest, fdr = s.get("bh_lone_threshold"), s.get("smallest_possible_p_value"), s.get("fdr")
    if not (is_number(lone) and is_number(smallest) and is_number(fdr) and is_number(n)) or smallest <= lone:
        return ""
    return (
        f" With {n} queries, Benjamini-Hochberg flags a lone sample only if its p-value is at most {fdr:g}/{n} = "
        f"{lone:.2g}, below the smallest possible p-value: a null reference of at least {math.ceil(n / fdr) - 1:,} "
        "non-members is needed to flag single samples."
    )


def _choice(c: Any) -> str:
    """How the method was chosen: one sentence (empty when it was given with --method)."""
    if not isinstance(c, dict) or c.get("given") or not isinstance(c.get("sentence"), str):
        return ""
    return c["sentence"]


def _scored_by(v: dict[str, Any]) -> str:
    method, layer, signal, detector = (v.get(k) for k in ("method", "layer", "signal", "detector"))
    if method == "loss":
        return "the LOSS attack (minus the loss on the true label)"
    if method == "passive-mint":
        model = f", {detector} MINT model" if detector else ""
        if layer in (None, "outputs"):
            return f"passive MINT on the output signals{model}"
        return f"passive MINT on the {signal or 'activations'} of layer {layer}{model}"
    if method != "amint" and isinstance(method, str) and detector and "attack" in str(detector):
        return f"the {detector}"
    return ", ".join(str(x) for x in (method, layer, signal) if x)


def _verdictfigure(v: dict[str, Any]) -> dict[str, Any] | None:
    h = v.get("histogram")
    if not isinstance(h, dict) or not h.get("edges"):
        return None
    edges = h["edges"]
    shares = {}
    for key in ("null", "query"):
        counts = h.get(key) or []
        total = sum(counts) or 1
        shares[key] = [c / total for c in counts]
    top = max([*shares["null"], *shares["query"], 0.01]) * 1.05
    plot = Plot(
        (edges[0], edges[-1]),
        (0.0, top),
        width=420,
        height=220,
        title="Query scores against the null reference",
        x_label="membership score",
        y_label="share of samples",
    )
    plot.steps(edges, shares["null"], color=NONMEMBER, label="null reference (non-members)")
    plot.steps(edges, shares["query"], color=MEMBER, label="query samples")
    b = v.get("binomial") or {}
    if is_number(b.get("threshold")) and edges[0] <= b["threshold"] <= edges[-1]:
        plot.vline(b["threshold"], label="exceedance threshold")
    return figure(
        plot,
        "Each side as a share of its own size. Under the null hypothesis the two shapes "
        "differ only by chance; members push the query shape to the right.",
    )

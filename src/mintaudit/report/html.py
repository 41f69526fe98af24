"""The report as ONE self-contained HTML page: inline CSS and SVG, no script, nothing fetched.

Every string taken from the report goes through :func:`html.escape`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from html import escape
from typing import Any

from mintaudit.report._format import DASH, fmt, interval, is_number, metric, pct, result_names
from mintaudit.report.schema import PROTOCOLS
from mintaudit.report.svg import GREY, Plot, series_style

__all__ = ["render_html"]

_MEMBER, _NONMEMBER = "#0072B2", "#E69F00"  # Okabe-Ito blue / orange
_PROTOCOL_TEXT = {
    "heldout-members": "members unseen by the MINT model (the honest setting for passive MINT)",
    "training-members": "members the MINT model was fitted on (the aMINT setting)",
}
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;background:#fafafa;margin:0}
main{max-width:1180px;margin:0 auto;padding:24px 28px 48px;background:#fff}
h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.25em;margin:32px 0 10px;border-bottom:1px solid #ddd;padding-bottom:4px}
.lead{color:#444;margin-top:4px}.muted{color:#666}.small{font-size:.85em}
table{border-collapse:collapse;font-size:.88em}th,td{padding:5px 8px;border-bottom:1px solid #e6e6e6;text-align:left;vertical-align:top}
th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.ci{display:block;color:#777;font-size:.82em}tr.best td{background:#eef6fb}
.kv{display:flex;gap:40px;flex-wrap:wrap}.kv table{min-width:260px}.kv th{background:none;color:#555;font-weight:600}
.verdict{border:2px solid #0072B2;border-radius:6px;padding:4px 16px 10px;background:#f3f8fc}
.verdict-text{font-size:1.12em;line-height:1.5}.verdict h3{font-size:1.02em;margin:14px 0 4px}.verdict li{margin:4px 0;line-height:1.45}
.badge{display:inline-block;font-size:.72em;padding:2px 10px;border-radius:10px;margin-left:10px;vertical-align:middle;color:#fff}
.badge.yes{background:#D55E00}.badge.no{background:#009E73}
.note{background:#f7f7f2;border-left:4px solid #999;padding:4px 16px}.note li{margin:4px 0}
.best-text{font-size:1.02em;line-height:1.5}
.figs{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}figure{margin:0}
figcaption{font-size:.85em;color:#555;max-width:640px;margin-top:4px}
.swatch{display:inline-block;width:12px;height:12px;vertical-align:middle;margin:0 4px 0 12px;opacity:.7}
details{margin:6px 0}summary{cursor:pointer;font-weight:600}
pre{background:#f4f4f4;padding:10px 12px;overflow-x:auto;font-size:.85em;white-space:pre-wrap;word-break:break-word}
"""


def render_html(report: dict[str, Any]) -> str:
    """Render a report (see :func:`~mintaudit.report.new_report`) as one self-contained HTML page.

    The page holds: title and dataset / model summary, the verdict (when there is one), a
    reading guide, the results table with 95% intervals, the best result in words, ROC curves
    on log-log axes (one figure per protocol), member / non-member score histograms (one per
    result), metrics against tap depth with baselines as dashed lines (one figure per
    protocol), and how the report was made.

    Args:
        report: a report dict; missing or null values are shown as a dash.

    Returns:
        The HTML document as a string (UTF-8 when written).
    """
    results = [r for r in report.get("results") or [] if isinstance(r, dict)]
    names = result_names(results)
    dataset, model = report.get("dataset") or {}, report.get("model") or {}
    title = f"Membership audit: {model.get('name', 'model')} on {dataset.get('name', 'data')}"
    sections = [
        f"<h1>{escape(title)}</h1>",
        '<p class="lead">Were these data used to train this model? The audit compares how the model treats '
        "samples it was trained on (<b>members</b>) with samples it never saw (<b>non-members</b>).</p>",
        _verdict(report.get("verdict")),
        '<div class="kv">' + _kv_table("Data", dataset) + _kv_table("Model", model) + "</div>",
        _reading_guide(),
        _results_table(results, names),
        _dp_section(report, results, names),
        _active_section(results),
        _best(results, names),
        _roc_section(results, names),
        _histogram_section(results, names),
        _depth_section(results, names),
        _slices_section(results, names),
        _provenance(report),
    ]
    body = "\n".join(s for s in sections if s)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


# ---------------------------------------------------------------------------------------------
# text sections


def _value(v: Any) -> str:
    """A report value as escaped text: numbers rounded, containers as compact JSON."""
    if isinstance(v, float):
        return escape(f"{v:.4g}") if math.isfinite(v) else DASH
    if isinstance(v, (dict, list)):
        return escape(json.dumps(v, default=str))
    return DASH if v is None else escape(str(v))


def _kv_table(title: str, items: dict[str, Any]) -> str:
    rows = "".join(f"<tr><th>{escape(str(k))}</th><td>{_value(v)}</td></tr>" for k, v in items.items())
    return (
        f"<section><h2>{escape(title)}</h2><table>{rows or '<tr><td>(not given)</td></tr>'}</table></section>"
    )


def _verdict(verdict: Any) -> str:
    """The verdict first, in words (a badge and the one-sentence conclusion), then the evidence."""
    if verdict is None:
        return ""
    if not isinstance(verdict, dict) or not isinstance(verdict.get("sentence"), str):
        inner = (
            "<table>"
            + "".join(f"<tr><th>{escape(str(k))}</th><td>{_value(v)}</td></tr>" for k, v in verdict.items())
            + "</table>"
            if isinstance(verdict, dict)
            else f"<p>{_value(verdict)}</p>"
        )
        return f'<section class="verdict"><h2>Verdict</h2>{inner}</section>'
    reject = verdict.get("reject") is True
    badge = (
        '<span class="badge yes">Evidence of use</span>' if reject else '<span class="badge no">No evidence of use</span>'
    )
    return (
        f'<section class="verdict"><h2>Verdict {badge}</h2>'
        f'<p class="verdict-text">{escape(verdict["sentence"])}</p>'
        f"<h3>Evidence</h3><ul>{''.join(_verdict_evidence(verdict))}</ul>{_verdict_figure(verdict)}</section>"
    )


def _p(p: Any, n_null: Any) -> str:
    """A p-value with the null reference's size beside it."""
    if not is_number(p):
        return DASH
    size = f" (n_null = {n_null:,})" if is_number(n_null) else ""
    return escape(f"p = {p:.3g}{size}")


def _verdict_evidence(v: dict[str, Any]) -> Iterator[str]:
    n, m = v.get("n_query"), v.get("n_null")
    query, null = v.get("query") or {}, v.get("null_reference") or {}
    scored = _scored_by(v)
    if query or scored:
        about = query.get("description") or query.get("source")
        about = f" ({escape(str(about))})" if about else ""
        by = f", scored by {escape(scored)}" if scored else ""
        yield f"<li><b>Question</b>: were these {_value(n)} samples{about}, or some of them, used to train the model{by}?</li>"
    if null:
        yield f"<li><b>Null reference</b>: {_value(null.get('n', m))} {escape(str(null.get('source') or 'held-out non-members'))}.</li>"
    decision = str(v.get("decision") or "")
    how = {
        "bonferroni": "the smaller of the two p-values below, doubled (Bonferroni)",
        "mann-whitney": "the Mann-Whitney U test's",
        "binomial": "the exact binomial test's",
    }.get(decision, escape(decision))
    yield (
        f"<li><b>Deciding p-value</b>: {_p(v.get('p_value'), m)}, {how}; the test rejects when p &le; alpha = "
        f"{_value(v.get('alpha'))}.</li>"
    )
    mw = v.get("mann_whitney") or {}
    if mw:
        yield (
            f"<li><b>Mann-Whitney U</b> (one-sided): a query sample outscores a null sample with probability "
            f"{fmt(mw.get('auc'))} (0.5 when the queries are like non-members); {_p(mw.get('p_value'), m)}.</li>"
        )
    b = v.get("binomial") or {}
    if b:
        yield (
            f"<li><b>Exceedances</b> (exact binomial test, one-sided): {_value(b.get('exceedances'))} of {_value(n)} queries "
            f"score above the null's top-{pct(b.get('null_rate'))} threshold ({fmt(b.get('threshold'), 4)}), where "
            f"{fmt(b.get('expected_under_null'), 1)} are expected if none is a member; exact {_p(b.get('p_value'), m)}; "
            f"a plain binomial test, which treats the threshold as exact, gives {_p(b.get('p_value_binomtest'), m)}.</li>"
        )
    f = v.get("member_fraction") or {}
    if is_number(f.get("estimate")):
        ci = f.get("ci95") or [None, None]
        yield (
            f"<li><b>Share of members among the queries</b>: about {pct(f['estimate'])} (95% interval {pct(ci[0])} to "
            f"{pct(ci[1])}); it assumes {escape(str(f.get('assumes', '')))}.</li>"
        )
    s = v.get("per_sample") or {}
    if s:
        csv = f" Each sample's score, p-value and flags are in <code>{escape(str(s['csv']))}</code>." if s.get("csv") else ""
        yield (
            f"<li><b>Per sample</b>: {_value(s.get('n_flagged_bh'))} of {_value(n)} flagged as members with the false "
            f"discovery rate controlled at {pct(s.get('fdr'))} (Benjamini-Hochberg); {_value(s.get('n_flagged_alpha'))} "
            f"flagged at the per-sample level {_value(s.get('alpha'))}, where about "
            f"{fmt(s.get('expected_false_flags_alpha'), 1)} false flags are expected if none is a member. Per-sample "
            f"p-values are conformal, against the same {_value(m)} non-members (smallest possible: "
            f"{fmt(s.get('smallest_possible_p_value'), 5)}).{_bh_resolution(s, n)}{csv}</li>"
        )
    if v.get("error_rate"):
        yield f"<li><b>Error rate controlled</b>: {escape(str(v['error_rate']))}.</li>"
    if v.get("assumption"):
        yield f"<li><b>Assumption</b>: {escape(str(v['assumption']))}.</li>"


def _bh_resolution(s: dict[str, Any], n: Any) -> str:
    """A warning when the null is too small for Benjamini-Hochberg to flag a lone sample."""
    lone, smallest, fdr = s.get("bh_lone_threshold"), s.get("smallest_possible_p_value"), s.get("fdr")
    if not (is_number(lone) and is_number(smallest) and is_number(fdr) and is_number(n)) or smallest <= lone:
        return ""
    return escape(
        f" With {n} queries, Benjamini-Hochberg flags a lone sample only if its p-value is at most {fdr:g}/{n} = "
        f"{lone:.2g}, below the smallest possible p-value: a null reference of at least {math.ceil(n / fdr) - 1:,} "
        "non-members is needed to flag single samples."
    )


def _scored_by(v: dict[str, Any]) -> str:
    method, layer, signal, detector = (v.get(k) for k in ("method", "layer", "signal", "detector"))
    if method == "loss":
        return "the LOSS attack (minus the loss on the true label)"
    if method == "passive-mint":
        model = f", {detector} MINT model" if detector else ""
        if layer in (None, "outputs"):
            return f"passive MINT on the output signals{model}"
        return f"passive MINT on the {signal or 'activations'} of layer {layer}{model}"
    return ", ".join(str(x) for x in (method, layer, signal) if x)


def _verdict_figure(v: dict[str, Any]) -> str:
    h = v.get("histogram")
    if not isinstance(h, dict) or not h.get("edges"):
        return ""
    edges = h["edges"]
    shares = {}
    for key in ("null", "query"):
        counts = h.get(key) or []
        total = sum(counts) or 1
        shares[key] = [c / total for c in counts]
    top = max([*shares["null"], *shares["query"], 0.01]) * 1.05
    plot = Plot((edges[0], edges[-1]), (0.0, top), width=420, height=220, title="Query scores against the null reference",
                x_label="membership score", y_label="share of samples")
    plot.steps(edges, shares["null"], color=_NONMEMBER, label="null reference (non-members)")
    plot.steps(edges, shares["query"], color=_MEMBER, label="query samples")
    b = v.get("binomial") or {}
    if is_number(b.get("threshold")) and edges[0] <= b["threshold"] <= edges[-1]:
        plot.vline(b["threshold"], label="exceedance threshold")
    return _figure(plot.render(), "Each side as a share of its own size. Under the null hypothesis the two shapes "
                   "differ only by chance; members push the query shape to the right.")


def _reading_guide() -> str:
    protocols = "".join(f"<li><b>{escape(p)}</b>: {escape(t)}</li>" for p, t in _PROTOCOL_TEXT.items())
    return (
        '<section class="note"><h2>How to read this</h2><ul>'
        "<li>Each method gives every sample a <b>membership score</b>; higher means &ldquo;more likely used in training&rdquo;.</li>"
        "<li><b>AUC</b>: the chance that a random member scores higher than a random non-member. "
        "<b>0.5 is chance</b> (no sign of membership), 1.0 means members are recognised perfectly.</li>"
        "<li><b>Accuracy</b>: the share of samples classified correctly when &ldquo;score &ge; threshold&rdquo; means member. "
        "Both sides are balanced, so chance is 50%. <b>Precision</b>: of the samples called members, the share that are; "
        "<b>recall</b>: of the members, the share found.</li>"
        "<li><b>TPR@1% / TPR@0.1%</b>: the share of members recognised while wrongly flagging only 1% / 0.1% of "
        "non-members; what matters for confident claims about individual samples.</li>"
        "<li>Grey numbers in brackets are <b>95% bootstrap intervals</b>. An AUC interval that includes 0.5 is compatible with chance.</li>"
        "<li><b>&epsilon; LB</b>: a lower bound on the epsilon of differential privacy: if training was (&epsilon;, &delta;)-DP, "
        "then &epsilon; is at least this, with the stated confidence (Clopper-Pearson bounds on TPR and FPR at a threshold "
        "chosen on one half of the scores, evaluated on the other half). 0 means no leakage this test can certify.</li>"
        f"<li><b>Protocol</b> (never mixed in one figure):<ul>{protocols}</ul></li>"
        "</ul></section>"
    )


_TABLE_METRICS = (
    ("accuracy",),
    ("precision",),
    ("recall",),
    ("auc",),
    ("tpr_at_fpr", "0.01"),
    ("tpr_at_fpr", "0.001"),
)


def _cell(result: dict[str, Any], key: str, fpr: str | None = None) -> str:
    ci = interval(result, key, fpr)
    bounds = f'<span class="ci">[{ci[0]:.3f}, {ci[1]:.3f}]</span>' if ci else ""
    return f'<td class="num">{fmt(metric(result, key, fpr))}{bounds}</td>'


def _eps_cell(result: dict[str, Any]) -> str:
    """The epsilon lower bound with its delta and confidence underneath, or a dash (with the reason as a tooltip)."""
    bound = result.get("epsilon_lower_bound")
    if not isinstance(bound, dict):
        return f'<td class="num">{DASH}</td>'
    note = f' title="{escape(str(bound["note"]))}"' if bound.get("note") else ""
    if not is_number(bound.get("epsilon")):
        return f'<td class="num"{note}>{DASH}</td>'
    delta, conf = bound.get("delta"), bound.get("confidence")
    about = (f'<span class="ci">&delta;={delta:.0e}, {100 * conf:g}%</span>'
             if is_number(delta) and is_number(conf) else "")
    return f'<td class="num"{note}>{bound["epsilon"]:.2f}{about}</td>'


def _dp_section(report: dict[str, Any], results: list[dict[str, Any]], names: list[str]) -> str:
    """The DP-SGD claim (model.json's accountant epsilon) beside the measured lower bounds, and the one-run audit."""
    claim = (report.get("model") or {}).get("dp")
    audit = report.get("dp_audit")
    rows = []
    if isinstance(claim, dict):
        bounds = [(r["epsilon_lower_bound"]["epsilon"], n) for r, n in zip(results, names)
                  if isinstance(r.get("epsilon_lower_bound"), dict) and is_number(r["epsilon_lower_bound"].get("epsilon"))]
        top = max(bounds, key=lambda b: b[0]) if bounds else None
        spent = claim.get("epsilon_spent")
        verdict = ""
        if top is not None and is_number(spent):
            verdict = (" (consistent with the claim: the bound is below it)" if top[0] <= spent
                       else " (<b>above the claim</b>: the claimed epsilon cannot hold)")
        rows.append(
            f"<tr><th>Audited model (DP-SGD, {escape(str(claim.get('accountant')))} accountant)</th>"
            f"<td class='num'>{fmt(spent, 3)}<span class='ci'>target {escape(str(claim.get('epsilon_target')))}, "
            f"&delta;={escape(str(claim.get('delta')))}, clip {escape(str(claim.get('max_grad_norm')))}</span></td>"
            f"<td class='num'>{fmt(top[0], 2) if top else DASH}<span class='ci'>"
            f"{escape(top[1]) + ', the largest of ' + str(len(bounds)) + ' results' if top else 'no bound measured'}"
            f"</span></td><td>{verdict}</td></tr>")
    if isinstance(audit, dict):
        aclaim = (audit.get("model") or {}).get("dp")
        spent = aclaim.get("epsilon_spent") if isinstance(aclaim, dict) else None
        note = ""
        if is_number(spent) and is_number(audit.get("epsilon")):
            note = ("consistent with the claim" if audit["epsilon"] <= spent else "<b>above the claim</b>")
        rows.append(
            f"<tr><th>One-run canary audit ({escape(str(audit.get('method')))}, {escape(str(audit.get('m')))} canaries, "
            f"{escape(str(audit.get('correct')))} of {escape(str(audit.get('guesses')))} guesses right)</th>"
            f"<td class='num'>{fmt(spent, 3) if is_number(spent) else 'no DP'}</td>"
            f"<td class='num'>{fmt(audit.get('epsilon'), 2)}<span class='ci'>&delta;={escape(str(audit.get('delta')))}, "
            f"{escape(str(audit.get('confidence')))} confidence</span></td><td>{note}</td></tr>")
    if not rows:
        return ""
    return ("<section><h2>Differential privacy: claimed and measured &epsilon;</h2><table><tr><th></th>"
            "<th>Claimed &epsilon; (accountant)</th><th>Measured &epsilon; lower bound</th><th></th></tr>"
            f"{''.join(rows)}</table><p class='muted small'>A lower bound above the accountant's epsilon would "
            "contradict the DP claim; one below it is consistent with it (it does not prove it).</p></section>")


def _active_section(results: list[dict[str, Any]]) -> str:
    """Passive vs active MINT on the same backbone: the aMINT papers' comparison table."""
    amint = [r for r in results if r.get("method") == "amint"]
    if not amint:
        return ""
    rows = []
    for a in amint:
        plain = next((r for r in results if r.get("audited_model") == "plain" and r.get("setup") == a.get("setup")
                      and r.get("protocol") == "training-members"), None)
        lo_hi = a.get("calibrated_accuracy_ci95") or [None, None]
        cal = fmt(a.get("calibrated_accuracy")) + (
            f'<span class="ci">[{lo_hi[0]:.3f}, {lo_hi[1]:.3f}]</span>' if all(is_number(v) for v in lo_hi) else "")
        rows.append(
            "<tr>"
            f"<td><b>{escape(str(a.get('setup') or DASH))}</b><span class=\"ci\">{escape(str(a.get('layer') or ''))}</span>"
            + (f'<span class="ci">membership gradient into the backbone x{a["mint_grad_scale"]:g}</span>'
               if is_number(a.get("mint_grad_scale")) and a["mint_grad_scale"] != 1 else "") + "</td>"
            + (_cell(plain, "accuracy") if plain else f"<td>{DASH}</td>")
            + _cell(a, "accuracy") + f'<td class="num">{cal}</td>' + _cell(a, "auc") + _cell(a, "tpr_at_fpr", "0.01")
            + f'<td class="num">{fmt(plain.get("aud")) if plain else DASH} &rarr; {fmt(a.get("aud"))}</td></tr>'
        )
    return (
        "<section><h2>Passive vs active MINT</h2><p>The same backbone trained plainly (audited with passive MINT at the "
        "setup's last tap fused with its outputs) and trained with a MINT head (aMINT), for the same budget; both "
        "scored on the training members against the test split (protocol training-members). Accuracy at 0.5 is the "
        "published convention; calibrated accuracy uses the threshold the delivered model carries, set on held-out "
        "external samples no training step saw. Aud = task accuracy on the test split.</p>"
        "<table><tr><th>Setup</th><th>Passive accuracy</th><th>aMINT accuracy @0.5</th><th>aMINT calibrated accuracy</th>"
        "<th>aMINT AUC</th><th>aMINT TPR@1% FPR</th><th>Aud plain &rarr; aMINT</th></tr>" + "".join(rows) + "</table></section>"
    )


def _results_table(results: list[dict[str, Any]], names: list[str]) -> str:
    if not results:
        return "<section><h2>Results</h2><p>No results yet.</p></section>"
    best = {id(r) for r, _ in _best_per_protocol(results, names)}
    head = (
        "<tr><th>Result</th><th>Method</th><th>Detector</th><th>Protocol</th><th>Accuracy</th><th>Precision</th>"
        "<th>Recall</th><th>AUC</th><th>TPR@1% FPR</th><th>TPR@0.1% FPR</th><th>&epsilon; LB</th>"
        "<th>Members / non-members</th></tr>"
    )
    rows = []
    for r, name in zip(results, names):
        layer = r.get("layer")
        where = f'<span class="ci">{escape(str(layer))}</span>' if layer and str(layer) != name else ""
        cells = [
            f"<td><b>{escape(name)}</b>{where}</td>",
            *(f"<td>{escape(str(r.get(key) or DASH))}</td>" for key in ("method", "detector", "protocol")),
            *(_cell(r, *key) for key in _TABLE_METRICS),
            _eps_cell(r),
            f'<td class="num">{_value(r.get("n_members"))} / {_value(r.get("n_nonmembers"))}</td>',
        ]
        rows.append(("<tr class='best'>" if id(r) in best else "<tr>") + "".join(cells) + "</tr>")
    by_threshold: dict[str, list[str]] = {}
    for r, name in zip(results, names):
        if is_number(r.get("threshold")):
            by_threshold.setdefault(f"{r['threshold']:g}", []).append(name)
    if len(by_threshold) == 1:
        note = f"Accuracy, precision and recall at threshold {escape(next(iter(by_threshold)))}. "
    elif by_threshold:
        each = "; ".join(f"{t} for {', '.join(ns)}" for t, ns in by_threshold.items())
        note = f"Accuracy, precision and recall at each result's threshold: {escape(each)}. "
    else:
        note = ""
    return (
        f"<section><h2>Results</h2><table>{head}{''.join(rows)}</table>"
        f'<p class="muted small">{note}Highlighted: the highest AUC of each protocol.</p></section>'
    )


def _best_per_protocol(
    results: list[dict[str, Any]], names: list[str]
) -> Iterator[tuple[dict[str, Any], str]]:
    for _, group in _by_protocol(results, names):
        scored = [(r, n) for r, n in group if is_number(metric(r, "auc"))]
        if scored:
            yield max(scored, key=lambda rn: metric(rn[0], "auc"))


def _best(results: list[dict[str, Any]], names: list[str]) -> str:
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
        ci_text = f" (95% interval {ci[0]:.3f} to {ci[1]:.3f})" if ci else ""
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
        at = f" at threshold {threshold:g}" if is_number(threshold) else ""
        paragraphs.append(
            f'<p class="best-text">Protocol <b>{escape(str(r.get("protocol")))}</b>: the strongest membership signal '
            f"comes from <b>{escape(name)}</b>{f' ({escape(details)})' if details else ''}, with AUC {auc:.3f}{ci_text} and "
            f"{pct(metric(r, 'accuracy'))} accuracy{at}. At a 1% false-positive rate it recognises "
            f"{pct(metric(r, 'tpr_at_fpr', '0.01'))} of members.{escape(meaning)}</p>"
        )
    return f"<section><h2>Best result</h2>{''.join(paragraphs)}</section>" if paragraphs else ""


def _provenance(report: dict[str, Any]) -> str:
    config = json.dumps(report.get("config") or {}, indent=2, sort_keys=True, default=str)
    rows = "".join(
        f"<tr><th>{label}</th><td>{_value(report.get(key))}</td></tr>"
        for label, key in (
            ("Schema", "schema"),
            ("mintaudit version", "mintaudit_version"),
            ("Created (UTC)", "created"),
        )
    )
    return (
        "<section><h2>How this was made</h2><p>Command:</p>"
        f"<pre>{escape(str(report.get('command') or DASH))}</pre><p>Configuration:</p><pre>{escape(config)}</pre>"
        f"<table>{rows}</table></section>"
    )


# ---------------------------------------------------------------------------------------------
# figures


def _by_protocol(
    results: list[dict[str, Any]], names: list[str]
) -> Iterator[tuple[str, list[tuple[dict[str, Any], str]]]]:
    """(protocol, [(result, name), ...]) in a fixed protocol order, unknown protocols last."""
    found = list(dict.fromkeys(str(r.get("protocol")) for r in results))
    for protocol in [p for p in PROTOCOLS if p in found] + [p for p in found if p not in PROTOCOLS]:
        yield protocol, [(r, n) for r, n in zip(results, names) if str(r.get("protocol")) == protocol]


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{caption}</figcaption></figure>"


def _roc_section(results: list[dict[str, Any]], names: list[str]) -> str:
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
        figures.append(
            _figure(
                plot.render(), f"Protocol {escape(protocol)}: {escape(_PROTOCOL_TEXT.get(protocol, ''))}."
            )
        )
    if not figures:
        return ""
    return (
        "<section><h2>ROC curves</h2><p>How many members each method finds (up) for how many non-members it wrongly "
        "flags (right). Both axes are logarithmic, to show the low false-positive region that matters for confident "
        "claims; the dashed diagonal is chance. Higher and further left is better.</p>"
        f'<div class="figs">{"".join(figures)}</div></section>'
    )


def _histogram_section(results: list[dict[str, Any]], names: list[str]) -> str:
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
        plot.steps(edges, nonmembers, color=_NONMEMBER)
        plot.steps(edges, members, color=_MEMBER)
        threshold = r.get("threshold")
        if is_number(threshold) and edges[0] <= threshold <= edges[-1]:
            plot.vline(threshold)
        about = (r.get("method"), r.get("layer"), r.get("detector"), r.get("protocol"))
        figures.append(_figure(plot.render(), escape(" · ".join(str(v) for v in about if v))))
    if not figures:
        return ""
    return (
        "<section><h2>Score distributions</h2><p>Scores of "
        f'<span class="swatch" style="background:{_MEMBER}"></span>members and '
        f'<span class="swatch" style="background:{_NONMEMBER}"></span>non-members; the dashed line is the decision '
        "threshold. The less the two shapes overlap, the more the method can tell them apart.</p>"
        f'<div class="figs">{"".join(figures)}</div></section>'
    )


def _depth_section(results: list[dict[str, Any]], names: list[str]) -> str:
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
                plot.error_bars(
                    [d for d, _ in cis], [c[0] for _, c in cis], [c[1] for _, c in cis], color=color
                )
                plot.line(xs, ys, color=color, dash=dash, label=label)
                plot.points(xs, ys, color=color)
            for j, r in enumerate(baselines):
                value = metric(r, key)
                if is_number(value):
                    color, _ = series_style(len(series) + j)
                    name = str(r.get("label") or r.get("method"))
                    plot.hline(value, color=color, dash="6 4", label=f"{name} ({r.get('method')}, no depth)", text=name)
            figures.append(
                _figure(plot.render(), f"{title} with 95% intervals, protocol {escape(protocol)}.")
            )
    if not figures:
        return ""
    return (
        "<section><h2>Where in the model</h2><p>The metric for each tapped layer by its depth (1 = the first tapped layer); "
        "bars are 95% intervals. Baselines that do not look inside the model are dashed horizontal lines.</p>"
        f'<div class="figs">{"".join(figures)}</div></section>'
    )


def _depth_y_range(results: list[dict[str, Any]], key: str) -> tuple[float, float]:
    values = [0.5]
    for r in results:
        values += [v for v in (metric(r, key), *(interval(r, key) or ())) if is_number(v)]
    lo, hi = math.floor(min(values) * 20) / 20, math.ceil(max(values) * 20) / 20
    lo, hi = max(0.0, lo), min(1.0, hi)
    return min(lo, hi - 0.1), hi  # values include 0.5, so hi >= 0.5


# ---------------------------------------------------------------------------------------------
# slices


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


def _slice_plot(result: dict[str, Any], name: str, parts: list[tuple[str, str, dict[str, Any]]]) -> str:
    """AUC per slice with its 95% interval, the whole result's AUC and chance as rules."""
    xs = list(range(1, len(parts) + 1))
    values = [0.5, *(v for v in [metric(result, "auc")] if is_number(v))]
    for _, _, part in parts:
        values += [v for v in (metric(part, "auc"), *(interval(part, "auc") or ())) if is_number(v)]
    lo, hi = max(0.0, math.floor(min(values) * 10) / 10), min(1.0, math.ceil(max(values) * 10) / 10)
    plot = Plot((0.4, len(parts) + 0.6), (min(lo, hi - 0.1), hi), width=max(220, 26 * len(parts) + 80), height=190,
                title=name, x_label="slice", y_label="AUC", x_ticks=[(x, t) for x, (t, _, _) in zip(xs, parts)])
    plot.hline(0.5, color="#aaa", dash="2 3")
    if is_number(metric(result, "auc")):
        plot.hline(metric(result, "auc"), color=_NONMEMBER, dash="6 4", text="all")
    cis = [(x, interval(p, "auc")) for x, (_, _, p) in zip(xs, parts) if interval(p, "auc")]
    plot.error_bars([x for x, _ in cis], [c[0] for _, c in cis], [c[1] for _, c in cis], color=_MEMBER)
    pts = [(x, metric(p, "auc")) for x, (_, _, p) in zip(xs, parts) if is_number(metric(p, "auc"))]
    plot.points([x for x, _ in pts], [y for _, y in pts], color=_MEMBER)
    return plot.render()


def _slices_section(results: list[dict[str, Any]], names: list[str]) -> str:
    sliced = [(r, n, _slice_parts(r["slices"])) for r, n in zip(results, names) if isinstance(r.get("slices"), dict)]
    sliced = [(r, n, parts) for r, n, parts in sliced if parts]
    if not sliced:
        return ""
    figures = [_figure(_slice_plot(r, n, parts), escape(f"{r.get('method')} · {r.get('protocol')}")) for r, n, parts in sliced]
    tables = []
    for r, n, parts in sliced:
        rows = "".join(
            f"<tr><td>{escape(text)}</td>"
            f'<td class="num">{_value(p.get("n_members"))} / {_value(p.get("n_nonmembers"))}</td>'
            + "".join(_cell(p, *key) for key in (("accuracy",), ("auc",), ("tpr_at_fpr", "0.01")))
            + _eps_cell(p) + "</tr>"
            for _, text, p in parts
        )
        tables.append(
            f"<details><summary>{escape(n)}</summary><table><tr><th>Slice</th><th>Members / non-members</th>"
            f"<th>Accuracy</th><th>AUC</th><th>TPR@1% FPR</th><th>&epsilon; LB</th></tr>{rows}</table></details>"
        )
    missing = [n for r, n in zip(results, names) if not isinstance(r.get("slices"), dict)]
    absent = (f'<p class="muted small">No slices for {escape(", ".join(missing))}: the method gave no labels or '
              "correctness of its scored samples.</p>") if missing else ""
    return (
        "<section><h2>Slices</h2><p>Each result again, on the samples of one true class, and on the samples the audited "
        "model classifies correctly (ok) or wrongly. Slices are parts of the evaluated (balanced) sets, not rebalanced; "
        "small slices have wide intervals. Dots: AUC per slice with 95% intervals; dashed orange: the whole result; "
        "dotted grey: chance.</p>"
        f'<div class="figs">{"".join(figures)}</div>{"".join(tables)}{absent}</section>'
    )

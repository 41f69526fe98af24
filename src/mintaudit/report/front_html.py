"""The top of the report page: the answer first (every verdict, the latest open), then the best method of each family.

The page's first section is the verdict of the latest ``mintaudit test`` (``report["verdict"]``),
with the earlier ones of ``report["verdicts"]`` (other queries or methods) folded under it; when
there is none, one sentence says so and gives the command that makes one. The second section has
one row per family of methods (passive MINT, gMINT, aMINT, the attacks): its best result by AUC.
"""

from __future__ import annotations

import shlex
from typing import Any

from mintaudit.report._format import DASH, is_number, metric, metric_cell, value_text
from mintaudit.report.verdict_html import verdict_view

__all__ = ["FAMILIES", "family_of", "families_view", "verdicts_view"]

FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Passive MINT", ("passive-mint", "calibrated-mint")),
    ("gMINT", ("gmint",)),
    ("aMINT", ("amint",)),
    ("Attacks", ()),  # every other method: loss, confidence, entropy, calibrated-loss, shokri, lira, rmia, plug-ins
)
"""(family, its report methods), in the order of the page; the last family takes every method not listed."""

# The protocol a family's best row is taken from first: the honest one for passive MINT and the attacks.
_PROTOCOL_ORDER = ("heldout-members", "training-members")


def family_of(method: Any) -> str:
    """The family of a report ``method``: ``"Passive MINT"``, ``"gMINT"``, ``"aMINT"`` or ``"Attacks"``."""
    for family, methods in FAMILIES:
        if method in methods:
            return family
    return FAMILIES[-1][0]


def verdicts_view(report: dict[str, Any]) -> dict[str, Any]:
    """The first section's data: the latest verdict, the other kept verdicts, and the command that makes one.

    Returns:
        ``{"latest": verdict_view(...) or None, "others": [{"query", "view"}, ...], "command": str}``;
        ``command`` is ``mintaudit test`` on the report's own output folder when its command names one.
    """
    latest = report.get("verdict")
    kept = [v for v in report.get("verdicts") or [] if isinstance(v, dict)]
    others = [v for v in kept if v != latest]
    return {
        "latest": verdict_view(latest),
        "others": [{"query": _query_text(v), "view": verdict_view(v)} for v in reversed(others)],
        "command": f"mintaudit test --out {_out_dir(report.get('command'))} --query suspects.txt",
    }


def families_view(results: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    """One row per family present: its best result (the first protocol of ``_PROTOCOL_ORDER`` it has, highest AUC).

    Args:
        results: the report's result rows; names: their display names (``result_names``).

    Returns:
        ``[{"family", "name", "detail", "protocol", "auc", "tpr", "of"}]``, ``auc`` and ``tpr`` (at 1% FPR)
        as ``metric_cell`` values with their 95% intervals, ``of`` the number of the family's rows.
    """
    rows = []
    for family, _ in FAMILIES:
        group = [(r, n) for r, n in zip(results, names) if family_of(r.get("method")) == family]
        scored = [(r, n) for r, n in group if is_number(metric(r, "auc"))]
        if not scored:
            continue
        protocols = [p for p in _PROTOCOL_ORDER if any(r.get("protocol") == p for r, _ in scored)]
        if protocols:
            scored = [(r, n) for r, n in scored if r.get("protocol") == protocols[0]]
        r, name = max(scored, key=lambda rn: metric(rn[0], "auc"))
        detail = [str(r.get("method") or "")]
        if r.get("layer") and str(r["layer"]) != name:
            detail.append(f"layer {r['layer']}")
        if r.get("detector"):
            detail.append(f"{r['detector']} detector")
        rows.append(
            {
                "family": family,
                "name": name,
                "detail": ", ".join(d for d in detail if d),
                "protocol": str(r.get("protocol") or DASH),
                "auc": metric_cell(r, "auc"),
                "tpr": metric_cell(r, "tpr_at_fpr", "0.01"),
                "of": len(group),
            }
        )
    return rows


def _query_text(v: dict[str, Any]) -> str:
    """What a verdict asked about, in a few words (its query's description or source, and its method)."""
    query = v.get("query") if isinstance(v.get("query"), dict) else {}
    about = query.get("source") or query.get("description") or "query"
    n = v.get("n_query", query.get("n"))
    size = f"{value_text(n)} samples, " if n is not None else ""
    return f"{about} ({size}{v.get('method') or 'method not recorded'})"


def _out_dir(command: Any) -> str:
    """The ``--out`` folder of the report's command (a string or an argument list), else ``OUT``."""
    if isinstance(command, str):
        try:
            argv = shlex.split(command)
        except ValueError:
            return "OUT"
    elif isinstance(command, (list, tuple)):
        argv = [str(a) for a in command]
    else:
        return "OUT"
    for i, arg in enumerate(argv):
        if arg == "--out" and i + 1 < len(argv):
            return shlex.quote(argv[i + 1])
        if arg.startswith("--out="):
            return shlex.quote(arg[len("--out=") :])
    return "OUT"

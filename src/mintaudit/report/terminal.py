"""The results of a report as a fixed-width plain-text table, for the terminal."""

from __future__ import annotations

from typing import Any

from mintaudit.report._format import fmt, interval, metric
from mintaudit.report.sections import dp_audit_of

__all__ = ["format_table", "dp_lines"]

_MAX_NAME = 32
_SHORT_PROTOCOL = {"heldout-members": "heldout", "training-members": "training"}


def format_table(report: dict[str, Any]) -> str:
    """One line per result: name (label), layer, signal (detector), method, protocol, accuracy, AUC with its 95%
    interval, TPR at 1% FPR, the epsilon lower bound and the sizes of both sides.

    Args:
        report: a report dict (see :func:`~mintaudit.report.new_report`).

    Returns:
        The table, lines joined by newlines, without a trailing newline; missing values are dashes.

    Example:
        >>> print(format_table({"results": []}))
        (no results)
    """
    results = [r for r in report.get("results") or [] if isinstance(r, dict)]
    if not results:
        return "\n".join(["(no results)", *dp_lines(report, [])])
    rows = [("result", "layer", "signal", "method", "protocol", "acc", "auc [95% CI]", "tpr@1%", "eps LB", "n (m/nm)")]
    for r in results:
        ci = interval(r, "auc")
        protocol = str(r.get("protocol", "-"))
        name = str(r.get("label") or r.get("layer") or r.get("method") or "?")
        layer = str(r.get("layer") or "-")
        mode = f" [{r['tap_mode']}]" if r.get("tap_mode") else ""  # a reduced tap's storage mode
        rows.append(
            (
                name if len(name) <= _MAX_NAME else name[: _MAX_NAME - 1] + "…",
                (layer if len(layer) <= _MAX_NAME else layer[: _MAX_NAME - 1] + "…") + mode,
                f"{r.get('signal', '-')} ({r.get('detector', '-')})",
                str(r.get("method", "-")),
                _SHORT_PROTOCOL.get(protocol, protocol),
                fmt(metric(r, "accuracy")),
                fmt(metric(r, "auc")) + (f" [{ci[0]:.3f}-{ci[1]:.3f}]" if ci else ""),
                fmt(metric(r, "tpr_at_fpr", "0.01")),
                fmt(bound.get("epsilon") if isinstance(bound := r.get("epsilon_lower_bound"), dict) else None, 2),
                f"{r.get('n_members', '-')}/{r.get('n_nonmembers', '-')}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    numeric = {5, 7, 8}  # right-aligned columns
    lines = [
        "  ".join(c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r, row in zip(results, rows[1:]):  # a row's warnings in words (e.g. a small sample), under the table
        for note in r.get("warnings") or []:
            lines.append(f"! {row[0].strip()}: {note}")
    lines += dp_lines(report, results)
    return "\n".join(lines)


def dp_lines(report: dict[str, Any], results: list[dict[str, Any]] | None = None) -> list[str]:
    """The DP-SGD claim beside the measured epsilon lower bounds (none when the model was trained without DP
    and no one-run audit was made).

    Example:
        >>> dp_lines({"model": {}})
        []
    """
    results = [r for r in (results if results is not None else report.get("results") or []) if isinstance(r, dict)]
    claim = (report.get("model") or {}).get("dp")
    lines = []
    bounds = [
        b["epsilon"]
        for r in results
        if isinstance(b := r.get("epsilon_lower_bound"), dict) and isinstance(b.get("epsilon"), (int, float))
    ]
    if isinstance(claim, dict):
        measured = (
            f"largest measured lower bound {max(bounds):.2f} over {len(bounds)} results"
            if bounds
            else "no measured bound"
        )
        lines.append(
            f"DP-SGD claim: epsilon {fmt(claim.get('epsilon_spent'), 3)} (target {claim.get('epsilon_target')}, "
            f"delta {claim.get('delta')}, {claim.get('accountant')} accountant); {measured}"
        )
    audit = dp_audit_of(report)
    if isinstance(audit, dict):
        aclaim = (audit.get("model") or {}).get("dp")
        beside = (
            f"; its model's DP-SGD claim: epsilon {fmt(aclaim.get('epsilon_spent'), 3)}"
            if isinstance(aclaim, dict)
            else "; its model was trained without DP"
        )
        lines.append(
            f"one-run audit ({audit.get('method')}, {audit.get('m')} canaries): epsilon lower bound "
            f"{fmt(audit.get('epsilon'), 3)} at confidence {audit.get('confidence')}{beside}"
        )
    return lines

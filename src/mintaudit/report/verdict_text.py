"""The verdict's checks in words: the blind baseline, the usage share and the samples needed (terminal and HTML)."""

from __future__ import annotations

from typing import Any

from mintaudit.report._format import is_number

__all__ = ["blind_text", "samples_text", "share_text", "verdict_check_lines", "verdict_checks_view"]


def blind_text(v: dict[str, Any]) -> str:
    """The blind baseline in one sentence (always present; says why when it was not computed)."""
    b = v.get("blind")
    if not isinstance(b, dict):
        return ""
    if not is_number(b.get("auc")):
        return f"blind baseline not computed: {b.get('skipped', 'no images')}"
    verdict = (
        "the query differs in distribution from the null reference, so a rejection may reflect that, not use"
        if b.get("rejects")
        else "no difference in distribution detected"
    )
    return (
        f"blind baseline (a classifier that never sees the model, query against null): cross-validated AUC "
        f"{b['auc']:.3f}, permutation p = {b['p_value']:.3g} ({b.get('n_permutations')} permutations, alpha "
        f"{b.get('alpha', 0.01):g}): {verdict}"
    )


def share_text(v: dict[str, Any]) -> str:
    """The debiased usage share with its interval, or why it is missing."""
    s = v.get("usage_share")
    if not isinstance(s, dict):
        return ""
    if not is_number(s.get("estimate")):
        why = s.get("skipped") or "the method does not separate held-out members from non-members (TPR <= FPR)"
        return f"share of the queries used (debiased): not estimated: {why}"
    lo, hi = s["ci95"]
    own = "; TPR measured on the query itself" if s.get("tpr_measured_on_query") else ""
    return (
        f"share of the queries used (debiased with TPR {s['tpr']:.2f} and FPR {s['fpr']:.2f} of held-out sets"
        f"{own}): {100 * s['estimate']:.1f}% [{100 * lo:.1f}%, {100 * hi:.1f}%]"
    )


def samples_text(v: dict[str, Any]) -> str:
    """How many member samples the dataset-level test needs for p < 0.01 at 90% power."""
    s = v.get("samples_needed")
    if not isinstance(s, dict):
        return ""
    if s.get("skipped"):
        return f"samples needed: not estimated: {s['skipped']}"
    target = f"p < {s.get('alpha', 0.01):g} at {100 * s.get('power', 0.9):.0f}% power"
    auc = f" (held-out members against null: AUC {s['auc']:.3f})" if is_number(s.get("auc")) else ""
    if s.get("n") is None:
        return f"samples needed for {target}: more than {s.get('max_n', 0):,}{auc}"
    return f"samples needed for {target}: {s['n']:,} members{auc}"


def verdict_check_lines(v: dict[str, Any]) -> list[str]:
    """The three checks as indented terminal lines (those present)."""
    return [f"  {t}" for t in (blind_text(v), share_text(v), samples_text(v)) if t]


def verdict_checks_view(v: dict[str, Any]) -> dict[str, Any]:
    """The checks for the HTML verdict: ``inconclusive`` (the badge), ``blind``, ``share``, ``samples`` sentences."""
    b = v.get("blind") if isinstance(v.get("blind"), dict) else {}
    return {
        "inconclusive": v.get("conclusion") == "inconclusive" or bool(v.get("reject") and b.get("rejects")),
        "blind": _sentence(blind_text(v)),
        "share": _sentence(share_text(v)),
        "samples": _sentence(samples_text(v)),
    }


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "." if text else ""

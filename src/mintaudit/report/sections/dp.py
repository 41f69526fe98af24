"""The DP section: a DP-SGD claim (the audited model's accountant epsilon) against the measured lower bounds.

Stored data: ``audit``, the one-run canary audit of ``mintaudit audit-dp`` (report@1's top-level
``dp_audit``). Gathered: the claim (``model.dp``) and the largest epsilon lower bound of the rows.
The section is present when either the claim or the audit is.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from mintaudit.report._format import fmt, is_number, result_names
from mintaudit.report.sections.base import ReportView, Section, register_section, set_section

__all__ = ["DpSection", "dp_audit_of", "set_dp_audit"]


@register_section
@dataclasses.dataclass
class DpSection(Section):
    """The DP claim and the one-run audit (``audit``: the dict of ``OUT/audit-dp.json`` less the canary lists)."""

    name: ClassVar[str] = "dp"
    place: ClassVar[Literal["front", "details"]] = "front"
    order: ClassVar[int] = 10

    audit: dict[str, Any] | None = None

    @classmethod
    def gather(cls, report: ReportView, stored: Section | None) -> Section | None:
        if stored is not None:
            return stored
        return cls() if isinstance(report.model.get("dp"), dict) else None

    def view(self, report: ReportView) -> Mapping[str, Any] | None:
        rows = _claim_rows(report) + _audit_rows(self.audit)
        return {"rows": rows} if rows else None


def dp_audit_of(report: Mapping[str, Any]) -> dict[str, Any] | None:
    """The one-run audit of a report document (report@2's ``sections.dp.audit``, or report@1's ``dp_audit``)."""
    section = (report.get("sections") or {}).get("dp")
    audit = section.get("audit") if isinstance(section, Mapping) else None
    audit = audit if audit is not None else report.get("dp_audit")
    return audit if isinstance(audit, dict) else None


def set_dp_audit(report: dict[str, Any], audit: Mapping[str, Any]) -> None:
    """Store ``audit`` as the ``dp`` section of a report document (changed in place)."""
    report.pop("dp_audit", None)  # report@1's place
    set_section(report, DpSection(audit=copy.deepcopy(dict(audit))))


def _claim_rows(report: ReportView) -> list[dict[str, Any]]:
    claim = report.model.get("dp")
    if not isinstance(claim, dict):
        return []
    results = [r for r in report.rows if isinstance(r, dict)]
    bounds = [
        (r["epsilon_lower_bound"]["epsilon"], n)
        for r, n in zip(results, result_names(results))
        if isinstance(r.get("epsilon_lower_bound"), dict) and is_number(r["epsilon_lower_bound"].get("epsilon"))
    ]
    top = max(bounds, key=lambda b: b[0]) if bounds else None
    spent = claim.get("epsilon_spent")
    verdict, above = "", False
    if top is not None and is_number(spent):
        above = top[0] > spent
        verdict = (
            "above the claim: the claimed epsilon cannot hold"
            if above
            else "consistent with the claim: the bound is below it"
        )
    return [
        {
            "label": f"Audited model (DP-SGD, {claim.get('accountant')} accountant)",
            "claimed": fmt(spent, 3),
            "claimed_detail": f"target {claim.get('epsilon_target')}, δ={claim.get('delta')}, clip {claim.get('max_grad_norm')}",
            "measured": fmt(top[0], 2) if top else fmt(None),
            "measured_detail": f"{top[1]}, the largest of {len(bounds)} results" if top else "no bound measured",
            "verdict": verdict,
            "above": above,
        }
    ]


def _audit_rows(audit: Any) -> list[dict[str, Any]]:
    if not isinstance(audit, dict):
        return []
    aclaim = (audit.get("model") or {}).get("dp")
    spent = aclaim.get("epsilon_spent") if isinstance(aclaim, dict) else None
    verdict, above = "", False
    if is_number(spent) and is_number(audit.get("epsilon")):
        above = audit["epsilon"] > spent
        verdict = "above the claim" if above else "consistent with the claim"
    return [
        {
            "label": f"One-run canary audit ({audit.get('method')}, {audit.get('m')} canaries, "
            f"{audit.get('correct')} of {audit.get('guesses')} guesses right)",
            "claimed": fmt(spent, 3) if is_number(spent) else "no DP",
            "claimed_detail": "",
            "measured": fmt(audit.get("epsilon"), 2),
            "measured_detail": f"δ={audit.get('delta')}, {audit.get('confidence')} confidence",
            "verdict": verdict,
            "above": above,
        }
    ]

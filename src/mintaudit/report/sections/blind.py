"""The blind-baseline section: for each kept verdict, whether a classifier that never sees the model tells the query from the null.

The baseline itself lives in each verdict's ``blind`` (the verdict's sentence and badge depend on
it, and the one merge rule replaces it with its verdict); the section gathers one entry per kept
verdict (``verdicts``: its query, method and baseline) at each write.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

from mintaudit.report._format import fmt, value_text
from mintaudit.report.sections.base import ReportView, Section, register_section

__all__ = ["BlindSection"]


@register_section
@dataclasses.dataclass
class BlindSection(Section):
    """``verdicts``: per kept verdict (oldest first) ``{"query", "method", "blind"}`` (``blind`` as in the verdict)."""

    name: ClassVar[str] = "blind"
    order: ClassVar[int] = 50

    verdicts: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @classmethod
    def gather(cls, report: ReportView, stored: Section | None) -> Section | None:
        found = []
        for v in report.kept_verdicts:
            if not isinstance(v.get("blind"), dict):
                continue
            query = v.get("query") if isinstance(v.get("query"), dict) else {}
            found.append(
                {
                    "query": query.get("source") or query.get("description") or "query",
                    "method": v.get("method"),
                    "blind": copy.deepcopy(v["blind"]),
                }
            )
        return cls(verdicts=found) if found else None

    def view(self, report: ReportView) -> Mapping[str, Any] | None:
        rows = []
        for entry in reversed(self.verdicts):  # the latest first, as the verdicts above
            b = entry.get("blind") if isinstance(entry.get("blind"), dict) else {}
            if b.get("skipped"):
                outcome = f"not computed: {b['skipped']}"
            elif b.get("rejects"):
                outcome = "tells the query from the null: the sets differ in distribution"
            else:
                outcome = "cannot tell the query from the null"
            rows.append(
                {
                    "query": value_text(entry.get("query")),
                    "method": value_text(entry.get("method")),
                    "auc": fmt(b.get("auc")),
                    "p": fmt(b.get("p_value"), 4),
                    "permutations": value_text(b.get("n_permutations")),
                    "outcome": outcome,
                    "rejects": b.get("rejects") is True,
                }
            )
        return {"rows": rows} if rows else None

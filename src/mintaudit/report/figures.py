"""Shared pieces of the report pages' figures: the member / non-member colours and the figure record."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from mintaudit.report.svg import Plot

__all__ = ["MEMBER", "NONMEMBER", "figure"]

MEMBER, NONMEMBER = "#0072B2", "#E69F00"  # Okabe-Ito blue / orange


def figure(plot: Plot, caption: str) -> dict[str, Any]:
    """A plot for the template's ``figure`` macro: svg.py's SVG (it escapes its own text) and a caption."""
    return {"svg": Markup(plot.render()), "caption": caption}  # noqa: S704 - SVG built and escaped by svg.py

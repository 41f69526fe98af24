"""Tiny inline-SVG charts for the HTML report: one axis helper, a few marks, no dependencies.

Example:
    >>> p = Plot((0.0, 1.0), (0.0, 1.0), title="demo", x_label="x", y_label="y")
    >>> p.line([0, 1], [0, 1], color=PALETTE[0], label="identity")
    >>> p.render().startswith("<svg")
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["PALETTE", "series_style", "Scale", "Plot"]

# Okabe-Ito colour-blind-safe palette (its yellow left out: unreadable on white).
PALETTE: tuple[str, ...] = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000")
_DASHES: tuple[str | None, ...] = (None, "7 3", "2 2", "9 3 2 3")
GREY = "#777777"
_FONT = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif"'
_CHAR_PX = 6.6  # average width of one 11px character, to size the legend


def series_style(i: int) -> tuple[str, str | None]:
    """Colour and dash pattern of the i-th series: colours first, then dashes once they run out."""
    return PALETTE[i % len(PALETTE)], _DASHES[(i // len(PALETTE)) % len(_DASHES)]


def _num(v: float) -> str:
    return f"{v:.1f}"


@dataclass(frozen=True)
class Scale:
    """Maps data in [lo, hi] (clamped) to pixels in [start, end], linearly or in log10."""

    lo: float
    hi: float
    start: float
    end: float
    log: bool = False

    def _t(self, v: float) -> float:
        return math.log10(v) if self.log else v

    def __call__(self, v: float) -> float:
        v = min(max(v, self.lo), self.hi)
        a, b = self._t(self.lo), self._t(self.hi)
        return self.start + (self._t(v) - a) / (b - a) * (self.end - self.start)

    def ticks(self) -> list[float]:
        """Decades on a log scale; 1-2-5 steps giving about five ticks on a linear one."""
        if self.log:
            return [
                10.0**k
                for k in range(math.ceil(math.log10(self.lo) - 1e-9), math.floor(math.log10(self.hi) + 1e-9) + 1)
            ]
        raw = (self.hi - self.lo) / 5
        step = min((m * 10.0 ** math.floor(math.log10(raw)) for m in (1, 2, 5, 10)), key=lambda s: abs(s - raw))
        first = math.ceil(self.lo / step - 1e-9)
        return [round(k * step, 12) for k in range(first, math.floor(self.hi / step + 1e-9) + 1)]


class Plot:
    """One chart: axes with grid, ticks and labels, marks added by the caller, a legend on the right.

    Args:
        x_range: data range (lo, hi) of the x axis; values outside are clamped to it.
        y_range: data range (lo, hi) of the y axis.
        width: width of the plotting area with its axis margins, in pixels (the legend adds to it).
        height: height in pixels.
        log_x: log10 x axis (lo must be > 0).
        log_y: log10 y axis.
        title: drawn above the axes; also the SVG's accessible title.
        x_label: x axis caption.
        y_label: y axis caption.
        x_ticks: explicit (value, text) ticks instead of automatic ones.
    """

    def __init__(
        self,
        x_range: tuple[float, float],
        y_range: tuple[float, float],
        *,
        width: int = 420,
        height: int = 300,
        log_x: bool = False,
        log_y: bool = False,
        title: str = "",
        x_label: str = "",
        y_label: str = "",
        x_ticks: Sequence[tuple[float, str]] | None = None,
    ) -> None:
        left, right, top, bottom = 56, 14, 28 if title else 12, 42
        self.width, self.height, self.title = width, height, title
        self.x = Scale(*x_range, left, width - right, log_x)
        self.y = Scale(*y_range, height - bottom, top, log_y)
        self.x_label, self.y_label = x_label, y_label
        self.x_ticks = list(x_ticks) if x_ticks is not None else [(v, f"{v:g}") for v in self.x.ticks()]
        self._marks: list[str] = []
        self._legend: list[tuple[str, str, str | None]] = []

    # -- marks ----------------------------------------------------------------------------------

    def line(
        self,
        xs: Sequence[float],
        ys: Sequence[float],
        *,
        color: str,
        dash: str | None = None,
        width: float = 1.8,
        label: str | None = None,
    ) -> None:
        """A polyline through (xs, ys)."""
        pts = " ".join(f"{_num(self.x(a))},{_num(self.y(b))}" for a, b in zip(xs, ys))
        self._marks.append(
            f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="{width}"'
            f'{_dash(dash)} stroke-linejoin="round"/>'
        )
        self._add_legend(label, color, dash)

    def points(self, xs: Sequence[float], ys: Sequence[float], *, color: str, radius: float = 3.0) -> None:
        """Dots at (xs, ys)."""
        self._marks += [
            f'<circle cx="{_num(self.x(a))}" cy="{_num(self.y(b))}" r="{radius}" fill="{color}"/>'
            for a, b in zip(xs, ys)
        ]

    def error_bars(self, xs: Sequence[float], lo: Sequence[float], hi: Sequence[float], *, color: str) -> None:
        """Vertical bars from lo to hi with small caps."""
        for a, b, c in zip(xs, lo, hi):
            x, y0, y1 = self.x(a), self.y(b), self.y(c)
            self._marks.append(
                f'<path d="M{_num(x)},{_num(y0)}V{_num(y1)}M{_num(x - 4)},{_num(y0)}h8M{_num(x - 4)},{_num(y1)}h8" '
                f'stroke="{color}" stroke-width="1.2" fill="none"/>'
            )

    def hline(
        self,
        y: float,
        *,
        color: str = GREY,
        dash: str | None = "5 4",
        label: str | None = None,
        text: str = "",
    ) -> None:
        """A horizontal rule across the plot, with ``text`` written above its right end."""
        self.line([self.x.lo, self.x.hi], [y, y], color=color, dash=dash, width=1.3, label=label)
        if text:
            self._marks.append(
                f'<text x="{_num(self.x.end - 3)}" y="{_num(self.y(y) - 4)}" text-anchor="end" font-size="10" '
                f'fill="{color}">{escape(text)}</text>'
            )

    def vline(self, x: float, *, color: str = GREY, dash: str | None = "4 3", label: str | None = None) -> None:
        """A vertical rule across the plot."""
        self.line([x, x], [self.y.lo, self.y.hi], color=color, dash=dash, width=1.2, label=label)

    def steps(self, edges: Sequence[float], counts: Sequence[float], *, color: str, label: str | None = None) -> None:
        """A histogram: a filled, outlined step shape over ``edges`` (n + 1,) with ``counts`` (n,)."""
        xs, ys = [edges[0]], [0.0]
        for a, b, c in zip(edges[:-1], edges[1:], counts):
            xs += [a, b]
            ys += [c, c]
        xs.append(edges[-1])
        ys.append(0.0)
        pts = " ".join(f"{_num(self.x(a))},{_num(self.y(b))}" for a, b in zip(xs, ys))
        self._marks.append(
            f'<polygon points="{pts}" fill="{color}" fill-opacity="0.35" stroke="{color}" stroke-width="1.2"/>'
        )
        self._add_legend(label, color, None)

    def _add_legend(self, label: str | None, color: str, dash: str | None) -> None:
        if label:
            self._legend.append((label if len(label) <= 36 else label[:35] + "…", color, dash))

    # -- rendering ------------------------------------------------------------------------------

    def _axes(self) -> list[str]:
        """Frame, grid, ticks, tick labels and captions of both axes."""
        x, y = self.x, self.y
        out = [
            f'<rect x="{x.start}" y="{y.end}" width="{x.end - x.start}" height="{y.start - y.end}" fill="#fff" stroke="#bbb"/>'
        ]
        for v, text in self.x_ticks:
            px = _num(x(v))
            out.append(f'<line x1="{px}" x2="{px}" y1="{y.end}" y2="{y.start + 4}" stroke="#e4e4e4"/>')
            out.append(f'<text x="{px}" y="{y.start + 15}" text-anchor="middle" font-size="10">{escape(text)}</text>')
        for v in y.ticks():
            py = _num(y(v))
            out.append(f'<line x1="{x.start - 4}" x2="{x.end}" y1="{py}" y2="{py}" stroke="#e4e4e4"/>')
            out.append(f'<text x="{x.start - 6}" y="{py}" dy="3.5" text-anchor="end" font-size="10">{v:g}</text>')
        mid_x, mid_y = (x.start + x.end) / 2, (y.start + y.end) / 2
        out.append(
            f'<text x="{_num(mid_x)}" y="{self.height - 8}" text-anchor="middle" font-size="11">{escape(self.x_label)}</text>'
        )
        out.append(
            f'<text transform="translate(14,{_num(mid_y)}) rotate(-90)" text-anchor="middle" font-size="11">'
            f"{escape(self.y_label)}</text>"
        )
        if self.title:
            out.append(f'<text x="{x.start}" y="17" font-size="12" font-weight="600">{escape(self.title)}</text>')
        return out

    def _legend_svg(self) -> tuple[list[str], int]:
        """Legend entries stacked to the right of the plot, and the width they need."""
        if not self._legend:
            return [], 0
        width = int(34 + _CHAR_PX * max(len(label) for label, _, _ in self._legend))
        x0 = self.width + 6
        out = []
        for i, (label, color, dash) in enumerate(self._legend):
            y = self.y.end + 8 + 16 * i
            out.append(
                f'<line x1="{x0}" x2="{x0 + 22}" y1="{y}" y2="{y}" stroke="{color}" stroke-width="2.4"{_dash(dash)}/>'
            )
            out.append(f'<text x="{x0 + 28}" y="{y}" dy="3.5" font-size="11">{escape(label)}</text>')
        return out, width + 6

    def render(self) -> str:
        """The chart as one ``<svg>`` element (no external resources, no script)."""
        legend, extra = self._legend_svg()
        width = self.width + extra
        height = max(self.height, int(self.y.end + 16 * len(self._legend) + 8))
        return "\n".join(
            [
                f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
                f'role="img" {_FONT} fill="#222"><title>{escape(self.title)}</title>',
                *self._axes(),
                *self._marks,
                *legend,
                "</svg>",
            ]
        )


def _dash(dash: str | None) -> str:
    return f' stroke-dasharray="{dash}"' if dash else ""

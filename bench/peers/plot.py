"""A horizontal bar chart of jobs/s per system with each figure's range, written as SVG by hand."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from bench.peers.stats import Spread

ROW = 26
LABEL_WIDTH = 270
PLOT_WIDTH = 430
VALUE_WIDTH = 150
TOP = 44
BOTTOM = 34


@dataclass(frozen=True)
class Bar:
    label: str
    spread: Spread
    highlight: bool = False


def nice_ceiling(value: float) -> float:
    """The axis end: the smallest round step (1, 1.2, 1.5 ... 8 times a power of ten) at or above `value`."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return float(next(step * power for step in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if step * power >= value))


def render(bars: Sequence[Bar], title: str, unit: str) -> str:
    """The chart as an SVG document: a bar at each median, a whisker from the lowest to the highest round."""
    top_value = nice_ceiling(max((bar.spread.high for bar in bars), default=1.0))
    width = LABEL_WIDTH + PLOT_WIDTH + VALUE_WIDTH
    height = TOP + ROW * len(bars) + BOTTOM

    def x(value: float) -> float:
        return LABEL_WIDTH + PLOT_WIDTH * value / top_value

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2:.0f}" y="20" text-anchor="middle" font-size="14" font-weight="bold">'
        f"{escape(title)}</text>",
    ]
    for tick in range(6):
        value = top_value * tick / 5
        parts.append(
            f'<line x1="{x(value):.1f}" y1="{TOP - 6}" x2="{x(value):.1f}" y2="{height - BOTTOM}" stroke="#ddd"/>'
            f'<text x="{x(value):.1f}" y="{height - BOTTOM + 16}" text-anchor="middle" fill="#555">{value:,.0f}</text>'
        )
    parts.append(
        f'<text x="{LABEL_WIDTH + PLOT_WIDTH / 2:.0f}" y="{height - 4}" text-anchor="middle" fill="#555">'
        f"{escape(unit)} (bar: median; line: lowest to highest round)</text>"
    )
    for row, bar in enumerate(bars):
        y = TOP + row * ROW
        colour = "#d9534f" if bar.highlight else "#4a7ab5"
        spread = bar.spread
        parts.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{y + 15}" text-anchor="end">{escape(bar.label)}</text>'
            f'<rect x="{LABEL_WIDTH}" y="{y + 4}" width="{x(spread.median) - LABEL_WIDTH:.1f}" height="{ROW - 8}" '
            f'fill="{colour}"/>'
            f'<line x1="{x(spread.low):.1f}" y1="{y + ROW / 2}" x2="{x(spread.high):.1f}" y2="{y + ROW / 2}" '
            'stroke="black" stroke-width="1.5"/>'
            f'<line x1="{x(spread.low):.1f}" y1="{y + 7}" x2="{x(spread.low):.1f}" y2="{y + ROW - 7}" stroke="black"/>'
            f'<line x1="{x(spread.high):.1f}" y1="{y + 7}" x2="{x(spread.high):.1f}" y2="{y + ROW - 7}" '
            'stroke="black"/>'
            f'<text x="{LABEL_WIDTH + PLOT_WIDTH + 8}" y="{y + 15}">{escape(spread.text())}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"

"""Small inline SVG charts for the report page: bars and lines, no script, no fonts to fetch.

Each chart is one ``<svg>`` element with a ``viewBox`` and no fixed pixel width, so the page's
CSS scales it to its column and it never overflows; every text in it is escaped. Charts carry
an ``id`` and the class ``plot`` so a reader (or the browser test) can find each one.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

__all__ = ["COLOURS", "bar_chart", "line_chart"]

COLOURS = ("#2563eb", "#6b7280", "#d97706", "#059669", "#7c3aed", "#dc2626")
"""Series colours in order: synthetic first (blue), then real references."""

WIDTH = 600
LABEL_CHARS = 26


def _short(text: str, limit: int = LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _legend(names: Sequence[str], y: float) -> list[str]:
    parts, x = [], 10.0
    for i, name in enumerate(names):
        colour = COLOURS[i % len(COLOURS)]
        parts.append(f'<rect x="{x:.0f}" y="{y - 9:.0f}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{x + 14:.0f}" y="{y:.0f}" class="legend">{escape(name)}</text>')
        x += 24 + 7 * len(name)
    return parts


def _svg(plot_id: str, title: str, height: float, body: list[str]) -> str:
    return (
        f'<svg id="{escape(plot_id)}" class="plot" role="img" viewBox="0 0 {WIDTH} {height:.0f}" '
        f'xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="xMinYMin meet">'
        f"<title>{escape(title)}</title>" + "".join(body) + "</svg>"
    )


def bar_chart(
    plot_id: str,
    title: str,
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    max_value: float | None = None,
    percent: bool = False,
) -> str:
    """Horizontal grouped bars: one group per category, one bar per series.

    Args:
        plot_id: The element id.
        title: Accessible title (also a tooltip).
        categories: Group names (shortened to fit, the full name in a tooltip).
        series: (name, one value per category) pairs; the first is drawn first in each group.
        max_value: The axis' end (default: the largest value, at least a small positive).
        percent: Print values as percentages.
    """
    values = [v for _, vs in series for v in vs]
    top = max_value if max_value is not None else max([1e-9, *values])
    bar_h, gap, left, right = 12.0, 10.0, 180.0, 60.0
    group_h = bar_h * len(series) + gap
    legend_h = 24.0 if len(series) > 1 else 6.0
    height = legend_h + group_h * len(categories) + 24
    body: list[str] = []
    if len(series) > 1:
        body += _legend([name for name, _ in series], 16)
    span = WIDTH - left - right
    for c, category in enumerate(categories):
        y0 = legend_h + c * group_h
        body.append(
            f'<text x="{left - 6:.0f}" y="{y0 + group_h / 2:.0f}" class="axis" '
            f'text-anchor="end"><title>{escape(category)}</title>'
            f"{escape(_short(category))}</text>"
        )
        for s, (_, vs) in enumerate(series):
            v = vs[c]
            w = max(0.0, min(1.0, v / top)) * span
            y = y0 + s * bar_h
            body.append(
                f'<rect x="{left:.0f}" y="{y:.1f}" width="{w:.1f}" height="{bar_h - 2:.0f}" '
                f'fill="{COLOURS[s % len(COLOURS)]}"/>'
            )
            label = f"{100 * v:.1f}%" if percent else f"{v:.3g}"
            body.append(
                f'<text x="{left + w + 4:.1f}" y="{y + bar_h - 3:.1f}" class="value">{label}</text>'
            )
    axis_y = legend_h + group_h * len(categories)
    body.append(
        f'<line x1="{left:.0f}" y1="{legend_h - 4:.0f}" x2="{left:.0f}" y2="{axis_y:.0f}" '
        'class="rule"/>'
    )
    end = f"{100 * top:.0f}%" if percent else f"{top:.3g}"
    body.append(f'<text x="{left:.0f}" y="{axis_y + 16:.0f}" class="axis">0</text>')
    body.append(
        f'<text x="{left + span:.0f}" y="{axis_y + 16:.0f}" class="axis" '
        f'text-anchor="end">{end}</text>'
    )
    return _svg(plot_id, title, height, body)


def line_chart(
    plot_id: str,
    title: str,
    series: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    *,
    x_label: str,
    y_label: str,
    diagonal: bool = False,
) -> str:
    """Lines on the unit square (both axes 0 to 1), e.g. ROC or divergence curves.

    Args:
        plot_id: The element id.
        title: Accessible title.
        series: (name, points) pairs, points in [0, 1]².
        x_label: Axis title.
        y_label: Axis title.
        diagonal: Draw y = x (a ROC curve's chance line).
    """
    left, top, size = 60.0, 34.0, 300.0
    height = top + size + 44
    body = _legend([name for name, _ in series], 16)

    def px(x: float, y: float) -> str:
        x, y = max(0.0, min(1.0, x)), max(0.0, min(1.0, y))
        return f"{left + x * size:.1f},{top + (1 - y) * size:.1f}"

    body.append(
        f'<rect x="{left:.0f}" y="{top:.0f}" width="{size:.0f}" height="{size:.0f}" class="frame"/>'
    )
    if diagonal:
        body.append(f'<polyline points="{px(0, 0)} {px(1, 1)}" class="chance"/>')
    for s, (_, points) in enumerate(series):
        pts = " ".join(px(x, y) for x, y in sorted(points))
        body.append(
            f'<polyline points="{pts}" fill="none" stroke="{COLOURS[s % len(COLOURS)]}" '
            'stroke-width="2"/>'
        )
    for v in (0.0, 0.5, 1.0):
        body.append(
            f'<text x="{left + v * size:.0f}" y="{top + size + 16:.0f}" class="axis" '
            f'text-anchor="middle">{v:g}</text>'
        )
        body.append(
            f'<text x="{left - 6:.0f}" y="{top + (1 - v) * size + 4:.0f}" class="axis" '
            f'text-anchor="end">{v:g}</text>'
        )
    body.append(
        f'<text x="{left + size / 2:.0f}" y="{top + size + 36:.0f}" class="axis" '
        f'text-anchor="middle">{escape(x_label)}</text>'
    )
    body.append(
        f'<text x="14" y="{top + size / 2:.0f}" class="axis" text-anchor="middle" '
        f'transform="rotate(-90 14 {top + size / 2:.0f})">{escape(y_label)}</text>'
    )
    return _svg(plot_id, title, height, body)

"""Bar charts drawn on the server as inline SVG: no script, no library, nothing from another host.

Colours come from the page's CSS (classes `bar`, `axis`, `label`), so the dark and light schemes
both apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT, GUTTER, LABEL_ROOM, MAX_BAR = 640, 180, 4, 36, 56


def bar_chart(points: Sequence[tuple[str, float]], *, title: str, unit: str = "") -> Markup:
    """One bar per point, scaled to the largest; each bar's exact value in its <title> (a hover tooltip)."""
    if not points:
        return Markup(f'<p class="empty">No data for “{escape(title)}” yet.</p>')
    top = max(value for _, value in points) or 1.0
    plot = HEIGHT - LABEL_ROOM
    step = WIDTH / len(points)
    width = min(max(step - GUTTER, 1.0), MAX_BAR)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<line class="axis" x1="0" y1="{plot}" x2="{WIDTH}" y2="{plot}"/>',
    ]
    for i, (label, value) in enumerate(points):
        height = plot * value / top
        x = i * step + (step - width) / 2
        shown = f"{value:.6g}{unit}"
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{plot - height:.1f}" width="{width:.1f}" height="{height:.1f}">'
            f"<title>{escape(label)}: {escape(shown)}</title></rect>"
        )
        if len(points) <= 16:
            parts.append(
                f'<text class="label" x="{x + width / 2:.1f}" y="{HEIGHT - 20}" text-anchor="middle">'
                f"{escape(label[-10:])}</text>"
            )
    parts.append(f'<text class="label" x="2" y="12">{escape(f"{top:.6g}{unit}")}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))

"""Charts as inline SVG, rendered on the server: no CDN, no JavaScript library.

Pure functions from numbers to markup. Every piece of text that reaches the markup is
escaped here, which is what makes the final ``mark_safe`` sound.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

PALETTE = ("#417690", "#79aec8", "#f5dd5d", "#e5735a", "#70bf2b", "#a47fc5")


def _nice_ceiling(value: float) -> float:
    """A round axis maximum at or above ``value`` (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1) if value >= 1 else 1.0
    while magnitude > value:
        magnitude /= 10
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def _svg(width: int, height: int, title: str, body: list[str]) -> SafeString:
    markup = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="{escape(title)}" class="billing-chart">'
        f"<title>{escape(title)}</title>{''.join(body)}</svg>"
    )
    return mark_safe(markup)  # noqa: S308 - every interpolated text is escaped above


def columns_chart(
    points: Sequence[tuple[str, float]],
    *,
    title: str,
    format_value: Callable[[float], str] = lambda value: f"{value:,.0f}",
    width: int = 720,
    height: int = 220,
    color: str = PALETTE[0],
    max_value: float | None = None,
) -> SafeString:
    """One column per point (a day, usually), with a y axis and sparse x labels.

    ``max_value`` fixes the top of the axis (1.0 for rates), so a day at 2% errors
    does not fill the chart as if everything failed.
    """
    left, right, top, bottom = 64, 8, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    highest = max((value for _, value in points), default=0)
    top_value = max_value if max_value and max_value >= highest else _nice_ceiling(highest)
    body = []
    for tick in range(5):
        value = top_value * tick / 4
        y = top + plot_h - plot_h * tick / 4
        body.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#ddd" stroke-width="1"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#666">{escape(format_value(value))}</text>'
        )
    if points:
        slot = plot_w / len(points)
        bar = max(slot * 0.75, 1)
        label_every = max(1, len(points) // 8)
        for index, (label, value) in enumerate(points):
            bar_h = plot_h * (value / top_value) if top_value else 0
            x = left + index * slot + (slot - bar) / 2
            y = top + plot_h - bar_h
            body.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{bar_h:.1f}" '
                f'fill="{escape(color)}"><title>{escape(label)}: '
                f"{escape(format_value(value))}</title></rect>"
            )
            if index % label_every == 0:
                body.append(
                    f'<text x="{left + index * slot + slot / 2:.1f}" y="{height - 8}" '
                    f'text-anchor="middle" font-size="11" fill="#666">{escape(label)}</text>'
                )
    else:
        body.append(
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#999">'
            "No usage in this period</text>"
        )
    return _svg(width, height, title, body)


def bars_chart(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    format_value: Callable[[float], str] = lambda value: f"{value:,.0f}",
    width: int = 720,
    row_height: int = 24,
    limit: int = 10,
) -> SafeString:
    """Horizontal bars, largest first: the top ``limit`` items and the rest summed."""
    items = sorted(items, key=lambda item: item[1], reverse=True)
    if len(items) > limit:
        rest = sum(value for _, value in items[limit - 1 :])
        items = [*items[: limit - 1], (f"{len(items) - limit + 1} others", rest)]
    label_w, value_w = 200, 110
    plot_w = width - label_w - value_w
    height = max(len(items), 1) * row_height + 8
    top_value = max((value for _, value in items), default=0) or 1
    body = []
    for index, (label, value) in enumerate(items):
        y = 4 + index * row_height
        bar_w = plot_w * value / top_value
        shown = label if len(label) <= 30 else label[:29] + "…"
        body.append(
            f'<text x="{label_w - 8}" y="{y + row_height * 0.65:.1f}" text-anchor="end" '
            f'font-size="12" fill="#333">{escape(shown)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{bar_w:.1f}" height="{row_height - 6}" '
            f'fill="{PALETTE[index % len(PALETTE)]}"><title>{escape(label)}: '
            f"{escape(format_value(value))}</title></rect>"
            f'<text x="{label_w + bar_w + 6:.1f}" y="{y + row_height * 0.65:.1f}" '
            f'font-size="12" fill="#333">{escape(format_value(value))}</text>'
        )
    if not items:
        body.append(
            f'<text x="{width / 2}" y="20" text-anchor="middle" fill="#999">No usage</text>'
        )
    return _svg(width, height, title, body)


def usd(micros: float) -> str:
    """Dollars for an axis or a label; exact amounts live in the tables and CSV."""
    dollars = micros / 1_000_000
    if dollars and abs(dollars) < 0.01:
        return f"${dollars:.4f}"
    return f"${dollars:,.2f}"


def percent(rate: float) -> str:
    """A 0..1 rate as a percentage for an axis or a label."""
    return f"{rate * 100:.0f}%" if rate >= 0.1 or rate == 0 else f"{rate * 100:.1f}%"


def milliseconds(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 10 or value == 0 else f"{value:.1f} ms"

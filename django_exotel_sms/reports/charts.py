"""Server-side SVG charts: no JavaScript, no CDN, scaled by the browser to any width.

Each chart is a ``viewBox`` drawing with ``width: 100%``; every text in it is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from .. import status

STATUS_COLOURS = {
    status.PENDING: "#9aa5b1",
    status.SUBMITTING: "#7b8794",
    status.UNCERTAIN: "#d69e2e",
    status.QUEUED: "#90cdf4",
    status.SENDING: "#63b3ed",
    status.SUBMITTED: "#3182ce",
    status.SENT: "#2f855a",
    status.FAILED_DND: "#dd6b20",
    status.FAILED: "#c53030",
    status.REJECTED: "#822727",
    status.SUPPRESSED: "#6b46c1",
    status.EXPIRED: "#b794f4",
    status.CANCELLED: "#4a5568",
}
LINE_COLOURS = ("#2b6cb0", "#d69e2e", "#c53030", "#2f855a")
WIDTH, HEIGHT = 960, 260
HALF_WIDTH = 560  # charts in a half-width card keep readable text
LEFT, RIGHT, TOP, BOTTOM = 56, 56, 16, 40


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]
    colour: str


def colour(name: str) -> str:
    return STATUS_COLOURS.get(name, "#a0aec0")


def nice_max(value: float) -> float:
    """A round axis maximum at or above ``value``."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if value <= step * magnitude:
            return float(step * magnitude)
    return float(10 * magnitude)


def _fmt(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def _svg(body: list[str], label: str, height: int = HEIGHT, width: int = WIDTH) -> SafeString:
    return mark_safe(  # noqa: S308 -- every text below went through escape()
        f'<svg class="exotel-chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label)}" preserveAspectRatio="xMidYMid meet" '
        f'xmlns="http://www.w3.org/2000/svg">' + "".join(body) + "</svg>"
    )


def _x_labels(
    labels: Sequence[str], x_of: list[float], height: int, max_labels: int = 14
) -> list[str]:
    every = max(1, -(-len(labels) // max_labels))
    return [
        f'<text x="{x:.1f}" y="{height - BOTTOM + 16}" text-anchor="middle" '
        f'class="axis">{escape(text)}</text>'
        for i, (text, x) in enumerate(zip(labels, x_of, strict=True))
        if i % every == 0
    ]


def _grid(top: float, fmt: str, side: str = "left", width: int = WIDTH) -> list[str]:
    height = HEIGHT
    plot = height - TOP - BOTTOM
    out = []
    for i in range(5):
        value = top * i / 4
        y = height - BOTTOM - plot * i / 4
        if side == "left":
            out.append(
                f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">'
                f"{escape(fmt.format(_fmt(value)))}</text>"
            )
        else:
            out.append(
                f'<text x="{width - RIGHT + 6}" y="{y + 4:.1f}" class="axis">'
                f"{escape(fmt.format(_fmt(value)))}</text>"
            )
    return out


def stacked_bars(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    line: Series | None = None,
    line_max: float = 100.0,
    title: str = "",
) -> SafeString:
    """Bars stacked by series; an optional line on a right-hand 0..line_max axis."""
    count = max(1, len(labels))
    slot = (WIDTH - LEFT - RIGHT) / count
    plot = HEIGHT - TOP - BOTTOM
    totals = [sum(s.values[i] or 0 for s in series) for i in range(len(labels))]
    top = nice_max(max(totals, default=0))
    body = _grid(top, "{}")
    centres = [LEFT + slot * (i + 0.5) for i in range(len(labels))]
    bar = max(2.0, slot * 0.7)
    for i, x in enumerate(centres):
        y = float(HEIGHT - BOTTOM)
        for s in series:
            value = s.values[i] or 0
            if not value:
                continue
            h = plot * value / top
            y -= h
            body.append(
                f'<rect x="{x - bar / 2:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{s.colour}"><title>{escape(labels[i])} {escape(s.name)}: '
                f"{value:g}</title></rect>"
            )
    if line is not None:
        body += _grid(line_max, "{}%", side="right")
        body.append(_polyline(centres, line.values, line_max, line.colour, plot, line.name))
    body += _x_labels(labels, centres, HEIGHT)
    return _svg(body, title)


def _polyline(
    xs: Sequence[float],
    values: Sequence[float | None],
    top: float,
    stroke: str,
    plot: float,
    name: str,
) -> str:
    parts: list[str] = []
    points: list[str] = []
    for x, value in zip(xs, values, strict=True):
        if value is None:
            continue
        y = HEIGHT - BOTTOM - plot * min(value, top) / top
        points.append(f"{x:.1f},{y:.1f}")
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{stroke}">'
            f"<title>{escape(name)}: {value:.4g}</title></circle>"
        )
    line = (
        f'<polyline fill="none" stroke="{stroke}" stroke-width="2.5" points="{" ".join(points)}"/>'
        if len(points) > 1
        else ""
    )
    return line + "".join(parts)


def lines(
    labels: Sequence[str], series: Sequence[Series], *, unit: str, title: str, width: int = WIDTH
) -> SafeString:
    """Lines over the same x slots as ``stacked_bars`` (missing values leave gaps in dots)."""
    count = max(1, len(labels))
    slot = (width - LEFT - RIGHT) / count
    plot = HEIGHT - TOP - BOTTOM
    values = [v for s in series for v in s.values if v is not None]
    top = nice_max(max(values, default=0))
    body = _grid(top, "{}" + unit, width=width)
    centres = [LEFT + slot * (i + 0.5) for i in range(len(labels))]
    for s in series:
        body.append(_polyline(centres, s.values, top, s.colour, plot, s.name))
    body += _x_labels(labels, centres, HEIGHT, max_labels=8 if width < WIDTH else 14)
    return _svg(body, title, width=width)


def horizontal_bars(
    items: Sequence[tuple[str, float]], *, title: str, fill: str, width: int = WIDTH
) -> SafeString:
    """One labelled bar per item, longest first as given."""
    row = 26
    height = TOP + row * max(1, len(items)) + 8
    label_width = min(300, width // 3)
    span = width - label_width - 60
    top = max((value for _label, value in items), default=0) or 1
    body: list[str] = []
    for i, (label, value) in enumerate(items):
        y = TOP + i * row
        w = span * value / top
        body.append(
            f'<text x="{label_width - 8}" y="{y + 16}" text-anchor="end" class="axis">'
            f"{escape(label[: label_width // 8])}</text>"
            f'<rect x="{label_width}" y="{y + 3}" width="{max(w, 1):.1f}" height="{row - 8}" '
            f'fill="{fill}"><title>{escape(label)}: {value:g}</title></rect>'
            f'<text x="{label_width + w + 6:.1f}" y="{y + 16}" class="axis">{value:g}</text>'
        )
    return _svg(body, title, height, width)

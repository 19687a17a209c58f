"""Small inline SVG charts for the HTML report: bars, lines and a heatmap.

Hand-written SVG instead of matplotlib keeps the package list of the design card
(no plotting library on EMR) and gives crisp, self-contained charts that any
browser renders.  Inputs are short Python lists of aggregates (the report never
brings row-level data to the driver).  Every data mark carries ``class="mark"``
so a test can count what a chart draws; each chart returns ``None`` when it has
nothing to draw, and the page says so instead of showing an empty frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from html import escape

WIDTH = 560  # two charts side by side on a laptop screen
PALETTE = ("#2b6cb0", "#dd6b20", "#2f855a", "#c53030", "#6b46c1", "#b7791f", "#2c7a7b", "#97266d")
FONT = "font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif"
Number = float | int | None


def _fmt(v: float) -> str:
    """Short tick/label text: 1.2M, 35k, 0.42."""
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.1f}M"
    if a >= 1e4:
        return f"{v / 1e3:.0f}k"
    if a >= 100 or float(v).is_integer():
        return f"{v:,.0f}"
    return f"{v:.2f}" if a >= 0.01 else f"{v:.3g}"


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering ``[lo, hi]`` (steps of 1, 2 or 5 x 10^k).

    >>> nice_ticks(0, 87)
    [0, 20, 40, 60, 80, 100]
    """
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while t < hi + step * 0.999:
        ticks.append(round(t, 10))
        t += step
    return ticks


def _open(title: str, height: int, width: int = WIDTH) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-label="{escape(title)}" class="chart" style="{FONT}">',
            f"<title>{escape(title)}</title>",
            f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>',
            f'<text x="8" y="18" font-size="14" font-weight="600" fill="#1a202c">{escape(title)}</text>']


def _legend(names: Sequence[str], x: float, y: float) -> list[str]:
    out = []
    for i, name in enumerate(names):
        xi = x + i * 130
        out.append(f'<rect x="{xi:.1f}" y="{y - 9:.1f}" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>')
        out.append(f'<text x="{xi + 14:.1f}" y="{y:.1f}" font-size="11" fill="#2d3748">{escape(name[:18])}</text>')
    return out


def _frame(title: str, height: int, names: Sequence[str], ticks: Sequence[float], left: int, top: int,
           plot_h: int) -> tuple[list[str], Callable[[float], float]]:
    """Title, legend (for several series), grid lines and y tick labels; returns the SVG lines and the y scale."""
    span = (ticks[-1] - ticks[0]) or 1.0

    def y(v: float) -> float:
        return top + plot_h - (v - ticks[0]) / span * plot_h

    out = _open(title, height)
    if len(names) > 1:
        out += _legend(names, left, 36)
    for t in ticks:
        out.append(f'<line x1="{left}" y1="{y(t):.1f}" x2="{WIDTH - 16}" y2="{y(t):.1f}" stroke="#edf2f7"/>')
        out.append(f'<text x="{left - 6}" y="{y(t) + 3:.1f}" font-size="10" text-anchor="end" fill="#718096">'
                   f"{_fmt(t)}</text>")
    return out, y


def _clean(values: Sequence[Number]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def hbar_chart(title: str, labels: Sequence[str], values: Sequence[Number], unit: str = "") -> str | None:
    """Horizontal bars, one per label (long category names stay readable)."""
    pairs = [(str(k), float(v)) for k, v in zip(labels, values, strict=True) if v is not None and math.isfinite(float(v))]
    if not pairs:
        return None
    left, top, row = 190, 32, 20
    height = top + row * len(pairs) + 30
    plot_w = WIDTH - left - 70
    lo = min(0.0, min(v for _, v in pairs))
    ticks = nice_ticks(lo, max(0.0, max(v for _, v in pairs)))
    span = (ticks[-1] - ticks[0]) or 1.0

    def x(v: float) -> float:
        return left + (v - ticks[0]) / span * plot_w

    out = _open(title, height)
    for t in ticks:
        out.append(f'<line x1="{x(t):.1f}" y1="{top}" x2="{x(t):.1f}" y2="{height - 24}" stroke="#edf2f7"/>')
        out.append(f'<text x="{x(t):.1f}" y="{height - 10}" font-size="10" text-anchor="middle" fill="#718096">'
                   f"{_fmt(t)}</text>")
    for i, (label, v) in enumerate(pairs):
        y = top + i * row
        x0, x1 = sorted((x(0.0), x(v)))
        out.append(f'<text x="{left - 6}" y="{y + 14}" font-size="11" text-anchor="end" fill="#2d3748">'
                   f"{escape(label[:30])}</text>")
        out.append(f'<rect class="mark" x="{x0:.1f}" y="{y + 3}" width="{max(x1 - x0, 1):.1f}" height="{row - 6}" '
                   f'fill="{PALETTE[0]}"><title>{escape(label)}: {_fmt(v)}{unit}</title></rect>')
        out.append(f'<text x="{x1 + 4:.1f}" y="{y + 14}" font-size="10" fill="#4a5568">{_fmt(v)}{unit}</text>')
    out.append("</svg>")
    return "\n".join(out)


def bar_chart(title: str, labels: Sequence[str], series: Mapping[str, Sequence[Number]], unit: str = "") -> str | None:
    """Vertical bars; several series are drawn side by side per label."""
    names = [n for n, vals in series.items() if _clean(vals)]
    if not labels or not names:
        return None
    allv = [v for n in names for v in _clean(series[n])]
    left, top, bottom, height = 60, 50, 54, 300
    plot_w, plot_h = WIDTH - left - 16, height - top - bottom
    ticks = nice_ticks(min(0.0, min(allv)), max(0.0, max(allv)))

    out, y = _frame(title, height, names, ticks, left, top, plot_h)
    slot = plot_w / len(labels)
    bar = slot * 0.8 / len(names)
    every = max(1, math.ceil(len(labels) / 24))
    for i, label in enumerate(labels):
        for j, name in enumerate(names):
            v = series[name][i]
            if v is None or not math.isfinite(float(v)):
                continue
            y0, y1 = sorted((y(0.0), y(float(v))))
            xi = left + i * slot + slot * 0.1 + j * bar
            out.append(f'<rect class="mark" x="{xi:.1f}" y="{y0:.1f}" width="{max(bar - 1, 1):.1f}" '
                       f'height="{max(y1 - y0, 1):.1f}" fill="{PALETTE[j % len(PALETTE)]}">'
                       f"<title>{escape(str(label))} {escape(name)}: {_fmt(float(v))}{unit}</title></rect>")
        if i % every == 0:
            cx = left + (i + 0.5) * slot
            out.append(f'<text x="{cx:.1f}" y="{height - bottom + 14}" font-size="10" text-anchor="end" '
                       f'transform="rotate(-35 {cx:.1f} {height - bottom + 14})" fill="#4a5568">'
                       f"{escape(str(label)[:12])}</text>")
    out.append("</svg>")
    return "\n".join(out)


def line_chart(title: str, x_labels: Sequence[str], series: Mapping[str, Sequence[Number]], unit: str = "") -> str | None:
    """One polyline per series over shared, ordered x labels (dates, months); gaps stay gaps."""
    names = [n for n, vals in series.items() if _clean(vals)]
    if len(x_labels) < 1 or not names:
        return None
    allv = [v for n in names for v in _clean(series[n])]
    left, top, bottom, height = 60, 50, 46, 300
    plot_w, plot_h = WIDTH - left - 16, height - top - bottom
    ticks = nice_ticks(min(0.0, min(allv)), max(allv))
    n = len(x_labels)

    def x(i: int) -> float:
        return left + (i / (n - 1) if n > 1 else 0.5) * plot_w

    out, y = _frame(title, height, names, ticks, left, top, plot_h)
    step = max(1, math.ceil(n / 7))
    shown = list(range(0, n, step))
    if n - 1 - shown[-1] >= step * 0.8:  # the last label, unless it would overlap its neighbour
        shown.append(n - 1)
    for i in shown:
        anchor = "end" if i == n - 1 and n > 1 else "middle"
        out.append(f'<text x="{x(i):.1f}" y="{height - bottom + 16}" font-size="10" text-anchor="{anchor}" '
                   f'fill="#4a5568">{escape(str(x_labels[i]))}</text>')
    for j, name in enumerate(names):
        color = PALETTE[j % len(PALETTE)]
        runs: list[list[str]] = [[]]
        for i, v in enumerate(series[name]):
            if v is None or not math.isfinite(float(v)):
                runs.append([])
            else:
                runs[-1].append(f"{x(i):.1f},{y(float(v)):.1f}")
        for pts in (r for r in runs if r):
            if len(pts) == 1:
                cx, cy = pts[0].split(",")
                out.append(f'<circle class="mark" cx="{cx}" cy="{cy}" r="2.5" fill="{color}"/>')
            else:
                out.append(f'<polyline class="mark" points="{" ".join(pts)}" fill="none" stroke="{color}" '
                           f'stroke-width="1.8"><title>{escape(name)}</title></polyline>')
    out.append("</svg>")
    return "\n".join(out)


def heatmap(title: str, rows: Sequence[str], cols: Sequence[str], matrix: Sequence[Sequence[Number]],
            row_title: str = "", col_title: str = "") -> str | None:
    """A cell per (row, col), shaded by value relative to its row (a confusion matrix reads per actual class)."""
    if not rows or not cols or not any(_clean(r) for r in matrix):
        return None
    cell, left, top = 44, 110, 58
    width = max(WIDTH // 2, left + cell * len(cols) + 20)
    height = top + cell * len(rows) + 20
    out = _open(title, height, width)
    out.append(f'<text x="{left + cell * len(cols) / 2:.1f}" y="36" font-size="11" text-anchor="middle" '
               f'fill="#4a5568">{escape(col_title)}</text>')
    out.append(f'<text x="8" y="{top - 6}" font-size="11" fill="#4a5568">{escape(row_title)}</text>')
    for j, c in enumerate(cols):
        out.append(f'<text x="{left + j * cell + cell / 2:.1f}" y="{top - 6}" font-size="11" text-anchor="middle" '
                   f'fill="#2d3748">{escape(str(c))}</text>')
    for i, (r, values) in enumerate(zip(rows, matrix, strict=True)):
        y = top + i * cell
        out.append(f'<text x="{left - 6}" y="{y + cell / 2 + 4:.1f}" font-size="11" text-anchor="end" '
                   f'fill="#2d3748">{escape(str(r))}</text>')
        peak = max(_clean(values) or [0.0]) or 1.0
        for j, v in enumerate(values):
            share = 0.0 if v is None else float(v) / peak
            fill = f"rgba(43,108,176,{0.08 + 0.85 * share:.2f})"
            out.append(f'<rect class="mark" x="{left + j * cell}" y="{y}" width="{cell - 2}" height="{cell - 2}" '
                       f'fill="{fill}"><title>{escape(str(r))} / {escape(str(cols[j]))}: {_fmt(float(v or 0))}'
                       "</title></rect>")
            ink = "#fff" if share > 0.55 else "#1a202c"
            out.append(f'<text x="{left + j * cell + cell / 2 - 1:.1f}" y="{y + cell / 2 + 3:.1f}" font-size="10" '
                       f'text-anchor="middle" fill="{ink}">{_fmt(float(v or 0))}</text>')
    out.append("</svg>")
    return "\n".join(out)

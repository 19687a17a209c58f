"""One self-contained HTML page from report sections: inline CSS, inline SVG, no scripts, no network.

A :class:`Section` holds ready HTML blocks (charts, tables, notes); the page adds
a table of contents and stamps each section with ``id`` and ``data-section`` so a
test (or a reader's link) can find it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

CSS = """
body{margin:0;background:#f7fafc;color:#1a202c;font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif}
header{background:#1a365d;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#cbd5e0}
nav{padding:10px 28px;background:#fff;border-bottom:1px solid #e2e8f0}nav a{margin-right:14px;color:#2b6cb0}
main{padding:8px 28px 40px;max-width:1560px}
section{background:#fff;border:1px solid #e2e8f0;border-radius:6px;margin:18px 0;padding:8px 18px 16px}
section h2{font-size:18px;margin:10px 0 4px}section>p.intro{color:#4a5568;margin:0 0 10px}
.grid{display:flex;flex-wrap:wrap;gap:14px}.grid>figure{margin:0;border:1px solid #edf2f7;border-radius:4px}
table{border-collapse:collapse;margin:8px 0;font-size:12.5px}caption{text-align:left;font-weight:600;padding:4px 0}
th,td{border-bottom:1px solid #e2e8f0;padding:3px 9px;text-align:left}th{background:#edf2f7}
td.n{text-align:right;font-variant-numeric:tabular-nums}.note{color:#975a16;background:#fffaf0;padding:6px 10px;border-radius:4px}
.kpis{display:flex;flex-wrap:wrap;gap:12px}.kpi{border:1px solid #e2e8f0;border-radius:6px;padding:8px 14px;min-width:120px}
.kpi b{display:block;font-size:20px}.kpi span{color:#4a5568;font-size:12px}
"""


@dataclass
class Section:
    """A titled part of the page; ``blocks`` are HTML fragments shown in order."""

    id: str
    title: str
    intro: str = ""
    blocks: list[str] = field(default_factory=list)

    def chart(self, svg: str | None, missing: str) -> None:
        """Add a chart, or a note saying why there is none."""
        self.blocks.append(f"<figure>{svg}</figure>" if svg else note(missing))

    def charts(self, *pairs: tuple[str | None, str]) -> None:
        """Charts side by side."""
        self.blocks.append('<div class="grid">' + "".join(
            f"<figure>{svg}</figure>" if svg else note(missing) for svg, missing in pairs) + "</div>")


def note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def cell(value: Any, digits: int = 4) -> str:
    """Table cell text: numbers rounded, None as a dash."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:.{digits}f}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], caption: str = "", digits: int = 4) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(
        f'<td class="n">{escape(cell(v, digits))}</td>' if isinstance(v, (int, float)) and not isinstance(v, bool)
        else f"<td>{escape(cell(v, digits))}</td>" for v in r) + "</tr>" for r in rows)
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def kpis(items: Sequence[tuple[str, Any]]) -> str:
    return '<div class="kpis">' + "".join(
        f'<div class="kpi"><b>{escape(cell(v, 2))}</b><span>{escape(k)}</span></div>' for k, v in items) + "</div>"


def render(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    nav = "".join(f'<a href="#{s.id}">{escape(s.title)}</a>' for s in sections)
    body = "".join(
        f'<section id="{s.id}" data-section="{s.id}"><h2>{escape(s.title)}</h2>'
        + (f'<p class="intro">{escape(s.intro)}</p>' if s.intro else "") + "".join(s.blocks) + "</section>"
        for s in sections)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{CSS}</style></head>'
            f"<body><header><h1>{escape(title)}</h1><p>{escape(subtitle)}</p></header><nav>{nav}</nav>"
            f"<main>{body}</main></body></html>\n")

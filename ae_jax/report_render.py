"""The report's document (a list of blocks) as Markdown and as one self-contained, responsive HTML page."""

import base64
import dataclasses
import html
import re
from pathlib import Path
from typing import Any

from ae_jax.plots import STATUS, regime_colour

# Sorts a table by the clicked heading (numbers by their data-v value), again for the other direction.
SORT_JS = """
document.querySelectorAll('table.sortable th').forEach((th, i) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0], up = th.dataset.dir !== 'asc';
  th.parentNode.querySelectorAll('th').forEach(h => delete h.dataset.dir);
  th.dataset.dir = up ? 'asc' : 'desc';
  const key = row => { const c = row.cells[i], v = c.dataset.v;
    return v !== undefined ? [0, parseFloat(v), ''] : [1, 0, c.textContent.trim()]; };
  const rows = [...body.rows].map(r => [key(r), r]).sort((a, b) => {
    const x = a[0], y = b[0];
    const c = x[0] - y[0] || (x[0] ? x[2].localeCompare(y[2], undefined, {numeric: true}) : x[1] - y[1]);
    return up ? c : -c; });
  rows.forEach(([, r]) => body.appendChild(r));
}));
"""

# 1320 px keeps every column of every table in a 1366-px laptop window (no horizontal scrollbar).
CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;max-width:1320px;
  margin:0 auto;padding:0 16px 3em}
h1{font-size:1.6em}h2{font-size:1.3em;margin-top:1.6em}h3{font-size:1.1em}
p{max-width:110ch}code{background:#f3f3f3;padding:0 3px;border-radius:3px}
img{max-width:100%;height:auto;display:block;margin:.8em 0}
table{border-collapse:collapse;font-size:13px;margin:.4em 0 1.4em;max-width:100%}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:right;vertical-align:top}
td{white-space:nowrap}td.t{text-align:left;white-space:normal;overflow-wrap:break-word}td.t a{white-space:nowrap}
th{background:#f2f2f2;text-align:left;cursor:pointer;user-select:none;
  position:sticky;top:0}
th[data-dir=asc]::after{content:" \\25B2"}th[data-dir=desc]::after{content:" \\25BC"}
tbody tr:nth-child(even){background:#fafafa}tbody tr:hover{background:#eef4fb}
td.rgc{white-space:nowrap}.wide{overflow-x:auto}summary{cursor:pointer;color:#0645ad}
ul.read li{margin:.25em 0;max-width:110ch}
.sd{display:block;color:#666;font-size:11px}
.rg{display:inline-block;width:.85em;height:.85em;border-radius:2px;margin-right:5px;
  vertical-align:-1px;border:1px solid #0003}
"""


@dataclasses.dataclass(frozen=True)
class Cell:
    """A table cell: its text, a numeric sort value, a spread shown below it, a regime swatch, a link."""
    text: str
    sort: Any = None
    sd: str | None = None
    regime: str | None = None  # a label gets its colour swatch; "" a dark one (no finished member)
    href: str | None = None
    text_kind: bool = False  # left-aligned, may wrap (names, labels)


def _plain(cell: Any) -> str:
    if not isinstance(cell, Cell):
        return str(cell)
    text = cell.text + (f" {cell.sd}" if cell.sd else "")
    return f"[{text}]({cell.href})" if cell.href else text


def render_markdown(doc: list[tuple], workdir: Path) -> str:
    lines = []
    for kind, *body in doc:
        if kind in ("h1", "h2", "h3"):
            lines.append("#" * int(kind[1]) + " " + body[0])
        elif kind == "p":
            lines.append(body[0])
        elif kind == "ul":
            lines += [f"- {item}" for item in body[0]]
        elif kind == "img":
            lines.append(f"![{body[1]}]({body[0].relative_to(workdir).as_posix()})")
        elif kind == "table":
            head, rows = body[:2]
            lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            lines += ["| " + " | ".join(_plain(c).replace("|", "\\|") for c in row) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines)


def _inline(text: str) -> str:
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text, quote=False))


def _heading(text: str) -> str:
    """A column heading that may break after `_`, `/` and `.` rather than anywhere."""
    return re.sub(r"([_/.])", r"\1<wbr>", html.escape(text, quote=False))


def _td(cell: Any) -> str:
    if not isinstance(cell, Cell):
        cell = Cell(str(cell))
    attrs = f" data-v='{float(cell.sort)!r}'" if isinstance(cell.sort, (int, float)) else ""
    left = cell.text_kind or cell.regime is not None
    attrs += " class='t rgc'" if cell.regime is not None else " class='t'" if left else ""
    body = html.escape(cell.text, quote=False)
    if cell.text_kind:  # a member name wraps between its settings, never inside a number
        body = body.replace(",", ",<wbr>")
    if cell.href:
        body = f"<a href='{html.escape(cell.href)}'>{body}</a>"
    if cell.regime is not None:
        colour = regime_colour(cell.regime) if cell.regime else STATUS["diverged"]
        body = f"<span class='rg' style='background:{colour}'></span>{body}"
    if cell.sd:
        body += f"<span class='sd'>{html.escape(cell.sd)}</span>"
    return f"<td{attrs}>{body}</td>"


def render_html(doc: list[tuple], title: str) -> str:
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
             f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
             f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"]
    for kind, *body in doc:
        if kind in ("h1", "h2", "h3", "p"):
            parts.append(f"<{kind}>{_inline(body[0])}</{kind}>")
        elif kind == "ul":
            parts.append("<ul class='read'>" + "".join(f"<li>{_inline(i)}</li>" for i in body[0]) + "</ul>")
        elif kind == "img":
            path, alt, width = body
            data = base64.b64encode(path.read_bytes()).decode()
            # shown at its CSS width (the PNG holds twice the pixels), shrunk only on a narrower window
            parts.append(f"<img alt='{html.escape(alt)}' width='{round(width)}' "
                         f"src='data:image/png;base64,{data}'>")
        elif kind == "table":
            head, rows = body[:2]
            folded = body[2] if len(body) > 2 else None  # a secondary table starts folded
            if folded:
                parts.append(f"<details><summary>{_inline(folded)}</summary>")
            parts.append("<div class='wide'><table class='sortable'><thead><tr>"
                         + "".join(f"<th title='sort by {html.escape(h)}'>{_heading(h)}</th>" for h in head)
                         + "</tr></thead><tbody>")
            parts += ["<tr>" + "".join(_td(c) for c in row) + "</tr>" for row in rows]
            parts.append("</tbody></table></div>" + ("</details>" if folded else ""))
    parts.append(f"<script>{SORT_JS}</script></body></html>")
    return "\n".join(parts) + "\n"


"""A small document model (headings, text, tables, figures) rendered as one self-contained HTML page and Markdown."""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Cell:
    text: str
    sub: str = ""  # a second line (e.g. the change from base), "(sub)" in Markdown
    cls: str = ""  # CSS classes: up / down / ns / seen / label
    title: str = ""  # tooltip in HTML


@dataclass
class Heading:
    level: int
    text: str
    id: str = ""


@dataclass
class Text:
    text: str
    cls: str = ""


@dataclass
class Pre:
    text: str


@dataclass
class Table:
    id: str
    head: list[str]
    rows: list[list[Cell | str]]
    groups: list[tuple[str, int]] | None = None  # a header row above head: (text, colspan)
    caption: str = ""
    cls: str = ""


@dataclass
class Figure:
    id: str
    path: Path  # a PNG file
    caption: str


@dataclass
class Items:
    items: list[str] = field(default_factory=list)


Block = Heading | Text | Pre | Table | Figure | Items

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;margin:0;color:#1b1b1b;
background:#fff;line-height:1.45}
main{max-width:1500px;margin:0 auto;padding:1.2rem 2rem 4rem}
h1{font-size:1.6rem;margin:.4rem 0 .8rem}h2{font-size:1.3rem;margin-top:2.2rem;border-bottom:1px solid #ddd;
padding-bottom:.2rem}h3{font-size:1.08rem;margin-top:1.5rem}
nav{background:#f6f7f9;border:1px solid #e3e5e8;border-radius:6px;padding:.5rem 1rem;margin:1rem 0;display:flex;flex-wrap:wrap;gap:.2rem 1rem}
nav a{white-space:nowrap}
.scroll{overflow-x:auto;margin:.6rem 0 1rem}
table{border-collapse:collapse;font-size:.86rem;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d9dce1;padding:.25rem .45rem;text-align:right;vertical-align:top}
th{background:#f1f3f5;font-weight:600}td:first-child,th:first-child{text-align:left;white-space:nowrap}
caption{caption-side:top;text-align:left;font-size:.85rem;color:#444;padding:.2rem 0}
td small{display:block;font-size:.78rem;color:#666}
td small.up{color:#0a7a2f;font-weight:600}td small.down{color:#b3261e;font-weight:600}
td.seen{background:#fbf6e4}
td.label,th.label{text-align:left}
figure{margin:1rem 0 1.6rem}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85rem;color:#444;margin-top:.3rem}
pre{background:#f6f7f9;border:1px solid #e3e5e8;padding:.6rem;overflow-x:auto;font-size:.8rem}
p.note{color:#6b4e00;background:#fff8e1;border-left:3px solid #e0b000;padding:.3rem .6rem}
"""


def _anchor(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def _cell_html(c: Cell | str, tag: str) -> str:
    c = c if isinstance(c, Cell) else Cell(str(c))
    attrs = (f' class="{html.escape(c.cls)}"' if c.cls else "") + (f' title="{html.escape(c.title)}"' if c.title else "")
    sub = ""
    if c.sub:
        sub_cls = " ".join(x for x in c.cls.split() if x in ("up", "down", "ns"))
        sub = f'<small class="{sub_cls}">{html.escape(c.sub)}</small>' if sub_cls else f"<small>{html.escape(c.sub)}</small>"
    return f"<{tag}{attrs}>{html.escape(c.text)}{sub}</{tag}>"


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def render_html(title: str, blocks: Sequence[Block]) -> str:
    """One self-contained page: inline CSS, figures as data URIs, no scripts, no external resources."""
    toc = [b for b in blocks if isinstance(b, Heading) and b.level == 2]
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{html.escape(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>", "<main>",
           f"<h1>{html.escape(title)}</h1>"]
    if toc:
        out.append("<nav>" + "".join(f'<a href="#{html.escape(b.id or _anchor(b.text))}">{html.escape(b.text)}</a>'
                                     for b in toc) + "</nav>")
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f'<h{b.level} id="{html.escape(b.id or _anchor(b.text))}">{html.escape(b.text)}</h{b.level}>')
        elif isinstance(b, Text):
            cls = f' class="{b.cls}"' if b.cls else ""
            out.append(f"<p{cls}>{html.escape(b.text)}</p>")
        elif isinstance(b, Pre):
            out.append(f"<pre>{html.escape(b.text)}</pre>")
        elif isinstance(b, Items):
            out.append("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in b.items) + "</ul>")
        elif isinstance(b, Table):
            cls = " ".join(x for x in ("report-table", b.cls) if x)
            rows = [f'<div class="scroll"><table id="{html.escape(b.id)}" class="{cls}">']
            if b.caption:
                rows.append(f"<caption>{html.escape(b.caption)}</caption>")
            rows.append("<thead>")
            if b.groups:
                rows.append("<tr>" + "".join(f'<th colspan="{n}">{html.escape(t)}</th>' if n > 1 else
                                             f"<th>{html.escape(t)}</th>" for t, n in b.groups) + "</tr>")
            rows.append("<tr>" + "".join(_cell_html(h, "th") for h in b.head) + "</tr></thead><tbody>")
            rows += ["<tr>" + "".join(_cell_html(c, "td") for c in r) + "</tr>" for r in b.rows]
            rows.append("</tbody></table></div>")
            out.append("".join(rows))
        elif isinstance(b, Figure):
            out.append(f'<figure id="{html.escape(b.id)}"><img src="{_data_uri(b.path)}" alt="{html.escape(b.caption)}">'
                       f"<figcaption>{html.escape(b.caption)}</figcaption></figure>")
    out += ["</main>", "</body>", "</html>", ""]
    return "\n".join(out)


def _md_cell(c: Cell | str) -> str:
    c = c if isinstance(c, Cell) else Cell(str(c))
    text = c.text + ((f" {c.sub}" if c.sub.startswith("[") else f" ({c.sub})") if c.sub else "")
    return text.replace("|", "\\|").replace("\n", " ")


def render_md(title: str, blocks: Sequence[Block], base: Path) -> str:
    """The Markdown twin; figures are linked relative to base (the folder the .md file is written in)."""
    out = [f"# {title}", ""]
    for b in blocks:
        if isinstance(b, Heading):
            out += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, Text):
            out += [("> " if b.cls == "note" else "") + b.text, ""]
        elif isinstance(b, Pre):
            out += ["```", b.text, "```", ""]
        elif isinstance(b, Items):
            out += [f"- {x}" for x in b.items] + [""]
        elif isinstance(b, Table):
            if b.caption:
                out += [f"*{b.caption}*", ""]
            head = [_md_cell(h) for h in b.head]  # Markdown has one header row: groups are named in the caption
            out.append("| " + " | ".join(head) + " |")
            out.append("|" + "---|" * len(head))
            out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in b.rows]
            out.append("")
        elif isinstance(b, Figure):
            rel = Path(os.path.relpath(b.path, base)).as_posix()
            out += [f"![{b.caption}]({rel})", "", f"*{b.caption}*", ""]
    return "\n".join(out)

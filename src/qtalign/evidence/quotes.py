"""Number-shaped quotations in Markdown, located where they stand: intervals, arrows, correlations, signed changes,
percentages, decimals and "N points", each with its file, line and text; code is not prose and is skipped."""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path

MINUS = "\u2212"
SIGN = f"[+{MINUS}]"
# a number standing alone: not inside a word, a version (2.13.0), a date or a model name (Qwen1.5-1.8B, 270M)
NUM = rf"(?<![\w.\-/]){SIGN}?\d+(?:\.\d+)?%?(?![\w]|\.\d)"
# shapes, longest first: an interval with its value (and `r =`), a bare interval, an arrow chain, a correlation,
# a number of points (also a range 13–16 points), one number
SHAPE = re.compile(
    rf"(?:r = )?(?:{NUM}\s+)?\[\s*{NUM},\s+{NUM}\s*\]"
    rf"|{NUM}(?:\s+→\s+{NUM})+"
    rf"|r = {NUM}"
    rf"|{NUM}(?:\s*[–-]\s*\d+(?:\.\d+)?)?\s+(?:percentage\s+)?points?\b"
    rf"|{NUM}")
TOKEN = re.compile(NUM)
COUNT = re.compile(r"\d+")
FENCE = re.compile(r"^[ \t]*(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
LINK_TARGET = re.compile(r"\]\([^)\s]*\)|<https?://[^>\s]*>|https?://\S+")
HEADING = re.compile(r"^#{1,6}[ \t]+(.*?)[ \t]*#*[ \t]*$", re.MULTILINE)


@dataclass(frozen=True)
class Quote:
    """One number-shaped quotation: where it stands (file, 1-based line, offsets into the file's text) and its
    text; `section` is the heading above it."""

    file: str
    line: int
    start: int
    end: int
    text: str
    section: str

    def where(self) -> str:
        return f"{self.file}:{self.line}"


def prose(text: str) -> str:
    """The text with code (fenced blocks, inline code spans) and link targets blanked to spaces, offsets kept."""
    out = list(text)
    pos, fenced = 0, None
    for line in text.splitlines(keepends=True):
        m = FENCE.match(line)
        if fenced is not None or m:
            if m and fenced is None:
                fenced = m.group(1)
            elif m and line.strip().startswith(fenced):
                fenced = None
            out[pos:pos + len(line.rstrip("\n"))] = " " * len(line.rstrip("\n"))
        pos += len(line)
    blanked = "".join(out)
    for pattern in (INLINE_CODE, LINK_TARGET):
        blanked = pattern.sub(lambda m: " " * len(m.group(0)), blanked)
    return blanked


class Document:
    """A Markdown file's text, its prose (code blanked) and the offset of each line and heading."""

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.text = text
        self.prose = prose(text)
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]
        # headings found in the prose (not in code), their titles read from the text (inline code kept)
        self.headings = [(m.start(), self._title(m.start())) for m in HEADING.finditer(self.prose)]

    def _title(self, offset: int) -> str:
        """The title of the heading line at offset, read from the text (inline code kept, even at its end)."""
        end = self.text.find("\n", offset)
        m = HEADING.match(self.text[offset:end if end >= 0 else None])
        return " ".join(m.group(1).split()) if m else ""

    @classmethod
    def read(cls, root: Path, name: str) -> Document:
        return cls(name, (root / name).read_text(encoding="utf-8"))

    def line(self, offset: int) -> int:
        return bisect_right(self.starts, offset)

    def section(self, offset: int) -> str:
        k = bisect_right([h[0] for h in self.headings], offset)
        return self.headings[k - 1][1] if k else ""

    def quotes(self) -> list[Quote]:
        """Every number-shaped quotation of the prose, in order; a whole number standing alone (a count: 20
        languages, 3 seeds, 100 items) is not one."""
        return [Quote(self.name, self.line(m.start()), m.start(), m.end(), " ".join(m.group(0).split()),
                      self.section(m.start())) for m in SHAPE.finditer(self.prose) if not COUNT.fullmatch(m.group(0))]

    def tokens(self, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
        """(start, end) of each number inside the prose's [start, end)."""
        return [(start + m.start(), start + m.end()) for m in TOKEN.finditer(self.prose[start:end])]

    def find(self, text: str, quote: str = "{}") -> list[tuple[int, int]]:
        """(start, end) of `text` at each place the prose quotes it whole (not as part of a longer number), inside
        `quote` (a phrase with {} where the text stands, e.g. 'training seed {}'); line breaks match any space."""
        head, _, tail = quote.partition("{}")
        pattern = (_loose(head) + rf"(?<![\w.+{MINUS}])(?P<t>{_loose(text)})(?!\w|\.\d)" + _loose(tail))
        return [(m.start("t"), m.end("t")) for m in re.finditer(pattern, self.prose)]


def _loose(text: str) -> str:
    """A regular expression for `text` in which any run of spaces may be any run of white space (a line break),
    also a leading or trailing one (the space between a quote's phrase and its number)."""
    parts = re.split(r"(\s+)", text)
    return "".join(r"\s+" if part.isspace() else re.escape(part) for part in parts if part)

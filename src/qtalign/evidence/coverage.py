"""Every number the docs quote is accounted for: each number-shaped quotation in README.md and docs/**/*.md is a
claim that a recomputed report supports, counted where it stands, or sits in the reasoned exemption list."""

from __future__ import annotations

import difflib
import fnmatch
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qtalign.errors import QtalignError
from qtalign.evidence.claims import Claim, count_problems, docs_root, occurrences, parse_claims
from qtalign.evidence.quotes import Document, Quote
from qtalign.store import read_json_object

EVIDENCE_DIR = "docs/evidence"
EXEMPTIONS = "docs/evidence/exemptions.json"
REPORT_COPIES = "docs/results"  # report copies: rebuilt and compared whole by `qtalign evidence check`
EXEMPTION_KEYS = {"file", "section", "text", "quote", "pattern", "reason"}


@dataclass(frozen=True)
class Exemption:
    """Numbers that need no claim, with the reason: a whole file, a section (the heading above), a text (in an
    optional quote phrase) or a regular expression over the prose, in the files `file` (a glob) names. A file or
    section exemption never covers an interval: an interval needs a claim or an exemption of its own text."""

    index: int
    file: str
    section: str | None
    text: str | None
    quote: str
    pattern: str | None
    reason: str

    def spans(self, doc: Document) -> list[tuple[int, int]]:
        if not fnmatch.fnmatch(doc.name, self.file):
            return []
        if self.text is not None:
            return doc.find(self.text, self.quote)
        if self.pattern is not None:
            return [(m.start(), m.end()) for m in re.finditer(self.pattern, doc.prose)]
        if self.section is not None:
            bounds = [h for h in doc.headings] + [(len(doc.prose), "")]
            return [(start, nxt) for (start, title), (nxt, _) in itertools.pairwise(bounds) if title == self.section]
        return [(0, len(doc.prose))]

    @property
    def broad(self) -> bool:
        """A whole file or a section: covers lone numbers, arrows and percentages, never an interval."""
        return self.text is None and self.pattern is None

    def label(self) -> str:
        what = self.text or self.pattern or (f"section {self.section!r}" if self.section else "the whole file")
        return f"exemption {self.index} ({self.file}: {what})"


def read_exemptions(path: Path) -> list[Exemption]:
    """The exemption list: {"exemptions": [{"file", "reason", and at most one of section / text (+ quote) /
    pattern}]}; every entry must give a reason."""
    doc = read_json_object(path, strict=True)
    if doc is None:
        return []
    if not isinstance(doc.get("exemptions"), list):
        raise QtalignError(f"{path}: expected a JSON object with an `exemptions` list")
    out = []
    for k, e in enumerate(doc["exemptions"]):
        where = f"{path}: exemptions[{k}]"
        if not isinstance(e, dict) or not isinstance(e.get("file"), str):
            raise QtalignError(f"{where}: needs `file` (a doc path or glob)")
        if set(e) - EXEMPTION_KEYS:
            raise QtalignError(f"{where}: unknown key(s) {', '.join(sorted(set(e) - EXEMPTION_KEYS))}")
        if not str(e.get("reason") or "").strip():
            raise QtalignError(f"{where}: give the reason the numbers need no claim")
        if sum(k in e for k in ("section", "text", "pattern")) > 1:
            raise QtalignError(f"{where}: at most one of section, text, pattern")
        quote = str(e.get("quote", "{}"))
        if quote.count("{}") != 1 or ("quote" in e and "text" not in e):
            raise QtalignError(f"{where}: quote goes with text and holds {{}} once")
        if "pattern" in e:
            try:
                re.compile(e["pattern"])
            except re.error as err:
                raise QtalignError(f"{where}: pattern: {err}") from None
        out.append(Exemption(k, e["file"], e.get("section"), e.get("text"), quote, e.get("pattern"),
                             str(e["reason"])))
    return out


@dataclass
class Coverage:
    """The all-docs check: how many quotations were found, claimed and exempt, and the problems."""

    docs: int = 0
    quotes: int = 0
    claimed: int = 0
    exempt: int = 0
    claims: int = 0
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [*self.problems,
                (f"coverage: {self.quotes} number-shaped quotation(s) in {self.docs} doc(s): {self.claimed} claimed, "
                f"{self.exempt} exempt; {len(self.problems)} problem(s)")]


def doc_names(root: Path) -> list[str]:
    """README.md and docs/**/*.md, without the report copies under docs/results/ (checked whole by rebuilding)."""
    names = ["README.md"] if (root / "README.md").is_file() else []
    names += sorted(p.relative_to(root).as_posix() for p in (root / "docs").rglob("*.md")
                    if not p.relative_to(root).as_posix().startswith(REPORT_COPIES + "/"))
    return names


def _covered(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(s <= start and end <= e for s, e in spans)


def _closest(q: Quote, claims: list[Claim]) -> str:
    """The claim of the same shape whose text is nearest to an unclaimed interval's or arrow's (a changed copy
    names what it should say); nothing for a lone number, which is too short to tell."""
    shape = lambda t: ("[" in t, "→" in t, t.startswith("r ="))
    if not any(shape(q.text)):
        return ""
    texts = {c.text: c for c in claims if shape(c.text) == shape(q.text)}
    near = difflib.get_close_matches(q.text, list(texts), n=1, cutoff=0.75)
    if not near:
        return ""
    c = texts[near[0]]
    return f"; expected {c.text}? ({c.label()})"


def check_coverage(root: Path) -> Coverage:
    """Locate every number-shaped quotation of the docs under `root` and account for it (claims files
    docs/evidence/*.claims.json, exemption list docs/evidence/exemptions.json); also every doc quotes each claim
    as many times as its claims file says, no exemption is stale, and every report copy under docs/results/ is
    named by a claims file (which `qtalign evidence check` compares with the rebuilt report)."""
    root = Path(root)
    out = Coverage()
    claims: list[Claim] = []
    copies: set[str] = set()
    for path in sorted((root / EVIDENCE_DIR).glob("*.claims.json")):
        parsed, doc = parse_claims(path)
        if docs_root(path, doc) != root.resolve():
            raise QtalignError(f"{path}: docs_root must be the repository root ({root})")
        claims += parsed
        if isinstance(doc.get("report"), str):
            copies.add(doc["report"])
    out.claims = len(claims)
    exemptions = read_exemptions(root / EXEMPTIONS)
    names = doc_names(root)
    docs = {n: Document.read(root, n) for n in names}
    used = [False] * len(exemptions)
    for c in claims:
        out.problems += count_problems(c, docs)
    for name in names:
        doc = docs[name]
        claimed = [span for c in claims if name in c.docs for span in occurrences(c, doc)]
        narrow: list[tuple[int, int]] = []  # text and pattern exemptions
        broad: list[tuple[int, int]] = []  # sections and whole files
        for e in exemptions:
            spans = e.spans(doc)
            if spans:
                (broad if e.broad else narrow).extend(spans)
                used[e.index] = True
        out.docs += 1
        for q in doc.quotes():
            out.quotes += 1
            tokens = doc.tokens(q.start, q.end)
            # an interval is exempted by its own text only: one added to an exempt section still fails
            exempt_spans = narrow if "[" in q.text else narrow + broad
            if all(_covered(claimed, s, e) for s, e in tokens):
                out.claimed += 1
            elif all(_covered(claimed, s, e) or _covered(exempt_spans, s, e) for s, e in tokens):
                out.exempt += 1
            else:
                out.problems.append(f"{q.where()}: {q.text}: no claim supports this number and no exemption "
                                    f"covers it{_closest(q, claims)}")
    for e, u in zip(exemptions, used):
        if not u and any(fnmatch.fnmatch(n, e.file) for n in names):  # a file not (yet) here: nothing to say
            out.problems.append(f"{EXEMPTIONS}: {e.label()} covers nothing (stale: remove it)")
    for path in sorted((root / REPORT_COPIES).rglob("report.md")) if (root / REPORT_COPIES).is_dir() else []:
        name = path.relative_to(root).as_posix()
        if name not in copies:
            out.problems.append(f"{name}: a report copy no claims file names (`report`), so nothing rebuilds "
                                f"and compares it")
    return out


def coverage_summary(c: Coverage) -> dict[str, Any]:
    return {"docs": c.docs, "quotes": c.quotes, "claimed": c.claimed, "exempt": c.exempt, "claims": c.claims,
            "problems": list(c.problems)}

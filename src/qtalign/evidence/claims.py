"""Numbers the docs quote, recomputed: a claims file checked against a rebuilt report's summary.json, and each
quotation counted where it stands in every doc that prints it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qtalign.errors import QtalignError
from qtalign.evidence.quotes import MINUS, Document
from qtalign.store import read_json_object

# how a claim prints a fraction: unit -> (scale, suffix, default digits)
UNITS: dict[str, tuple[float, str, int]] = {"points": (100.0, "", 1), "fraction": (1.0, "", 3),
                                            "percent": (100.0, "%", 0)}
STATS = ("change", "diff", "interval", "accuracy", "base", "other", "gold", "f1", "mde80", "r", "sd:items",
         "sd:demos", "sd:train", "sd:grand_sd", "maxabs:<field>", "loss")
CLAIM_KEYS = {"where", "match", "lang", "part", "stat", "unit", "digits", "ci", "text", "quote", "docs"}


def number(value: float, unit: str = "points", digits: int | None = None, signed: bool = False) -> str:
    """A fraction as the docs print it: points (+9.0, U+2212 minus), a fraction (0.615) or a percent (54%)."""
    scale, suffix, default = UNITS[unit]
    d = default if digits is None else digits
    text = f"{scale * value:+.{d}f}" if signed else f"{scale * value:.{d}f}"
    if text.lstrip("+-") == f"{0:.{d}f}" and not signed:
        text = text.lstrip("-")  # -0.0 prints as 0.0
    return text.replace("-", MINUS) + suffix


def points(value: float, signed: bool = True) -> str:
    """A fraction in points, one decimal: +9.0 / −1.2 (signed) or 9.0."""
    return number(value, "points", 1, signed)


def _pair(lo: Any, hi: Any, fmt: Callable[[float], str]) -> str:
    return f"[{fmt(lo)}, {fmt(hi)}]"


def claim_text(entry: dict[str, Any], stat: str = "change", unit: str = "points", digits: int | None = None,
               ci: str = "ci95") -> str:
    """The docs' form of a summary entry's statistic:

    change '+9.0 [+5.5, +12.1]' (value with its interval `ci`); diff '+9.0'; interval '[+5.5, +12.1]';
    accuracy 'base → other' (accuracies, or predicted shares of a `shares` entry); base / other one side alone;
    gold a label's gold share; f1 macro-F1 'base → other'; mde80 the change detectable at 80% power; r a
    correlation with its interval (two decimals); sd:items / sd:demos / sd:train / sd:grand_sd a standard
    deviation of the variance breakdown; maxabs:FIELD the largest absolute per-language change of FIELD (summary
    `alignment`); loss a training run's validation loss 'first → best'. `unit` and `digits` say how a fraction
    prints (points, fraction or percent)."""
    plain = lambda v: number(v, unit, digits)
    sign = lambda v: number(v, unit, digits, signed=True)
    side = "share" if "base_share" in entry else "acc"
    if stat == "change":
        return f"{sign(entry.get('value', entry.get('diff')))} {_pair(*entry[ci], sign)}"
    if stat == "diff":
        return sign(entry.get("value", entry.get("diff")))
    if stat == "interval":
        return _pair(*entry[ci], sign)
    if stat == "accuracy":
        return f"{plain(entry[f'base_{side}'])} → {plain(entry[f'other_{side}'])}"
    if stat in ("base", "other"):
        return plain(entry[f"{stat}_{side}"])
    if stat == "gold":
        return plain(entry["gold_share"])
    if stat == "f1":
        return f"{plain(entry['base_f1'])} → {plain(entry['other_f1'])}"
    if stat == "mde80":
        return plain(entry["mde80"])
    if stat == "loss":
        return f"{entry['first_val_loss']:.{2 if digits is None else digits}f} → " \
               f"{entry['best_val_loss']:.{2 if digits is None else digits}f}"
    if stat.startswith("sd:"):  # a standard deviation of the variance breakdown (items, demos, train, grand_sd)
        sd = entry["sd"][stat[3:]]
        return "–" if sd is None else plain(sd)
    if stat.startswith("maxabs:"):  # the largest per-language change of one alignment measure, in its own units
        field = stat[7:]
        values = [abs(v[field]) for v in entry["changes"].values() if v.get(field) is not None]
        return f"{max(values):.{2 if digits is None else digits}f}" if values else "–"
    if stat == "r":  # a correlation across languages (summary "alignment")
        if entry.get("r") is None:
            return "–"
        r = lambda v: f"{v:+.2f}".replace("-", MINUS)
        return f"r = {r(entry['r'])} {_pair(*entry['ci95'], r)}"
    raise KeyError(stat)


@dataclass(frozen=True)
class Claim:
    """One claim of a claims file: which summary entry, how it prints, and where the docs quote it."""

    index: int
    where: str
    match: dict[str, Any]
    lang: str | None
    part: str | None  # a sub-object of the entry to print from, e.g. "mixed" (a findings row's random-effects model)
    stat: str
    unit: str
    digits: int | None
    ci: str
    text: str
    quote: str
    docs: dict[str, int]
    source: str  # the claims file's name, for messages

    def label(self) -> str:
        lang = f" {self.lang}" if self.lang else ""
        part = f" {self.part}" if self.part else ""
        return f"{self.source} claim {self.index} ({self.where} {self.match}{lang}{part}, {self.stat})"

    def expected(self, summary: dict[str, Any]) -> str:
        """The text the recomputed report gives; QtalignError when no single entry matches."""
        entries = [e for e in summary.get(self.where, []) if all(e.get(f) == v for f, v in self.match.items())]
        if len(entries) != 1:
            raise QtalignError(f"{len(entries)} matching entries in the recomputed report, expected 1")
        entry = entries[0]
        if self.lang is not None:
            if self.lang not in (entry.get("langs") or {}):
                raise QtalignError(f"no language {self.lang} in the recomputed entry")
            entry = entry["langs"][self.lang]
        if self.part is not None:
            if not isinstance(entry.get(self.part), dict):
                raise QtalignError(f"the recomputed entry has no {self.part}")
            entry = entry[self.part]
        try:
            return claim_text(entry, self.stat, self.unit, self.digits, self.ci)
        except (KeyError, TypeError, ValueError) as err:
            raise QtalignError(f"the recomputed entry has no {err}") from None


def parse_claims(path: Path) -> tuple[list[Claim], dict[str, Any]]:
    """The claims of a claims file and the file's other keys; one clear error per malformed claim."""
    doc = read_json_object(path, strict=True)
    if doc is None or not isinstance(doc.get("claims"), list):
        raise QtalignError(f"{path}: expected a JSON object with a `claims` list")
    claims = []
    for k, c in enumerate(doc["claims"]):
        where = f"{path}: claims[{k}]"
        if not isinstance(c, dict) or not {"where", "match", "text", "docs"} <= set(c):
            raise QtalignError(f"{where}: needs where, match, text and docs")
        if set(c) - CLAIM_KEYS:
            raise QtalignError(f"{where}: unknown key(s) {', '.join(sorted(set(c) - CLAIM_KEYS))}")
        docs = c["docs"]
        if not isinstance(docs, dict) or not all(isinstance(n, int) and n >= 1 for n in docs.values()):
            raise QtalignError(f"{where}: docs maps each doc to how many times it quotes the claim, e.g. "
                               f'{{"README.md": 1, "docs/results.md": 2}}')
        unit = c.get("unit", "points")
        if unit not in UNITS:
            raise QtalignError(f"{where}: unit {unit!r}: expected one of {', '.join(UNITS)}")
        quote = c.get("quote", "{}")
        if quote.count("{}") != 1:
            raise QtalignError(f"{where}: quote {quote!r} must hold {{}} once, where the number stands")
        claims.append(Claim(k, str(c["where"]), dict(c["match"]), c.get("lang"), c.get("part"),
                            str(c.get("stat", "change")), unit,
                            c.get("digits"), str(c.get("ci", "ci95")), str(c["text"]), quote, dict(docs), path.name))
    return claims, doc


def occurrences(claim: Claim, doc: Document) -> list[tuple[int, int]]:
    """(start, end) of the claim's number at each place `doc` quotes it."""
    return doc.find(claim.text, claim.quote)


def count_problems(claim: Claim, docs: dict[str, Document]) -> list[str]:
    """Each doc that does not quote the claim exactly as many times as the claims file says, with the lines."""
    problems = []
    for name, want in claim.docs.items():
        if name not in docs:
            problems.append(f"{claim.label()}: {name}: no such doc")
            continue
        found = occurrences(claim, docs[name])
        if len(found) != want:
            lines = ", ".join(str(docs[name].line(s)) for s, _ in found) or "none"
            shown = claim.quote.replace("{}", claim.text)
            problems.append(f"{name}: quotes {shown!r} {len(found)} time(s) (lines {lines}); {claim.label()} "
                            f"expects {want}")
    return problems


def read_docs(root: Path, names: set[str]) -> dict[str, Document]:
    return {n: Document.read(root, n) for n in sorted(names) if (root / n).is_file()}


def check_claims(summary: dict[str, Any], claims: list[Claim], docs_root: Path) -> list[str]:
    """Problems (empty when every claim holds): a claim whose text is not what the recomputed report gives (with
    where the docs quote it), and a doc that quotes a claim more or fewer times than the claims file says."""
    docs = read_docs(docs_root, {n for c in claims for n in c.docs})
    problems = []
    for c in claims:
        try:
            got = c.expected(summary)
        except QtalignError as err:
            problems.append(f"{c.label()}: {err}")
            continue
        if got != c.text:
            where = ", ".join(f"{n}:{docs[n].line(s)}" for n in c.docs if n in docs for s, _ in occurrences(c, docs[n]))
            problems.append(f"{c.label()}: recomputed {got}, the docs say {c.text} (at {where or 'no doc'})")
        problems += count_problems(c, docs)
    return problems


def check_claims_file(claims_path: Path, summary_path: Path) -> tuple[int, list[str]]:
    """The claims of a claims file ({"claims": [...], "docs_root": ...}) checked against a report's summary.json:
    (how many claims, the problems)."""
    claims, doc = parse_claims(claims_path)
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    return len(claims), check_claims(summary, claims, docs_root(claims_path, doc))


def docs_root(claims_path: Path, doc: dict[str, Any]) -> Path:
    """The folder the claims file's doc names are relative to (`docs_root`, relative to the claims file)."""
    return (claims_path.resolve().parent / doc.get("docs_root", ".")).resolve()  # an absolute docs_root wins

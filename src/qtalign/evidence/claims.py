"""Numbers the docs quote, recomputed: a claims file checked against a rebuilt report's summary.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qtalign.errors import QtalignError
from qtalign.store import read_json_object


def points(value: float, signed: bool = True) -> str:
    """A fraction as the docs write it in points: +9.0 / −1.2 (U+2212 minus), one decimal."""
    text = f"{100 * value:+.1f}" if signed else f"{100 * value:.1f}"
    return text.replace("-", "\u2212")


def claim_text(entry: dict[str, Any], stat: str = "change") -> str:
    """The docs' form of a summary entry: change '+9.0 [+5.5, +12.1]', accuracies or predicted shares
    'base → other' (stat 'accuracy', of pairs and shares), or a standard deviation of its breakdown in points
    (stat 'sd:items', 'sd:demos', 'sd:train', 'sd:grand_sd')."""
    if stat == "accuracy":
        if "base_share" in entry:  # summary "shares": a label's predicted share, base → other
            return f"{points(entry['base_share'], False)} → {points(entry['other_share'], False)}"
        return f"{points(entry['base_acc'], False)} → {points(entry['other_acc'], False)}"
    if stat.startswith("sd:"):  # a standard deviation of the variance breakdown (items, demos, train, grand_sd)
        sd = entry["sd"][stat[3:]]
        return "–" if sd is None else points(sd, False)
    if stat == "r":  # a correlation across languages (summary "alignment")
        if entry.get("r") is None:
            return "–"
        lo, hi = entry["ci95"]
        return f"r = {entry['r']:+.2f} [{lo:+.2f}, {hi:+.2f}]".replace("-", "\u2212")
    value = entry.get("value", entry.get("diff"))
    lo, hi = entry["ci95"]
    return f"{points(value)} [{points(lo)}, {points(hi)}]"


def check_claims(summary: dict[str, Any], claims: list[dict[str, Any]], docs_root: Path) -> list[str]:
    """Problems (empty when every claim holds): each claim names a report summary entry (`where`: pairs, shares,
    arms or contrasts; `match`: its fields), the text the docs print for it (`text`) and the files that print it (`docs`)."""
    problems = []
    for k, c in enumerate(claims):
        entries = [e for e in summary.get(c["where"], []) if all(e.get(f) == v for f, v in c["match"].items())]
        label = f"claim {k} ({c['where']} {c['match']})"
        if len(entries) != 1:
            problems.append(f"{label}: {len(entries)} matching entries in the recomputed report, expected 1")
            continue
        got = claim_text(entries[0], c.get("stat", "change"))
        if got != c["text"]:
            problems.append(f"{label}: recomputed {got}, the docs say {c['text']}")
        for doc in c.get("docs", []):
            flat = " ".join((docs_root / doc).read_text(encoding="utf-8").split())  # line breaks as spaces
            if " ".join(c["text"].split()) not in flat:
                problems.append(f"{label}: {doc} does not quote {c['text']}")
    return problems


def check_claims_file(claims_path: Path, summary_path: Path) -> tuple[int, list[str]]:
    """The claims of a claims file ({"claims": [...], "docs_root": ...}) checked against a report's summary.json:
    (how many claims, the problems)."""
    doc = read_json_object(claims_path, strict=True)
    if doc is None or not isinstance(doc.get("claims"), list):
        raise QtalignError(f"{claims_path}: expected a JSON object with a `claims` list")
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    docs_root = (claims_path.resolve().parent / doc.get("docs_root", ".")).resolve()  # an absolute docs_root wins
    return len(doc["claims"]), check_claims(summary, doc["claims"], docs_root)

"""Publish the paper-findings study: its tables for docs/findings.md and the claims file that ties each number to
the rebuilt report.

    python docs/evidence/publish_findings.py table SUMMARY.json            # Markdown tables, to paste into the docs
    python docs/evidence/publish_findings.py claims SUMMARY.json [--out F] # claims of every number the docs quote

SUMMARY.json is the rebuilt report's summary (`qtalign evidence check docs/evidence/findings.json.xz` writes it to
runs/evidence/findings/report/summary.json; the study.json beside that report folder gives the findings' rows).
`claims` writes one claim per number of the findings and arms tables (bootstrap interval, random-effects model
interval, power), of each real mix minus its control and of each arm's change per demonstration set (the in-task
answer quotes these), and counts, in each doc named by --docs, how many times the doc quotes it; numbers no doc
quotes are left out. `qtalign evidence check` then recomputes every claim.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from qtalign.evidence import Document, claim_text

ROOT = Path(__file__).resolve().parents[2]
MODES = ("raw", "batch")
DOCS = ("docs/findings.md", "docs/results.md", "README.md", "docs/controls.md")


def load(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(findings rows, arms rows) of a report summary."""
    return split(json.loads(path.read_text(encoding="utf-8")))


def split(summary: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(findings rows, arms rows) of a report summary's findings entries."""
    entries = summary.get("findings") or []
    return ([e for e in entries if e.get("table") == "findings"], [e for e in entries if e.get("table") == "arms"])


def finding_claims(row: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """(claim without docs, its text) for one computed findings row: bootstrap interval, model interval, power."""
    match = {"table": "findings", "finding": row["finding"], "mode": row["mode"]}
    base = {"where": "findings", "match": match}
    out = [({**base}, claim_text(row)), ({**base, "part": "mixed"}, claim_text(row["mixed"]))]
    out.append(({**base, "stat": "mde80", "quote": "±{}"}, claim_text(row, "mde80")))
    return out


def arm_claims(row: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    match = {"table": "arms", "arm": row["arm"], "mode": row["mode"], "langs_set": row["langs_set"]}
    return [({"where": "findings", "match": match}, claim_text(row))]


def control_claims(summary: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """Claims of the report's two-level bootstrap numbers the in-task answer quotes: each arm's change from base and
    each real mix minus its control, over all demonstration sets and set by set."""
    out: list[tuple[dict[str, Any], str]] = []
    for e in summary.get("arms") or []:  # the Uncertainty table: no training-seed component for one-seed arms
        out.append(({"where": "arms", "match": {k: e[k] for k in ("mix", "mode")}}, claim_text(e)))
    for e in summary.get("contrasts") or []:
        out.append(({"where": "contrasts", "match": {k: e[k] for k in ("real", "control", "mode")}}, claim_text(e)))
    for e in summary.get("contrasts_by_demo") or []:
        match = {k: e[k] for k in ("real", "control", "demo_seed", "mode")}
        out.append(({"where": "contrasts_by_demo", "match": match}, claim_text(e)))
    for e in summary.get("arms_by_demo") or []:
        out.append(({"where": "arms_by_demo", "match": {k: e[k] for k in ("mix", "demo_seed", "mode")}},
                    claim_text(e)))
    return out


def table(findings: list[dict[str, Any]], arms: list[dict[str, Any]], rows: list[dict[str, Any]]) -> str:
    """The findings table (every row of the study config's findings, in its order: computed ones with their
    estimates and verdicts, raw and batch-calibrated; the others pending or untestable) and the arms table."""
    by = {(r["finding"], r["mode"]): r for r in findings if "value" in r}
    lines = [("| # | the paper's claim | contrast | raw: Δ [bootstrap] · model | verdict | batch-calibrated: Δ "
              "[bootstrap] · model | verdict | power (80%): raw; batch | the paper |"),
             "|---|---|---|---|---|---|---|---|---|"]
    for k, spec in enumerate(rows, 1):
        fid, claim, paper = spec["id"], spec["claim"], spec.get("paper") or "–"
        if spec.get("untestable"):
            lines.append(f"| {k} | {claim} | {spec['untestable']} | – | not testable | – | not testable | – | {paper} |")
            continue
        done = [m for m in MODES if (fid, m) in by]
        if not done:
            arms_named = ", ".join([*spec.get("plus", []), *spec.get("minus", [])])
            lines.append(f"| {k} | {claim} | {arms_named} | pending | – | pending | – | – | {paper} |")
            continue
        cells = []
        for mode in MODES:
            r = by.get((fid, mode))
            cells += ([f"{claim_text(r)} · {claim_text(r['mixed'])}", r["verdict"]] if r else ["–", "–"])
        first = by[fid, done[0]]
        power = "; ".join("±" + claim_text(by[fid, m], "mde80") for m in done)
        sets = len(first["demo_seeds"])
        lines.append(f"| {k} | {claim} | {first['contrast']} ({sets} demonstration sets) | {' | '.join(cells)} | "
                     f"{power} | {paper} |")
    lines += ["", ("| arm | seeds × sets | raw: all languages | raw: unseen languages | batch-calibrated: all "
                   "languages | batch-calibrated: unseen languages |"), "|---|---|---|---|---|---|"]
    arm_by = {(r["arm"], r["mode"], r["langs_set"]): r for r in arms}
    for arm in dict.fromkeys(r["arm"] for r in arms):
        any_row = next(r for r in arms if r["arm"] == arm)
        shape = f"{sum(len(s) for s in any_row['train_seeds'].values())} × {len(any_row['demo_seeds'])}"
        cells = [claim_text(arm_by[arm, m, s]) if (arm, m, s) in arm_by else "–" for m in MODES for s in ("all", "unseen")]
        lines.append(f"| {arm} | {shape} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def config_rows(summary: Path) -> list[dict[str, Any]]:
    """The study config's findings rows, from the study.json beside the report folder of `summary`."""
    study = summary.resolve().parent.parent / "study.json"
    return json.loads(study.read_text(encoding="utf-8"))["config"]["findings"]["rows"]


def claims(summary: Path, docs: list[str]) -> list[dict[str, Any]]:
    """Every claim whose text some doc quotes, with how many times each doc does."""
    read = {name: Document.read(ROOT, name) for name in docs if (ROOT / name).is_file()}
    out = []
    doc = json.loads(summary.read_text(encoding="utf-8"))
    findings, arms = split(doc)
    pairs = [c for r in findings if "value" in r for c in finding_claims(r)] + [c for r in arms for c in arm_claims(r)]
    pairs += control_claims(doc)
    for claim, text in pairs:
        counts = {n: len(d.find(text, claim.get("quote", "{}"))) for n, d in read.items()}
        counts = {n: k for n, k in counts.items() if k}
        if counts:
            out.append({**claim, "text": text, "docs": counts})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("table", "claims"))
    ap.add_argument("summary", type=Path)
    ap.add_argument("--docs", default=",".join(DOCS), help="comma list of docs, relative to the repository root")
    ap.add_argument("--out", type=Path, help="claims: the claims file to write (default: print it)")
    ap.add_argument("--report", default="docs/results/findings/report.md", help="claims: the report copy it names")
    a = ap.parse_args()
    if not a.summary.is_file():
        print(f"error: {a.summary}: no such file (run `qtalign evidence check` first)", file=sys.stderr)
        return 2
    findings, arms = load(a.summary)
    if a.what == "table":
        sys.stdout.write(table(findings, arms, config_rows(a.summary)))
        return 0
    found = claims(a.summary, a.docs.split(","))
    text = "{\n" + f' "docs_root": "../..",\n "report": {json.dumps(a.report)},\n "claims": [\n' + ",\n".join(
        "  " + json.dumps(c, ensure_ascii=False) for c in found) + "\n ]\n}\n"
    if a.out:
        a.out.write_text(text, encoding="utf-8")
        print(f"wrote {a.out}: {len(found)} claim(s)")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

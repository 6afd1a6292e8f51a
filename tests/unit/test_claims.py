"""Every quoted number accounted for: quotations located where they stand, claims counted per doc, exemptions with
reasons, report copies compared whole (no study rebuilt here: the docs and claims are written by the test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qtalign.cli.main import main
from qtalign.errors import QtalignError
from qtalign.evidence import Document, check_claims, check_coverage, claim_text, parse_claims
from qtalign.evidence.publish import compare_copy, copy_text

M = "\u2212"
HEADLINE = "+5.8 [+0.9, +10.3]"
RESULTS = f"""# Results

The calibrated mean rose by {HEADLINE} points, and the raw one by +6.6 [{M}4.2, +16.2].

| tuned on | batch |
|---|---|
| real | {HEADLINE} |

The spread: demonstration set 8.3, training seed 0.0 (standard deviations).
Timed at 7.5 s on this CPU. `--lr 2e-4` and ```0.123``` are code, as is

```bash
qtalign eval --limit 0.5    # 99.9 [1.0, 2.0]
```
"""
README = f"""# qtalign

The headline: {HEADLINE} over 3 training seeds.
"""
SUMMARY = {"arms": [{"mix": "real", "mode": "batch", "value": 0.058, "ci95": [0.009, 0.103],
                     "sd": {"items": 0.02, "demos": 0.083, "train": 0.0, "grand_sd": 0.03}},
                    {"mix": "real", "mode": "raw", "value": 0.066, "ci95": [-0.042, 0.162],
                     "sd": {"items": 0.043, "demos": 0.083, "train": 0.0, "grand_sd": 0.06}}]}
CLAIMS = [
    {"where": "arms", "match": {"mix": "real", "mode": "batch"}, "text": HEADLINE,
     "docs": {"docs/results.md": 2, "README.md": 1}},
    {"where": "arms", "match": {"mix": "real", "mode": "raw"}, "text": f"+6.6 [{M}4.2, +16.2]",
     "docs": {"docs/results.md": 1}},
    {"where": "arms", "match": {"mix": "real", "mode": "raw"}, "stat": "sd:demos", "text": "8.3",
     "quote": "demonstration set {}", "docs": {"docs/results.md": 1}},
    {"where": "arms", "match": {"mix": "real", "mode": "raw"}, "stat": "sd:train", "text": "0.0",
     "quote": "training seed {}", "docs": {"docs/results.md": 1}},
]
EXEMPT = [{"file": "docs/*.md", "text": "7.5 s", "reason": "a timing on a named machine"}]


def write_repo(root: Path, results: str = RESULTS, exempt: list[dict] | None = None) -> Path:
    (root / "docs" / "evidence").mkdir(parents=True)
    (root / "README.md").write_text(README, encoding="utf-8")
    (root / "docs" / "results.md").write_text(results, encoding="utf-8")
    (root / "docs" / "evidence" / "s.claims.json").write_text(
        json.dumps({"docs_root": "../..", "claims": CLAIMS}, ensure_ascii=False), encoding="utf-8")
    (root / "docs" / "evidence" / "exemptions.json").write_text(
        json.dumps({"exemptions": EXEMPT if exempt is None else exempt}), encoding="utf-8")
    return root


def test_quotations_are_located_where_they_stand_and_code_is_skipped() -> None:
    doc = Document("docs/results.md", RESULTS)
    quotes = [(q.line, q.text) for q in doc.quotes()]
    assert quotes == [(3, HEADLINE), (3, f"+6.6 [{M}4.2, +16.2]"), (7, HEADLINE), (9, "8.3"), (9, "0.0"),
                      (10, "7.5")]  # counts (3 seeds), inline code and the fenced block are not quotations
    wrapped = Document("x.md", f"ahead by +1.3\n[{M}1.5, +4.2], and 0.544 → 0.575; r = +0.30 [{M}0.12, +0.60]; "
                               f"13–16 points; 54%; Qwen1.5-1.8B, torch 2.13.0, gemma-3-270m, 2e-4")
    assert [q.text for q in wrapped.quotes()] == [f"+1.3 [{M}1.5, +4.2]", "0.544 → 0.575",
                                                  f"r = +0.30 [{M}0.12, +0.60]", "13–16 points", "54%"]
    assert [wrapped.line(s) for s, _ in wrapped.find(f"+1.3 [{M}1.5, +4.2]")] == [1]  # a line break is a space
    assert Document("x.md", "+10.3 and 10.35").find("0.3") == []  # never part of a longer number


def test_a_heading_that_ends_in_inline_code_keeps_its_whole_title() -> None:
    doc = Document("d.md", "# Top\n\n## Steps in parallel: `qtalign run --jobs N`\n\nIt moved 0.046 apart.\n")
    (q,) = doc.quotes()
    assert q.text == "0.046" and q.section == "Steps in parallel: `qtalign run --jobs N`"


def test_every_number_claimed_or_exempt_passes(tmp_path: Path) -> None:
    c = check_coverage(write_repo(tmp_path))
    assert c.problems == [] and (c.quotes, c.claimed, c.exempt) == (7, 6, 1)


def test_changing_one_occurrence_of_a_quoted_number_fails(tmp_path: Path) -> None:
    changed = RESULTS.replace(f"| real | {HEADLINE} |", "| real | +5.9 [+0.9, +10.3] |")
    problems = check_coverage(write_repo(tmp_path, changed)).problems
    assert any(p.startswith("docs/results.md:7: +5.9 [+0.9, +10.3]: no claim supports") and
               f"expected {HEADLINE}" in p for p in problems), problems
    assert any(p.startswith(f"docs/results.md: quotes '{HEADLINE}' 1 time(s) (lines 3)") and "expects 2" in p
               for p in problems), problems
    # a bare number that a claim quotes in a phrase: the changed copy is no longer the claim
    problems = check_coverage(write_repo(tmp_path / "b", RESULTS.replace("seed 0.0", "seed 0.1"))).problems
    assert any(p.startswith("docs/results.md:9: 0.1: no claim") for p in problems), problems


def test_an_unsupported_interval_fails_and_an_exempt_number_passes(tmp_path: Path) -> None:
    added = RESULTS + f"\nA new finding: +2.0 [{M}1.0, +4.0].\n"
    problems = check_coverage(write_repo(tmp_path, added)).problems
    assert len(problems) == 1 and problems[0].startswith(f"docs/results.md:16: +2.0 [{M}1.0, +4.0]: no claim")
    exempt = EXEMPT + [{"file": "docs/results.md", "text": f"+2.0 [{M}1.0, +4.0]", "reason": "an example"}]
    assert check_coverage(write_repo(tmp_path / "b", added, exempt)).problems == []
    assert any("7.5: no claim" in p for p in check_coverage(write_repo(tmp_path / "c", exempt=[])).problems)


def test_exemptions_need_a_reason_and_stale_ones_fail(tmp_path: Path) -> None:
    with pytest.raises(QtalignError, match="give the reason"):
        check_coverage(write_repo(tmp_path, exempt=[{"file": "docs/results.md", "text": "7.5 s"}]))
    stale = EXEMPT + [{"file": "README.md", "text": "9.9", "reason": "gone"},
                      {"file": "docs/not-yet.md", "reason": "a page another branch adds"}]
    problems = check_coverage(write_repo(tmp_path / "b", exempt=stale)).problems
    assert problems == [("docs/evidence/exemptions.json: exemption 1 (README.md: 9.9) covers nothing (stale: remove "
                        "it)")]
    section = [{"file": "docs/results.md", "section": "Results", "reason": "timings"},
               {"file": "README.md", "reason": "all of it"}]
    problems = check_coverage(write_repo(tmp_path / "c", RESULTS + "\nTimed at 9.5 s.\n", exempt=section)).problems
    assert problems == []  # the section's own numbers (7.5 s, 9.5 s) are exempt, its claims still claimed
    added = RESULTS + f"\nA new finding: +2.0 [{M}1.0, +4.0].\n"
    problems = check_coverage(write_repo(tmp_path / "d", added, exempt=section)).problems
    assert len(problems) == 1 and "+2.0 [−1.0, +4.0]: no claim" in problems[0]  # never an interval


def test_claims_are_checked_against_the_summary_and_counted(tmp_path: Path) -> None:
    root = write_repo(tmp_path)
    claims, _ = parse_claims(root / "docs" / "evidence" / "s.claims.json")
    assert check_claims(SUMMARY, claims, root) == []
    moved = json.loads(json.dumps(SUMMARY))
    moved["arms"][0]["ci95"] = [0.003, 0.106]
    problems = check_claims(moved, claims, root)
    assert problems == [(f"s.claims.json claim 0 (arms {{'mix': 'real', 'mode': 'batch'}}, change): recomputed "
                        f"+5.8 [+0.3, +10.6], the docs say {HEADLINE} (at docs/results.md:3, docs/results.md:7, "
                        f"README.md:3)")]


def test_a_claim_prints_from_a_part_of_its_entry(tmp_path: Path) -> None:
    """A findings row holds two intervals: the bootstrap's at its top level, the random-effects model's under
    `mixed`; `"part": "mixed"` checks the second."""
    summary = {"findings": [{"finding": "leaders", "mode": "raw", "value": 0.018, "ci95": [-0.057, 0.083],
                             "mde80": 0.1, "mixed": {"value": 0.018, "ci95": [-0.136, 0.171]}}]}
    (tmp_path / "f.md").write_text(f"+1.8 [{M}5.7, +8.3] · +1.8 [{M}13.6, +17.1], power ±10.0\n", encoding="utf-8")
    row = {"where": "findings", "match": {"finding": "leaders", "mode": "raw"}, "docs": {"f.md": 1}}
    path = tmp_path / "x.claims.json"
    path.write_text(json.dumps({"claims": [{**row, "text": f"+1.8 [{M}5.7, +8.3]"},
                                           {**row, "part": "mixed", "text": f"+1.8 [{M}13.6, +17.1]"},
                                           {**row, "stat": "mde80", "text": "10.0", "quote": "±{}"}]},
                               ensure_ascii=False), encoding="utf-8")
    claims, _ = parse_claims(path)
    assert check_claims(summary, claims, tmp_path) == []
    summary["findings"][0]["mixed"]["ci95"] = [-0.1, 0.171]
    (problem,) = check_claims(summary, claims, tmp_path)
    assert "claim 1 (findings" in problem and "mixed, change): recomputed +1.8 [" in problem
    del summary["findings"][0]["mixed"]
    (problem,) = check_claims(summary, claims, tmp_path)
    assert problem.endswith("the recomputed entry has no mixed")


def test_claim_text_units_and_statistics() -> None:
    pair = {"base_acc": 0.5439, "other_acc": 0.575, "diff": 0.0311, "ci95": [-0.011, 0.075], "mde80": 0.0551,
            "ci95_independent": [0.006, 0.056], "base_f1": 0.4714, "other_f1": 0.5333}
    assert claim_text(pair, "accuracy", "fraction") == "0.544 → 0.575"
    assert claim_text(pair) == f"+3.1 [{M}1.1, +7.5]"
    assert claim_text(pair, ci="ci95_independent") == "+3.1 [+0.6, +5.6]"
    assert claim_text(pair, "interval") == f"[{M}1.1, +7.5]" and claim_text(pair, "diff", digits=0) == "+3"
    assert claim_text(pair, "base") == "54.4" and claim_text(pair, "f1", "fraction") == "0.471 → 0.533"
    share = {"base_share": 0.146, "other_share": 0.285, "diff": 0.139, "ci95": [0.11, 0.169], "gold_share": 0.5375}
    assert claim_text(share, "gold", "percent") == "54%" and claim_text(share, "base", "percent") == "15%"
    assert claim_text(share, "accuracy", "fraction", 2) == "0.15 → 0.28"
    align = {"r": -0.004, "ci95": [-0.67, 0.51], "changes": {"en": {"cos": None}, "zh": {"cos": -0.041}}}
    assert claim_text(align, "r") == f"r = {M}0.00 [{M}0.67, +0.51]" and claim_text(align, "maxabs:cos") == "0.04"


def test_malformed_claims_are_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "x.claims.json"
    for claim, message in (({"where": "arms", "match": {}, "text": "1", "docs": ["README.md"]}, "how many times"),
                           ({"where": "arms", "match": {}, "text": "1", "docs": {"a": 1}, "unit": "pct"}, "unit"),
                           ({"where": "arms", "match": {}, "text": "1", "docs": {"a": 1}, "quote": "x"}, "quote"),
                           ({"where": "arms", "match": {}, "text": "1", "docs": {"a": 1}, "typo": 1}, "unknown")):
        path.write_text(json.dumps({"claims": [claim]}))
        with pytest.raises(QtalignError, match=message):
            parse_claims(path)


def test_report_copy_is_compared_line_by_line(tmp_path: Path) -> None:
    rebuilt = tmp_path / "rebuilt"
    md = f"# report\n\n- folder: {rebuilt.resolve()}\n- change {HEADLINE}\n"
    copy = tmp_path / "copy.md"
    copy.write_text(copy_text(md, rebuilt, "s"), encoding="utf-8")
    assert "runs/evidence/s" in copy.read_text() and compare_copy(copy, md, rebuilt, "s") == []
    copy.write_text(copy.read_text().replace("+5.8", "+5.9"), encoding="utf-8")
    problems = compare_copy(copy, md, rebuilt, "s")
    assert len(problems) == 1 and problems[0].startswith(f"{copy}:4: the copy says '- change +5.9")


def test_coverage_command_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evidence", "coverage", "--root", str(write_repo(tmp_path / "a"))]) == 0
    assert "7 number-shaped quotation(s) in 2 doc(s): 6 claimed, 1 exempt; 0 problem(s)" in capsys.readouterr().out
    assert main(["evidence", "coverage", "--root", str(write_repo(tmp_path / "b", RESULTS + "\n+1.0 [+0.1, +2.0]\n"))]) == 1
    assert "docs/results.md:16: +1.0 [+0.1, +2.0]" in capsys.readouterr().out
    assert main(["evidence", "coverage", "--root", str(tmp_path / "nowhere")]) == 2

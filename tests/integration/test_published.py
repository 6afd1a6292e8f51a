"""Every number the docs quote from a study is recomputed from the per-item evidence kept in docs/evidence/, and
every number-shaped quotation of the docs is such a claim or a reasoned exemption."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from qtalign.cli.main import main
from qtalign.evidence.pack import evidence_name

ROOT = Path(__file__).resolve().parents[2]
EVIDENCE = sorted((ROOT / "docs" / "evidence").glob("*.json.[gx]z"))


def test_every_quoted_number_is_claimed_or_exempt(capsys: pytest.CaptureFixture[str]) -> None:
    """README.md and docs/**/*.md: each interval, arrow, share, correlation, SD or change they print is a claim
    (counted in every doc that quotes it) or sits in docs/evidence/exemptions.json with its reason."""
    assert main(["evidence", "coverage", "--root", str(ROOT)]) == 0, capsys.readouterr().out


def test_evidence_files_are_small() -> None:
    assert EVIDENCE, "docs/evidence/ holds no evidence file"
    for f in EVIDENCE:
        assert f.stat().st_size < 3 * 1024 * 1024, f"{f.name}: evidence files stay a few MB at most"


@pytest.mark.parametrize("evidence", EVIDENCE, ids=[evidence_name(f) for f in EVIDENCE])
def test_published_numbers_are_recomputed_from_the_evidence(evidence: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    claims = evidence.with_name(evidence_name(evidence) + ".claims.json")
    assert claims.is_file(), f"{claims.name}: the numbers the docs quote from {evidence.name} are listed there"
    assert main(["evidence", "check", str(evidence), "--out", str(tmp_path / "rebuilt")]) == 0, \
        capsys.readouterr().out
    out = capsys.readouterr().out
    assert "0 problem(s)" in out
    assert "differs" not in out  # the report copy under docs/results/, when the claims file names one


def test_in_task_headline_agrees_with_an_independent_recomputation() -> None:
    """docs/evidence/recompute_headline.py (numpy only, no qtalign code) recomputes the in-task headline from the
    evidence, items matched by index; every bound agrees with the published (claimed) one within 0.5 points."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("recompute_headline", ROOT / "docs" / "evidence" / "recompute_headline.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fresh = module.headline(ROOT / "docs" / "evidence" / "intask.json.xz", 4000, 1)
    claims = json.loads((ROOT / "docs" / "evidence" / "intask.claims.json").read_text(encoding="utf-8"))["claims"]
    published = {}
    for c in claims:
        m, stat = c["match"], c.get("stat", "change")
        if stat != "change" or c.get("ci", "ci95") != "ci95" or m.get("mode") not in ("raw", "batch"):
            continue
        if c["where"] == "arms" and m.get("mix") == "zh-es-en":
            published[f"real - base, {m['mode']}"] = c["text"]
        elif c["where"] == "contrasts" and m.get("control") == "zh-es-en-copy":
            published[f"real - copy, {m['mode']}"] = c["text"]
    assert len(published) == 4, published
    for name, text in published.items():
        numbers = [float(x.replace("\u2212", "-")) for x in re.findall(r"[+\u2212]?\d+\.\d", text)]
        assert all(abs(a - b) <= 0.5 for a, b in zip(numbers, fresh[name], strict=True)), (name, text, fresh[name])


def test_findings_agree_with_an_independent_recomputation() -> None:
    """docs/evidence/recompute_findings.py (numpy only) recomputes every finding and arm the docs quote from the
    findings evidence: each point estimate and bound within 0.5 points of the published (claimed) one (both at
    20,000 resamples, so Monte Carlo error stays well inside that)."""
    import importlib.util

    evidence = ROOT / "docs" / "evidence" / "findings.json.xz"
    if not evidence.is_file():
        pytest.skip("no findings evidence published yet (docs/evidence/findings.json.xz)")
    spec = importlib.util.spec_from_file_location("recompute_findings",
                                                  ROOT / "docs" / "evidence" / "recompute_findings.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fresh = module.findings(evidence, 20000, 1)
    claims = json.loads(evidence.with_name("findings.claims.json").read_text(encoding="utf-8"))["claims"]
    checked = 0
    for c in claims:
        m = c["match"]
        if c.get("stat", "change") != "change" or c.get("part") or c["where"] != "findings":
            continue
        key = (f"{m['finding']}, {m['mode']}" if m["table"] == "findings"
               else f"{m['arm']}, {m['mode']}, {m['langs_set']}")
        got = (fresh["findings"] if m["table"] == "findings" else fresh["arms"])[key]
        numbers = [float(x.replace("\u2212", "-")) for x in re.findall(r"[+\u2212]?\d+\.\d", c["text"])]
        # the published interval includes the training-seed component of one-seed arms: point, lo+seed, hi+seed
        assert all(abs(a - b) <= 0.5 for a, b in zip(numbers, [got[0], got[3], got[4]], strict=True)), \
            (key, c["text"], got)
        checked += 1
    assert checked, "findings.claims.json quotes no finding or arm"

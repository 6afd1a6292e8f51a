"""Every number the docs quote from a study is recomputed from the per-item evidence kept in docs/evidence/, and
every number-shaped quotation of the docs is such a claim or a reasoned exemption."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from qtalign.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
EVIDENCE = sorted((ROOT / "docs" / "evidence").glob("*.json.gz"))


def test_every_quoted_number_is_claimed_or_exempt(capsys: pytest.CaptureFixture[str]) -> None:
    """README.md and docs/**/*.md: each interval, arrow, share, correlation, SD or change they print is a claim
    (counted in every doc that quotes it) or sits in docs/evidence/exemptions.json with its reason."""
    assert main(["evidence", "coverage", "--root", str(ROOT)]) == 0, capsys.readouterr().out


def test_evidence_files_are_small() -> None:
    assert EVIDENCE, "docs/evidence/ holds no evidence file"
    for f in EVIDENCE:
        assert f.stat().st_size < 3 * 1024 * 1024, f"{f.name}: evidence files stay a few MB at most"


@pytest.mark.parametrize("evidence", EVIDENCE, ids=[f.name.removesuffix(".json.gz") for f in EVIDENCE])
def test_published_numbers_are_recomputed_from_the_evidence(evidence: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    claims = evidence.with_name(evidence.name.removesuffix(".json.gz") + ".claims.json")
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
    fresh = module.headline(ROOT / "docs" / "evidence" / "intask.json.gz", 4000, 1)
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

"""Every number the docs quote from a study is recomputed from the per-item evidence kept in docs/evidence/, and
every number-shaped quotation of the docs is such a claim or a reasoned exemption."""

from __future__ import annotations

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

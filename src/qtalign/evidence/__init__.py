"""A study's per-item evidence in one small file: packed, unpacked, and the numbers the docs quote rechecked."""

from __future__ import annotations

from qtalign.evidence.claims import check_claims, check_claims_file, claim_text, parse_claims, points
from qtalign.evidence.coverage import Coverage, check_coverage
from qtalign.evidence.pack import FORMAT, pack, read_pack, unpack
from qtalign.evidence.quotes import Document, Quote
from qtalign.evidence.run import (
    CheckResult,
    CheckSettings,
    CoverageSettings,
    PackResult,
    PackSettings,
    run_check,
    run_coverage,
    run_pack,
)

__all__ = [
    "FORMAT", "CheckResult", "CheckSettings", "Coverage", "CoverageSettings", "Document", "PackResult", "PackSettings",
    "Quote", "check_claims", "check_claims_file", "check_coverage", "claim_text", "pack", "parse_claims", "points",
    "read_pack", "run_check", "run_coverage", "run_pack", "unpack",
]

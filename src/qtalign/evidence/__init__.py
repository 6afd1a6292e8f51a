"""A study's per-item evidence in one small file: packed, unpacked, and the numbers the docs quote rechecked."""

from __future__ import annotations

from qtalign.evidence.claims import check_claims, check_claims_file, claim_text, points
from qtalign.evidence.pack import FORMAT, pack, read_pack, unpack
from qtalign.evidence.run import CheckResult, CheckSettings, PackResult, PackSettings, run_check, run_pack

__all__ = [
    "FORMAT", "CheckResult", "CheckSettings", "PackResult", "PackSettings", "check_claims", "check_claims_file",
    "claim_text", "pack", "points", "read_pack", "run_check", "run_pack", "unpack",
]

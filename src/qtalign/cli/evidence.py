"""`qtalign evidence`: pack a study's per-item evidence into one small file; recheck every table from such a file."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "evidence", help="pack a study's per-item evidence; recompute its report from an evidence file (no model)",
        description="`pack STUDY --out FILE` keeps what every table and interval of a study's report is computed from "
                    "(per-item predictions and calibrated predictions, run records, training logs, lens/PCA "
                    "summaries; no weights, no data texts; paths relative to the study folder) in one compressed "
                    "JSON file (xz; gzip when --out ends .json.gz) of a few hundred kB to a few MB, with a sha256 of "
                    "every file in it. "
                    "`check FILE` refuses a file changed after packing, rebuilds the study folder from it and "
                    "recomputes the report: every comparison and interval is computed again from the per-item rows, "
                    "and the numbers the docs quote from it (NAME.claims.json) are checked where they stand. "
                    "`coverage` checks that every number-shaped quotation in README.md and docs/**/*.md is such a "
                    "claim or sits in the exemption list.")
    sub = p.add_subparsers(dest="evidence_command", required=True, metavar="ACTION")
    pk = sub.add_parser("pack", help="write a study folder's evidence file")
    pk.add_argument("study", metavar="STUDY", nargs="?", help="a `qtalign run` output folder (holds study.json)")
    pk.add_argument("--from-evidence", default=None, metavar="FILE",
                    help="instead of a study folder, repack an evidence file (also one written by an older qtalign) "
                         "with a digest of every file and paths relative to the study folder; --out may be FILE")
    pk.add_argument("--out", required=True, help="evidence file to write, e.g. docs/evidence/intask.json.xz")
    pk.set_defaults(func=run_pack)
    ck = sub.add_parser("check", help="recompute a study's report from its evidence file")
    ck.add_argument("file", metavar="FILE", help="an evidence file written by `qtalign evidence pack`")
    ck.add_argument("--out", default=None,
                    help="folder to rebuild the study in (default: runs/evidence/NAME, NAME from the file name)")
    ck.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples (default 2000)")
    ck.add_argument("--claims", default=None, metavar="JSON",
                    help="also check the numbers the docs quote (default: CLAIMS.json beside FILE, i.e. "
                         "NAME.claims.json, when it exists); exit status 1 when one no longer matches")
    ck.add_argument("--write-report", action="store_true",
                    help="(re)write the report copy the claims file names (`report`, e.g. "
                         "docs/results/NAME/report.md, with its figures) instead of comparing it")
    ck.set_defaults(func=run_check)
    cv = sub.add_parser("coverage", help="check that every number the docs quote is claimed or exempt (fast)")
    cv.add_argument("--root", default=".", help="the repository root (default: the current folder)")
    cv.set_defaults(func=run_coverage)
    return p


def run_pack(args: argparse.Namespace) -> int:
    from qtalign.evidence.run import PackSettings, run_pack

    settings = PackSettings.parse({"study": args.study, "from_evidence": args.from_evidence, "out": args.out},
                                  "command line")
    for line in run_pack(settings).lines():
        print(line)
    return 0


def run_check(args: argparse.Namespace) -> int:
    from qtalign.evidence.run import CheckSettings
    from qtalign.evidence.run import run_check as check

    settings = CheckSettings.parse({"file": args.file, "out": args.out, "n_boot": args.bootstrap,
                                    "claims": args.claims, "write_report": args.write_report}, "command line")
    result = check(settings)
    for line in result.lines():
        print(line)
    return 1 if result.problems else 0


def run_coverage(args: argparse.Namespace) -> int:
    from qtalign.evidence.run import CoverageSettings, run_coverage

    result = run_coverage(CoverageSettings.parse({"root": args.root}, "command line"))
    for line in result.lines():
        print(line)
    return 1 if result.problems else 0

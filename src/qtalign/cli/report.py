"""`qtalign report`: the study report (one self-contained HTML page + Markdown) from a study folder (no model)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "report", help="HTML + Markdown report of a study folder (reads results only)",
        description="Read STUDY/study.json (written by `qtalign run`) and the runs it names; write "
                    "STUDY/report/report.html (self-contained: figures embedded, no network) and report.md.")
    p.add_argument("study", metavar="STUDY", help="study folder (holds study.json)")
    p.add_argument("--bootstrap", type=int, default=2000,
                   help="bootstrap resamples for comparisons not already in the study (default 2000)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from qtalign.report.run import ReportSettings
    from qtalign.report.run import run as report

    paths = report(ReportSettings.parse({"study": args.study, "n_boot": args.bootstrap}, "command line"))
    print(f"report: {paths['html']}")
    print(f"markdown: {paths['md']}")
    return 0

"""`qtalign report`: one self-contained HTML page + Markdown from a study folder or from run folders (no model)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from qtalign.cli.compare import _split


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "report", help="HTML + Markdown report of a study folder, or of eval / lm-eval run folders (reads results only)",
        description="Read STUDY/study.json (written by `qtalign run`) and the runs it names; write "
                    "STUDY/report/report.html (self-contained: figures embedded, no network) and report.md. Or give "
                    "run folders (qtalign eval, or lm-eval output written with --log_samples) and --out: the first "
                    "is the base, each other run is compared with it per task.")
    p.add_argument("paths", nargs="+", metavar="STUDY|RUN", help="a study folder (holds study.json), or run folders")
    p.add_argument("--out", default=None, help="folder for a report over run folders")
    p.add_argument("--names", default=None, help="comma list of short names for the runs (default: folder names)")
    p.add_argument("--seen", default=None, help="comma list of seen languages (run folders)")
    p.add_argument("--lang-map", default=None, metavar="FILE",
                   help="lm-eval runs: YAML/JSON mapping tasks outside qtalign's tables to languages (docs/lm-eval.md)")
    p.add_argument("--bootstrap", type=int, default=2000,
                   help="bootstrap resamples for comparisons not already in the study (default 2000)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from qtalign.report.run import ReportSettings
    from qtalign.report.run import run as report

    study = len(args.paths) == 1 and args.out is None and (Path(args.paths[0]) / "study.json").exists()
    if len(args.paths) == 1 and args.out is None and not study:  # the study's own error: study.json not found
        study = True
    values = {"study": args.paths[0]} if study else {"runs": args.paths, "out": args.out,
                                                      "names": _split(args.names, "--names"),
                                                      "seen": _split(args.seen, "--seen"), "lang_map": args.lang_map}
    paths = report(ReportSettings.parse({**values, "n_boot": args.bootstrap}, "command line"))
    print(f"report: {paths['html']}")
    print(f"markdown: {paths['md']}")
    return 0

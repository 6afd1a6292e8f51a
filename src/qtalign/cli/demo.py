"""`qtalign demo`: the whole loop on CPU with the packaged model and shipped data, ending with the headline."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo", help="the whole loop on the packaged Gemma 3 270M: eval, tune, eval, compare, lens, report",
        description="Base evaluation -> zh/es => en question-translation LoRA -> tuned evaluation -> paired "
                    "comparison -> logit lens -> report, on the sentiment sample and question texts shipped with "
                    "qtalign (about 10-15 minutes on 2 CPU cores). A rerun reuses every finished step.")
    p.add_argument("--data", default=None,
                   help="run the same demo on the paper's data layout instead (a folder with emotion/ and snli/)")
    p.add_argument("--out", default=None, help="study folder (default: runs/demo, or runs/demo-paper with --data)")
    p.add_argument("--model", default=None, help="another model than the packaged gemma-3-270m")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N items per language")
    p.add_argument("--pairs", type=int, default=None, help="question pairs per source language (default: the "
                                                            "preset's)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    p.add_argument("--no-progress", action="store_true", help="no progress bars inside steps")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from qtalign.study.entry import DemoSettings, run_demo

    settings = DemoSettings.parse({"data": args.data, "out": args.out, "model": args.model, "limit": args.limit,
                                   "pairs": args.pairs, "dry_run": args.dry_run}, "command line")
    for line in run_demo(settings, progress=print if args.no_progress else True).lines():
        print(line)
    return 0

"""`qtalign step SPEC`: run one planned step of a study in this process (what `qtalign run --jobs/--engine` starts)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "step", help="run one step of a study from the spec file `qtalign run --jobs N` or --engine wrote (internal)",
        description="Run the study step described by SPEC (S/jobs/NAME.json, written by `qtalign run` when steps run "
                    "in worker processes): hold its folder, run it, mark it finished. Not meant to be typed: "
                    "`qtalign run` starts it, also under torchrun when the study asks for several processes per "
                    "step. See docs/distributed.md.")
    p.add_argument("spec", metavar="SPEC", help="the step's spec file (S/jobs/NAME.json)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from qtalign.study.worker import BUSY, StepBusy, run_spec

    try:
        run_spec(args.spec)
    except StepBusy as e:  # the step runs elsewhere: the runner waits for it instead of failing
        print(f"qtalign: error: {e}", file=sys.stderr)
        return BUSY
    return 0

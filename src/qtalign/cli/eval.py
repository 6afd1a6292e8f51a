"""`qtalign eval`: few-shot constrained-decoding evaluation per language, resumable."""

from __future__ import annotations

import argparse

from qtalign.calibration import parse_modes
from qtalign.cli.common_options import add_data_options, add_model_options, eval_settings
from qtalign.eval import EvalSettings
from qtalign.eval import run as run_eval


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a model (optionally with a LoRA adapter) per language",
                       description=__doc__)
    add_model_options(p)
    add_data_options(p)
    p.add_argument("--scoring", default=None, choices=["first-token", "loglik"],
                   help="first-token: the paper's constrained decoding (default); loglik: whole label words")
    p.add_argument("--calibrate", default="all", metavar="MODES",
                   help="calibrated predictions added next to the raw ones: batch, content-free, a comma list, all "
                        "(default) or none; any finished run can be recalibrated with `qtalign calibrate` "
                        "(docs/calibration.md)")
    p.add_argument("--log-prompts", action="store_true",
                   help="also write prompts.jsonl: the exact prompts scored (the lines of `qtalign prompts`)")
    p.add_argument("--out", required=True, help="run folder: predictions.jsonl, results.json (resumes if present)")
    p.add_argument("--overwrite", action="store_true", help="discard earlier results in --out instead of resuming")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def settings(args: argparse.Namespace) -> EvalSettings:
    """The flags of `qtalign eval` as EvalSettings."""
    return eval_settings(args, calibrate=parse_modes(args.calibrate))


def run(args: argparse.Namespace) -> int:
    from qtalign.distributed import get_dist

    result = run_eval(settings(args), progress=not args.no_progress)
    if get_dist().is_main:  # in a multi-process run the main process reports
        print("\n".join(result.lines()))
    return 0

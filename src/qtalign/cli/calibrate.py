"""`qtalign calibrate`: recompute a finished eval run's calibrated predictions and results without the model."""

from __future__ import annotations

import argparse

from qtalign.calibration import parse_modes


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="recalibrate a finished eval run from its stored scores (no model)",
                       description=__doc__)
    p.add_argument("run", metavar="RUN_DIR", help="folder of a finished `qtalign eval` run")
    p.add_argument("--calibrate", nargs="+", default=["all"], metavar="MODE",
                   help="batch, content-free (one or more, or a comma list), all (default) or none")
    p.add_argument("--n-boot", type=int, default=None, help="bootstrap resamples (default: the run's)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from qtalign.eval import CalibrateSettings, recalibrate

    result = recalibrate(CalibrateSettings.parse({"out": args.run, "calibrate": parse_modes(args.calibrate),
                                                  "n_boot": args.n_boot}, "command line"))
    print("\n".join(result.lines()))
    return 0

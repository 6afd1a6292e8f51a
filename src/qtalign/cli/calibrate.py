"""`qtalign calibrate`: recompute a finished eval run's calibrated predictions and results without the model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from qtalign.calibration import parse_modes
from qtalign.errors import QtalignError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="recalibrate a finished eval run from its stored scores (no model)",
                       description=__doc__)
    p.add_argument("run", metavar="RUN_DIR", help="folder of a finished `qtalign eval` run")
    p.add_argument("--calibrate", nargs="+", default=["all"], metavar="MODE",
                   help="batch, content-free (one or more, or a comma list), all (default) or none")
    p.add_argument("--n-boot", type=int, default=None, help="bootstrap resamples (default: the run's)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from qtalign.evaluate import PREDICTIONS, RESULTS, EvalSettings, format_table, run_eval

    folder = Path(args.run)
    path = folder / RESULTS
    if not path.is_file():
        raise QtalignError(f"{path}: not found; a run is recalibrated once `qtalign eval` has finished it")
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))["settings"]
    except (ValueError, KeyError, TypeError):
        raise QtalignError(f"{path}: no readable 'settings'; rerun `qtalign eval` into {folder}") from None
    update = {"calibrate": parse_modes(args.calibrate)}
    if args.n_boot is not None:
        update["n_boot"] = args.n_boot
    settings = EvalSettings.parse({**recorded, **update}, str(path))
    results = run_eval(settings, folder, progress=False, score=False)
    print(format_table(results))
    print(f"rewrote {folder / PREDICTIONS} and {path}")
    return 0

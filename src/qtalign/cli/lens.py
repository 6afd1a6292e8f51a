"""`qtalign lens`: its flags, parsed into qtalign.analysis.lens_run.LensSettings for the library run."""

from __future__ import annotations

import argparse
from typing import Any

from qtalign.cli.common_options import add_data_options, add_model_options, settings_from_args


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("lens", help="logit lens: label-token probability and entropy per layer",
                              description="Logit lens at the last prompt position of every layer.")
    add_model_options(p)
    add_data_options(p, required=False)
    p.add_argument("--out", help="run folder (resumable; required unless --redraw)")
    p.add_argument("--compare", help="a second lens run folder to overlay (e.g. the tuned model)")
    p.add_argument("--redraw", metavar="DIR", help="only redraw the figure of a finished run folder (no model)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the bands (default 1000)")
    p.add_argument("--entropy-unit", default=None, choices=["nats", "bits"],
                   help="unit of the entropy (default: nats; bits under --protocol paper)")
    p.add_argument("--drop-overlap", action=argparse.BooleanOptionalAction, default=None,
                   help="drop items whose correct label's native and English token sets share a token, as the "
                        "paper does (count reported in lens_filter.json; default: no, yes under --protocol paper)")
    add_run_options(p)
    p.set_defaults(func=run)


def add_run_options(p: argparse.ArgumentParser) -> None:
    """--overwrite and --label, shared by lens and pca."""
    p.add_argument("--overwrite", action="store_true", help="discard earlier results in --out instead of resuming")
    p.add_argument("--label", default=None,
                   help="name of this run in figures (default: the model, plus the adapter's training mix)")


def run(args: argparse.Namespace) -> int:
    """Parse the flags into LensSettings, run the lens (or redraw) and print the files written."""
    from qtalign.analysis.lens_run import LensSettings
    from qtalign.analysis.lens_run import run as run_lens

    for line in run_lens(settings_from_args(args, LensSettings)).lines():
        print(line)
    return 0

"""`qtalign pca`: its flags, parsed into qtalign.analysis.pca_run.PCASettings for the library run."""

from __future__ import annotations

import argparse
from typing import Any

from qtalign.cli.common_options import add_data_options, add_model_options, settings_from_args
from qtalign.cli.lens import add_run_options


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("pca", help="PCA of pooled hidden states per layer; cross-language alignment",
                              description="Pooled hidden states per layer, PCA fitted jointly over languages.")
    add_model_options(p)
    add_data_options(p, required=False)
    p.add_argument("--out", help="run folder (resumable; required unless --redraw)")
    p.add_argument("--layers", default=None,
                   help="comma list of layers (0 = embeddings, L = final output; default: all)")
    p.add_argument("--pool", default=None, choices=("mean", "item", "last"),
                   help="mean over the whole prompt (paper; default), mean over the item's tokens, or the last token")
    p.add_argument("--compare", help="a second pca run folder, drawn side by side (e.g. the tuned model)")
    p.add_argument("--redraw", metavar="DIR", help="only redraw the figures of a finished run folder (no model)")
    add_run_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Parse the flags into PCASettings, run the PCA (or redraw) and print the files written."""
    from qtalign.analysis.pca_run import PCASettings
    from qtalign.analysis.pca_run import run as run_pca

    for line in run_pca(settings_from_args(args, PCASettings)).lines():
        print(line)
    return 0

"""`qtalign merge`: fold a LoRA adapter into the base model's weights (safetensors + tokenizer)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("merge", help="merge a LoRA adapter into its base model",
                              description="Fold a LoRA adapter into the base model's weights and save a plain "
                                          "safetensors model folder. A rerun with the same settings does nothing.")
    p.add_argument("--model", default="gemma-3-270m", help="base model (id, folder, .gguf or gemma-3-270m)")
    p.add_argument("--adapter", required=True, help="a `qtalign train --out` folder (or its adapter/ subfolder)")
    p.add_argument("--out", required=True, help="new folder for the merged model")
    p.add_argument("--dtype", default="float32", help="dtype of the saved weights (default float32)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow model code from the model's folder")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier merge in --out made from other settings")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from qtalign.merge import MergeSettings
    from qtalign.merge import run as merge

    settings = MergeSettings.parse({"model": args.model, "adapter": args.adapter, "out": args.out, "dtype": args.dtype,
                                    "trust_remote_code": args.trust_remote_code, "overwrite": args.overwrite},
                                   "command line")
    print("\n".join(merge(settings).lines()))
    return 0

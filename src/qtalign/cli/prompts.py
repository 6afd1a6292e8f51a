"""`qtalign prompts`: print the exact prompts eval would score, one JSON object per line (no model needed)."""

from __future__ import annotations

import argparse
import os
import sys

from qtalign.cli.common_options import add_data_options, eval_settings


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prompts", help="print the exact prompts eval would score, one JSON line each (no model)",
                       description=__doc__ + " Each line: {task, lang, index, prompt}; index is the item's 0-based "
                       "position in its language's file. Takes eval's data, demonstration, label and limit options.")
    add_data_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from qtalign.eval import prompt_lines

    text = prompt_lines(eval_settings(args, exclude=("out", "overwrite")))
    out = getattr(sys.stdout, "buffer", None)
    try:
        if out is not None:  # bytes: UTF-8 whatever the terminal's encoding
            sys.stdout.flush()
            out.write(text.encode("utf-8"))
            out.flush()
        else:
            sys.stdout.write(text)
    except BrokenPipeError:  # e.g. `qtalign prompts ... | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0

"""The `qtalign` command: registers one subcommand per module and turns QtalignError into one line + exit 2."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from qtalign import __version__
from qtalign.errors import QtalignError

# subcommand name -> module under qtalign.cli exposing add_parser(subparsers) and run(args) -> int
SUBCOMMANDS: dict[str, str] = {
    "eval": "eval",
    "prompts": "prompts",
    "data": "data",
    "train": "train",
    "merge": "merge",
    "lens": "lens",
    "pca": "pca",
    "compare": "compare",
    "report": "report",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qtalign", description=__doc__)
    parser.add_argument("--version", action="version", version=f"qtalign {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logging and full tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in SUBCOMMANDS.items():
        try:
            mod = importlib.import_module(f"qtalign.cli.{module}")
        except ModuleNotFoundError as e:
            if e.name == f"qtalign.cli.{module}":
                continue  # subcommand not built yet
            raise
        mod.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from qtalign.distributed import DISTRIBUTED_COMMANDS, ReportedElsewhere, launched_rank, launched_world

    parser = build_parser()
    args = parser.parse_args(argv)
    world, rank = launched_world(), launched_rank()
    # in a multi-process launch the main process logs; the others only show errors
    level = logging.DEBUG if args.verbose else logging.INFO if rank == 0 else logging.ERROR
    logging.basicConfig(level=level, format="%(message)s")
    for noisy in ("httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        if world > 1 and args.command not in DISTRIBUTED_COMMANDS:
            if rank != 0:
                return 2
            raise QtalignError(f"qtalign {args.command} runs in one process; launch it without torchrun / accelerate "
                               f"launch (multi-process: {', '.join(sorted(DISTRIBUTED_COMMANDS))})")
        return int(args.func(args) or 0)
    except ReportedElsewhere:
        if args.verbose:
            raise
        return 2
    except QtalignError as e:
        if args.verbose:
            raise
        print(f"qtalign: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qtalign: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

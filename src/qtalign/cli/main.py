"""The `qtalign` command: one subcommand per module; QtalignError and OSError become one line each + exit 2."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from qtalign import __version__
from qtalign.cli import (
    calibrate,
    compare,
    data,
    demo,
    evidence,
    export,
    lens,
    merge,
    pca,
    prompts,
    report,
    run,
    step,
    train,
)
from qtalign.cli import eval as eval_command
from qtalign.errors import QtalignError, QtalignProblems

# the subcommands in `qtalign --help` order: each module's add_parser(subparsers) sets args.func
SUBCOMMANDS: tuple[ModuleType, ...] = (eval_command, calibrate, prompts, data, train, merge, lens, pca, compare, report,
                                       run, demo, evidence, export, step)


DESCRIPTION = (
    "Study how LLMs improve in many languages when tuned only to translate questions into English (Zhang et al., "
    "EMNLP 2024): build question-translation data, LoRA-tune, evaluate 20 languages with few-shot constrained "
    "decoding, and look inside with a logit lens and PCA. Every command that writes --out resumes when rerun with "
    "the same settings; --overwrite starts over. `qtalign COMMAND --help` for each command."
)
VERBOSE_HELP = "show debug logging and full tracebacks"


def _add_verbose(parser: argparse.ArgumentParser) -> None:
    """-v after the subcommand too (SUPPRESS keeps a -v given before it), in nested subcommands as well."""
    parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _add_verbose(child)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qtalign", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"qtalign {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    for child in sub.choices.values():
        _add_verbose(child)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from qtalign.distributed import DISTRIBUTED_COMMANDS, ReportedElsewhere, launched_rank, launched_world, shutdown
    from qtalign.store import release_folders

    parser = build_parser()
    args = parser.parse_args(argv)
    world, rank = launched_world(), launched_rank()
    # in a multi-process launch the main process logs; the others only show errors
    level = logging.DEBUG if args.verbose else logging.INFO if rank == 0 else logging.ERROR
    logging.basicConfig(level=level, format="%(message)s")
    for noisy in ("httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    finished = False
    try:
        if world > 1 and args.command not in DISTRIBUTED_COMMANDS:
            if rank != 0:
                return 2
            raise QtalignError(f"qtalign {args.command} runs in one process; launch it without torchrun / accelerate "
                               f"launch (multi-process: {', '.join(sorted(DISTRIBUTED_COMMANDS))})")
        code = int(args.func(args) or 0)
        finished = True
        return code
    except ReportedElsewhere:
        if args.verbose:
            raise
        return 2
    except QtalignProblems as e:
        if args.verbose:
            raise
        for line in e.lines():
            print(f"qtalign: error: {line}", file=sys.stderr)
        return 2
    except QtalignError as e:
        if args.verbose:
            raise
        print(f"qtalign: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader of our output went away (`qtalign ... | head`): nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes stdout
        return 141
    except OSError as e:  # the machine misbehaved (no space, permission, read-only...): one line, outputs stay whole
        if args.verbose:
            raise
        from qtalign.store import os_error_line

        print(f"qtalign: error: {os_error_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qtalign: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    finally:
        release_folders()  # the run folders this command held (a killed process releases them by dying)
        shutdown(finished)  # a multi-process run leaves its process group before the interpreter exits


def entry() -> None:
    """The console script and `python -m qtalign`: main(), then exit. A process of a multi-process launch exits at once
    (os._exit, after flushing its output) rather than through interpreter finalization, where C++ threads left by the
    process group's backend can abort a run that has already finished and written everything."""
    from qtalign.distributed import launched_world

    code = main()
    if launched_world() > 1:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()

"""`qtalign compare`: paired comparison of eval runs on the same items (no model): intervals, McNemar, Holm."""

from __future__ import annotations

import argparse
from typing import Any

from qtalign.errors import QtalignError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "compare", help="paired comparison of eval runs scored on the same items (no model)",
        description="Compare eval run folders (qtalign's, or lm-evaluation-harness output written with "
                    "--log_samples) item by item; the first is the reference (base). Per language: "
                    "accuracy of each, the difference with a paired bootstrap interval, an exact McNemar p-value, "
                    "Holm-corrected over languages; the mean over languages; seen/unseen languages; the change of "
                    "each label's predicted share; calibrated figures beside raw where the runs have them.")
    p.add_argument("runs", nargs="+", metavar="RUN",
                   help="eval run folders (predictions.jsonl) or lm-eval output folders written with --log_samples "
                        "(results_*.json + samples_*.jsonl); the first is the base")
    p.add_argument("--out", default=None, help="folder for compare.json and compare.md (default: print only)")
    p.add_argument("--names", default=None, help="comma list of short names for the runs (default: folder names)")
    p.add_argument("--seen", default=None,
                   help="comma list of seen languages (default: read from each adapter's training record)")
    p.add_argument("--task", default=None, metavar="GROUP",
                   help="lm-eval runs: the task group to compare where a folder holds several (xnli, pawsx, belebele, "
                        "xcopa, xstorycloze, global_mmlu, global_mmlu_full, or a --lang-map group)")
    p.add_argument("--lang-map", default=None, metavar="FILE",
                   help="lm-eval runs: YAML/JSON mapping tasks outside qtalign's tables to languages, {task: lang} or "
                        "{group: NAME, labels: [...], tasks: {task: lang}} (docs/lm-eval.md)")
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.set_defaults(func=run)
    return p


def _split(value: str | None, flag: str) -> list[str] | None:
    if value is None:
        return None
    items = [x.strip() for x in value.split(",") if x.strip()]
    if not items:
        raise QtalignError(f"{flag}: empty list")
    return items


def run(args: argparse.Namespace) -> int:
    from qtalign.compare.run import CompareSettings
    from qtalign.compare.run import run as compare

    if len(args.runs) < 2:  # before the lists below are read, as always
        raise QtalignError("give at least two eval run folders (the first is the base)")
    settings = CompareSettings.parse({"runs": args.runs, "names": _split(args.names, "--names"),
                                      "seen": _split(args.seen, "--seen"), "n_boot": args.bootstrap, "seed": args.seed,
                                      "out": args.out, "task": args.task, "lang_map": args.lang_map},
                                     "command line")
    for path in compare(settings, echo=print).files.values():
        print(path)
    return 0

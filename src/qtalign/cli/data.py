"""`qtalign data`: `check` validates task files; `build` writes question-translation data; `fetch` gets the paper's."""

from __future__ import annotations

import argparse

from qtalign.cli.data_build import add_build_parser
from qtalign.cli.data_fetch import add_fetch_parser


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="check task data; build question-translation training data; fetch the paper's files")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    c = dsub.add_parser("check", help="validate task files (fields, labels, duplicates, parallel agreement)",
                        description="Validate task files: fields, labels, duplicates, parallel agreement with English, "
                                    "and (with --model) prompts that do not fit the model's context. Exit status 1 "
                                    "when there are errors.")
    c.add_argument("--task", required=True, help="emotion, nli or paraphrase")
    c.add_argument("--data", required=True,
                   help="folder (paper layout or {lang}.jsonl), JSONL file with a 'lang' field, demo or hf:NAME")
    c.add_argument("--langs", default=None,
                   help="comma list of language codes (default: the languages present in --data)")
    c.add_argument("--model", help="also check that prompts fit this model's context (id, folder or .gguf)")
    c.add_argument("--shots", type=int, help="demonstrations per prompt for the context check (default: the task's)")
    c.set_defaults(func=run_check)
    add_build_parser(dsub)
    add_fetch_parser(dsub)


def run_check(args: argparse.Namespace) -> int:
    from qtalign.prompt_check import DataCheckSettings
    from qtalign.prompt_check import run as check

    report = check(DataCheckSettings.parse({name: getattr(args, name) for name in DataCheckSettings.model_fields},
                                           "command line"))
    print("\n".join(report.lines()))
    return 0 if report.ok else 1

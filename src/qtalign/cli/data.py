"""`qtalign data`: `check` validates task files; `build` writes question-translation data; `fetch` gets the paper's."""

from __future__ import annotations

import argparse
import importlib

from qtalign.errors import QtalignError
from qtalign.languages import PAPER_LANGS, language


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="check task data; build question-translation training data; fetch the paper's files")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    c = dsub.add_parser("check", help="validate task files (fields, labels, duplicates, parallel agreement)")
    c.add_argument("--task", required=True)
    c.add_argument("--data", required=True)
    c.add_argument("--langs", default=",".join(PAPER_LANGS))
    c.add_argument("--model", help="also check that prompts fit this model's context")
    c.add_argument("--shots", type=int)
    c.set_defaults(func=run_check)
    try:
        build = importlib.import_module("qtalign.cli.data_build")
    except ModuleNotFoundError as e:
        if e.name != "qtalign.cli.data_build":
            raise
    else:
        build.add_build_parser(dsub)
    try:
        fetch = importlib.import_module("qtalign.cli.data_fetch")
    except ModuleNotFoundError as e:
        if e.name != "qtalign.cli.data_fetch":
            raise
    else:
        fetch.add_fetch_parser(dsub)


def run_check(args: argparse.Namespace) -> int:
    from qtalign.data.check import check_data
    from qtalign.tasks import get_task

    try:
        task = get_task(args.task)
        langs = [x.strip() for x in args.langs.split(",") if x.strip()]
        for lang in langs:
            language(lang)
    except ValueError as e:
        raise QtalignError(str(e)) from None
    tokenizer, max_len = None, None
    if args.model:
        from qtalign.models import load_tokenizer, resolve_model_path

        path = resolve_model_path(args.model)
        tokenizer = load_tokenizer(path)
        from transformers import AutoConfig

        max_len = getattr(AutoConfig.from_pretrained(str(path)), "max_position_embeddings", None)
    report = check_data(task, args.data, langs, tokenizer, max_len, args.shots)
    print("\n".join(report.lines()))
    return 0 if report.ok else 1

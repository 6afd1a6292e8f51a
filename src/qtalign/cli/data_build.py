"""`qtalign data build`: question-translation training pairs (X ⇒ target), no task answers."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from qtalign.errors import QtalignError


def add_build_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "build", help="build question-translation pairs (X => target) for LoRA tuning",
        description="Write question-translation pairs: the item rendered as a question in X (ending at the answer "
                    "cue) + 'Translate the input from X to T:', output = the same question in T. No answers.")
    p.add_argument("--task", required=True, help="emotion, nli or paraphrase")
    p.add_argument("--data", required=True, action="append",
                   help="folder (paper layout: {stem}_{lang}..._train.json / _train_question.json) or file; repeatable")
    p.add_argument("--sources", required=True, help="comma list of source languages, e.g. zh,es")
    p.add_argument("--target", default="en", help="target language (default en)")
    p.add_argument("--per-lang", type=int, default=10000, help="pairs per source language (default 10000)")
    p.add_argument("--seed", type=int, default=42, help="sampling and shuffling seed (default 42)")
    p.add_argument("--out", required=True, help="output FILE.jsonl; alpaca JSON, dataset_info.json and "
                                                "manifest.json are written beside it")
    p.add_argument("--exclude", default=None,
                   help="folder of evaluation (test) files; pairs whose question equals an evaluation item in any "
                        "language are refused (default: no check)")
    p.add_argument("--allow-contamination", action="store_true",
                   help="keep pairs that equal evaluation items (they are still counted)")
    p.add_argument("--translate-with", default=None, metavar="MODEL",
                   help="local seq2seq model (NLLB/Marian folder or id) to translate the target side into X where no "
                        "parallel file exists; cached in OUT.mt_cache.jsonl (a rerun resumes)")
    p.add_argument("--control", default=None, metavar="KIND",
                   help="build a control mix standing for the real mix these flags build: shuffled (targets of other "
                        "items), copy (X => X), english (en => en), parallel (general text from --parallel); same "
                        "counts and length profile; see docs/controls.md")
    p.add_argument("--parallel", default=None, metavar="FILE",
                   help="JSONL of {lang: text} per line (general parallel sentences), for --control parallel; "
                        "'demo': the sample shipped with qtalign")
    p.add_argument("--test-items", default=None, metavar="START:END",
                   help="build the pairs from items START..END-1 of the parallel *test* files in --data (e.g. 250:500), "
                        "for in-task data where no training questions were released; needs --exclude FOLDER, whose "
                        "items outside the range are checked field by field; evaluate with --items 0:START")
    p.add_argument("--mt-batch-size", type=int, default=16, help="sentences per MT batch (default 16)")
    p.add_argument("--mt-max-new-tokens", type=int, default=256, help="MT output length limit (default 256)")
    p.add_argument("--template", default=None, metavar="NAME",
                   help="training template these pairs are meant for (empty, default, qwen, mistral, llama3, gemma: "
                        "LLaMA-Factory's names); recorded in dataset_info.json and the manifest")
    p.add_argument("--device", default="auto", help="device of the MT model: auto, cpu, cuda or cuda:N")
    p.add_argument("--trust-remote-code", action="store_true", help="allow model code from the MT model's folder")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier build in the same folder made with other settings")
    p.set_defaults(func=run_build)
    return p


def run_build(args: argparse.Namespace) -> int:
    from qtalign.data.build_output import claim_build
    from qtalign.data.controls import check_control
    from qtalign.store import missing_folders, remove_empty_folders
    from qtalign.tasks import get_task

    try:
        task = get_task(args.task)
    except ValueError as e:
        raise QtalignError(str(e)) from None
    if args.template is not None:
        from qtalign.templates import TEMPLATES, get_template

        if args.template not in TEMPLATES:
            raise QtalignError(f"--template: {args.template!r} is not a template name here (choose from "
                               f"{', '.join(TEMPLATES)}; `auto` picks by model only at training time)")
        get_template(args.template)
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    if not sources:
        raise QtalignError("--sources needs at least one language code")
    if args.per_lang < 1:
        raise QtalignError(f"--per-lang {args.per_lang}: must be at least 1")
    check_control(args.control, args.parallel, args.target)
    test_items = None
    if args.test_items is not None:
        from qtalign.data.ranges import parse_item_range

        test_items = parse_item_range(args.test_items, "--test-items")
        if args.translate_with:
            raise QtalignError("--test-items and --translate-with: the test files are parallel already; use one")
    settings = {"task": task.name, "data": [str(d) for d in args.data], "sources": sources, "target": args.target,
                "per_lang": args.per_lang, "seed": args.seed, "exclude": args.exclude,
                "allow_contamination": args.allow_contamination, "translate_with": args.translate_with,
                "control": args.control, "parallel": args.parallel, "template": args.template}
    if test_items is not None:  # only when given, so that earlier builds resume unchanged
        settings["test_items"] = str(test_items)
    new_folders = missing_folders(Path(args.out).parent)
    out = claim_build(args.out, settings, args.overwrite)
    try:
        return _build(args, task, sources, settings, out, test_items)
    except BaseException:
        remove_empty_folders(new_folders)  # a failed build leaves no empty output folder behind
        raise


def _build(args: argparse.Namespace, task: Any, sources: list[str], settings: dict[str, Any], out: Path,
           test_items: Any = None) -> int:
    from qtalign.data.build import build_pairs
    from qtalign.data.build_output import write_outputs

    translate = None
    if args.translate_with:
        from qtalign.translate import Translator

        translate = Translator(args.translate_with, cache=out.with_name(out.stem + ".mt_cache.jsonl"),
                               device=args.device, batch_size=args.mt_batch_size,
                               max_new_tokens=args.mt_max_new_tokens, trust_remote_code=args.trust_remote_code)
    report = build_pairs(task, args.data, sources, args.target, args.per_lang, args.seed, args.exclude,
                         args.allow_contamination, translate, args.translate_with, args.control, args.parallel,
                         test_items=test_items)
    write_outputs(report, out, settings)
    parts = ", ".join(f"{k}: {v}" for k, v in report.counts.items())
    kind = f"{args.control} control " if args.control else ""
    print(f"wrote {len(report.pairs)} {kind}pairs ({parts}) -> {out}")
    if report.control is not None:
        diff = report.length_profile["difference"]["all"]
        print("length vs the real mix (mean, target-equivalent characters): "
              f"question {diff['input_eq']['mean']:+.1%}, output {diff['output_eq']['mean']:+.1%}")
    if args.exclude is not None:
        total = sum(report.contaminated.values())
        action = "kept (--allow-contamination)" if args.allow_contamination else "refused"
        what = ("sharing a text with an item outside " + str(test_items) if test_items is not None
                else "equal to evaluation items")
        print(f"contamination check against {args.exclude}: {total} pair(s) {what} {action}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run `build` on its own (for tests before `qtalign data` registers it)."""
    import sys

    parser = argparse.ArgumentParser(prog="qtalign data")
    sub = parser.add_subparsers(dest="command", required=True)
    add_build_parser(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except QtalignError as e:
        print(f"qtalign: error: {e}", file=sys.stderr)
        return 2

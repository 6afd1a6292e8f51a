"""`qtalign data build`: question-translation training pairs (X ⇒ target), no task answers."""

from __future__ import annotations

import argparse
from typing import Any


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
    from qtalign.data.build_run import BuildSettings, MakeTranslator
    from qtalign.data.build_run import run as build

    fields = {name: getattr(args, name) for name in BuildSettings.model_fields if name != "sources"}
    settings = BuildSettings.parse({**fields, "sources": [s.strip() for s in args.sources.split(",") if s.strip()]},
                                   "command line")
    translator: MakeTranslator | None = None
    if args.translate_with:  # the MT model's loader sits above the data layer: handed to the build
        from qtalign.translate import Translator

        translator = Translator
    for line in build(settings, translator=translator).lines():
        print(line)
    return 0

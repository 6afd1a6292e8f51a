"""`qtalign eval`: few-shot constrained-decoding evaluation per language, resumable."""

from __future__ import annotations

import argparse
import logging

from qtalign.evaluate import EvalSettings, format_table, run_eval
from qtalign.languages import PAPER_LANGS
from qtalign.models import DEFAULT_MODEL

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a model (optionally with a LoRA adapter) per language",
                       description=__doc__)
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"hub id, local folder, .gguf file or {DEFAULT_MODEL!r}")
    p.add_argument("--adapter", help="PEFT LoRA adapter folder to apply")
    p.add_argument("--task", required=True, help="emotion, nli or paraphrase")
    p.add_argument("--data", required=True, help="folder (paper layout or {lang}.jsonl), a JSONL file, or hf:NAME")
    p.add_argument("--langs", default=",".join(PAPER_LANGS), help="comma list of language codes (default: all 20)")
    p.add_argument("--shots", type=int, help="demonstrations per prompt (default: the task's: 2, 6 or 4)")
    p.add_argument("--labels", default="en", help="en (default), native, or a comma list of words, e.g. ox,horse")
    p.add_argument("--scoring", default="first-token", choices=["first-token", "loglik"])
    p.add_argument("--demos", help="separate demonstration pool (same formats as --data, 'train' split files)")
    p.add_argument("--limit", type=int, help="score only the first N items per language")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--dtype", help="float32 (CPU default), bfloat16 (CUDA default), float16")
    p.add_argument("--load-in-4bit", action="store_true", help="bitsandbytes NF4 on CUDA, as the paper evaluated")
    p.add_argument("--trust-remote-code", action="store_true", help="allow model code from the model's repository")
    p.add_argument("--allow-pickle", action="store_true", help="allow non-safetensors (pickle) weight files")
    p.add_argument("--out", required=True, help="run folder: predictions.jsonl, results.json (resumes if present)")
    p.add_argument("--overwrite", action="store_true", help="discard earlier results in --out instead of resuming")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace) -> EvalSettings:
    langs = tuple(x.strip() for x in args.langs.split(",") if x.strip())
    return EvalSettings.parse(
        {
            "task": args.task, "data": args.data, "model": args.model, "adapter": args.adapter, "langs": langs,
            "shots": args.shots, "labels": args.labels, "scoring": args.scoring, "seed": args.seed,
            "demos": args.demos, "limit": args.limit, "batch_size": args.batch_size, "device": args.device,
            "dtype": args.dtype, "load_in_4bit": args.load_in_4bit, "trust_remote_code": args.trust_remote_code,
            "allow_pickle": args.allow_pickle,
        },
        "command line",
    )


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    results = run_eval(settings, args.out, overwrite=args.overwrite, progress=not args.no_progress)
    print(format_table(results))
    print(f"wrote {args.out}/predictions.jsonl and {args.out}/results.json")
    return 0

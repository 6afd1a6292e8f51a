"""Model and data options shared by eval, lens and pca, and the prompts they describe."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qtalign.errors import QtalignError
from qtalign.models import DEFAULT_MODEL, resolve_adapter


def add_model_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model")
    g.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"Hugging Face id, local folder or .gguf file (default: packaged {DEFAULT_MODEL})")
    g.add_argument("--adapter", default=None,
                   help="LoRA adapter to apply: a `qtalign train --out` folder (or its adapter/ subfolder)")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    g.add_argument("--dtype", default=None, help="auto, float32, bfloat16 or float16 (default: float32 on CPU, "
                                                   "bfloat16 on CUDA)")
    g.add_argument("--load-in-4bit", action="store_true", help="NF4 quantization via bitsandbytes (CUDA only)")
    g.add_argument("--trust-remote-code", action="store_true", help="allow model code from the model's folder")
    g.add_argument("--allow-pickle", action="store_true", help="allow loading pickle (.bin) weights")


def add_data_options(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """required=False lets a command (e.g. --redraw) run without data; it must then check --task/--data itself."""
    g = parser.add_argument_group("data and prompts")
    g.add_argument("--task", required=required, help="emotion, nli or paraphrase")
    g.add_argument("--data", required=required, help="folder (paper layout or {lang}.jsonl), JSONL file or hf:NAME")
    g.add_argument("--langs", default=None,
                   help="comma list of language codes (default: the languages present in --data)")
    g.add_argument("--limit", type=int, default=None, help="score only the first N items per language")
    g.add_argument("--shots", type=int, default=None, help="demonstrations per prompt (default: the task's)")
    g.add_argument("--labels", default="en", help="en, native, or a comma list of label words (default: en)")
    g.add_argument("--seed", type=int, default=0, help="seed of the demonstration choice (default: 0)")
    g.add_argument("--demos", default=None, help="take demonstrations from this data instead of the test items")
    g.add_argument("--batch-size", type=int, default=8, help="prompts per forward pass (default: 8)")


def parse_langs(value: str | None, task: str | None = None, data: str | None = None) -> list[str]:
    """--langs as a list; when not given, the languages present in --data (qtalign.data.readers.data_langs)."""
    if value is None:
        from qtalign.data.readers import data_langs
        from qtalign.tasks import get_task

        try:
            t = get_task(task or "")
        except ValueError as e:
            raise QtalignError(f"--task: {e}") from None
        return list(data_langs(t, data or ""))
    langs = [x.strip() for x in value.split(",") if x.strip()]
    if not langs:
        raise QtalignError("--langs: give at least one language code")
    if len(set(langs)) != len(langs):
        raise QtalignError(f"--langs: a language is listed twice ({value})")
    return langs


@dataclass
class PromptSetup:
    task: Any  # qtalign.tasks.Task
    langs: list[str]
    prompts: dict[str, Any]  # lang -> qtalign.prompts.LangPrompts
    settings: dict[str, Any]  # what determines the prompts (for resume checks); languages excluded


def eval_settings_from_args(args: argparse.Namespace, **extra: Any) -> Any:
    """The model and data options as validated qtalign.evaluate.EvalSettings (one error line on bad values)."""
    from qtalign.evaluate import EvalSettings

    if not args.task or not args.data:
        raise QtalignError("--task and --data are required")
    adapter = str(resolve_adapter(args.adapter)) if args.adapter else None
    return EvalSettings.parse(
        {
            "task": args.task, "data": args.data, "model": args.model, "adapter": adapter,
            "langs": tuple(parse_langs(args.langs, args.task, args.data)), "shots": args.shots, "labels": args.labels, "seed": args.seed,
            "demos": args.demos, "limit": args.limit, "batch_size": args.batch_size, "device": args.device,
            "dtype": args.dtype, "load_in_4bit": args.load_in_4bit, "trust_remote_code": args.trust_remote_code,
            "allow_pickle": args.allow_pickle, **extra,
        },
        "command line",
    )


def prompts_from_args(args: argparse.Namespace) -> PromptSetup:
    """Read and validate the data and build the evaluation prompts exactly as eval does (same checks)."""
    from qtalign.evaluate import prepare

    s = eval_settings_from_args(args)
    args.adapter = s.adapter  # resolved: a training run folder means its adapter/
    prep = prepare(s)
    settings = {"task": s.task, "data": str(Path(s.data).resolve()) if Path(s.data).exists() else s.data,
                "limit": s.limit, "shots": s.shots, "labels": s.labels, "seed": s.seed, "demos": s.demos}
    return PromptSetup(prep.task, list(s.langs), prep.prompts, settings)


def model_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The model options that change results (device and batch size do not, beyond rounding), known before the model
    loads: the dtype as load_model will resolve it, the adapter folder and the sha256 of its weights."""
    from qtalign.models import adapter_sha256, resolve_device, resolve_dtype

    dtype = str(resolve_dtype(args.dtype, resolve_device(args.device))).removeprefix("torch.")
    out = {"model": args.model, "adapter": args.adapter, "dtype": dtype, "load_in_4bit": args.load_in_4bit}
    if args.adapter:
        out["adapter"] = str(resolve_adapter(args.adapter))
        out["adapter_sha256"] = adapter_sha256(args.adapter)
    return out


def load_model_from_args(args: argparse.Namespace) -> Any:
    """qtalign.models.load_model with the model options."""
    from qtalign.models import load_model

    return load_model(args.model, adapter=args.adapter, device=args.device, dtype=args.dtype,
                      load_in_4bit=args.load_in_4bit, trust_remote_code=args.trust_remote_code,
                      allow_pickle=args.allow_pickle)

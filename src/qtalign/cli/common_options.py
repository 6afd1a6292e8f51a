"""Model and data options shared by eval, lens and pca, and the prompts they describe."""

from __future__ import annotations

import argparse
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, TypeVar

from qtalign.errors import QtalignError
from qtalign.models import DEFAULT_MODEL
from qtalign.settings import Settings

if TYPE_CHECKING:
    from qtalign.eval import EvalSettings

S = TypeVar("S", bound=Settings)


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
    g.add_argument("--items", default=None, metavar="START:END",
                   help="read only items START..END-1 of each file (demonstrations and scored items both come from "
                        "them), e.g. 0:250 when items 250:500 were used to build training pairs")
    g.add_argument("--shots", type=int, default=None, help="demonstrations per prompt (default: the task's)")
    g.add_argument("--labels", default=None, help="en, native, or a comma list of label words (default: en)")
    g.add_argument("--seed", type=int, default=0, help="seed of the demonstration choice (default: 0)")
    g.add_argument("--demos", default=None, help="take demonstrations from this data instead of the test items")
    g.add_argument("--batch-size", type=batch_size_arg, default=8, metavar="N|auto",
                   help="prompts per forward pass (default: 8); auto: the largest that fits on the GPU, found by halving "
                        "on out-of-memory and remembered per model and task (on CPU: 8)")
    add_protocol_options(parser)


def batch_size_arg(value: str) -> int | str:
    """argparse type of --batch-size: a positive integer or auto."""
    from qtalign.batchsize import parse_batch_size

    try:
        return parse_batch_size(value)
    except QtalignError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix(f"--batch-size {value}: ")) from None


def add_protocol_options(parser: argparse.ArgumentParser) -> None:
    """Options of issue 7 (docs/paper-protocol.md). Those a protocol presets default to None, so that an option
    typed by the user always wins over the preset (qtalign.options.given_or_preset)."""
    from qtalign.protocol import PROTOCOLS

    g = parser.add_argument_group("protocol (see docs/paper-protocol.md)")
    g.add_argument("--protocol", default=None, choices=list(PROTOCOLS),
                   help="qtalign (default) or paper: the paper's fixed demonstrations, order, label words, prompt "
                        "assembly, item set, token sets and gold matching; options you give explicitly still win")
    g.add_argument("--demos-file", default=None, metavar="FILE",
                   help="fixed demonstrations per language in the layout of the paper's {task}_demos.json, used "
                        "byte for byte; 'auto': DATA/../demos/ or DATA/demos/ (default under --protocol paper)")
    g.add_argument("--keep-demo-items", action=argparse.BooleanOptionalAction, default=None,
                   help="score the items used as demonstrations too, as the paper's scripts do (default: no)")
    g.add_argument("--gold-from", default=None, metavar="LANG",
                   help="score every language against the labels of LANG's parallel file (e.g. en), item by item")
    g.add_argument("--paper-gold", action=argparse.BooleanOptionalAction, default=None,
                   help="also report the paper scripts' exact gold-string accuracy (needs --demos-file)")
    g.add_argument("--label-tokens", default=None, choices=["qtalign", "paper"],
                   help="which tokens make up a label word's mass: qtalign's (default) or the paper scripts'")


def settings_from_args(args: argparse.Namespace, cls: type[S], exclude: Collection[str] = (), **extra: Any) -> S:
    """The parsed flags as cls (each settings field is the flag of the same name; flags a command does not have keep
    the field's default; exclude: fields not taken from the flags), then extra; one error line on bad values. The
    settings resolve protocol presets, default languages and the adapter themselves (qtalign.options)."""
    fields = {name: getattr(args, name) for name in cls.model_fields if name not in exclude and hasattr(args, name)}
    return cls.parse({**fields, **extra}, "command line")


def eval_settings(args: argparse.Namespace, exclude: Collection[str] = (), **extra: Any) -> EvalSettings:
    """The flags as qtalign.eval.EvalSettings (`qtalign eval`, `prompts`, `export lm-eval`)."""
    from qtalign.eval import EvalSettings

    if not args.task or not args.data:
        raise QtalignError("--task and --data are required")
    return settings_from_args(args, EvalSettings, exclude, **extra)

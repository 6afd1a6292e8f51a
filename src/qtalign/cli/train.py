"""`qtalign train`: LoRA-tune a model on question-translation pairs (the paper's recipe by default)."""

from __future__ import annotations

import argparse
from typing import Any

from qtalign.cli.common_options import batch_size_arg

# flag -> (TrainSettings field, type, help)
_FLAGS: dict[str, tuple[str, Any, str]] = {
    "--target-modules": ("target_modules", str, "comma list of module names (default q_proj,v_proj)"),
    "--rank": ("rank", int, "LoRA rank (default 8)"),
    "--alpha": ("alpha", float, "LoRA alpha (default 16)"),
    "--dropout": ("dropout", float, "LoRA dropout (default 0)"),
    "--lr": ("lr", float, "learning rate (default 5e-5)"),
    "--epochs": ("epochs", float, "epochs (default 3)"),
    "--scheduler": ("scheduler", str, "cosine (default), linear or constant"),
    "--warmup-ratio": ("warmup_ratio", float, "warmup fraction of the steps (default 0.1)"),
    "--batch-size": ("batch_size", int, "pairs per forward pass (default 4)"),
    "--grad-accum": ("grad_accum", int, "batches per optimizer step (default 4)"),
    "--val-ratio": ("val_ratio", float, "validation split (default 0.05); best checkpoint kept"),
    "--weight-decay": ("weight_decay", float, "AdamW weight decay (default 0)"),
    "--max-grad-norm": ("max_grad_norm", float, "gradient clipping (default 1.0; 0 = off)"),
    "--max-len": ("max_len", int, "maximum tokens per pair (default 1024)"),
    "--max-pairs": ("max_pairs", int, "use only the first N pairs of the file"),
    "--max-steps": ("max_steps", int, "stop the schedule after N optimizer steps"),
    "--stop-after": ("stop_after", int, "stop (checkpoint saved) after N steps, as if killed; rerun to continue"),
    "--eval-every": ("eval_every", int, "optimizer steps between validations (default: every epoch)"),
    "--save-every": ("save_every", int, "optimizer steps between resumable checkpoints (default 20)"),
    "--template": ("template", str, ("how pairs are rendered, LLaMA-Factory's names: empty (default: BOS + input), "
                                     "default, qwen, mistral, llama3, gemma, or auto (by model family)")),
    "--protocol": ("protocol", str, ("qtalign (default) or paper: the paper's recipe (template auto, max-len 2048, "
                                     "eval-every 50, keep last); flags still win")),
    "--keep": ("keep", str, "adapter written: best (lowest validation loss, default) or last"),
    "--seed": ("seed", int, "seed for split, batch order and LoRA init (default 42)"),
    "--device": ("device", str, "auto (default), cpu, cuda, cuda:N"),
    "--dtype": ("dtype", str, "auto (float32 on CPU, bfloat16 on GPU), float32, bfloat16, float16"),
    "--autocast": ("autocast", str, ("bfloat16: mixed precision, the decoder's matmuls in bfloat16 under torch.autocast; "
                                     "weights, LoRA, optimizer and the head's loss stay float32 (results change "
                                     "slightly; recorded; docs/performance.md)")),
}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("train", help="LoRA-tune a model on question-translation pairs",
                              description="LoRA tuning with the paper's defaults (q_proj,v_proj, r 8, alpha 16, "
                                          "lr 5e-5, 3 epochs, cosine, 10% warmup, batch 4 x accum 4, 5% validation). "
                                          "A rerun with the same settings resumes; --overwrite starts over.")
    p.add_argument("--model", default=None, help="model id, folder, .gguf or gemma-3-270m (default)")
    p.add_argument("--data", default=None, help="pairs: JSONL from `qtalign data build`, alpaca JSON or "
                                                "*_train_question.json")
    p.add_argument("--out", default=None, help="output folder (adapter/, logs, loss.png)")
    p.add_argument("--config", default=None, help="YAML/JSON file of settings; flags override it")
    p.add_argument("--resume", action="store_true",
                   help="accepted for compatibility: a rerun with the same settings always resumes")
    p.add_argument("--overwrite", action="store_true", help="discard an earlier run in --out and start over")
    p.add_argument("--allow-test-data", action="store_true", default=None,
                   help="train on a file named like a test split (*_test*) or whose outputs are task answers")
    p.add_argument("--chat-template", action="store_true", default=None,
                   help="wrap inputs in the tokenizer's chat template (default: plain prompt + completion)")
    p.add_argument("--trust-remote-code", action="store_true", default=None,
                   help="allow model code from the model's folder")
    p.add_argument("--load-in-4bit", action="store_true", default=None,
                   help="QLoRA: the base model in bitsandbytes NF4 (CUDA; compute in bfloat16, or --dtype float16), LoRA "
                        "and the output head unquantized; recorded in adapter/qtalign_train.json")
    p.add_argument("--micro-batch", dest="micro_batch", type=batch_size_arg, default=None, metavar="N|auto",
                   help="pairs per forward/backward pass; each --batch-size batch runs in pieces with the same "
                        "gradients (default: the whole batch); auto: the largest that fits on the GPU, halved on "
                        "out-of-memory and remembered per model and data file")
    p.add_argument("--gradient-checkpointing", action="store_true", default=None,
                   help="recompute activations in the backward pass: less GPU memory, slower")
    for flag, (dest, typ, help_) in _FLAGS.items():
        p.add_argument(flag, dest=dest, type=typ, default=None, help=help_)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from qtalign.distributed import get_dist
    from qtalign.train import command_settings
    from qtalign.train import run as train

    overrides = {dest: getattr(args, dest) for _, (dest, _, _) in _FLAGS.items()}
    if overrides["target_modules"] is not None:
        overrides["target_modules"] = [m.strip() for m in overrides["target_modules"].split(",") if m.strip()]
    overrides.update(model=args.model, data=args.data, out=args.out, chat_template=args.chat_template,
                     trust_remote_code=args.trust_remote_code, load_in_4bit=args.load_in_4bit,
                     micro_batch=args.micro_batch, gradient_checkpointing=args.gradient_checkpointing,
                     allow_test_data=args.allow_test_data)
    result = train(command_settings(args.config, overrides), overwrite=args.overwrite)
    if get_dist().is_main:  # in a multi-process run the main process reports
        print(result.summary())
    return 0

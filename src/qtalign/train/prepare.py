"""Training setup: the base model loaded and LoRA-wrapped, micro-batch sizing, the data encoded, the optimizer."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch

from qtalign.batchsize import BatchSizer, batch_sizer, memory_key
from qtalign.distributed import Dist
from qtalign.errors import QtalignError
from qtalign.train.encode import encode_pairs, split_val, validation_batches
from qtalign.train.loop import TrainState
from qtalign.train.record import resolve_train_template
from qtalign.train.settings import TrainSettings
from qtalign.trainable import load_trainable, train_dtype

log = logging.getLogger(__name__)


def add_lora(model: Any, s: TrainSettings) -> Any:
    """Wrap the model with a fresh LoRA adapter; unknown target modules are a QtalignError listing the known ones."""
    from peft import LoraConfig, get_peft_model

    linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
    unknown = [t for t in s.target_modules if t not in linear]
    if unknown:
        raise QtalignError(f"target modules {', '.join(unknown)} not found in {type(model).__name__} "
                           f"(linear layers: {', '.join(linear)})")
    config = LoraConfig(r=s.rank, lora_alpha=s.alpha, lora_dropout=s.dropout, target_modules=list(s.target_modules),
                        bias="none", task_type="CAUSAL_LM")
    torch.manual_seed(s.seed)
    from qtalign.models import quiet_transformers

    with quiet_transformers():
        return get_peft_model(model, config)


def micro_batch_sizer(s: TrainSettings, dev: torch.device) -> BatchSizer:
    """Pairs per forward/backward pass: --micro-batch N (at most --batch-size), or auto: on CUDA the largest that fits
    (from --batch-size down, halved on out-of-memory, remembered per model and data file); else --batch-size."""
    if s.micro_batch is None:
        return BatchSizer(s.batch_size)
    if s.micro_batch != "auto":
        return BatchSizer(min(int(s.micro_batch), s.batch_size))
    key = memory_key("train", s.model, Path(s.data).name, dev, train_dtype(s.weights_dtype, dev, s.load_in_4bit),
                     {"load_in_4bit": s.load_in_4bit}) + f"|max_len={s.max_len}" if dev.type == "cuda" else None
    sizer = batch_sizer("auto", dev, key, start=s.batch_size)
    sizer.size = min(sizer.size, s.batch_size) if sizer.adaptive else s.batch_size
    return sizer


def make_scheduler(optimizer: Any, s: TrainSettings, total: int) -> Any:
    """The learning-rate schedule of --scheduler over total optimizer steps, warming up for --warmup-ratio of them."""
    from transformers import (
        get_constant_schedule_with_warmup,
        get_cosine_schedule_with_warmup,
        get_linear_schedule_with_warmup,
    )

    warm = math.ceil(total * s.warmup_ratio)
    if s.scheduler == "cosine":
        return get_cosine_schedule_with_warmup(optimizer, warm, total)
    if s.scheduler == "linear":
        return get_linear_schedule_with_warmup(optimizer, warm, total)
    if s.scheduler == "constant":
        return get_constant_schedule_with_warmup(optimizer, warm)
    raise QtalignError(f"unknown scheduler {s.scheduler!r} (cosine, linear or constant)")


def prepare_model(s: TrainSettings, dist: Dist) -> tuple[TrainSettings, Any, Any, torch.device, Any]:
    """(settings with the template resolved, the LoRA-wrapped model in train mode, tokenizer, device, template);
    in a multi-process run every process starts from the main process's LoRA weights."""
    model, tok, dev = dist.local_main_first(lambda: load_trainable(s.model, dist.local_device(s.device), s.weights_dtype,
                                                                   s.trust_remote_code, s.load_in_4bit))
    s, template = dist.agree(lambda: resolve_train_template(s, model, tok))
    model.config.use_cache = False
    if s.gradient_checkpointing:
        from qtalign.compat import enable_checkpointing

        enable_checkpointing(model)
    peft_model = dist.agree(lambda: add_lora(model, s))
    return s, peft_model, tok, dev, template


def start(s: TrainSettings, dist: Dist, pairs: list[tuple[str, str]]) -> TrainState:
    """A run's state at step 0: the model prepared, the pairs encoded and split, the optimizer and its schedule."""
    s, peft_model, tok, dev, template = prepare_model(s, dist)
    sizer = micro_batch_sizer(s, dev)
    peft_model.train()
    if dist.enabled:
        with torch.no_grad():  # every process starts from the main process's LoRA weights
            dist.broadcast_tensors([p.data for p in peft_model.parameters() if p.requires_grad])
        if dist.is_main and s.grad_accum % dist.world:
            log.warning("warning: --grad-accum %d is not a multiple of the %d processes: some processes wait idle in "
                        "each optimizer step (the results do not change)", s.grad_accum, dist.world)
    examples = encode_pairs(tok, pairs, s.max_len, s.chat_template, s.data, template)
    lengths = [len(e.ids) for e in examples]
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    train_idx, val_idx = split_val(len(examples), s.val_ratio, s.seed)
    per_epoch = math.ceil(math.ceil(len(train_idx) / s.batch_size) / s.grad_accum)  # optimizer steps per epoch
    total = math.ceil(per_epoch * s.epochs)
    if s.max_steps is not None:
        total = min(total, s.max_steps)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
    return TrainState(s=s, model=peft_model, tok=tok, template=template, dev=dev, dist=dist, sizer=sizer,
                      examples=examples, lengths=lengths, pad_id=pad_id, train_idx=train_idx, val_idx=val_idx,
                      val_batches=validation_batches(lengths, val_idx, s.batch_size), per_epoch=per_epoch,
                      total=total, params=params, optimizer=optimizer, scheduler=make_scheduler(optimizer, s, total))

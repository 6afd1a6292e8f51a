"""LoRA tuning on question-translation pairs: output-only logits, length-grouped batches, atomic resumable checkpoints."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field, field_validator

from qtalign.batchsize import BatchSize, BatchSizer, batch_sizer, free_device_memory, is_oom, memory_key
from qtalign.config import Settings, load_config_file
from qtalign.distributed import Dist
from qtalign.errors import QtalignError
from qtalign.store import JsonlWriter, OutputError, atomic_write_json, output_errors, read_jsonl_rows
from qtalign.templates import DEFAULT_TEMPLATE, TEMPLATE_CHOICES, TEMPLATES, Template
from qtalign.templates import encode_pairs as encode_with_template

log = logging.getLogger(__name__)
IGNORE = -100


class TrainSettings(Settings):
    """The paper's LoRA recipe (LLaMA-Factory defaults it used); every field can be set by file or flag."""

    model: str = "gemma-3-270m"
    data: str = ""
    out: str = ""
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"])
    rank: int = Field(8, ge=1)
    alpha: float = 16.0
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    lr: float = Field(5e-5, gt=0)
    epochs: float = Field(3.0, gt=0)
    scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(0.1, ge=0, le=1)
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(4, ge=1)
    val_ratio: float = Field(0.05, ge=0, lt=1)
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_len: int = Field(1024, ge=8)
    max_pairs: int | None = Field(None, ge=1)  # use only the first N pairs of the file
    max_steps: int | None = Field(None, ge=1)  # stop the schedule after N optimizer steps (the schedule is sized for it)
    stop_after: int | None = Field(None, ge=1)  # simulate an interruption after N optimizer steps (checkpoint saved)
    eval_every: int = Field(0, ge=0)  # optimizer steps between validations; 0 = at the end of every epoch
    save_every: int = Field(20, ge=1)  # optimizer steps between resumable checkpoints
    chat_template: bool = False
    seed: int = 42
    device: str = "auto"
    dtype: str | None = None
    load_in_4bit: bool = False  # QLoRA: the base in bitsandbytes NF4 (CUDA), LoRA and the head unquantized
    micro_batch: BatchSize | None = None  # pairs per forward/backward pass (None = batch_size; auto = largest that fits)
    gradient_checkpointing: bool = False  # recompute activations in the backward pass (less memory, ~30% slower)
    trust_remote_code: bool = False
    template: str = DEFAULT_TEMPLATE  # how pairs are rendered: LLaMA-Factory's names (qtalign.templates) or auto
    protocol: Literal["qtalign", "paper"] = "qtalign"  # a named preset of other fields (PROTOCOLS); explicit ones win
    keep: Literal["best", "last"] = "best"  # the adapter written: lowest validation loss, or the last step
    allow_test_data: bool = False  # train on a file named like a test split or whose outputs are task answers

    @field_validator("template")
    @classmethod
    def _known_template(cls, v: str) -> str:
        if v not in TEMPLATE_CHOICES:
            raise ValueError(f"unknown template {v!r} (choose from {', '.join(TEMPLATE_CHOICES)})")
        return v


# settings a rerun may change without changing the adapter it ends with (the resume rule ignores them)
RESUME_IGNORES = {"stop_after", "save_every", "device", "out", "allow_test_data", "trust_remote_code", "micro_batch",
                  "gradient_checkpointing"}
TRAIN_RECORD = "train_settings.json"
TRAIN_OUTPUTS = ("adapter", "adapter.tmp", "checkpoint", "checkpoint.tmp", "checkpoint.old", "train_log.jsonl",
                 "val_log.jsonl", "loss.png", "train_summary.json")

# --protocol presets: values used unless the config file or a flag sets the field. "paper" = the released recipe
# (LLaMA-Factory, README of Shimao-Zhang/LLM-Multilingual-Learner): the model family's template, cutoff_len 2048,
# eval_steps 50, and the last step's adapter (save_steps 150000 > total steps, so the HF Trainer never recorded a
# best checkpoint for load_best_model_at_end to restore).
PROTOCOLS: dict[str, dict[str, Any]] = {
    "qtalign": {},
    "paper": {"template": "auto", "max_len": 2048, "eval_every": 50, "keep": "last"},
}


# ---- data -----------------------------------------------------------------------------------------------------
def read_pairs(path: str | Path, max_pairs: int | None = None) -> list[tuple[str, str]]:
    """(input, output) pairs from our JSONL, an alpaca JSON list, or a paper *_train_question.json file."""
    from qtalign.data.readers import load_records

    path = Path(path)
    if not path.is_file():
        raise QtalignError(f"{path}: training data file not found")
    records = load_records(path)
    if not records:
        raise QtalignError(f"{path}: no training pairs")
    pairs: list[tuple[str, str]] = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise QtalignError(f"{path}: item {i}: expected a JSON object, found {type(rec).__name__}")
        if "instruction" in rec:
            inp = rec["instruction"] + ("\n" + rec["input"] if rec.get("input") else "")
            out = rec.get("output")
        else:
            inp, out = rec.get("input"), rec.get("output", rec.get("answer"))
        if not isinstance(inp, str) or not isinstance(out, str):
            raise QtalignError(f"{path}: item {i}: expected text fields 'input' and 'output' (or 'answer')")
        if not inp.strip() or not out.strip():
            raise QtalignError(f"{path}: item {i}: empty {'input' if not inp.strip() else 'output'}")
        pairs.append((inp, out))
        if max_pairs is not None and len(pairs) >= max_pairs:
            break
    return pairs


def _answer_words() -> set[str]:
    """Every gold answer word of every task in every language (normalized)."""
    from qtalign.tasks import TASKS

    return {w for task in TASKS.values() for lang in task.table for w in task.answer_map(lang)}


def refuse_test_data(path: str | Path, pairs: list[tuple[str, str]]) -> None:
    """Question-translation tuning never sees task answers: a file named like a test split (*_test*, as `data build`
    refuses) or whose outputs are mostly label words is a QtalignError unless --allow-test-data."""
    from qtalign.tasks import normalize_answer

    path = Path(path)
    if "_test" in path.name:
        raise QtalignError(f"--data {path}: named like a task's test split; training on evaluation items contaminates "
                           "every later score (build pairs with `qtalign data build`, or pass --allow-test-data)")
    words = _answer_words()
    hits = [o for _, o in pairs if normalize_answer(o) in words]
    if pairs and len(hits) * 2 >= len(pairs):
        raise QtalignError(f"--data {path}: {len(hits)} of {len(pairs)} outputs are task answers (label words such as "
                           f"{hits[0]!r}), not translated questions; pass --allow-test-data to train on them anyway")


@dataclass
class Example:
    ids: list[int]
    labels: list[int]  # IGNORE on prompt tokens


def encode_pairs(tokenizer: Any, pairs: list[tuple[str, str]], max_len: int, chat_template: bool,
                 source: str = "data", template: Template | None = None) -> list[Example]:
    """Prompt tokens as the template renders them + output tokens + the template's end token (EOS, <|im_end|>...);
    loss only on the output tokens and the end token. No template = qtalign's plain `empty` format."""
    use_chat = chat_template and getattr(tokenizer, "chat_template", None)
    if chat_template and not use_chat:
        log.warning("tokenizer has no chat template; using plain prompt + completion")
    encoded: list[tuple[list[int], list[int]]]
    if use_chat:
        prompts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                                 add_generation_prompt=True) for p, _ in pairs]
        p_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
        o_ids = tokenizer([o for _, o in pairs], add_special_tokens=False)["input_ids"]
        eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        encoded = [(list(p), list(o) + eos) for p, o in zip(p_ids, o_ids)]
    else:
        encoded = encode_with_template(template or TEMPLATES[DEFAULT_TEMPLATE], tokenizer, pairs)
    out: list[Example] = []
    for i, (p, o) in enumerate(encoded):
        if len(o) >= max_len:
            raise QtalignError(f"{source}: item {i}: output alone has {len(o)} tokens (max_len {max_len})")
        p = p[-(max_len - len(o)) :]  # keep the end of an over-long prompt (the question's end + instruction)
        out.append(Example(p + o, [IGNORE] * len(p) + o))
    return out


def split_val(n: int, ratio: float, seed: int) -> tuple[list[int], list[int]]:
    """(train indices, validation indices): a seeded random ratio of the pairs (at least 1 when ratio > 0)."""
    idx = list(range(n))
    random.Random(seed).shuffle(idx)
    n_val = 0 if ratio <= 0 else max(1, round(n * ratio))
    if n - n_val < 1:
        raise QtalignError(f"only {n} pair(s): too few to keep a {ratio:.0%} validation split")
    return sorted(idx[n_val:]), sorted(idx[:n_val])


def length_grouped_batches(lengths: list[int], indices: list[int], batch_size: int, seed: int) -> list[list[int]]:
    """Shuffle, cut into mega-batches of 50 batches, sort each by length, then shuffle the batch order."""
    rng = random.Random(seed)
    idx = list(indices)
    rng.shuffle(idx)
    mega = batch_size * 50
    batches: list[list[int]] = []
    for s in range(0, len(idx), mega):
        group = sorted(idx[s : s + mega], key=lambda i: -lengths[i])
        batches += [group[k : k + batch_size] for k in range(0, len(group), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(examples: list[Example], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ids [B, T], attention mask [B, T], labels [B, T] (IGNORE on pads and prompts)."""
    t = max(len(e.ids) for e in examples)
    ids = torch.full((len(examples), t), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), t), dtype=torch.long)
    labels = torch.full((len(examples), t), IGNORE, dtype=torch.long)
    for i, e in enumerate(examples):
        ids[i, : len(e.ids)] = torch.tensor(e.ids)
        mask[i, : len(e.ids)] = 1
        labels[i, : len(e.ids)] = torch.tensor(e.labels)
    return ids, mask, labels


# ---- model ----------------------------------------------------------------------------------------------------
def load_trainable(name: str, device: str = "auto", dtype: str | None = None,
                   trust_remote_code: bool = False, load_in_4bit: bool = False) -> tuple[Any, Any, torch.device]:
    """Base causal LM (train-ready, safetensors only) + tokenizer + device; load_in_4bit: the QLoRA base (NF4 weights,
    compute in train_dtype, prepared by prepare_four_bit)."""
    from transformers import AutoModelForCausalLM

    from qtalign.models import (
        four_bit_config,
        load_tokenizer,
        quiet_transformers,
        require_four_bit,
        resolve_device,
        resolve_model_path,
    )

    dev = resolve_device(device)
    path = resolve_model_path(name)
    torch_dtype = train_dtype(dtype, dev, load_in_4bit)
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "use_safetensors": True, "trust_remote_code": trust_remote_code}
    if load_in_4bit:
        require_four_bit(dev)
        kwargs.update(quantization_config=four_bit_config(torch_dtype), device_map={"": dev.index or 0})
    try:
        with quiet_transformers():
            model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    except (OSError, ValueError) as e:
        raise QtalignError(f"{name}: cannot load model ({str(e).splitlines()[0]})") from None
    if load_in_4bit:
        prepare_four_bit(model, torch_dtype)
    else:
        model.to(dev)
    return model, load_tokenizer(path, trust_remote_code), dev


def train_dtype(dtype: str | None, device: torch.device, load_in_4bit: bool = False) -> torch.dtype:
    """float32 on CPU, bfloat16 on CUDA (--dtype to change). With --load-in-4bit the compute dtype: bfloat16 where
    the card supports it, else float16 (evaluation's 4-bit default is float16, as the paper evaluated)."""
    from qtalign.models import resolve_dtype

    if load_in_4bit and dtype in (None, "auto"):
        bf16 = device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if bf16 else torch.float16
    return resolve_dtype(dtype, device)


def prepare_four_bit(model: Any, compute_dtype: torch.dtype) -> None:
    """What LoRA on a 4-bit base needs, a lighter peft.prepare_model_for_kbit_training: every base weight frozen;
    with float16 compute the 1-D weights (norms, biases) in float32 for stability. Unlike peft, the embeddings and
    the head keep the compute dtype (peft casts them to float32: +1.2 GB for Qwen1.5-1.8B's two 152k x 2048
    matrices). The head stays unquantized (transformers never quantizes the output embedding), so the chunked
    frozen-head cross-entropy applies unchanged."""
    for p in model.parameters():
        p.requires_grad_(False)
    if compute_dtype == torch.float16:
        for p in model.parameters():
            if p.ndim == 1 and p.dtype == torch.float16 and type(p).__name__ != "Params4bit":
                p.data = p.data.float()


def describe_training_precision(s: TrainSettings, dev: torch.device) -> dict[str, Any]:
    """dtype and 4-bit settings of a training run, for the train record (qtalign_train.json)."""
    from qtalign.models import describe_four_bit, four_bit_config

    dt = train_dtype(s.dtype, dev, s.load_in_4bit)
    out: dict[str, Any] = {"dtype": str(dt).removeprefix("torch."), "device": str(dev),
                           "gradient_checkpointing": s.gradient_checkpointing}
    if s.load_in_4bit:
        out["quantization"] = {**describe_four_bit(four_bit_config(dt)), "method": "qlora",
                               "prepared": "qtalign.train.prepare_four_bit"}
    return out


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


VOCAB_CHUNK = 8192  # vocabulary rows of the head unembedded at a time


class _FrozenHeadCrossEntropy(torch.autograd.Function):
    """Summed cross-entropy of (optionally soft-capped) h @ W.T against targets, for a frozen head W.

    One pass over the vocabulary in chunks with an online log-sum-exp (as in flash attention): each chunk of W is
    used for its logits and, at once, for its share of the gradient with respect to h, rescaled as the running
    maximum grows. Peak extra memory is [N, VOCAB_CHUNK] instead of [N, V], and W is read once per step.
    """

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,  # type: ignore[override]
                softcap: float | None, chunk: int) -> torch.Tensor:
        w = weight.detach()  # [V, H]
        hf = h.detach().float()  # [N, H]
        n = hf.shape[0]
        m = torch.full((n, 1), -torch.inf, device=h.device)  # running max of the logits
        s = torch.zeros((n, 1), device=h.device)  # running sum of exp(logit - m)
        acc = torch.zeros_like(hf)  # running sum of exp(logit - m) * dlogit/draw @ W_chunk  [N, H]
        for start in range(0, w.shape[0], chunk):
            wc = w[start : start + chunk].float()  # [C, H]
            z = hf @ wc.T  # [N, C]
            if softcap:
                t = torch.tanh(z / softcap)
                z = t * softcap
            m_new = torch.maximum(m, z.max(dim=1, keepdim=True).values)
            scale = torch.exp(m - m_new)  # [N, 1]
            e = torch.exp(z - m_new)  # [N, C]
            s = s * scale + e.sum(dim=1, keepdim=True)
            if softcap:
                e = e * (1 - t * t)  # d(softcap * tanh(x / softcap))/dx
            acc = acc * scale + e @ wc
            m = m_new
        wt = w[targets].float()  # [N, H] target rows
        zt = (hf * wt).sum(dim=1)  # [N] target logits before capping
        dt = torch.ones_like(zt)
        if softcap:
            tt = torch.tanh(zt / softcap)
            zt, dt = tt * softcap, 1 - tt * tt
        lse = m[:, 0] + torch.log(s[:, 0])  # [N]
        loss = (lse - zt).sum()
        grad_h = acc / s - dt[:, None] * wt  # dloss/dh = softmax-weighted rows - the target's row
        ctx.save_for_backward(grad_h.to(h.dtype))
        return loss

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        (grad_h,) = ctx.saved_tensors
        return grad_h * grad_out.to(grad_h.dtype), None, None, None, None


def output_loss(peft_model: Any, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy over output tokens only: hidden states from the decoder, lm_head at output positions.

    With a frozen bias-free head (LoRA elsewhere, the usual case) the unembedding runs over vocabulary chunks with
    its gradient taken at once (_FrozenHeadCrossEntropy); otherwise plain autograd through the head.
    """
    base = peft_model.get_base_model()
    body = base.base_model  # decoder stack incl. final norm
    head = base.get_output_embeddings()
    softcap = getattr(base.config, "final_logit_softcapping", None)
    hidden = body(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state  # [B, T, H]
    targets = labels[:, 1:]  # [B, T-1]: token t+1 is predicted at position t
    keep = targets != IGNORE  # [B, T-1]
    h = hidden[:, :-1][keep]  # [N, H]
    t = targets[keep]  # [N]
    frozen = type(head) is torch.nn.Linear and head.bias is None and not head.weight.requires_grad
    if frozen and torch.is_grad_enabled():
        return _FrozenHeadCrossEntropy.apply(h, head.weight, t, softcap, VOCAB_CHUNK)
    logits = head(h).float()  # [N, V]
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return torch.nn.functional.cross_entropy(logits, t, reduction="sum")


def trainable_state(peft_model: Any) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in peft_model.named_parameters() if p.requires_grad}


def load_trainable_state(peft_model: Any, state: dict[str, torch.Tensor]) -> None:
    params = dict(peft_model.named_parameters())
    with torch.no_grad():
        for n, t in state.items():
            params[n].copy_(t)


@torch.no_grad()
def validation_loss(peft_model: Any, examples: list[Example], batches: list[list[int]], pad_id: int,
                    device: torch.device, micro: int | None = None, progress: bool = False,
                    dist: Dist | None = None) -> float:
    """Mean loss per output token over the validation batches, each run in pieces of at most `micro` pairs; in a
    multi-process run each process reads every world-th batch and the sums are added over the processes."""
    from tqdm import tqdm

    peft_model.eval()
    total = 0.0
    n = sum(output_tokens(examples[i]) for b in batches for i in b)
    world, rank = (dist.world, dist.rank) if dist is not None else (1, 0)
    for b in tqdm(batches[rank::world], desc="validation", unit="batch", leave=False, disable=not progress):
        for piece in pieces(b, micro):
            ids, mask, labels = collate([examples[i] for i in piece], pad_id)
            total += float(output_loss(peft_model, ids.to(device), mask.to(device), labels.to(device)))
    if dist is not None and dist.enabled:
        total = float(dist.all_reduce_sum(torch.tensor([total], dtype=torch.float64, device=device))[0])
    peft_model.train()
    return total / max(n, 1)


def output_tokens(e: Example) -> int:
    """Tokens whose prediction the loss counts (output tokens after the first position)."""
    return sum(t != IGNORE for t in e.labels[1:])


def pieces(batch: list[int], micro: int | None) -> list[list[int]]:
    """A batch cut into consecutive micro-batches of at most `micro` pairs (None: the whole batch)."""
    size = micro or len(batch)
    return [batch[k : k + size] for k in range(0, len(batch), size)]


def accumulate_step(peft_model: Any, examples: list[Example], group: list[list[int]], pad_id: int,
                    device: torch.device, sizer: BatchSizer, dist: Dist | None = None) -> tuple[float, int, int]:
    """Forward and backward of one optimizer step's batches, in micro-batches of sizer.size pairs; gradients of
    the summed loss / output tokens accumulate in .grad, identical (up to rounding) for any micro-batch size.

    In a multi-process run (dist) this process runs every world-th batch of the step, and the processes' gradients,
    losses and token counts are summed (all_reduce_step): the global batch stays batch_size x grad_accum.

    Returns (summed loss, output tokens, tokens seen) of the whole step. An out-of-memory error (adaptive sizer) clears
    the gradients, halves the micro-batch and redoes this process's share of the step; a fixed sizer makes it one error
    line (raised on every process).
    """
    n_tok = sum(output_tokens(examples[i]) for b in group for i in b)  # the step's, over all processes
    if dist is None or not dist.enabled:
        loss_sum, seen = _forward_backward(peft_model, examples, group, n_tok, pad_id, device, sizer)
        return loss_sum, n_tok, seen
    error: QtalignError | None = None
    try:
        loss_sum, seen = _forward_backward(peft_model, examples, group[dist.rank :: dist.world], n_tok, pad_id,
                                           device, sizer)
    except QtalignError as e:  # the others still join the all-reduce, then all raise it
        loss_sum, seen, error = 0.0, 0, e
    params = [p for p in peft_model.parameters() if p.requires_grad]
    loss_sum, seen, failed = all_reduce_step(params, dist, loss_sum, seen, error is not None)
    if failed:

        def report() -> None:
            if error is not None:
                raise error

        dist.agree(report)
    return loss_sum, n_tok, seen


def _forward_backward(peft_model: Any, examples: list[Example], batches: list[list[int]], n_tok: int, pad_id: int,
                      device: torch.device, sizer: BatchSizer) -> tuple[float, int]:
    """accumulate_step's forward and backward passes over batches, with its out-of-memory rule; returns (summed loss,
    tokens seen)."""
    while True:
        failed: str | None = None
        try:
            loss_sum, seen = 0.0, 0
            for b in batches:
                for piece in pieces(b, sizer.size):
                    ids, mask, labels = collate([examples[i] for i in piece], pad_id)
                    loss = output_loss(peft_model, ids.to(device), mask.to(device), labels.to(device))
                    (loss / n_tok).backward()
                    loss_sum += float(loss.detach())
                    seen += int(mask.sum())
            sizer.ran()
            return loss_sum, seen
        except (RuntimeError, torch.cuda.OutOfMemoryError) as e:
            if not is_oom(e):
                raise
            failed = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        peft_model.zero_grad(set_to_none=True)
        free_device_memory()
        try:
            sizer.shrink(failed)
        except QtalignError as e:
            raise QtalignError(str(e).replace("--batch-size", "--micro-batch")) from None


def all_reduce_step(params: list[torch.Tensor], dist: Dist, loss_sum: float, seen: int,
                    failed: bool = False) -> tuple[float, int, bool]:
    """Sum the processes' accumulated gradients of one optimizer step (in place, one flat float32 buffer), their
    summed loss and token count, and whether any process failed. Each process's gradients are already divided by the
    step's global token count, so the sum is the one-process gradient up to the order of float additions."""
    device = params[0].device
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float() for p in params])
    dist.all_reduce_sum(flat)
    offset = 0
    for p in params:
        g = flat[offset : offset + p.numel()].view_as(p).to(p.dtype)
        p.grad = g.clone() if p.grad is None else p.grad.copy_(g)
        offset += p.numel()
    totals = dist.all_reduce_sum(torch.tensor([loss_sum, float(seen), float(failed)], dtype=torch.float64,
                                              device=device))
    return float(totals[0]), int(totals[1]), bool(totals[2] > 0)


class _NoLog:
    """Stands in for a log writer on the processes that do not write logs (all but the main one)."""

    def write(self, row: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


# ---- checkpoints ----------------------------------------------------------------------------------------------
def _save_dir_atomic(target: Path, write: Any) -> None:
    """Write a folder via a temporary sibling and swap it in; a kill leaves the old or the new one, and so does a failed
    write (an OutputError naming the folder: no space, no permission)."""
    tmp = target.with_name(target.name + ".tmp")
    old = target.with_name(target.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with output_errors(tmp):
            tmp.mkdir(parents=True)
            write(tmp)
    except OutputError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def _existing_dir(target: Path) -> Path | None:
    if (target / "state.json").is_file():
        return target
    old = target.with_name(target.name + ".old")
    return old if (old / "state.json").is_file() else None


def save_checkpoint(folder: Path, peft_model: Any, optimizer: Any, scheduler: Any, state: dict[str, Any],
                    best: dict[str, torch.Tensor] | None) -> None:
    from safetensors.torch import save_file

    def write(tmp: Path) -> None:
        save_file({k: v.contiguous() for k, v in trainable_state(peft_model).items()}, str(tmp / "adapter.safetensors"))
        if best is not None:
            save_file({k: v.contiguous() for k, v in best.items()}, str(tmp / "best.safetensors"))
        opt = optimizer.state_dict()
        tensors: dict[str, torch.Tensor] = {}
        for pid, st in opt["state"].items():
            for k, v in st.items():
                tensors[f"{pid}.{k}"] = v.detach().reshape(-1).clone() if v.dim() == 0 else v.detach().contiguous()
        tensors["rng.torch"] = torch.get_rng_state()
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        meta = {**state, "param_groups": opt["param_groups"], "scheduler": scheduler.state_dict(),
                "python_rng": _py_rng_to_json(random.getstate())}
        (tmp / "state.json").write_text(json.dumps(meta) + "\n", encoding="utf-8")

    _save_dir_atomic(folder, write)


def load_checkpoint(folder: Path, peft_model: Any, optimizer: Any, scheduler: Any
                    ) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
    from safetensors.torch import load_file

    meta = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    load_trainable_state(peft_model, load_file(str(folder / "adapter.safetensors")))
    tensors = load_file(str(folder / "optimizer.safetensors"))
    torch.set_rng_state(tensors.pop("rng.torch"))
    shapes = {i: p.shape for i, p in enumerate(p for g in optimizer.param_groups for p in g["params"])}
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in tensors.items():
        pid, name = key.split(".", 1)
        opt_state.setdefault(int(pid), {})[name] = v.reshape(()) if name == "step" else v.reshape(shapes[int(pid)])
    optimizer.load_state_dict({"state": opt_state, "param_groups": meta.pop("param_groups")})
    scheduler.load_state_dict(meta.pop("scheduler"))
    random.setstate(_py_rng_from_json(meta.pop("python_rng")))
    best_path = folder / "best.safetensors"
    best = load_file(str(best_path)) if best_path.is_file() else None
    return meta, best


def _py_rng_to_json(state: tuple[Any, ...]) -> list[Any]:
    return [state[0], list(state[1]), state[2]]


def _py_rng_from_json(data: list[Any]) -> tuple[Any, ...]:
    return (data[0], tuple(data[1]), data[2])


# ---- the loop -------------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    out: Path
    steps: int
    best_val_loss: float | None
    first_val_loss: float | None
    seconds: float
    stopped_early: bool
    already_done: bool = False


def make_scheduler(optimizer: Any, s: TrainSettings, total: int) -> Any:
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


def train(s: TrainSettings, resume: bool = False, progress: bool = True, overwrite: bool = False) -> TrainResult:
    """Tune a LoRA adapter; writes OUT/adapter, OUT/train_log.jsonl, OUT/val_log.jsonl, OUT/loss.png.

    The resume rule of every command (store.open_run): a rerun with the same settings continues from OUT/checkpoint
    (or returns the finished result), other settings are refused, overwrite starts over. resume is accepted for
    compatibility and changes nothing.

    Launched in several processes (torchrun, accelerate launch), the batches of each optimizer step are shared
    round-robin between the processes and their gradients summed (accumulate_step): the global batch stays
    batch_size x grad_accum whatever the process count, and the run follows the one-process run up to the order of
    float additions. The main process claims the folder and writes every file; a checkpoint resumes with any process
    count.
    """
    from tqdm import tqdm

    from qtalign.distributed import get_dist
    from qtalign.models import quiet_transformers
    from qtalign.store import open_run, sha256_file

    del resume  # a rerun always resumes
    dist = get_dist(s.device)
    if not s.data or not s.out:
        raise QtalignError("training needs --data and --out")

    def read_data() -> tuple[list[tuple[str, str]], dict[str, Any]]:
        pairs = read_pairs(s.data, s.max_pairs)
        if not s.allow_test_data:
            refuse_test_data(s.data, pairs)
        # the record holds the template as resolved for the model (written after loading) and as asked (compared)
        return pairs, {"template_requested": s.template, "data_sha256": sha256_file(s.data)}

    pairs, asked = dist.agree(read_data)
    # the main process claims the folder (the others wait for its verdict), then every process must see it
    run = dist.on_main(lambda: open_run(s.out, TRAIN_RECORD, {**s.model_dump(), **asked}, outputs=TRAIN_OUTPUTS,
                                        overwrite=overwrite, ignore=RESUME_IGNORES | {"template"},
                                        names={"template_requested": "--template"}))
    out = run.path
    dist.check_shared(out)
    ckpt_dir = out / "checkpoint"

    def resume_point() -> tuple[Path | None, bool]:  # main process: the checkpoint to continue; finished already?
        existing = _existing_dir(ckpt_dir)
        return existing, existing is None and run.resumed and (out / "adapter" / "adapter_config.json").is_file()

    existing, finished = dist.on_main(resume_point)
    if finished:
        return _finished(out)
    random.seed(s.seed)
    torch.manual_seed(s.seed)
    model, tok, dev = dist.local_main_first(lambda: load_trainable(s.model, dist.local_device(s.device), s.dtype,
                                                                   s.trust_remote_code, s.load_in_4bit))
    s, template = dist.agree(lambda: resolve_train_template(s, model, tok))
    model.config.use_cache = False
    if s.gradient_checkpointing:
        from qtalign.compat import enable_checkpointing

        enable_checkpointing(model)
    peft_model = dist.agree(lambda: add_lora(model, s))
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
    val_batches = [sorted(val_idx, key=lambda i: -lengths[i])[k : k + s.batch_size]
                   for k in range(0, len(val_idx), s.batch_size)]
    per_epoch = math.ceil(math.ceil(len(train_idx) / s.batch_size) / s.grad_accum)  # optimizer steps per epoch
    total = math.ceil(per_epoch * s.epochs)
    if s.max_steps is not None:
        total = min(total, s.max_steps)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
    scheduler = make_scheduler(optimizer, s, total)

    step, best_val, first_val, best = 0, None, None, None
    if existing is not None:

        def resume_from(folder: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
            meta, best = load_checkpoint(folder, peft_model, optimizer, scheduler)
            if meta["settings_key"] != _settings_key(s):
                raise QtalignError(f"{folder}: checkpoint was made with other settings; rerun with the same flags to "
                                   "resume or add --overwrite to start over")
            return meta, best

        meta, best = dist.agree(lambda: resume_from(existing))
        step, best_val, first_val = meta["step"], meta["best_val"], meta["first_val"]
        log.info("resuming from optimizer step %d of %d", step, total)
    if dist.rank:  # the checkpoint holds the main process's random state; the others draw their own (dropout)
        torch.manual_seed(s.seed + 1_000_003 * dist.rank + step)

    def commit() -> None:  # main process, once setup succeeded: the run record, logs cut back to the checkpoint
        run.commit({**s.model_dump(), **asked})
        for name in ("train_log.jsonl", "val_log.jsonl"):  # drop rows a killed run wrote after its last checkpoint
            rows = [r for r in read_jsonl_rows(out / name) if r["step"] <= step] if existing is not None else []
            from qtalign.store import atomic_write_text

            atomic_write_text(out / name, "".join(json.dumps(r) + "\n" for r in rows))

    dist.on_main(commit)
    train_log: JsonlWriter | _NoLog = JsonlWriter(out / "train_log.jsonl") if dist.is_main else _NoLog()
    val_log: JsonlWriter | _NoLog = JsonlWriter(out / "val_log.jsonl") if dist.is_main else _NoLog()

    def evaluate(at: int) -> None:
        nonlocal best_val, first_val, best
        if not val_batches:
            return
        v = validation_loss(peft_model, examples, val_batches, pad_id, dev, sizer.size, progress and dist.is_main,
                            dist)
        val_log.write({"step": at, "epoch": round(at / per_epoch, 4), "val_loss": v})
        first_val = v if first_val is None else first_val
        if best_val is None or v < best_val:
            best_val, best = v, trainable_state(peft_model)
        log.info("step %d: validation loss %.4f (best %.4f)", at, v, best_val)

    if step == 0:
        evaluate(0)
    t0 = time.time()
    bar = tqdm(total=total, initial=step, desc="train", unit="step", disable=not progress or not dist.is_main)
    stopped = False
    eval_every = s.eval_every or per_epoch
    while step < total:
        epoch = step // per_epoch
        batches = length_grouped_batches(lengths, train_idx, s.batch_size, s.seed + epoch)
        groups = [batches[k : k + s.grad_accum] for k in range(0, len(batches), s.grad_accum)]
        for group in groups[step - epoch * per_epoch :]:
            t_start = time.time()
            loss_sum, n_tok, seen = accumulate_step(peft_model, examples, group, pad_id, dev, sizer, dist)
            if s.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, s.max_grad_norm)
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            dt = time.time() - t_start
            train_log.write({"step": step, "epoch": round(step / per_epoch, 4), "loss": loss_sum / n_tok, "lr": lr,
                             "tokens_per_s": seen / dt if dt > 0 else None, "seconds": dt})
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / n_tok:.3f}")
            if step % eval_every == 0 or step == total:
                evaluate(step)
            stop_now = s.stop_after is not None and step >= s.stop_after and step < total
            if (step % s.save_every == 0 or stop_now) and dist.is_main:
                save_checkpoint(ckpt_dir, peft_model, optimizer, scheduler,
                                {"step": step, "total": total, "best_val": best_val, "first_val": first_val,
                                 "settings_key": _settings_key(s),
                                 "data_order": {"epoch": epoch, "seed": s.seed + epoch, "batches": batches}},
                                best)
            if stop_now:
                stopped = True
                break
            if step >= total:
                break
        if stopped:
            break
    bar.close()
    train_log.close()
    val_log.close()
    if stopped:
        dist.barrier()  # the main process has written the checkpoint
        log.info("stopped after %d steps (stop_after); rerun the same command to continue", step)
        return TrainResult(out, step, best_val, first_val, time.time() - t0, True)
    if best is not None and s.keep == "best":
        load_trainable_state(peft_model, best)

    def finish() -> None:  # main process
        tmp = out / "adapter.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        with output_errors(tmp), quiet_transformers():
            peft_model.save_pretrained(str(tmp), safe_serialization=True)
            tok.save_pretrained(str(tmp))
        atomic_write_json(tmp / "qtalign_train.json", train_record(s, template, tok, pairs,
                                                                   describe_training_precision(s, dev)))
        if (out / "adapter").exists():
            shutil.rmtree(out / "adapter")
        os.replace(tmp, out / "adapter")
        plot_losses(out)
        for d in (ckpt_dir, ckpt_dir.with_name("checkpoint.old")):
            shutil.rmtree(d, ignore_errors=True)
        atomic_write_json(out / "train_summary.json", {"steps": step, "best_val_loss": best_val,
                                                       "first_val_loss": first_val, "train_pairs": len(train_idx),
                                                       "val_pairs": len(val_idx), "seconds": time.time() - t0,
                                                       "micro_batch": sizer.size, "processes": dist.world})

    dist.on_main(finish)
    return TrainResult(out, step, best_val, first_val, time.time() - t0, False)


def _settings_key(s: TrainSettings) -> dict[str, Any]:
    """The settings that must match for a resume (stop_after / save_every / device / micro-batching may change)."""
    return s.model_dump(exclude={"stop_after", "save_every", "device", "out", "allow_test_data", "micro_batch",
                                 "gradient_checkpointing"})


def micro_batch_sizer(s: TrainSettings, dev: torch.device) -> BatchSizer:
    """Pairs per forward/backward pass: --micro-batch N (at most --batch-size), or auto: on CUDA the largest that fits
    (from --batch-size down, halved on out-of-memory, remembered per model and data file); else --batch-size."""
    if s.micro_batch is None:
        return BatchSizer(s.batch_size)
    if s.micro_batch != "auto":
        return BatchSizer(min(int(s.micro_batch), s.batch_size))
    key = memory_key("train", s.model, Path(s.data).name, dev, train_dtype(s.dtype, dev, s.load_in_4bit),
                     {"load_in_4bit": s.load_in_4bit}) + f"|max_len={s.max_len}" if dev.type == "cuda" else None
    sizer = batch_sizer("auto", dev, key, start=s.batch_size)
    sizer.size = min(sizer.size, s.batch_size) if sizer.adaptive else s.batch_size
    return sizer


def _finished(out: Path) -> TrainResult:
    """The result of a finished run in out (a rerun with the same settings has nothing left to do)."""
    try:
        summary = json.loads((out / "train_summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        summary = {}
    log.info("%s: training already finished with these settings (add --overwrite to train again)", out)
    return TrainResult(out, int(summary.get("steps", 0)), summary.get("best_val_loss"), summary.get("first_val_loss"),
                       0.0, False, already_done=True)


def plot_losses(out: Path) -> None:
    """OUT/loss.png: training loss per step and validation loss."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = read_jsonl_rows(out / "train_log.jsonl")
    va = read_jsonl_rows(out / "val_log.jsonl")
    fig, ax = plt.subplots(figsize=(6, 4))
    if tr:
        ax.plot([r["step"] for r in tr], [r["loss"] for r in tr], label="train", lw=1)
    if va:
        ax.plot([r["step"] for r in va], [r["val_loss"] for r in va], "o-", label="validation")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (output tokens)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=100)
    plt.close(fig)


def resolve_train_template(s: TrainSettings, model: Any, tok: Any) -> tuple[TrainSettings, Template]:
    """Settings with `auto` replaced by the template it picks for this model, and that template (checked)."""
    from qtalign.templates import resolve_template

    if s.chat_template and s.template != DEFAULT_TEMPLATE:
        raise QtalignError(f"--chat-template and --template {s.template} both set how pairs are rendered; give one")
    template = resolve_template(s.template, getattr(model.config, "model_type", None), tok, s.model)
    built_for = _data_template(s.data)
    if built_for is not None and built_for != template.name and not s.chat_template:
        log.warning("%s was built for template %r (dataset_info.json) but training uses %r", s.data, built_for,
                    template.name)
    return s.model_copy(update={"template": template.name}), template


def _data_template(data: str) -> str | None:
    """The template named for this pairs file in the dataset_info.json beside it (written by `qtalign data build`)."""
    info = Path(data).with_name("dataset_info.json")
    try:
        entry = json.loads(info.read_text(encoding="utf-8")).get(Path(data).stem, {})
    except (OSError, ValueError, AttributeError):
        return None
    return entry.get("template") if isinstance(entry, dict) else None


def train_record(s: TrainSettings, template: Template, tok: Any, pairs: list[tuple[str, str]],
                 precision: dict[str, Any] | None = None) -> dict[str, Any]:
    """OUT/adapter/qtalign_train.json: how the adapter was trained (template, protocol, what was kept)."""
    from qtalign.templates import describe, render

    example = None
    if pairs and not s.chat_template:
        prompt, answer = render(template, tok, pairs[0][0], pairs[0][1])
        example = {"prompt": prompt, "answer_with_end": answer}
    return {"template": "chat_template" if s.chat_template else template.name, "protocol": s.protocol,
            "keep": s.keep, "model": s.model, "data": s.data, "precision": precision,
            "template_info": describe(template, tok), "first_pair_rendered": example}


def settings_from(config: str | None, overrides: dict[str, Any]) -> TrainSettings:
    """Settings from a YAML/JSON file (optional), then flags that were given (not None) on top."""
    data: dict[str, Any] = load_config_file(config) if config else {}
    flags = {k: v for k, v in overrides.items() if v is not None}
    data.update(flags)
    protocol = data.get("protocol", "qtalign")
    if protocol not in PROTOCOLS:
        raise QtalignError(f"--protocol {protocol}: unknown protocol (choose from {', '.join(PROTOCOLS)})")
    for key, value in PROTOCOLS[protocol].items():  # a preset never hides a setting given explicitly
        data.setdefault(key, value)
    return TrainSettings.parse(data, config or "command line", flags=set(flags))

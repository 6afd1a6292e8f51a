"""Pairs tokenized into examples (loss on output tokens only), the validation split, batches and padding."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any

import torch

from qtalign.errors import QtalignError
from qtalign.templates import DEFAULT_TEMPLATE, TEMPLATES, Template
from qtalign.templates import encode_pairs as encode_with_template

log = logging.getLogger(__name__)
IGNORE = -100


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


def output_tokens(e: Example) -> int:
    """Tokens whose prediction the loss counts (output tokens after the first position)."""
    return sum(t != IGNORE for t in e.labels[1:])


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


def validation_batches(lengths: list[int], val_idx: list[int], batch_size: int) -> list[list[int]]:
    """The validation pairs in batches of batch_size, longest first (the same batches on every call)."""
    ordered = sorted(val_idx, key=lambda i: -lengths[i])
    return [ordered[k : k + batch_size] for k in range(0, len(val_idx), batch_size)]


def pieces(batch: list[int], micro: int | None) -> list[list[int]]:
    """A batch cut into consecutive micro-batches of at most `micro` pairs (None: the whole batch)."""
    size = micro or len(batch)
    return [batch[k : k + size] for k in range(0, len(batch), size)]


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

"""A deliberately naive scorer written like the paper's code, used to check and benchmark the fast one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def paper_token_sets(tokenizer: Any, words: Sequence[str]) -> list[list[int]]:
    """Token ids per word by vocabulary lookup: every prefix, bare or after a space marker, plus the
    byte-fallback token of the first byte. Independent of qtalign.scoring.TokenIndex on purpose."""
    vocab = tokenizer.get_vocab()
    out = []
    for word in words:
        prefixes = [word[:i] for i in range(1, len(word) + 1)]
        candidates = prefixes + ["▁" + p for p in prefixes] + ["Ġ" + p for p in prefixes]
        ids = {vocab[c] for c in candidates if c in vocab}
        byte_tok = f"<0x{word[0].encode('utf-8')[0]:02X}>"
        if byte_tok in vocab:
            ids.add(vocab[byte_tok])
        out.append(sorted(ids))
    return out


@torch.no_grad()
def naive_label_mass(model: Any, tokenizer: Any, prompts: Sequence[str], token_sets: Sequence[Sequence[int]]) -> np.ndarray:
    """Batch 1, the whole prompt each time, logits and softmax at every position; reads the last one.
    Returns label mass [n, L]."""
    rows = []
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"].to(model.device)
        logits = model(input_ids=ids).logits.float()  # [1, T, V]
        probs = torch.softmax(logits, dim=-1)[0, -1]  # [V]
        rows.append([probs[list(s)].sum().item() for s in token_sets])
    return np.asarray(rows, dtype=np.float64)

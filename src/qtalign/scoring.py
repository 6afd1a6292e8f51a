"""Label token sets and the fast scorer: shared-prefix KV cache, length-bucketed batches, logits only where read."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from qtalign.compat import cache_kwargs, output_cache
from qtalign.errors import QtalignError


class TokenIndex:
    """Every vocabulary token's surface text, grouped by first character, to find the tokens that can begin a word."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        n = len(tokenizer)
        surfaces = tokenizer.batch_decode([[i] for i in range(n)], skip_special_tokens=False,
                                          clean_up_tokenization_spaces=False)
        special = set(tokenizer.all_special_ids)
        self.by_first: dict[str, list[tuple[int, str]]] = {}
        for i, s in enumerate(surfaces):
            if i in special:
                continue
            # the leading-space marker (SentencePiece "▁", byte-level "Ġ") decodes to one space
            core = s.removeprefix(" ")
            if core:
                self.by_first.setdefault(core[0], []).append((i, core))
        self.vocab = tokenizer.get_vocab()

    def begin_ids(self, word: str) -> list[int]:
        """Ids of all tokens that can begin word: each prefix of it, with or without a leading space marker,
        the byte-fallback token of its first byte, and the first token the tokenizer itself produces."""
        if not word:
            return []
        ids = {i for i, core in self.by_first.get(word[0], ()) if word.startswith(core)}
        byte_tok = f"<0x{word[0].encode('utf-8')[0]:02X}>"
        if byte_tok in self.vocab:
            ids.add(self.vocab[byte_tok])
        for text in (word, " " + word):  # covers byte-level BPE, whose first byte tokens decode to U+FFFD
            enc = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            if enc and self.tokenizer.decode(enc[:1]).strip():  # not a bare space marker
                ids.add(enc[0])
        return sorted(ids)


def label_token_sets(index: TokenIndex, words: Sequence[str]) -> list[list[int]]:
    """One token-id list per label word; a word no token can begin is a QtalignError."""
    sets = [index.begin_ids(w) for w in words]
    for w, s in zip(words, sets):
        if not s:
            raise QtalignError(f"label word {w!r}: no token of this tokenizer can begin it")
    return sets


def encode_prefix(tokenizer: Any, prefix: str) -> list[int]:
    """Token ids of the shared prefix, with the tokenizer's special start tokens (e.g. BOS)."""
    return list(tokenizer(prefix, add_special_tokens=True)["input_ids"])


def encode_items(tokenizer: Any, prefix: str, texts: Sequence[str]) -> tuple[list[list[int]], int]:
    """Token ids of each text as it is tokenized after the prefix in the whole prompt string, and how many texts
    had to be tokenized on their own.

    Tokenizing the whole prompt and cutting off the prefix's tokens keeps the prompt's tokens exactly as a
    one-string tokenization gives them (some tokenizers add a space marker to a text that starts a string).
    Where the prefix's tokens would change at the boundary, the text is tokenized on its own (and counted).
    """
    prefix_ids = encode_prefix(tokenizer, prefix)
    full = tokenizer([prefix + t for t in texts], add_special_tokens=True)["input_ids"]
    out: list[list[int]] = []
    mismatches = 0
    for text, ids in zip(texts, full):
        if ids[: len(prefix_ids)] == prefix_ids and len(ids) > len(prefix_ids):
            out.append(list(ids[len(prefix_ids) :]))
        else:
            mismatches += 1
            out.append(list(tokenizer(text, add_special_tokens=False)["input_ids"]))
    return out, mismatches


def length_batches(lengths: Sequence[int], size: int) -> list[list[int]]:
    """Row indices grouped into batches of similar length (longest first, so memory peaks early)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + size] for i in range(0, len(order), size)]


@dataclass
class PrefixState:
    ids: list[int]  # token ids of the shared prefix (with the BOS token when the tokenizer adds one)
    cache: Any  # transformers Cache after the prefix, batch 1; never mutated (copied per batch)


class Scorer:
    """Scores prompts that share a prefix, reading the model only at the positions asked for.

    Works on any transformers causal LM whose base model takes a KV cache (qtalign.compat) and `position_ids`, and whose logits
    are `lm_head(final hidden)`, optionally soft-capped (Llama, Mistral, Qwen2, Gemma 3 families).

    Rows are always right-padded here, whatever the tokenizer's padding_side: real tokens then keep their true
    positions and cache slots, which keeps sliding-window attention exact (left padding after a cached prefix
    would shift the window by the pad count).
    """

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 8) -> None:
        self.model = model
        self.base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.body = self.base.base_model  # decoder stack with final norm
        self.head = self.base.get_output_embeddings()
        self.softcap = getattr(self.base.config, "final_logit_softcapping", None)
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.device = next(self.base.parameters()).device
        self.boundary_mismatches = 0

    # ---- tokenization -------------------------------------------------------------------------------------
    def encode_prefix(self, prefix: str) -> list[int]:
        return encode_prefix(self.tokenizer, prefix)

    def encode_items(self, prefix: str, texts: Sequence[str]) -> list[list[int]]:
        """encode_items with this scorer's tokenizer; counts boundary mismatches in self.boundary_mismatches."""
        rows, mismatches = encode_items(self.tokenizer, prefix, texts)
        self.boundary_mismatches += mismatches
        return rows

    # ---- model --------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def prefix_state(self, prefix_ids: list[int]) -> PrefixState:
        if not prefix_ids:
            return PrefixState([], None)
        ids = torch.tensor([prefix_ids], device=self.device)
        out = self.body(input_ids=ids, use_cache=True)
        return PrefixState(prefix_ids, output_cache(out))

    def unembed(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden [N, H] (already final-normed) -> logits [N, V] in float32."""
        logits = self.head(hidden).float()
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    @torch.inference_mode()
    def forward_rows(self, prefix: PrefixState, rows: Sequence[list[int]], output_hidden_states: bool = False) -> Any:
        """One batched forward of right-padded rows after the cached prefix (the prefix cache is copied, never
        mutated); returns the base model's output, last_hidden_state [B, T, H] over the rows' own tokens."""
        b, t = len(rows), max(len(r) for r in rows)
        p = len(prefix.ids)
        ids = torch.full((b, t), self.pad_id, dtype=torch.long)
        mask = torch.zeros((b, t), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        positions = (p + torch.arange(t)).expand(b, t).to(self.device)  # [B, T]
        full_mask = torch.cat([torch.ones((b, p), dtype=torch.long), mask], 1).to(self.device)  # [B, P+T]
        cache = None
        if prefix.cache is not None:
            cache = copy.deepcopy(prefix.cache)
            if b > 1:
                cache.batch_repeat_interleave(b)
        return self.body(input_ids=ids.to(self.device), attention_mask=full_mask, position_ids=positions,
                         use_cache=cache is not None, output_hidden_states=output_hidden_states, **cache_kwargs(cache))

    @torch.inference_mode()
    def hidden_at(self, prefix: PrefixState, rows: Sequence[list[int]], read: Sequence[Sequence[int]]) -> torch.Tensor:
        """Final hidden states at the read offsets of each row, after the prefix.

        rows: token ids per row (after the prefix); read: per row, offsets into that row to return.
        Returns [sum(len(r) for r in read), H], rows in order.
        """
        out = self.forward_rows(prefix, rows)
        hidden = out.last_hidden_state  # [B, T, H]
        rows_idx = [i for i, offs in enumerate(read) for _ in offs]
        cols_idx = [o for offs in read for o in offs]
        return hidden[rows_idx, cols_idx]

    def batches(self, lengths: Sequence[int]) -> list[list[int]]:
        return length_batches(lengths, self.batch_size)

    def first_token_batch(
        self, prefix: PrefixState, rows: Sequence[list[int]], label_sets: Sequence[Sequence[int]]
    ) -> np.ndarray:
        """The paper's constrained decoding for one batch: label mass [B, L], the summed next-token probability
        of the tokens that can begin each label word, read after the last token of each row."""
        with torch.inference_mode():
            h = self.hidden_at(prefix, rows, [[len(r) - 1] for r in rows])  # [B, H]
            probs = torch.softmax(self.unembed(h), dim=-1)  # [B, V]
            sets = [torch.as_tensor(s, device=self.device) for s in label_sets]
            mass = torch.stack([probs[:, s].sum(-1) for s in sets], dim=1)  # [B, L]
        return mass.cpu().numpy().astype(np.float64)

    def loglik_batch(
        self, prefix: PrefixState, rows: Sequence[list[int]], label_ids: Sequence[Sequence[int]]
    ) -> np.ndarray:
        """Exact log-likelihood [B, L] of each full label word (its token ids) after each row."""
        pairs = [(i, j) for i in range(len(rows)) for j in range(len(label_ids))]
        out = np.zeros((len(rows), len(label_ids)), dtype=np.float64)
        for start in range(0, len(pairs), self.batch_size):
            part = pairs[start : start + self.batch_size]
            seqs = [rows[i] + list(label_ids[j][:-1]) for i, j in part]
            read = [range(len(rows[i]) - 1, len(rows[i]) - 1 + len(label_ids[j])) for i, j in part]
            with torch.inference_mode():
                h = self.hidden_at(prefix, seqs, read)  # [sum len, H]
                logp = torch.log_softmax(self.unembed(h), dim=-1)  # [sum len, V]
                targets = torch.tensor([t for _, j in part for t in label_ids[j]], device=logp.device)
                tok_lp = logp[torch.arange(len(targets), device=logp.device), targets].cpu().numpy()
            k = 0
            for i, j in part:
                n = len(label_ids[j])
                out[i, j] = float(tok_lp[k : k + n].sum())
                k += n
        return out


def continuation_ids(tokenizer: Any, word: str, cue: str = '"') -> list[int]:
    """Token ids of word as it continues a prompt ending in cue (tokenized in context, cue's tokens removed)."""
    cue_ids = tokenizer(cue, add_special_tokens=False)["input_ids"]
    both = tokenizer(cue + word, add_special_tokens=False)["input_ids"]
    if both[: len(cue_ids)] == cue_ids and len(both) > len(cue_ids):
        return list(both[len(cue_ids) :])
    return list(tokenizer(word, add_special_tokens=False)["input_ids"])

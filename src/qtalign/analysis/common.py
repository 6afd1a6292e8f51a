"""Shared by lens and PCA: per-layer hidden states after a cached prefix, bootstrap intervals, run-folder files."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qtalign.compat import output_cache
from qtalign.distributed import Shard
from qtalign.errors import QtalignError
from qtalign.scoring import PrefixState, Scorer, length_batches
from qtalign.store import atomic_write_bytes


def final_norm(scorer: Scorer) -> torch.nn.Module:
    """The decoder's final norm module (Llama/Mistral/Qwen2/Gemma: `norm`; others under common names)."""
    for name in ("norm", "final_layernorm", "ln_f", "final_norm"):
        module = getattr(scorer.body, name, None)
        if isinstance(module, torch.nn.Module):
            return module
    raise QtalignError(f"{type(scorer.body).__name__}: cannot find the final norm (looked for norm, final_layernorm, ln_f)")


@dataclass
class PrefixLayers:
    state: PrefixState  # KV cache after the prefix (batch 1)
    sums: torch.Tensor  # [L+1, H] float64: per layer, the sum of the prefix's hidden states (for mean pooling)
    n_tokens: int


@torch.inference_mode()
def prefix_layers(scorer: Scorer, prefix_ids: list[int]) -> PrefixLayers:
    """One pass over the shared prefix: its KV cache and the per-layer sum of its hidden states."""
    n_layers = scorer.base.config.num_hidden_layers if hasattr(scorer.base.config, "num_hidden_layers") else None
    if not prefix_ids:
        h = scorer.base.config.hidden_size
        return PrefixLayers(PrefixState([], None), torch.zeros(((n_layers or 0) + 1, h), dtype=torch.float64), 0)
    ids = torch.tensor([prefix_ids], device=scorer.device)
    out = scorer.body(input_ids=ids, use_cache=True, output_hidden_states=True)
    hs = _layers(out)  # L+1 x [1, P, H]
    sums = torch.stack([h[0].double().sum(0) for h in hs]).cpu()  # [L+1, H]
    return PrefixLayers(PrefixState(list(prefix_ids), output_cache(out)), sums, len(prefix_ids))


def _layers(out: Any) -> list[torch.Tensor]:
    """HF's hidden_states convention made explicit: entries 0..L-1 are the residual stream entering each layer
    (0 = embeddings), entry L is the final-normed output (the model's real last hidden state)."""
    hs = list(out.hidden_states)
    hs[-1] = out.last_hidden_state  # already the same tensor in transformers 5; explicit for other versions
    return hs


@torch.inference_mode()
def layer_states(scorer: Scorer, prefix: PrefixState, rows: Sequence[list[int]]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """One batched forward of right-padded rows after the cached prefix, with every layer's hidden states.

    Returns (L+1 tensors [B, T, H] over the rows' own tokens, lengths [B]). Same padding/positions as
    Scorer.hidden_at, so the last layer equals what the scorer reads.
    """
    out = scorer.forward_rows(prefix, rows, output_hidden_states=True)
    hs = _layers(out)
    expected = getattr(scorer.base.config, "num_hidden_layers", len(hs) - 1) + 1
    if len(hs) != expected:
        raise QtalignError(f"{type(scorer.body).__name__}: got {len(hs)} hidden states, expected {expected}")
    return hs, torch.tensor([len(r) for r in rows])


# ---- run folders: atomic npz parts ------------------------------------------------------------------------------
def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez, written atomically: readers see the old or the new file, never a partial one."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load_part(path: Path, lp: Any) -> tuple[dict[str, np.ndarray] | None, str]:
    """A language's saved partial results and the hash of its prompts; a part made from other prompts is an error.

    lp: the language's qtalign.prompts.LangPrompts. Returns (arrays or None, prompt hash to store with new parts).
    """
    from qtalign.store import sha256_json

    prompt_sha = sha256_json([lp.prefix, *lp.texts])[:16]
    z = load_npz(path)
    if z is not None and str(z.get("prompt_sha", np.array(""))) != prompt_sha:
        raise QtalignError(f"{path}: made from other prompts for {lp.lang!r} (data changed?); "
                           f"delete it or use a new --out")
    return z, prompt_sha


def item_order(lp: Any, index: np.ndarray) -> np.ndarray:
    """Rows that put results (item indices `index`, e.g. in batch order) in the prompts' item order."""
    pos = {it.index: k for k, it in enumerate(lp.items)}
    return np.argsort([pos.get(int(i), len(pos)) for i in index], kind="stable")


def pending_batches(lp: Any, ids: Sequence[list[int]], have: set[int], batch_size: int,
                    shard: Shard | None = None) -> Iterator[tuple[list[int], list[int]]]:
    """The batches of a language's prompts this process still reads: (batch, keep), batch = item positions (batches of
    batch_size from the full item list, as the scorer's, so an item is read with the same companions whatever was done
    before or how the work is shared), keep = positions within batch of items not in have. A shard takes every
    world-th batch that has work left."""
    for batch in length_batches([len(x) for x in ids], batch_size):
        keep = [j for j, k in enumerate(batch) if lp.items[k].index not in have]
        if keep and (shard is None or shard.mine()):
            yield batch, keep


def load_npz(path: Path) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


# ---- multi-process runs: each process saves its own part file, the main process gathers them --------------------
def rank_part(path: Path, rank: int) -> Path:
    """The part file of one process of a multi-process run beside a language's part file (lens_de.npz ->
    lens_de.rank1.npz)."""
    return path.with_name(f"{path.stem}.rank{rank}{path.suffix}")


def gather_rank_parts(path: Path, per_item: Sequence[str]) -> None:
    """Merge the processes' part files of one language (rank_part of path, any process count) into path: the per-item
    arrays (first axis = items, per_item[0] the item index) concatenated with items already in path dropped, other
    arrays from path (or the first part). Rank parts made from other prompts are an error. Crash-safe: path is
    replaced atomically before the rank parts are deleted, and the next gathering skips items already there."""
    parts = sorted(path.parent.glob(f"{path.stem}.rank*{path.suffix}"), key=lambda p: (len(p.name), p.name))
    if not parts:
        return
    merged = load_npz(path)
    sha = None if merged is None else str(merged.get("prompt_sha", np.array("")))
    for part in parts:
        z = load_npz(part)
        if z is None:
            continue
        if sha is not None and str(z.get("prompt_sha", np.array(""))) != sha:
            raise QtalignError(f"{part}: made from other prompts than {path.name} (data changed?); delete it or use a "
                               "new --out")
        if merged is None:
            merged, sha = z, str(z.get("prompt_sha", np.array("")))
            continue
        have = {int(i) for i in merged[per_item[0]]}
        new = np.array([int(i) not in have for i in z[per_item[0]]], dtype=bool)
        if new.any():
            merged = {**merged, **{k: np.concatenate([merged[k], z[k][new]]) for k in per_item}}
    if merged is not None:
        save_npz(path, merged)
    for part in parts:
        part.unlink()


def gathered_language(path: Path, per_item: Sequence[str], n_items: int) -> dict[str, np.ndarray]:
    """A language's part file once the processes' parts are gathered into it (gather_rank_parts); fewer than n_items
    items is a QtalignError (a process stopped before finishing its share)."""
    gather_rank_parts(path, per_item)
    z = load_npz(path)
    if z is None or len(z[per_item[0]]) < n_items:
        raise QtalignError(f"{path}: {0 if z is None else len(z[per_item[0]])} of {n_items} items after gathering the "
                           "processes' parts; rerun the same command to finish")
    return z

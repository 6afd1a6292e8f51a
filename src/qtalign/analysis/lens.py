"""Logit lens at the last prompt position: per layer, final norm + unembedding, label-token mass, entropy, energy."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from qtalign.analysis.common import final_norm, item_order, layer_states, pending_batches, prefix_layers
from qtalign.batchsize import BatchSizer, run_split
from qtalign.distributed import Shard
from qtalign.errors import QtalignError
from qtalign.metrics import bootstrap_mean
from qtalign.prompts import LangPrompts
from qtalign.protocol import paper_label_token_sets
from qtalign.scoring import PrefixState, Scorer, TokenIndex, label_token_sets
from qtalign.tasks import Task

# per item and layer; p_* are probabilities (summed over a token set); entropy in nats or bits (run setting
# entropy_unit); energy as the paper computes it (see Energy)
QUANTITIES: tuple[str, ...] = ("p_en", "p_native", "p_en_all", "p_native_all", "entropy", "energy")
ENTROPY_UNITS: dict[str, float] = {"nats": 1.0, "bits": 1.0 / math.log(2)}  # multiplier of the entropy in nats


@dataclass
class LensArrays:
    """Lens results of one language: layer 0 = embeddings, layer L = the model's real output."""

    lang: str
    index: np.ndarray  # [n] item index in its source file
    values: dict[str, np.ndarray] = field(default_factory=dict)  # quantity -> [n, L+1]
    top_id: np.ndarray | None = None  # [n, L+1] most probable token per layer

    @property
    def n(self) -> int:
        return len(self.index)

    def to_npz(self) -> dict[str, np.ndarray]:
        out = {"index": self.index, **self.values}
        if self.top_id is not None:
            out["top_id"] = self.top_id
        return out

    @classmethod
    def from_npz(cls, lang: str, z: dict[str, np.ndarray]) -> LensArrays:
        return cls(lang, z["index"], {q: z[q] for q in QUANTITIES}, z.get("top_id"))

    def take(self, rows: np.ndarray) -> LensArrays:
        return LensArrays(self.lang, self.index[rows], {q: v[rows] for q, v in self.values.items()},
                          None if self.top_id is None else self.top_id[rows])


@dataclass(frozen=True)
class LensSets:
    """Token sets per canonical label, English words and the input language's own words (scorer's sets)."""

    en: tuple[tuple[int, ...], ...]
    native: tuple[tuple[int, ...], ...]
    same_words: bool = False  # the language's label words are the English ones (English itself)

    @classmethod
    def build(cls, index: TokenIndex, task: Task, lang: str, native_words: Sequence[str] | None = None,
              label_tokens: str = "qtalign", model_type: str | None = None) -> LensSets:
        """native_words: the language's label words (default: the task table's); label_tokens "paper": the paper
        scripts' token sets (qtalign.protocol.paper_token_ids) instead of the scorer's."""
        en_words = task.label_words(lang, "en")
        native = tuple(native_words) if native_words else task.label_words(lang, "native")
        if label_tokens == "paper":
            sets = lambda words: paper_label_token_sets(index.tokenizer, words, model_type, allow_empty=True)
        else:
            sets = lambda words: label_token_sets(index, words)
        return cls(tuple(map(tuple, sets(en_words))), tuple(map(tuple, sets(native))), tuple(en_words) == native)


def drop_overlapping(lp: LangPrompts, task: Task, sets: LensSets) -> tuple[LangPrompts, int]:
    """The paper's lens filter: drop the items whose correct label's native and English token sets share a token
    (their probabilities could not be told apart), and those where either set is empty (possible with the paper's
    token sets). The overlap test is not applied where the words are the English ones (the paper exempts English).
    Returns the kept prompts and the number dropped."""
    keep = []
    for k, it in enumerate(lp.items):
        c = task.labels.index(it.label)  # type: ignore[arg-type]
        en, native = set(sets.en[c]), set(sets.native[c])
        if en and native and (sets.same_words or not en & native):
            keep.append(k)
    return lp.take(keep), len(lp.items) - len(keep)


class Energy:
    """The "energy" of the paper's logit-lens script (after Wendler et al. 2024), computed exactly but cheaply.

    Û: the unembedding rows times the final norm's gain, each scaled to unit length ([V, H]); ĥ: the layer's latent
    (the residual stream before the final norm) scaled to unit length. energy = RMS over the vocabulary of Ûĥ,
    divided by the same RMS averaged over all directions, ||ÛᵀÛ||_F / V. With M = ÛᵀÛ ([H, H], accumulated once in
    chunks): RMS(Ûĥ) = sqrt(ĥᵀMĥ / V), so no [V]-sized product per item is needed.
    """

    def __init__(self, scorer: Scorer, chunk: int = 16384) -> None:
        w = scorer.head.weight  # [V, H]
        if not torch.is_floating_point(w):
            raise QtalignError("energy needs a floating-point unembedding matrix (not a quantized one)")
        norm = final_norm(scorer)
        gain = _norm_gain(norm, w.shape[1], w.device)  # [H]
        m = torch.zeros((w.shape[1], w.shape[1]), dtype=torch.float64, device=w.device)
        with torch.inference_mode():
            for part in w.split(chunk):
                u = part.float() * gain.float()  # [c, H]
                u = u / u.norm(dim=1, keepdim=True).clamp_min(1e-30)
                m += (u.T @ u).double()  # float32 products (fast), float64 sum over chunks
        self.m = m  # [H, H]
        self.vocab = w.shape[0]
        self.average = float(torch.linalg.matrix_norm(m)) / self.vocab

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        """h [..., H] latents -> energy [...] (float64)."""
        u = h.to(self.m.device).double()
        u = u / u.norm(dim=-1, keepdim=True).clamp_min(1e-300)
        q = torch.einsum("...i,ij,...j->...", u, self.m, u) / self.vocab
        return q.clamp_min(0).sqrt() / self.average


def _norm_gain(norm: torch.nn.Module, hidden: int, device: torch.device) -> torch.Tensor:
    """The per-dimension gain of an RMS-style final norm ([H] float64): its output for an all-ones input (which
    has RMS 1), so Llama's `weight` and Gemma's `1 + weight` alike; LayerNorm: its weight."""
    weight = getattr(norm, "weight", None)
    if isinstance(norm, torch.nn.LayerNorm) and weight is not None:
        return weight.detach().double()
    dtype = weight.dtype if isinstance(weight, torch.Tensor) and torch.is_floating_point(weight) else torch.float32
    with torch.inference_mode():
        return norm(torch.ones((1, hidden), dtype=dtype, device=device))[0].double()


@torch.inference_mode()
def lens_logprobs(scorer: Scorer, prefix: PrefixState, rows: Sequence[list[int]]) -> torch.Tensor:
    """Log next-token distribution at each row's last token, read through every layer: [L+1, B, V] float32.

    Entries before the last get the model's final norm; the last is the model's own final-normed output, so
    layer L equals the real next-token distribution.
    """
    return _lens_logprobs(scorer, prefix, rows)[0]


def _lens_logprobs(scorer: Scorer, prefix: PrefixState, rows: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """lens_logprobs and the last-position hidden states it read, [L+1, B, H]."""
    hs, lengths = layer_states(scorer, prefix, rows)  # L+1 x [B, T, H]
    norm = final_norm(scorer)
    b = torch.arange(len(rows))
    last = torch.stack([h[b, lengths - 1] for h in hs])  # [L+1, B, H]
    normed = torch.cat([norm(last[:-1]), last[-1:]])  # [L+1, B, H]
    n_states, n_rows, hidden = normed.shape
    logits = scorer.unembed(normed.reshape(-1, hidden))  # [(L+1)B, V]
    return torch.log_softmax(logits, -1).reshape(n_states, n_rows, -1), last


@torch.inference_mode()
def lens_batch(scorer: Scorer, prefix: PrefixState, rows: Sequence[list[int]], correct: Sequence[int],
               sets: LensSets, entropy_unit: str = "nats",
               energy: Energy | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Lens quantities for a batch: (quantity -> [B, L+1], top token ids [B, L+1]). Energy is NaN without energy."""
    raw: list[torch.Tensor] = []  # the input of the final norm: the last layer's latent before normalization
    hook = final_norm(scorer).register_forward_hook(lambda _m, args, _out: raw.append(args[0]))
    try:
        logp, last = _lens_logprobs(scorer, prefix, rows)  # [L+1, B, V], [L+1, B, H]
    finally:
        hook.remove()
    probs = logp.exp()
    dev = probs.device

    def mass(ids: Sequence[int]) -> torch.Tensor:  # [L+1, B]
        return probs[..., torch.tensor(sorted(ids), device=dev, dtype=torch.long)].sum(-1)

    def per_row(label_sets: Sequence[Sequence[int]]) -> torch.Tensor:  # correct label's set, per row
        return torch.stack([mass(label_sets[c])[:, i] for i, c in enumerate(correct)], 1)

    union = lambda label_sets: sorted({t for s in label_sets for t in s})
    vals = {
        "p_en": per_row(sets.en),
        "p_native": per_row(sets.native),
        "p_en_all": mass(union(sets.en)),
        "p_native_all": mass(union(sets.native)),
        "entropy": -(probs * logp.clamp_min(-1e30)).nansum(-1) * ENTROPY_UNITS[entropy_unit],
        "energy": torch.full(probs.shape[:2], float("nan"), dtype=torch.float64),
    }
    if energy is not None:
        latents = last.clone()  # [L+1, B, H]; layer L is final-normed here, the paper reads it before the norm
        b = torch.arange(len(rows))
        if raw and raw[0].shape[:2] == (len(rows), max(len(r) for r in rows)):  # [B, T, H] of the model's forward
            latents[-1] = raw[0][b, torch.tensor([len(r) for r in rows]) - 1]
        vals["energy"] = energy(latents).cpu()
    out = {q: v.T.double().cpu().numpy() for q, v in vals.items()}  # [B, L+1]
    return out, logp.argmax(-1).T.cpu().numpy()


def run_lens(scorer: Scorer, lp: LangPrompts, task: Task, sets: LensSets, done: LensArrays | None = None,
             batch_size: int = 8, on_batch: Callable[[LensArrays, float], None] | None = None,
             entropy_unit: str = "nats", energy: Energy | None = None, shard: Shard | None = None,
             keep_done: bool = True, sizer: BatchSizer | None = None) -> LensArrays:
    """Lens over a language's evaluation prompts, skipping items already in done; on_batch(partial, rate)
    is called after every batch with all results so far (to save them and show progress). energy: computed for
    the model when not given (pass one Energy to share it between languages).

    Batches of batch_size come from the full item list (as the scorer's), so an item is read in the same batch, with
    the same padding, whatever was done before or how the work is shared. sizer: how many items go through the model
    at once (--batch-size auto halves it on out-of-memory; a batch then runs in pieces). shard: in a multi-process
    run, the batches of this process; keep_done=False returns (and passes to on_batch) only the items computed here,
    not done's."""
    energy = energy or Energy(scorer)
    ids = scorer.encode_items(lp.prefix, lp.texts)
    have = set() if done is None else {int(i) for i in done.index}
    empty = LensArrays(lp.lang, np.zeros(0, dtype=np.int64))
    result = done if done is not None and keep_done else empty
    pre = None
    start, n_done = time.perf_counter(), 0
    sizer = sizer or BatchSizer(batch_size)
    for batch, keep in pending_batches(lp, ids, have, batch_size, shard):
        pre = pre or prefix_layers(scorer, scorer.encode_prefix(lp.prefix))  # only where this process reads a batch
        parts = [part for _, part in run_split(sizer, batch, lambda piece, state=pre.state: lens_batch(
            scorer, state, [ids[k] for k in piece], [task.labels.index(lp.items[k].label) for k in piece],
            sets, entropy_unit, energy))]  # type: ignore[arg-type]
        rows = np.array(keep)
        vals = {q: np.concatenate([v[q] for v, _ in parts])[rows] for q in parts[0][0]}  # [len(keep), L+1]
        top = np.concatenate([t for _, t in parts])[rows]
        result = _concat(result, LensArrays(lp.lang, np.array([lp.items[batch[j]].index for j in keep]), vals, top))
        n_done += len(keep)
        if on_batch is not None:
            on_batch(result, n_done / max(time.perf_counter() - start, 1e-9))
    return result.take(item_order(lp, result.index))


def _concat(a: LensArrays, b: LensArrays) -> LensArrays:
    if a.n == 0:
        return b
    top = None if a.top_id is None or b.top_id is None else np.concatenate([a.top_id, b.top_id])
    return LensArrays(a.lang, np.concatenate([a.index, b.index]),
                      {q: np.concatenate([a.values[q], b.values[q]]) for q in QUANTITIES}, top)


def summarize(results: Sequence[LensArrays], n_boot: int = 1000, seed: int = 0) -> list[dict[str, object]]:
    """Per language, layer and quantity: mean over items with a 95% bootstrap interval (tidy rows)."""
    rows: list[dict[str, object]] = []
    for res in results:
        for q in QUANTITIES:
            mean, lo, hi = bootstrap_mean(res.values[q], n_boot=n_boot, seed=seed)
            for layer in range(len(mean)):
                rows.append({"lang": res.lang, "layer": layer, "quantity": q, "n": res.n,
                             "mean": float(mean[layer]), "lo": float(lo[layer]), "hi": float(hi[layer])})
    return rows

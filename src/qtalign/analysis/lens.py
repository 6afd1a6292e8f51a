"""Logit lens at the last prompt position: per layer, final norm + unembedding, label-token mass and entropy."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from qtalign.analysis.common import final_norm, layer_states, prefix_layers
from qtalign.metrics import bootstrap_mean
from qtalign.prompts import LangPrompts
from qtalign.scoring import PrefixState, Scorer, TokenIndex, label_token_sets, length_batches
from qtalign.tasks import Task

# per item and layer; p_* are probabilities (summed over a token set), entropy is in nats
QUANTITIES: tuple[str, ...] = ("p_en", "p_native", "p_en_all", "p_native_all", "entropy")
DESCRIPTIONS: dict[str, str] = {
    "p_en": "correct label, English tokens",
    "p_native": "correct label, input-language tokens",
    "p_en_all": "any label, English tokens",
    "p_native_all": "any label, input-language tokens",
    "entropy": "entropy of the next-token distribution (nats)",
}


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

    @classmethod
    def build(cls, index: TokenIndex, task: Task, lang: str) -> LensSets:
        en = label_token_sets(index, task.label_words(lang, "en"))
        native = label_token_sets(index, task.label_words(lang, "native"))
        return cls(tuple(map(tuple, en)), tuple(map(tuple, native)))


@torch.inference_mode()
def lens_logprobs(scorer: Scorer, prefix: PrefixState, rows: Sequence[list[int]]) -> torch.Tensor:
    """Log next-token distribution at each row's last token, read through every layer: [L+1, B, V] float32.

    Entries before the last get the model's final norm; the last is the model's own final-normed output, so
    layer L equals the real next-token distribution.
    """
    hs, lengths = layer_states(scorer, prefix, rows)  # L+1 x [B, T, H]
    norm = final_norm(scorer)
    b = torch.arange(len(rows))
    last = torch.stack([h[b, lengths - 1] for h in hs])  # [L+1, B, H]
    normed = torch.cat([norm(last[:-1]), last[-1:]])  # [L+1, B, H]
    n_states, n_rows, hidden = normed.shape
    logits = scorer.unembed(normed.reshape(-1, hidden))  # [(L+1)B, V]
    return torch.log_softmax(logits, -1).reshape(n_states, n_rows, -1)


@torch.inference_mode()
def lens_batch(scorer: Scorer, prefix: PrefixState, rows: Sequence[list[int]], correct: Sequence[int],
               sets: LensSets) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Lens quantities for a batch: (quantity -> [B, L+1], top token ids [B, L+1])."""
    logp = lens_logprobs(scorer, prefix, rows)  # [L+1, B, V]
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
        "entropy": -(probs * logp.clamp_min(-1e30)).nansum(-1),
    }
    out = {q: v.T.double().cpu().numpy() for q, v in vals.items()}  # [B, L+1]
    return out, logp.argmax(-1).T.cpu().numpy()


def run_lens(scorer: Scorer, lp: LangPrompts, task: Task, sets: LensSets, done: LensArrays | None = None,
             batch_size: int = 8, on_batch: Callable[[LensArrays, float], None] | None = None) -> LensArrays:
    """Lens over a language's evaluation prompts, skipping items already in done; on_batch(partial, rate)
    is called after every batch with all results so far (to save them and show progress)."""
    ids = scorer.encode_items(lp.prefix, lp.texts)
    pre = prefix_layers(scorer, scorer.encode_prefix(lp.prefix))
    have = set() if done is None else {int(i) for i in done.index}
    todo = [k for k, it in enumerate(lp.items) if it.index not in have]
    result = done if done is not None else LensArrays(lp.lang, np.zeros(0, dtype=np.int64))
    start, n_done = time.perf_counter(), 0
    for batch in length_batches([len(ids[k]) for k in todo], batch_size):
        ks = [todo[j] for j in batch]
        vals, top = lens_batch(scorer, pre.state, [ids[k] for k in ks],
                               [task.labels.index(lp.items[k].label) for k in ks], sets)  # type: ignore[arg-type]
        result = _concat(result, LensArrays(lp.lang, np.array([lp.items[k].index for k in ks]), vals, top))
        n_done += len(ks)
        if on_batch is not None:
            on_batch(result, n_done / max(time.perf_counter() - start, 1e-9))
    order = {it.index: k for k, it in enumerate(lp.items)}
    return result.take(np.argsort([order.get(int(i), len(order)) for i in result.index], kind="stable"))


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

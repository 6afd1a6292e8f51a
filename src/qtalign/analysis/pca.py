"""Pooled hidden states per layer, a joint PCA over languages, and the first component's cross-language correlation."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from qtalign.analysis.common import PrefixLayers, item_order, layer_states, pending_batches, prefix_layers
from qtalign.batchsize import BatchSizer, run_split
from qtalign.distributed import Shard
from qtalign.errors import QtalignError
from qtalign.prompts import LangPrompts
from qtalign.scoring import Scorer

# mean: over all prompt tokens (prefix + item; the paper's choice); item: over the item's tokens only;
# last: the last prompt token's state
POOLS: tuple[str, ...] = ("mean", "item", "last")


@dataclass
class Pooled:
    """Pooled hidden states of one language. Layer l follows HF's convention: 0 = embeddings, 1..L-1 = after
    each decoder layer, L = the final-normed output."""

    lang: str
    index: np.ndarray  # [n] item index in its source file
    layers: tuple[int, ...]
    states: np.ndarray  # [n, len(layers), H] float32

    def to_npz(self) -> dict[str, np.ndarray]:
        return {"index": self.index, "layers": np.array(self.layers), "states": self.states}

    @classmethod
    def from_npz(cls, lang: str, z: dict[str, np.ndarray]) -> Pooled:
        return cls(lang, z["index"], tuple(int(x) for x in z["layers"]), z["states"])


@torch.inference_mode()
def pool_batch(scorer: Scorer, pre: PrefixLayers, rows: Sequence[list[int]], layers: Sequence[int],
               pool: str) -> np.ndarray:
    """[B, len(layers), H] pooled states of a batch; only pooled vectors leave this function."""
    hs, lengths = layer_states(scorer, pre.state, rows)  # L+1 x [B, T, H]
    n_states = len(hs)
    for layer in layers:
        if not 0 <= layer < n_states:
            raise QtalignError(f"--layers: layer {layer} does not exist (this model has layers 0..{n_states - 1})")
    t = hs[0].shape[1]
    mask = (torch.arange(t)[None, :] < lengths[:, None]).to(hs[0].device)  # [B, T]
    b = torch.arange(len(rows))
    out = []
    for layer in layers:
        h = hs[layer]  # [B, T, H]
        if pool == "last":
            out.append(h[b, lengths - 1].double().cpu())
        else:
            item_sum = (h.double() * mask[..., None]).sum(1).cpu()  # [B, H]
            if pool == "mean":
                out.append((pre.sums[layer][None] + item_sum) / (pre.n_tokens + lengths)[:, None])
            else:
                out.append(item_sum / lengths[:, None])
    return torch.stack(out, 1).float().numpy()  # [B, k, H]


def collect_pooled(scorer: Scorer, lp: LangPrompts, layers: Sequence[int], pool: str = "mean",
                   done: Pooled | None = None, batch_size: int = 8,
                   on_batch: Callable[[Pooled, float], None] | None = None, shard: Shard | None = None,
                   keep_done: bool = True, sizer: BatchSizer | None = None) -> Pooled:
    """Pooled states of a language's evaluation prompts, skipping items already in done.

    Batches of batch_size come from the full item list (as the scorer's), so an item is pooled in the same batch
    whatever was done before or how the work is shared. sizer: how many items go through the model at once
    (--batch-size auto halves it on out-of-memory; a batch then runs in pieces). shard: in a multi-process run, the
    batches of this process; keep_done=False returns (and passes to on_batch) only the items computed here (possibly
    none)."""
    if pool not in POOLS:
        raise QtalignError(f"--pool must be one of {', '.join(POOLS)}, got {pool!r}")
    ids = scorer.encode_items(lp.prefix, lp.texts)
    have = set() if done is None else {int(i) for i in done.index}
    result = done if keep_done else None
    pre = None
    start, n_done = time.perf_counter(), 0
    sizer = sizer or BatchSizer(batch_size)
    for batch, keep in pending_batches(lp, ids, have, batch_size, shard):
        pre = pre or prefix_layers(scorer, scorer.encode_prefix(lp.prefix))  # only where this process pools a batch
        states = np.concatenate([part for _, part in run_split(sizer, batch, lambda piece, prefix=pre: pool_batch(
            scorer, prefix, [ids[k] for k in piece], layers, pool))])[keep]  # [len(keep), k, H]
        new = Pooled(lp.lang, np.array([lp.items[batch[j]].index for j in keep]), tuple(layers), states)
        result = new if result is None else Pooled(lp.lang, np.concatenate([result.index, new.index]),
                                                   tuple(layers), np.concatenate([result.states, new.states]))
        n_done += len(keep)
        if on_batch is not None:
            on_batch(result, n_done / max(time.perf_counter() - start, 1e-9))
    if result is None:
        if shard is not None or not keep_done:  # this process had no batch of this language
            hidden = int(scorer.base.config.hidden_size)
            return Pooled(lp.lang, np.zeros(0, dtype=np.int64), tuple(layers),
                          np.zeros((0, len(layers), hidden), dtype=np.float32))
        raise QtalignError(f"no items to pool for language {lp.lang!r}")
    rows = item_order(lp, result.index)
    return Pooled(lp.lang, result.index[rows], result.layers, result.states[rows])


# ---- PCA ----------------------------------------------------------------------------------------------------
@dataclass
class PCAFit:
    mean: np.ndarray  # [H]
    components: np.ndarray  # [k, H], unit rows
    scores: np.ndarray  # [N, k]
    explained: np.ndarray  # [k] fraction of total variance


def fit_pca(x: np.ndarray, k: int = 2) -> PCAFit:
    """PCA of x [N, H] by SVD in float64.

    Sign convention: each component is flipped so that its largest-magnitude loading is positive (like
    scikit-learn's svd_flip on the components), which makes figures reproducible. Correlations between
    languages do not depend on the sign, because one fit covers all languages.
    """
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)  # vt [min(N,H), H]
    k = min(k, vt.shape[0])
    comps = vt[:k]
    signs = np.sign(comps[np.arange(k), np.abs(comps).argmax(1)])
    signs[signs == 0] = 1
    comps = comps * signs[:, None]
    total = (s**2).sum()
    explained = (s[:k] ** 2) / total if total > 0 else np.zeros(k)
    return PCAFit(mean, comps, (x - mean) @ comps.T, explained)


def parallel_index(pooled: Sequence[Pooled]) -> np.ndarray:
    """Item indices present in every language (sorted): the parallel items."""
    common = {int(i) for i in pooled[0].index}
    for p in pooled[1:]:
        common &= {int(i) for i in p.index}
    return np.array(sorted(common), dtype=np.int64)


def aligned(p: Pooled, index: np.ndarray, layer_pos: int) -> np.ndarray:
    """[len(index), H] states of the given items at one layer position, in index order."""
    where = {int(i): r for r, i in enumerate(p.index)}
    return p.states[[where[int(i)] for i in index], layer_pos].astype(np.float64)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


@dataclass
class LayerPCA:
    layer: int
    fit: PCAFit  # fitted jointly over every item of every language
    langs: np.ndarray  # [N] language of each score row
    index: np.ndarray  # [N] item index of each score row
    corr: list[dict[str, object]]  # PC1 Pearson r per language pair on parallel items


def pca_layers(pooled: Sequence[Pooled], k: int = 2) -> list[LayerPCA]:
    """Per layer: a joint PCA over all languages and the PC1 correlation of every language pair."""
    layers = pooled[0].layers
    if any(p.layers != layers for p in pooled):
        raise QtalignError("pooled states of different languages cover different layers")
    common = parallel_index(pooled)
    out = []
    for pos, layer in enumerate(layers):
        x = np.concatenate([p.states[:, pos] for p in pooled])  # [N, H]
        fit = fit_pca(x, k)
        langs = np.concatenate([[p.lang] * len(p.index) for p in pooled])
        index = np.concatenate([p.index for p in pooled])
        pc1 = {p.lang: dict(zip((int(i) for i in p.index), fit.scores[langs == p.lang, 0])) for p in pooled}
        corr = []
        for a in range(len(pooled)):
            for b in range(a + 1, len(pooled)):
                la, lb = pooled[a].lang, pooled[b].lang
                r = pearson(np.array([pc1[la][i] for i in common]), np.array([pc1[lb][i] for i in common])) \
                    if len(common) > 2 else float("nan")
                corr.append({"layer": layer, "lang_a": la, "lang_b": lb, "n": len(common), "r": r})
        out.append(LayerPCA(layer, fit, langs, index, corr))
    return out


# ---- alignment scores beyond the paper ----------------------------------------------------------------------
def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def alignment_scores(pooled: Sequence[Pooled]) -> list[dict[str, object]]:
    """Per layer and ordered language pair (query -> target) on parallel items:
    cos: mean cosine of parallel pairs; cos_other: mean cosine of non-parallel pairs (baseline);
    retrieval: fraction of query items whose nearest target item (cosine) is its own translation;
    retrieval_centered: the same after subtracting each language's mean state (removes language identity)."""
    common = parallel_index(pooled)
    n = len(common)
    rows: list[dict[str, object]] = []
    if n < 2:
        return rows
    for pos, layer in enumerate(pooled[0].layers):
        vecs = {p.lang: aligned(p, common, pos) for p in pooled}  # lang -> [n, H]
        for pa in pooled:
            for pb in pooled:
                if pa.lang == pb.lang:
                    continue
                a, b = vecs[pa.lang], vecs[pb.lang]
                sim = _unit(a) @ _unit(b).T  # [n, n]
                diag = np.diag(sim)
                off = (sim.sum() - diag.sum()) / (n * n - n)
                sim_c = _unit(a - a.mean(0)) @ _unit(b - b.mean(0)).T
                rows.append({"layer": layer, "lang_a": pa.lang, "lang_b": pb.lang, "n": n,
                             "cos": float(diag.mean()), "cos_other": float(off),
                             "retrieval": float((sim.argmax(1) == np.arange(n)).mean()),
                             "retrieval_centered": float((sim_c.argmax(1) == np.arange(n)).mean())})
    return rows

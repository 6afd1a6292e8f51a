"""Logit lens: last position only (cached prefix, batched) vs the paper code's all positions of every layer (batch 1)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from qtalign.analysis.common import final_norm
from qtalign.analysis.lens import QUANTITIES, LensSets, run_lens
from qtalign.data.readers import read_dataset
from qtalign.models import load_model
from qtalign.prompts import LangPrompts, build_prompts
from qtalign.scoring import Scorer, TokenIndex
from qtalign.tasks import Task, get_task


@torch.inference_mode()
def all_positions(scorer: Scorer, lp: LangPrompts, task: Task, sets: LensSets) -> dict[str, np.ndarray]:
    """Baseline: per item, the whole prompt at batch 1, unembed + softmax at every position of every layer,
    then read the last position (as the reference code does)."""
    norm = final_norm(scorer)
    out: dict[str, list[list[float]]] = {q: [] for q in QUANTITIES}
    union = lambda s: torch.tensor(sorted({t for x in s for t in x}))
    for item, text in zip(lp.items, lp.texts):
        ids = torch.tensor([scorer.tokenizer(lp.prefix + text)["input_ids"]], device=scorer.device)
        res = scorer.body(input_ids=ids, output_hidden_states=True)
        hs = list(res.hidden_states)
        hs[-1] = res.last_hidden_state
        c = task.labels.index(item.label)
        rows: dict[str, list[float]] = {q: [] for q in QUANTITIES}
        for layer, h in enumerate(hs):
            h = h[0] if layer == len(hs) - 1 else norm(h[0])  # [T, H]
            probs = torch.softmax(scorer.unembed(h), -1)  # [T, V]: every position
            p = probs[-1]
            rows["p_en"].append(p[list(sets.en[c])].sum().item())
            rows["p_native"].append(p[list(sets.native[c])].sum().item())
            rows["p_en_all"].append(p[union(sets.en)].sum().item())
            rows["p_native_all"].append(p[union(sets.native)].sum().item())
            rows["entropy"].append(-(p * p.clamp_min(1e-45).log()).sum().item())
        for q in QUANTITIES:
            out[q].append(rows[q])
    return {q: np.asarray(v) for q, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/paper/emotion"))
    ap.add_argument("--lang", default="de")
    ap.add_argument("--items", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()
    torch.manual_seed(0)
    lm = load_model(args.model, device="cpu")
    task = get_task("emotion")
    lp = build_prompts(task, read_dataset(task, args.data, [args.lang]), [args.lang], limit=args.items)[args.lang]
    scorer = Scorer(lm.model, lm.tokenizer, batch_size=args.batch_size)
    sets = LensSets.build(TokenIndex(lm.tokenizer), task, args.lang)
    run_lens(scorer, lp, task, sets, batch_size=args.batch_size)  # warm-up
    t0 = time.perf_counter()
    fast = run_lens(scorer, lp, task, sets, batch_size=args.batch_size)
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = all_positions(scorer, lp, task, sets)
    t_slow = time.perf_counter() - t0
    n = len(lp.items)
    print(f"{n} {args.lang} items, {lm.base.config.num_hidden_layers + 1} layers, model {args.model}, "
          f"{torch.get_num_threads()} threads")
    print(f"all positions, batch 1 (baseline): {t_slow:7.2f} s  ({t_slow / n:.3f} s/item)")
    print(f"last position, cached prefix, batch {args.batch_size}: {t_fast:7.2f} s  ({t_fast / n:.3f} s/item)")
    print(f"speed-up: {t_slow / t_fast:.1f}x")
    worst = max(float(np.abs(fast.values[q] - slow[q]).max()) for q in QUANTITIES)
    print(f"largest difference over all quantities, items and layers: {worst:.2e}")
    for q in QUANTITIES:
        np.testing.assert_allclose(fast.values[q], slow[q], atol=1e-4, rtol=1e-4, err_msg=q)
    print("last-position results identical (within 1e-4)")


if __name__ == "__main__":
    main()

"""Eval speed with an adapter: LoRA layers kept as a PEFT wrapper (baseline) vs merged into the weights in memory.

Both score the same prompts with qtalign's scorer (same batches, same label token sets) from one loaded adapter;
the predictions must be identical and the label probabilities agree to float rounding. Prints items/s of both and
the ratio. Needs an adapter made by `qtalign train` (any recipe).

    python benchmarks/bench_adapter.py ADAPTER [--model gemma-3-270m] [--n 48] [--data ../shared/data/paper]
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import torch

from qtalign.eval import EvalSettings, prepare
from qtalign.models import attach_adapter, load_model
from qtalign.scoring import Scorer, TokenIndex, label_token_sets

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "paper"


def score(model: torch.nn.Module, tokenizer: object, lp: object, sets: list[list[int]], batch_size: int) -> np.ndarray:
    scorer = Scorer(model, tokenizer, batch_size=batch_size)
    state = scorer.prefix_state(scorer.encode_prefix(lp.prefix))  # type: ignore[attr-defined]
    rows = scorer.encode_items(lp.prefix, lp.texts)  # type: ignore[attr-defined]
    out = np.zeros((len(rows), len(sets)))
    for pos in scorer.batches([len(r) for r in rows]):
        out[pos] = scorer.first_token_batch(state, [rows[i] for i in pos], sets)
    return out  # [N, L]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("adapter")
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--lang", default="de")
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()
    lm = load_model(args.model, device="cpu")
    base = lm.model
    wrapped = attach_adapter(copy.deepcopy(base), args.adapter).eval()
    merged = attach_adapter(copy.deepcopy(base), args.adapter).merge_and_unload().eval()
    s = EvalSettings(task="emotion", data=str(Path(args.data) / "emotion"), langs=(args.lang,), limit=args.n,
                     device="cpu")
    lp = prepare(s).prompts[args.lang]
    sets = label_token_sets(TokenIndex(lm.tokenizer), lp.label_words)
    times: dict[str, list[float]] = {"wrapped": [], "merged": []}
    results: dict[str, np.ndarray] = {}
    with torch.inference_mode():
        for _ in range(2):  # alternate, so that load from other jobs on the machine hits both alike
            for name, model in (("wrapped", wrapped), ("merged", merged)):
                t0 = time.perf_counter()
                results[name] = score(model, lm.tokenizer, lp, sets, args.batch_size)
                times[name].append(time.perf_counter() - t0)
    n = len(lp.items)
    same = bool((results["wrapped"].argmax(1) == results["merged"].argmax(1)).all())
    t_w, t_m = min(times["wrapped"]), min(times["merged"])
    print(f"{args.model} + {args.adapter}: emotion {args.lang}, {n} items, batch {args.batch_size}, "
          f"{torch.get_num_threads()} threads, float32 (best of 2)")
    print(f"PEFT wrapper {n / t_w:.2f} items/s, merged {n / t_m:.2f} items/s, ratio {t_w / t_m:.2f}x; "
          f"predictions identical: {same}; max |dp| {np.abs(results['wrapped'] - results['merged']).max():.1e}")


if __name__ == "__main__":
    main()

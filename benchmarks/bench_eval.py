"""Eval speed: qtalign's prefix-cached, batched, last-position scorer vs a naive paper-style scorer (same items).

Baseline ("paper-style"): batch 1, the whole prompt each time, logits and softmax at every position
(qtalign.reference.naive_label_mass). Both score the same prompts with the same label token sets; the
predictions must be identical. Prints examples/s for both and the speed-up ratio per task.

    python benchmarks/bench_eval.py [--model gemma-3-270m] [--n 24] [--data ../shared/data/paper]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from qtalign.eval import EvalSettings, prepare
from qtalign.models import load_model
from qtalign.reference import naive_label_mass
from qtalign.scoring import Scorer, TokenIndex, label_token_sets

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "paper"
CASES = [("emotion", "emotion", "de", 4.0), ("nli", "snli", "de", 8.0)]  # task, folder, language, target ratio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--n", type=int, default=24, help="items per task")
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()
    torch.manual_seed(0)
    lm = load_model(args.model, device="cpu")
    print(f"model {args.model}, {torch.get_num_threads()} threads, float32, {args.n} items per task")
    index = TokenIndex(lm.tokenizer)
    for task, folder, lang, target in CASES:
        s = EvalSettings(task=task, data=str(Path(args.data) / folder), langs=(lang,), limit=args.n, device="cpu")
        lp = prepare(s).prompts[lang]
        sets = label_token_sets(index, lp.label_words)
        prompts = [lp.prompt(i) for i in range(len(lp.items))]

        t0 = time.perf_counter()
        naive = naive_label_mass(lm.model, lm.tokenizer, prompts, sets)
        t_naive = time.perf_counter() - t0

        t0 = time.perf_counter()
        scorer = Scorer(lm.model, lm.tokenizer, batch_size=args.batch_size)
        state = scorer.prefix_state(scorer.encode_prefix(lp.prefix))
        rows = scorer.encode_items(lp.prefix, lp.texts)
        fast = np.zeros_like(naive)
        for pos in scorer.batches([len(r) for r in rows]):
            fast[pos] = scorer.first_token_batch(state, [rows[i] for i in pos], sets)
        t_fast = time.perf_counter() - t0

        same = bool((fast.argmax(1) == naive.argmax(1)).all())
        assert same, f"{task}: predictions differ between the naive and the fast scorer"
        n = len(prompts)
        ratio = t_naive / t_fast
        print(
            f"{task:8s} {lang} {task_shots(lp)}-shot prefix {len(state.ids)} tok, item {np.mean([len(r) for r in rows]):.0f} tok: "
            f"naive {n / t_naive:.2f} ex/s ({t_naive / n:.3f} s/ex), qtalign {n / t_fast:.2f} ex/s "
            f"({t_fast / n:.3f} s/ex), ratio {ratio:.2f}x (target {target:.0f}x), predictions identical: {same}, "
            f"max |dp| {np.abs(fast - naive).max():.1e}"
        )


def task_shots(lp) -> int:  # type: ignore[no-untyped-def]
    return len(lp.demos)


if __name__ == "__main__":
    main()

"""The one-GPU cost table of docs/scaling.md from a gpu_check.json: measured rates x the paper grid's token counts.

    python benchmarks/scaling_table.py gpu_check.json [--grid grid_tokens.json]

Without --grid, the counts measured with Gemma 3's tokenizer (benchmarks/grid_tokens.py) are used.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

# benchmarks/grid_tokens.py on ../shared/data/paper, tokenizer gemma-3-270m (tokens the prefix-cached scorer runs)
GRID_RUN_TOKENS = {"emotion": 1_194_705, "nli": 535_161, "paraphrase": 638_010}
TRAIN_TOKENS_PER_MIX = 20_000 * 3 * 87  # 20k pairs x 3 epochs x ~87 tokens a pair
VAL_TOKENS_PAPER = 71 * 1_000 * 87  # --protocol paper: every 50 steps on 1,000 pairs
MIXES, MODELS = 4, 5


def hours(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def table(check: dict[str, Any], grid: dict[str, int]) -> str:
    ev = {(r["phase"], r["task"]): r for r in check["eval"]}
    tr = {r["phase"]: r for r in check["train"]}
    half = "bf16" if any(p.startswith("bf16") for p, _ in ev) else "fp32"
    lines = [(f"Measured on {check['device']} ({check['versions'].get('torch')}, transformers "
             f"{check['versions'].get('transformers')}); model {check['model']['name']}, random weights."), "",
             "| | r (net tokens/s, measured) | work | time |", "|---|---:|---:|---:|"]
    totals: dict[str, float] = {}
    for prec in (f"{half}-auto", "nf4-auto"):
        total = 0.0
        for task, tokens in grid.items():
            r = ev.get((prec, task))
            if r is None:
                total = float("nan")
                continue
            t = tokens / r["net_tokens_per_s"] + r["fixed_s"]
            total += t
            if prec.endswith("auto") and not prec.startswith("nf4"):
                lines.append(f"| eval {task}, {half}, batch auto ({r['batch_size_used']}) | {r['net_tokens_per_s']:,.0f} "
                             f"| {tokens / 1e6:.2f} M tokens | {hours(t)} |")
        if math.isnan(total):  # this precision was not measured
            continue
        totals[prec] = total
        label = f"**eval, one model (32,000 prompts), {half}**" if not prec.startswith("nf4") else \
            "eval, one model, 4-bit NF4"
        lines.append(f"| {label} | | {sum(grid.values()) / 1e6:.2f} M | {hours(total)} |")
    for phase in (f"lora-{half}", "qlora-nf4"):
        r = tr.get(phase)
        if r is None:
            continue
        t = TRAIN_TOKENS_PER_MIX / r["tokens_per_s"]
        totals[phase] = t
        lines.append(f"| train, {phase}, one mix (60,000 pair passes) | {r['tokens_per_s']:,.0f} | "
                     f"{TRAIN_TOKENS_PER_MIX / 1e6:.1f} M | {hours(t)} |")
    if f"{half}-auto" in totals and f"lora-{half}" in totals:
        study = MODELS * totals[f"{half}-auto"] + MIXES * totals[f"lora-{half}"]
        lines.append(f"| **study: {MODELS} models evaluated + {MIXES} mixes trained ({half})** | | | {hours(study)} |")
        val = VAL_TOKENS_PAPER / tr[f"lora-{half}"]["tokens_per_s"]
        lines += ["", (f"Validation as the paper's recipe does it (every 50 steps on 1,000 pairs) adds at most "
                  f"{hours(val)} a mix (timed at the training rate; forward-only is faster).")]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("check", help="gpu_check.json")
    ap.add_argument("--grid", default=None, help="grid_tokens.json (default: the Gemma-tokenizer counts)")
    args = ap.parse_args()
    check = json.loads(Path(args.check).read_text(encoding="utf-8"))
    grid = GRID_RUN_TOKENS
    if args.grid:
        data = json.loads(Path(args.grid).read_text(encoding="utf-8"))
        grid = {task: int(r["run_tokens"]) for task, r in data["eval"].items()}
    print(table(check, grid))


if __name__ == "__main__":
    main()

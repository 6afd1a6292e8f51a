"""The in-task study's steps timed alone: preset:cpu-intask's train step (228 pairs, 1 epoch) and an eval step (20
languages x 100 items + content-free prompts), in the preset's settings and in the other settings named.

The steps are the preset's own (study.plan.make_plan on ../shared/data/paper, executed by study.steps.EXECUTORS in a
temporary study folder), with their settings changed only as a variant says; each run is its own process and the
whole step is timed (model load, validation, writing outputs included), as `qtalign run` would spend it.

    python benchmarks/bench_study_steps.py             # train float32 / bf16 autocast, eval bfloat16 / float32
    python benchmarks/bench_study_steps.py --quick     # 2 optimizer steps; eval 2 languages x 10 items
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parents[1] / "shared" / "data" / "paper"
TRAIN = "train:gemma-3-270m:zh-es-en:s42"
EVAL = "eval:gemma-3-270m:base:emotion:en:d0"
# variant name -> (step, settings changed from the preset's); the first of each step is the preset as it is
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "train-float32": (TRAIN, {}),
    "train-bf16-autocast": (TRAIN, {"autocast": "bfloat16"}),
    "eval-bfloat16": (EVAL, {}),
    "eval-float32": (EVAL, {"dtype": "float32"}),
}


def worker(name: str, data: Path, root: Path, quick: bool) -> dict[str, Any]:
    """Run the build step (untimed) and then one variant's step in a study folder under root; its seconds."""
    from qtalign.study.config import load_study
    from qtalign.study.plan import make_plan
    from qtalign.study.steps import EXECUTORS, Context

    plan = make_plan(load_study("preset:cpu-intask", data_root=str(data)))
    sid, change = VARIANTS[name]
    step = plan[sid]
    ctx = Context(root, plan, progress=False)
    if step.kind == "train":
        build = plan["build:zh-es-en"]
        ctx.out(build).mkdir(parents=True, exist_ok=True)
        EXECUTORS["build"](build, ctx)
        step.params["settings"] = {**step.params["settings"], **change, **({"max_steps": 2} if quick else {})}
    else:
        fields = {**step.params["settings"], **change}
        if quick:
            fields.update(langs=fields["langs"][:2], limit=10)
        step.params["settings"] = fields
    ctx.out(step).mkdir(parents=True, exist_ok=True)
    t0, c0 = time.perf_counter(), time.process_time()
    EXECUTORS[step.kind](step, ctx)
    seconds, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    import torch

    out: dict[str, Any] = {"seconds": seconds, "cpu_s": cpu_s, "threads": torch.get_num_threads()}
    if step.kind == "train":
        out["losses"] = [json.loads(x)["loss"] for x in (ctx.out(step) / "train_log.jsonl").read_text().splitlines()]
        out["val"] = [json.loads(x)["val_loss"] for x in (ctx.out(step) / "val_log.jsonl").read_text().splitlines()]
    else:
        rows = [json.loads(x) for x in (ctx.out(step) / "predictions.jsonl").read_text().splitlines()]
        out["preds"] = {f"{r['lang']}:{r['index']}": r["pred"] for r in rows}
        out["probs"] = {f"{r['lang']}:{r['index']}": r["probs"] for r in rows}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker, Path(a.data), Path(a.root), a.quick)))
        return 0
    names = a.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"bench_study_steps: unknown variant(s) {unknown} (known: {', '.join(VARIANTS)})")
    res: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    print(f"{os.cpu_count()} CPUs; preset:cpu-intask steps {TRAIN} and {EVAL}{' (quick)' if a.quick else ''}")
    for k in range(a.repeats):
        for n in (names if k % 2 == 0 else names[::-1]):
            with tempfile.TemporaryDirectory() as tmp:
                cmd = [sys.executable, __file__, "--worker", n, "--data", a.data, "--root", tmp]
                proc = subprocess.run(cmd + (["--quick"] if a.quick else []), capture_output=True, text=True,
                                      check=False)
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr[-4000:])
                raise SystemExit(f"bench_study_steps: {n} failed (exit {proc.returncode})")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            res[n].append(r)
            print(f"  {n:22s} {r['seconds']:8.1f} s (CPU {r['cpu_s']:.1f} s, {r['threads']} threads)", flush=True)
    print(f"\n{'step':22s} {'seconds (median)':>16s} {'vs preset':>9s} {'CPU s':>8s} {'vs preset':>9s}  agreement with "
          "the preset's setting; raw s")
    for n in names:
        sid = VARIANTS[n][0]
        first = next(m for m in names if VARIANTS[m][0] == sid)
        med, base = statistics.median(r["seconds"] for r in res[n]), statistics.median(r["seconds"] for r in res[first])
        cmed, cbase = statistics.median(r["cpu_s"] for r in res[n]), statistics.median(r["cpu_s"] for r in res[first])
        r0, b0 = res[n][0], res[first][0]
        if "losses" in r0:
            agree = (f"max |loss diff| per step {max(abs(x - y) for x, y in zip(r0['losses'], b0['losses'])):.4f}, "
                     f"validation {' '.join(f'{v:.4f}' for v in r0['val'])} vs {' '.join(f'{v:.4f}' for v in b0['val'])}")
        else:
            keys = list(b0["preds"])
            same = sum(r0["preds"][k] == b0["preds"][k] for k in keys) / len(keys)
            dp = max(abs(r0["probs"][k][lab] - b0["probs"][k][lab]) for k in keys for lab in b0["probs"][k])
            agree = f"predictions equal {same:.4f} of {len(keys)}, max |dp| {dp:.3f}"
        print(f"{n:22s} {med:16.1f} {base / med:8.2f}x {cmed:8.1f} {cbase / cmed:8.2f}x  {agree}; " + " ".join(f"{r['seconds']:.1f}" for r in res[n]))
    print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

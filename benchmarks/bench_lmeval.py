"""Eval speed vs lm-evaluation-harness: the same items, prompts and model, one process per run, ratio table.

lm-evaluation-harness (pinned below) is installed from PyPI into benchmarks/.venv-lmeval on the first run (the CPU
build of the same torch first, and the same transformers release as qtalign's environment); its `hf` backend scores
each item as a multiple-choice task over the label words (their log-likelihood right after the prompt). qtalign runs
its evaluation loop (eval.loop.score_language: shared-prefix cache, length-bucketed batches, logits at the read
position only) in each setting named by --variants. Every run is a fresh process; only scoring is timed (model
loading is reported apart), runs are interleaved (A B ... B A) and repeated; the table shows medians, every raw time,
the speed ratio to lm-eval and the agreement with qtalign float32 (predictions equal, max label-probability
difference) within this one invocation.

    python benchmarks/bench_lmeval.py            # 5 languages x 40 items, 2 repeats
    python benchmarks/bench_lmeval.py --quick    # 5 languages x 8 items, 1 repeat (checks the pipeline)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-lmeval"
LMEVAL = "lm_eval[hf]==0.4.13"
DEFAULT_DATA = HERE.parents[1] / "shared" / "data" / "paper"
LANGS = "en,de,zh,hi,sw"


def ensure_venv() -> Path:
    """The lm-eval environment's python, made once: same torch (CPU build) and transformers as this environment."""
    py = VENV / "bin" / "python"
    if py.is_file():
        return py
    import torch
    import transformers

    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(py), "-m", "pip", "install", "-q"]
    subprocess.run(pip + [f"torch=={torch.__version__.split('+')[0]}"], check=True)
    subprocess.run(pip + [LMEVAL, f"transformers=={transformers.__version__}"], check=True)
    return py


def cpu_flags() -> str:
    """The CPU features that decide which kernels run (bf16 and int8 dot products, AMX)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next(line for line in f if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "unknown"
    wanted = ["avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8"]
    return " ".join(f for f in wanted if f in flags) or "none of " + ",".join(wanted)


def export_items(data: Path, langs: list[str], n: int, path: Path) -> None:
    """The in-task study's emotion prompts (items 0:250, 2-shot, English labels), n per language, as JSONL."""
    from qtalign.eval import EvalSettings, prepare

    s = EvalSettings(task="emotion", data=str(data / "emotion"), langs=tuple(langs), limit=n, items="0:250",
                     device="cpu")
    prep = prepare(s)
    rows = [{"lang": lang, "index": it.index, "prompt": lp.prompt(i), "choices": list(lp.label_words),
             "gold": prep.task.labels.index(it.label)} for lang, lp in prep.prompts.items() for i, it in enumerate(lp.items)]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def qtalign_worker(variant: str, data: Path, langs: list[str], n: int, out: Path, batch_size: int) -> None:
    """Score the exported items with qtalign's eval loop in one setting; write seconds and [N, L] scores."""
    import torch

    from qtalign.eval import EvalSettings, prepare
    from qtalign.eval.loop import score_language
    from qtalign.eval.scorers import token_index
    from qtalign.models import load_model
    from qtalign.scoring import Scorer
    from qtalign.store import JsonlWriter

    opts = variant_settings(variant)
    if "threads" in opts:
        torch.set_num_threads(int(opts.pop("threads")))
    s = EvalSettings(task="emotion", data=str(data / "emotion"), langs=tuple(langs), limit=n, items="0:250",
                     device="cpu", batch_size=batch_size, **opts)
    prep = prepare(s)
    t0 = time.perf_counter()
    lm = load_model(s.model, device="cpu", dtype=s.dtype)
    t_load = time.perf_counter() - t0

    class Bar:
        def update(self, k: int) -> None: ...
        def set_postfix_str(self, s: str) -> None: ...

    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), time.process_time()
        scorer = Scorer(lm.model, lm.tokenizer, batch_size=batch_size)
        index = token_index(s, lm.tokenizer)
        with JsonlWriter(Path(tmp) / "predictions.jsonl") as writer:
            for lp in prep.prompts.values():
                score_language(s, prep.task, lp, scorer, index, None, set(), writer, Bar(), dtype=lm.dtype)
        seconds, cpu_s = time.perf_counter() - t0, time.process_time() - c0
        rows = [json.loads(line) for line in (Path(tmp) / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    key = "probs" if s.scoring == "first-token" else "loglik"
    order = {(r["lang"], r["index"]): [r[key][label] for label in prep.task.labels] for r in rows}
    scores = [order[(lang, it.index)] for lang, lp in prep.prompts.items() for it in lp.items]
    out.write_text(json.dumps({"load_s": t_load, "seconds": seconds, "cpu_s": cpu_s, "threads": torch.get_num_threads(),
                               "n": len(scores), "scores": scores}))


def variant_settings(variant: str) -> dict[str, Any]:
    """'float32', 'bfloat16', 'float32+threads1'...: EvalSettings fields (and a thread count) of one setting."""
    parts = variant.split("+")
    opts: dict[str, Any] = {"dtype": parts[0]}
    for p in parts[1:]:
        if p.startswith("threads"):
            opts["threads"] = int(p.removeprefix("threads"))
        elif p == "loglik":
            opts["scoring"] = "loglik"
        else:
            raise SystemExit(f"bench_lmeval: unknown variant part {p!r} in {variant!r}")
    return opts


def run_one(kind: str, variant: str, a: argparse.Namespace, items: Path, work: Path, k: int) -> dict[str, Any]:
    out = work / f"{kind}-{variant}-{k}.json"
    if kind == "lm-eval":
        from qtalign.models import resolve_model_path

        cmd = [str(ensure_venv()), str(HERE / "lmeval_worker.py"), str(items), str(resolve_model_path(a.model)),
               str(out), "--dtype", variant, "--batch-size", str(a.lmeval_batch_size)]
    else:
        cmd = [sys.executable, __file__, "--worker", variant, "--data", a.data, "--langs", a.langs, "--n", str(a.n),
               "--out", str(out), "--batch-size", str(a.batch_size)]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"bench_lmeval: {kind} {variant} failed (exit {proc.returncode})")
    r = json.loads(out.read_text())
    print(f"  {kind:8s} {variant:18s} {r['seconds']:8.1f} s ({r['seconds'] / r['n']:.3f} s/item; CPU "
          f"{r['cpu_s'] / r['n']:.3f} s/item; load {r['load_s']:.1f} s, {r['threads']} threads)", flush=True)
    return r


def softmax_rows(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--langs", default=LANGS)
    ap.add_argument("--n", type=int, default=40, help="items per language")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--variants", default="float32,bfloat16", help="qtalign settings, the first is the reference")
    ap.add_argument("--lmeval-dtypes", default="float32", help="lm-eval dtypes to run (comma list)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lmeval-batch-size", default="8")
    ap.add_argument("--quick", action="store_true", help="8 items per language, 1 repeat")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    langs = a.langs.split(",")
    if a.worker:
        qtalign_worker(a.worker, Path(a.data), langs, a.n, Path(a.out), a.batch_size)
        return 0
    if a.quick:
        a.n, a.repeats = 8, 1
    import torch
    import transformers

    from qtalign.models import resolve_model_path

    resolve_model_path(a.model)  # convert/cache the GGUF once, outside the timed processes
    ensure_venv()
    lm_version = subprocess.run([str(VENV / "bin" / "python"), "-c", "import lm_eval; print(lm_eval.__version__)"],
                                capture_output=True, text=True, check=False).stdout.strip()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs ({cpu_flags()}); torch "
          f"{torch.__version__}, transformers {transformers.__version__}, lm-eval {lm_version}; model {a.model}; "
          f"emotion items 0:250, {len(langs)} languages x {a.n} items ({','.join(langs)}), {a.repeats} repeat(s)")
    runs = [("lm-eval", d) for d in a.lmeval_dtypes.split(",") if d] + [("qtalign", v) for v in a.variants.split(",")]
    times: dict[tuple[str, str], list[float]] = {r: [] for r in runs}
    cpu: dict[tuple[str, str], list[float]] = {r: [] for r in runs}
    results: dict[tuple[str, str], dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        items = work / "items.jsonl"
        export_items(Path(a.data), langs, a.n, items)
        golds = np.array([json.loads(line)["gold"] for line in items.read_text(encoding="utf-8").splitlines()])
        for k in range(a.repeats):  # A B ... B A: drifts in machine load fall on every run alike
            for kind, variant in (runs if k % 2 == 0 else runs[::-1]):
                r = run_one(kind, variant, a, items, work, k)
                times[(kind, variant)].append(r["seconds"] / r["n"])
                cpu[(kind, variant)].append(r["cpu_s"] / r["n"])
                results[(kind, variant)] = r
    ref = results[("qtalign", a.variants.split(",")[0])]
    ref_scores = np.array(ref["scores"])
    ref_pred = ref_scores.argmax(1)
    lm_base = statistics.median(times[runs[0]]) if runs[0][0] == "lm-eval" else None
    lm_cpu = statistics.median(cpu[runs[0]]) if runs[0][0] == "lm-eval" else None
    print(f"\n{'run':26s} {'s/item':>7s} {'vs lm-eval':>10s} {'CPU s/item':>10s} {'vs lm-eval':>10s} "
          f"{'= float32':>9s} {'max |dp|':>8s} {'accuracy':>8s}  raw s/item (wall)")
    for key in runs:
        r, med = results[key], statistics.median(times[key])
        scores = np.array(r["scores"])
        pred = scores.argmax(1)
        agree = float((pred == ref_pred).mean())
        if key[0] == "qtalign" and "loglik" not in key[1]:
            dp = f"{np.abs(scores - ref_scores).max():.1e}"
        else:  # log-likelihoods: compare the label distributions they imply
            dp = "-" if key[0] == "lm-eval" else f"{np.abs(softmax_rows(scores) - softmax_rows(ref_scores)).max():.1e}"
        c_med = statistics.median(cpu[key])
        ratio = f"{lm_base / med:.2f}x" if lm_base else "-"
        c_ratio = f"{lm_cpu / c_med:.2f}x" if lm_cpu else "-"
        name = f"{key[0]} {key[1]}"
        print(f"{name:26s} {med:7.3f} {ratio:>10s} {c_med:10.3f} {c_ratio:>10s} {agree:9.3f} {dp:>8s} "
              f"{float((pred == golds).mean()):8.3f}  " + " ".join(f"{t:.3f}" for t in times[key]))
    print(f"({len(ref_pred)} items; s/item: scoring time (wall, medians; model load excluded, fixed costs such as "
          "building the task or the tokenizer index included); CPU s/item: the process's CPU time, steadier than wall "
          "time on a shared machine when OMP_NUM_THREADS=1)")
    print(f"('= float32': share of predictions equal to qtalign {a.variants.split(',')[0]}'s; "
          "lm-eval picks the label word with the larger log-likelihood, qtalign the larger first-token mass)")
    print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

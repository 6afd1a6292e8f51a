"""Train speed and peak memory: qtalign's training loop vs a plain Hugging Face Trainer + PEFT, same pairs and recipe.

The pairs are the in-task study's (preset:cpu-intask: zh/es => en review questions from items 250-499 of the paper's
parallel emotion files, 120 per language, the 5% validation split removed: 228 pairs), or --synthetic ~100-token
ones. The recipe is the preset's (LoRA q_proj,v_proj r 8 alpha 16, lr 5e-4, 1 epoch, batch 4, cosine, 10% warmup,
gradient clipping 1.0); qtalign runs its own loop (train.prepare.start + train.loop.train_epochs: length-grouped
batches, output-position-only chunked loss), Hugging Face its Trainer with DataCollatorForSeq2Seq (padding to the
longest pair of each shuffled batch, logits at every position). Each run is its own process; the timed part is the
training alone (model load excluded), peak RSS is sampled every 10 ms in the process. Runs are interleaved
(A B B A) and repeated; the table shows medians, raw values and ratios within this one invocation, and for a
mixed-precision run the largest per-step loss difference from its float32 counterpart (same batches).

    python benchmarks/bench_train.py                  # 228 pairs, 1 epoch, float32 and bf16 autocast, 2 repeats
    python benchmarks/bench_train.py --quick          # 48 pairs, float32 only, 1 repeat
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
import threading
import time
from pathlib import Path
from typing import Any, Self

import psutil

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parents[1] / "shared" / "data" / "paper"
RECIPE = {"lr": 5e-4, "epochs": 1, "batch_size": 4, "grad_accum": 1, "scheduler": "cosine", "warmup_ratio": 0.1,
          "max_grad_norm": 1.0, "seed": 42}


def make_pairs(n: int) -> list[tuple[str, str]]:
    """~100-token question-translation pairs (German => English, SNLI-like), all of about one length."""
    base_de = "Prämisse: Ein Mann in einem blauen Hemd spielt auf einer Bühne Gitarre, während Menschen zuschauen"
    base_en = "Premise: A man in a blue shirt plays guitar on a stage while people watch"
    return [((f'{base_de} {i}.\nHypothese: Ein Musiker tritt auf.\nAntwort: "\nTranslate the input from German to '
              'English:\n'), f'{base_en} {i}.\nHypothesis: A musician performs.\nAnswer: "') for i in range(n)]


def intask_pairs(data: Path, work: Path) -> list[tuple[str, str]]:
    """The training pairs of preset:cpu-intask's zh-es-en mix (built with its settings; validation split removed)."""
    from qtalign.data.build_run import BuildSettings
    from qtalign.data.build_run import run as build
    from qtalign.train.encode import split_val
    from qtalign.train.pairs import read_pairs

    out = work / "pairs.jsonl"
    build(BuildSettings.parse({"task": "emotion", "data": [str(data / "emotion")], "sources": ["zh", "es"],
                               "target": "en", "per_lang": 120, "seed": 42, "exclude": str(data / "emotion"),
                               "test_items": "250:500", "out": str(out)}, "bench_train"), overwrite=True)
    pairs = read_pairs(str(out), None)
    train_idx, _ = split_val(len(pairs), 0.05, RECIPE["seed"])
    return [pairs[i] for i in train_idx]


class PeakRss:
    """Samples this process's RSS every 10 ms in a thread; .peak in bytes."""

    def __init__(self) -> None:
        self.proc, self.peak, self._stop = psutil.Process(), 0, False
        self.t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.01)

    def __enter__(self) -> Self:
        self.peak = self.proc.memory_info().rss
        self.t.start()
        return self

    def __exit__(self, *a: object) -> None:
        self._stop = True
        self.t.join()


def worker(mode: str, model_name: str, pairs_file: Path, out_dir: Path) -> dict[str, Any]:
    """One training run (mode: qtalign, hf, qtalign-bf16 or hf-bf16) on the pairs in pairs_file."""
    import torch

    pairs = [tuple(json.loads(line)) for line in pairs_file.read_text(encoding="utf-8").splitlines()]
    bf16 = mode.endswith("-bf16")
    if mode.startswith("qtalign"):
        from qtalign.distributed import get_dist
        from qtalign.train import TrainSettings
        from qtalign.train.loop import Logs, train_epochs
        from qtalign.train.prepare import start

        s = TrainSettings(model=model_name, data=str(pairs_file), out=str(out_dir), device="cpu", dtype="float32",
                          val_ratio=0, save_every=10**9, keep="last", autocast="bfloat16" if bf16 else None,
                          **RECIPE)
        torch.manual_seed(s.seed)
        st = start(s, get_dist("cpu"), pairs)  # loads the model, adds LoRA, encodes the pairs
        rss_loaded = psutil.Process().memory_info().rss
        n_tokens = sum(st.lengths[i] for i in st.train_idx)
        out_dir.mkdir(parents=True, exist_ok=True)
        logs = Logs.open(out_dir, True)
        with PeakRss() as mem:
            t0, c0 = time.time(), time.process_time()
            train_epochs(st, out_dir / "checkpoint", logs, progress=False)
            dt, cpu_s = time.time() - t0, time.process_time() - c0
        logs.close()
        losses = [json.loads(line)["loss"] for line in (out_dir / "train_log.jsonl").read_text().splitlines()]
    else:
        from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

        from qtalign.train import TrainSettings, add_lora, encode_pairs
        from qtalign.trainable import load_trainable

        torch.manual_seed(RECIPE["seed"])
        s = TrainSettings(device="cpu", **RECIPE)
        model, tok, _dev = load_trainable(model_name, "cpu", "float32")
        model.config.use_cache = False
        peft_model = add_lora(model, s)
        examples = encode_pairs(tok, pairs, s.max_len, False)
        n_tokens = sum(len(e.ids) for e in examples)
        rss_loaded = psutil.Process().memory_info().rss
        ds = [{"input_ids": e.ids, "attention_mask": [1] * len(e.ids), "labels": e.labels} for e in examples]
        args = TrainingArguments(output_dir=str(out_dir), per_device_train_batch_size=s.batch_size,
                                 gradient_accumulation_steps=1, num_train_epochs=s.epochs, learning_rate=s.lr,
                                 lr_scheduler_type=s.scheduler, warmup_steps=s.warmup_ratio,  # a float < 1: a ratio
                                 max_grad_norm=s.max_grad_norm, weight_decay=0.0, logging_steps=1,
                                 save_strategy="no", report_to=[], use_cpu=True, bf16=bf16, dataloader_num_workers=0,
                                 disable_tqdm=True, seed=s.seed)
        trainer = Trainer(model=peft_model, args=args, train_dataset=ds,
                          data_collator=DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100))
        with PeakRss() as mem:
            t0, c0 = time.time(), time.process_time()
            trainer.train()
            dt, cpu_s = time.time() - t0, time.process_time() - c0
        losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    return {"mode": mode, "seconds": dt, "cpu_s": cpu_s, "tokens": n_tokens, "tokens_per_s": n_tokens / dt,
            "tokens_per_cpu_s": n_tokens / cpu_s,
            "peak_rss_mb": mem.peak / 2**20, "rss_after_load_mb": rss_loaded / 2**20,
            "peak_over_load_mb": (mem.peak - rss_loaded) / 2**20, "losses": losses, "threads": torch.get_num_threads()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--pairs", type=int, default=None, help="use only the first N training pairs")
    ap.add_argument("--synthetic", type=int, default=None, metavar="N", help="N synthetic ~100-token pairs instead")
    ap.add_argument("--modes", default="hf,qtalign,hf-bf16,qtalign-bf16")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="48 pairs, hf and qtalign float32, 1 repeat")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--pairs-file", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker, a.model, Path(a.pairs_file), Path(a.out))))
        return 0
    if a.quick:
        a.pairs, a.repeats, a.modes = a.pairs or 48, 1, "hf,qtalign"
    import torch
    import transformers

    from qtalign.models import resolve_model_path

    resolve_model_path(a.model)  # convert/cache the GGUF once, outside the timed subprocesses
    modes = a.modes.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pairs = make_pairs(a.synthetic) if a.synthetic else intask_pairs(Path(a.data), work)
        pairs = pairs[: a.pairs] if a.pairs else pairs
        pairs_file = work / "train_pairs.jsonl"
        pairs_file.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs), encoding="utf-8")
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; torch {torch.__version__}, transformers "
              f"{transformers.__version__}; model {a.model}; {len(pairs)} "
              f"{'synthetic' if a.synthetic else 'in-task'} pairs, 1 epoch of batch 4; {a.repeats} repeat(s)")
        res: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
        for k in range(a.repeats):
            for mode in (modes if k % 2 == 0 else modes[::-1]):
                cmd = [sys.executable, __file__, "--worker", mode, "--model", a.model, "--pairs-file",
                       str(pairs_file), "--out", str(work / f"{mode}-{k}")]
                proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if proc.returncode != 0:
                    sys.stderr.write(proc.stderr[-4000:])
                    raise SystemExit(f"bench_train: {mode} failed (exit {proc.returncode})")
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                res[mode].append(r)
                print(f"  {mode:13s} {r['tokens_per_s']:7.1f} tokens/s  {r['seconds']:7.1f} s  peak RSS "
                      f"{r['peak_rss_mb']:6.0f} MB (+{r['peak_over_load_mb']:.0f} MB over the loaded model)", flush=True)
    med = {m: {k: statistics.median(r[k] for r in res[m]) for k in ("tokens_per_s", "tokens_per_cpu_s", "peak_rss_mb",
                                                                      "peak_over_load_mb")} for m in modes}
    print(f"\n{'run':13s} {'tokens/s':>9s} {'speed vs hf':>11s} {'CPU-time speed vs hf':>20s} {'peak RSS MB':>11s} "
          f"{'RSS vs hf':>9s} {'over-load vs hf':>15s} {'loss diff':>9s}  raw tokens/s")
    for m in modes:
        hf = "hf-bf16" if m.endswith("-bf16") and "hf-bf16" in med else "hf"
        ref = med.get(hf)

        def ratio(key: str, m: str = m, ref: dict[str, float] | None = ref) -> str:
            return f"{med[m][key] / ref[key]:.2f}x" if ref and ref[key] > 0 else "-"

        loss = "-"
        if m == "qtalign-bf16" and "qtalign" in res:  # same batches and schedule: the loss curves line up
            a32, a16 = res["qtalign"][0]["losses"], res[m][0]["losses"]
            loss = f"{max(abs(x - y) for x, y in zip(a32, a16)):.4f}"
        print(f"{m:13s} {med[m]['tokens_per_s']:9.1f} {ratio('tokens_per_s'):>11s} {ratio('tokens_per_cpu_s'):>20s} "
              f"{med[m]['peak_rss_mb']:11.0f} "
              f"{ratio('peak_rss_mb'):>9s} {ratio('peak_over_load_mb'):>15s} {loss:>9s}  "
              + " ".join(f"{r['tokens_per_s']:.1f}" for r in res[m]))
    print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; CPU-time speed: tokens per second of the "
          "process's CPU time, steadier than wall time on a shared machine when OMP_NUM_THREADS=1")
    print("(tokens/s counts each pair's real tokens once; ratios of bf16 runs are to hf-bf16 when it ran; loss diff: "
          "the largest per-step training-loss difference from qtalign float32)")
    if "qtalign" in res and "qtalign-bf16" in res:
        a32, a16 = res["qtalign"][0]["losses"], res["qtalign-bf16"][0]["losses"]
        print("loss per step, float32:      " + " ".join(f"{x:.3f}" for x in a32))
        print("loss per step, bf16 autocast: " + " ".join(f"{x:.3f}" for x in a16))
    return 0


if __name__ == "__main__":
    sys.exit(main())

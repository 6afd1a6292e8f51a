"""Train-step speed and peak memory: qtalign's trainer vs a plain Hugging Face Trainer, each in its own subprocess."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any, Self

import psutil


def make_pairs(n: int) -> list[tuple[str, str]]:
    """~100-token question-translation pairs (German => English, SNLI-like)."""
    base_de = "Prämisse: Ein Mann in einem blauen Hemd spielt auf einer Bühne Gitarre, während Menschen zuschauen"
    base_en = "Premise: A man in a blue shirt plays guitar on a stage while people watch"
    return [((f'{base_de} {i}.\nHypothese: Ein Musiker tritt auf.\nAntwort: "\nTranslate the input from German to '
              'English:\n'), f'{base_en} {i}.\nHypothesis: A musician performs.\nAnswer: "') for i in range(n)]


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


def worker(mode: str, model_name: str, steps: int, batch: int) -> dict[str, Any]:
    import torch

    from qtalign.train import (
        TrainSettings,
        add_lora,
        collate,
        encode_pairs,
        length_grouped_batches,
        output_loss,
    )
    from qtalign.trainable import load_trainable

    torch.manual_seed(0)
    s = TrainSettings(batch_size=batch, grad_accum=1, device="cpu")
    model, tok, _dev = load_trainable(model_name, "cpu")
    model.config.use_cache = False
    peft_model = add_lora(model, s)
    examples = encode_pairs(tok, make_pairs(steps * batch), 512, False)
    n_tokens = sum(len(e.ids) for e in examples)
    rss_loaded = psutil.Process().memory_info().rss
    if mode == "qtalign":
        lengths = [len(e.ids) for e in examples]
        batches = length_grouped_batches(lengths, list(range(len(examples))), batch, 0)
        opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=5e-5)
        peft_model.train()
        with PeakRss() as mem:
            t0 = time.time()
            for b in batches:
                ids, mask, labels = collate([examples[i] for i in b], tok.pad_token_id)
                n = int((labels[:, 1:] != -100).sum())
                (output_loss(peft_model, ids, mask, labels) / n).backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
            dt = time.time() - t0
    else:
        from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

        ds = [{"input_ids": e.ids, "attention_mask": [1] * len(e.ids), "labels": e.labels} for e in examples]
        args = TrainingArguments(output_dir=os.environ.get("TMPDIR", "/tmp") + "/bench_hf", per_device_train_batch_size=batch,
                                 gradient_accumulation_steps=1, max_steps=steps, learning_rate=5e-5,
                                 lr_scheduler_type="constant", logging_steps=1000, save_strategy="no", report_to=[],
                                 use_cpu=True, dataloader_num_workers=0, disable_tqdm=True, seed=0)
        trainer = Trainer(model=peft_model, args=args, train_dataset=ds,
                          data_collator=DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100))
        with PeakRss() as mem:
            t0 = time.time()
            trainer.train()
            dt = time.time() - t0
    return {"mode": mode, "seconds": dt, "tokens": n_tokens, "tokens_per_s": n_tokens / dt,
            "peak_rss_mb": mem.peak / 2**20, "rss_after_load_mb": rss_loaded / 2**20,
            "peak_over_load_mb": (mem.peak - rss_loaded) / 2**20}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--steps", type=int, default=12, help="optimizer steps (batch x accum 1)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--worker", choices=["hf", "qtalign"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker, a.model, a.steps, a.batch)))
        return 0
    from qtalign.models import resolve_model_path

    resolve_model_path(a.model)  # convert/cache the GGUF once, outside the timed subprocesses
    res = {}
    for mode in ("hf", "qtalign"):
        out = subprocess.run([sys.executable, __file__, "--worker", mode, "--model", a.model, "--steps", str(a.steps),
                              "--batch", str(a.batch)], capture_output=True, text=True, check=True)
        res[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        r = res[mode]
        print(f"{mode:8s} {r['tokens_per_s']:8.1f} tokens/s  peak RSS {r['peak_rss_mb']:7.0f} MB "
              f"(+{r['peak_over_load_mb']:.0f} MB over the loaded model)  {r['seconds']:.1f} s")
    hf, qt = res["hf"], res["qtalign"]
    print(f"speed ratio (qtalign/hf): {qt['tokens_per_s'] / hf['tokens_per_s']:.2f}x   "
          f"peak memory ratio: {qt['peak_rss_mb'] / hf['peak_rss_mb']:.2f}x   "
          f"training-memory ratio (peak over loaded model): {qt['peak_over_load_mb'] / max(hf['peak_over_load_mb'], 1):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

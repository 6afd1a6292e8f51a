"""lm-evaluation-harness side of bench_lmeval.py: runs in its own virtual environment (no qtalign import).

Reads the exported items (prompt, label words, gold index), loads the model with lm-eval's `hf` backend, scores every
item as a multiple-choice task (log-likelihood of each label word right after the prompt), and writes one JSON line:
load and scoring seconds, and each item's per-label log-likelihoods in the input order.

    python lmeval_worker.py ITEMS.jsonl MODEL_FOLDER OUT.json --dtype float32 --batch-size 8
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("items")
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--batch-size", default="8")
    a = ap.parse_args()
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    rows = [json.loads(line) for line in Path(a.items).read_text(encoding="utf-8").splitlines()]
    t0 = time.perf_counter()
    lm = HFLM(pretrained=a.model, device="cpu", dtype=a.dtype, batch_size=a.batch_size, add_bos_token=True)
    t_load = time.perf_counter() - t0
    task = {  # the prompts already hold the demonstrations: zero lm-eval shots, the label right after the cue
        "task": "qtalign_items", "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": a.items}},
        "test_split": "test", "output_type": "multiple_choice", "doc_to_text": "prompt", "doc_to_choice": "choices",
        "doc_to_target": "gold", "target_delimiter": "", "num_fewshot": 0, "metric_list": [{"metric": "acc"}],
    }
    t0, c0 = time.perf_counter(), time.process_time()
    res = simple_evaluate(model=lm, tasks=[task], log_samples=True, bootstrap_iters=0)
    t_eval, c_eval = time.perf_counter() - t0, time.process_time() - c0
    by_doc = {s["doc_id"]: [float(r[0]) for r in s["filtered_resps"]] for s in res["samples"]["qtalign_items"]}
    out = {"load_s": t_load, "seconds": t_eval, "cpu_s": c_eval, "threads": torch.get_num_threads(), "n": len(rows),
           "scores": [by_doc[i] for i in range(len(rows))], "acc": res["results"]["qtalign_items"]["acc,none"]}
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()

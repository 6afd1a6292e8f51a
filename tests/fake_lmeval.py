"""Synthetic lm-evaluation-harness output folders in lm-eval 0.4.13's layout (results_<date>.json beside
samples_<task>_<date>.jsonl in a model subfolder), for unit tests of qtalign's reader: no lm-eval needed.

The layout and fields are those lm-eval 0.4.13 writes with --log_samples; tests/integration/test_lmeval.py reads the
real thing."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

DATE = "2026-12-07T02-55-41.919927"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sample(doc_id: int, gold: int, lls: Sequence[float], prompt: str, doc: Mapping[str, Any] | None = None,
           choices: Sequence[str] | None = None) -> dict[str, Any]:
    """One samples line of a multiple-choice task as lm-eval 0.4.13 writes it (values sanitized to strings)."""
    doc = dict(doc) if doc is not None else {"id": doc_id, "text": prompt}
    choices = list(choices) if choices is not None else [f" choice {k}" for k in range(len(lls))]
    acc = float(max(range(len(lls)), key=lambda k: (lls[k], -k)) == gold)
    return {
        "doc_id": doc_id, "doc": doc, "target": str(gold),
        "arguments": {f"gen_args_{k}": {"arg_0": prompt, "arg_1": c} for k, c in enumerate(choices)},
        "resps": [[[str(float(x)), "False"]] for x in lls],
        "filtered_resps": [[str(float(x)), "False"] for x in lls],
        "filter": "none", "metrics": ["acc"],
        "doc_hash": sha(json.dumps(doc, indent=2, ensure_ascii=False)),
        "prompt_hash": sha(prompt), "target_hash": sha(str(gold)), "acc": acc,
    }


def write_lmeval_run(folder: Path, tasks: Mapping[str, Sequence[tuple[int, Sequence[float]]]], *,
                     model: str = "org/tiny-model", version: str | None = "0.4.13", date: str = DATE,
                     prompt: Callable[[str, int], str] = lambda task, i: f"{task} prompt {i}\nAnswer:",
                     with_samples: bool = True) -> Path:
    """folder/<model sanitized>/results_<date>.json and one samples file per task: tasks maps a task name to its
    items (gold choice, log-likelihood per choice), doc_id = position. Returns folder."""
    sub = folder / model.replace("/", "__")
    sub.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "results": {t: {"alias": t, "acc,none": 0.0} for t in tasks}, "group_subtasks": {},
        "configs": {t: {"task": t, "output_type": "multiple_choice"} for t in tasks},
        "versions": {t: 1.0 for t in tasks}, "n-shot": {t: 0 for t in tasks},
        "n-samples": {t: {"original": len(items), "effective": len(items)} for t, items in tasks.items()},
        "config": {"model": "hf", "model_args": {"pretrained": model}},
        "model_name": model, "model_name_sanitized": model.replace("/", "__"),
    }
    if version is not None:
        results["lm_eval_version"] = version
    if with_samples:
        hashes = {}
        for t, items in tasks.items():
            lines = [sample(i, gold, lls, prompt(t, i)) for i, (gold, lls) in enumerate(items)]
            (sub / f"samples_{t}_{date}.jsonl").write_text("".join(json.dumps(x, ensure_ascii=False) + "\n"
                                                                  for x in lines), encoding="utf-8")
            hashes[t] = sha("".join(x["doc_hash"] + x["prompt_hash"] + x["target_hash"] for x in lines))
        results["task_hashes"] = hashes
    (sub / f"results_{date}.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return folder
